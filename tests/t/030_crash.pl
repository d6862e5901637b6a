# Crash safety: kill -9 of the worker and immediate shutdowns at several states, including
# between the create request and the commit of its result. The provider must hold exactly one
# job per ours and every job must reach its terminal state.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use FtTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);

start_mock(speed => 3);
# The test framework turns restart_after_crash off; production keeps the default (on).
my $node = new_ft_node('crash', conf => 'restart_after_crash = on');

# kill -9 the serving worker; the postmaster then resets every backend (crash recovery)
sub kill_worker
{
	my $pid = $node->safe_psql('postgres', q{SELECT coalesce(max(pid), 0) FROM ft_worker_status WHERE state = 'serving'});
	ok($pid > 0, 'worker found') or return;
	kill 'KILL', $pid;
	sleep 1;
	wait_serving();
}

# After a crash or restart: the server accepts queries again and the worker serves
sub wait_serving
{
	$node->poll_query_until('postgres', q{SELECT count(*) FROM ft_worker_status WHERE state = 'serving'}, '1')
	  or die 'worker did not come back';
}

sub provider_jobs_for
{
	my ($job) = @_;
	return scalar grep { (($_->{metadata} // {})->{pg_finetune_job} // '') eq $job } @{ mock_get('/_mock/state')->{jobs} };
}

# Wait until an SQL condition on the job holds.
sub wait_until
{
	my ($job, $cond) = @_;
	for (1 .. 300)
	{
		return 1 if $node->safe_psql('postgres', "SELECT $cond FROM ft_jobs WHERE id = '$job'") eq 't';
		sleep 0.1;
	}
	return 0;
}

my @jobs;

# 1. kill -9 while the create request is in flight: the provider creates the job, we never hear.
mock_post('/_mock/faults', [ { match => { method => 'POST', path_regex => '^/v1/fine_tuning/jobs$' }, times => 1,
	action => { delay_ms => 2500 } } ]);
my $a1 = setup_tenant_avatar($node, 'crash during create', 20);
my $j1 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a1', options => '{"provider": "mock"}')});
ok(wait_until($j1, "create_attempted AND status = 'submitting'"), 'job reached submitting');
kill_worker();
push @jobs, $j1;

# 2. immediate shutdown while uploading.
mock_post('/_mock/faults', [ { match => { method => 'POST', path_regex => '^/v1/files$' }, times => 1,
	action => { delay_ms => 2000 } } ]);
my $a2 = setup_tenant_avatar($node, 'crash during upload', 20);
my $j2 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a2', options => '{"provider": "mock"}')});
ok(wait_until($j2, "status = 'uploading'"), 'job reached uploading');
$node->stop('immediate');
$node->start;
wait_serving();
push @jobs, $j2;

# 3. kill -9 while the provider runs the job.
my $a3 = setup_tenant_avatar($node, 'crash while running', 20);
my $j3 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a3', options => '{"provider": "mock"}')});
ok(wait_until($j3, "status IN ('queued', 'running')"), 'job reached the provider');
kill_worker();
push @jobs, $j3;

# 4. immediate shutdown while cancelling.
mock_post('/_mock/config', { speed => 0.3 });
my $a4 = setup_tenant_avatar($node, 'crash while cancelling', 20);
my $j4 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a4', options => '{"provider": "mock"}')});
ok(wait_until($j4, "provider_job_id IS NOT NULL"), 'job submitted');
mock_post('/_mock/faults', [ { match => { method => 'POST', path_regex => '/cancel$' }, times => 1, action => { delay_ms => 1500 } } ]);
$node->safe_psql('postgres', "SELECT ft_cancel_job('$j4')");
sleep 0.5;
$node->stop('immediate');
$node->start;
wait_serving();
mock_post('/_mock/config', { speed => 3 });

# 5. kill -9 while the provider validates the files.
mock_post('/_mock/config', { speed => 0.3 });
my $a5 = setup_tenant_avatar($node, 'crash while validating', 20);
my $j5 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a5', options => '{"provider": "mock"}')});
ok(wait_until($j5, "status = 'validating_files'"), 'job is being validated');
kill_worker();
mock_post('/_mock/config', { speed => 3 });
push @jobs, $j5;

# 6. immediate shutdown while a job is still pending (worker paused): it is picked up after restart.
$node->safe_psql('postgres', 'ALTER SYSTEM SET ft.worker_enabled = off; SELECT pg_reload_conf();');
sleep 0.5;
my $a6 = setup_tenant_avatar($node, 'crash while pending', 20);
my $j6 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$a6', options => '{"provider": "mock"}')});
$node->stop('immediate');
$node->start;
$node->safe_psql('postgres', 'ALTER SYSTEM RESET ft.worker_enabled; SELECT pg_reload_conf();');
wait_serving();
push @jobs, $j6;

for my $job (@jobs)
{
	is(wait_for_job($node, $job, 'succeeded|failed|cancelled', 90), 'succeeded', "job $job finished after the crash");
	is(provider_jobs_for($job), 1, "provider holds exactly one job for $job");
}
is(wait_for_job($node, $j4, 'succeeded|failed|cancelled', 90), 'cancelled', 'cancel survives an immediate shutdown');
is(provider_jobs_for($j4), 1, 'one provider job for the cancelled one');
is($node->safe_psql('postgres', q{SELECT count(*) FROM (SELECT job_id, provider_event_id FROM ft_job_events
  WHERE provider_event_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d}), '0', 'no provider event stored twice');
is(scalar(@{ mock_get('/_mock/state')->{violations} }), 0, 'no malformed request reached the provider');

$node->stop;
stop_mock();
done_testing();
