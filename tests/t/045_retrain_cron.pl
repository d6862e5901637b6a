# Scheduled retraining: ft_retrain_if_due decides (too few new examples, job in progress, too
# soon) and a pg_cron schedule creates the job. Needs the Debian package postgresql-15-cron;
# pg_cron 1.4 schedules by the minute, so the cron part waits up to ~80 s.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => 'pg_cron is not installed (apt-get install postgresql-15-cron)'
  unless -e "$sharedir/extension/pg_cron.control";

my $node = PostgreSQL::Test::Cluster->new('retrain');
$node->init;
# The worker is off: this test is about when jobs get created, not about running them.
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'pg_cron,pg_finetune'
cron.database_name = 'postgres'
# Runs in background workers: the test node accepts no TCP connection for pg_cron's libpq.
cron.use_background_workers = on
max_worker_processes = 20
ft.worker_enabled = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron; CREATE EXTENSION pg_finetune;');
my $avatar = $node->safe_psql('postgres', q{
SELECT ft_create_avatar('cron bot', settings => '{"min_examples": 12, "quality_threshold": 0}') AS a \gset
SELECT count(ft_add_example(:'a', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Do you ship to country ' || i || '?'),
         jsonb_build_object('role', 'assistant', 'content', 'Yes, we ship to country ' || i || ' within a week.'))))
  FROM generate_series(1, 20) i \g /dev/null
SELECT :'a';
});

sub due
{
	my ($args) = @_;
	return $node->safe_psql('postgres', "SELECT ft_retrain_if_due('$avatar'$args) ->> 'action', ft_retrain_if_due('$avatar'$args) ->> 'reason'");
}

is(due(''), 'skipped|not_enough_new_examples', 'default threshold (100 new examples) not reached');
is($node->safe_psql('postgres', "SELECT ft_retrain_if_due('$avatar') ->> 'new_examples'"), '20', 'new examples counted');

# The weekly call of the README, and a per-minute one that must fire during the test.
$node->safe_psql('postgres', qq{SELECT cron.schedule('retrain-weekly', '0 3 * * 1', \$\$SELECT ft_retrain_if_due('$avatar')\$\$)});
$node->safe_psql('postgres', qq{SELECT cron.schedule('retrain-now', '* * * * *',
  \$\$SELECT ft_retrain_if_due('$avatar', min_new_examples => 10, min_interval => '1 hour')\$\$)});
my $deadline = time + 90;
my $jobs = 0;
while (time < $deadline)
{
	$jobs = $node->safe_psql('postgres', "SELECT count(*) FROM ft_jobs WHERE avatar_id = '$avatar'");
	last if $jobs > 0;
	sleep 1;
}
is($jobs, '1', 'pg_cron run created a fine-tuning job');
is($node->safe_psql('postgres', "SELECT status FROM cron.job_run_details WHERE command LIKE '%min_new_examples => 10%' ORDER BY start_time DESC LIMIT 1"),
	'succeeded', 'cron run recorded as succeeded');
is($node->safe_psql('postgres', "SELECT status FROM ft_jobs WHERE avatar_id = '$avatar'"), 'pending',
	'job waits for the worker');
$node->safe_psql('postgres', "SELECT cron.unschedule('retrain-now')");

is(due(', min_new_examples => 10'), 'skipped|job_in_progress', 'no second job while one is live');

# Once it succeeded: too soon, then (interval passed) not enough new examples since that job.
$node->safe_psql('postgres', "UPDATE ft_jobs SET status = 'succeeded', fine_tuned_model = 'ft:x', finished_at = now() WHERE avatar_id = '$avatar'");
is(due(", min_new_examples => 10, min_interval => '1 hour'"), 'skipped|too_soon', 'min_interval respected');
is(due(", min_new_examples => 10, min_interval => '0'"), 'skipped|not_enough_new_examples',
	'examples older than the last job do not count');
$node->safe_psql('postgres', qq{
SELECT count(ft_add_example('$avatar', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Can I pay with card number ' || i || '?'),
         jsonb_build_object('role', 'assistant', 'content', 'Yes, all major cards work, option ' || i || '.'))))
  FROM generate_series(1, 12) i});
my $r = $node->safe_psql('postgres', "SELECT r ->> 'action', r ->> 'new_examples', (r ->> 'job_id') IS NOT NULL FROM ft_retrain_if_due('$avatar', min_new_examples => 10, min_interval => '0') r");
is($r, 'created|12|t', 'enough new examples: job created, reported with its id');

$node->stop;
done_testing();
