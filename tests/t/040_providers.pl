# One job end to end per provider kind (Azure OpenAI v1 and legacy, Together, Fireworks, Mistral,
# Replicate) against tests/mock_provider/mock_providers.py, plus one fault each, asserting the same
# states and views as for OpenAI.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $json = JSON::PP->new->canonical;
my $dir = tempdir(CLEANUP => 1);
my $mock_pid = fork();
if ($mock_pid == 0)
{
	exec('python3', 'tests/mock_provider/mock_providers.py', '--port', '0', '--port-file', "$dir/port",
		'--speed', '4', '--duration', '6')
	  or die "cannot start mock: $!";
}
for (1 .. 100) { last if -s "$dir/port"; sleep 0.1; }
my $port = slurp_file("$dir/port");
chomp $port;
my $base = "http://127.0.0.1:$port";

sub mock
{
	my ($method, $path, $body) = @_;
	my $res = HTTP::Tiny->new(timeout => 10)->request($method, "$base$path",
		defined $body ? { content => $json->encode($body), headers => { 'Content-Type' => 'application/json' } } : {});
	die "mock $method $path: $res->{status} $res->{content}" unless $res->{success};
	return $json->decode($res->{content});
}

my $node = PostgreSQL::Test::Cluster->new('providers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_finetune'
ft.allowed_provider_hosts = '127.0.0.1:$port'
ft.poll_interval = 1
ft.poll_interval_validating = 1
ft.connect_timeout = 2000
ft.request_timeout = 3000
max_worker_processes = 16
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_finetune');
$node->safe_psql('postgres', qq{
INSERT INTO ft_providers (name, kind, base_url, settings, default_model) VALUES
  ('az', 'azure_openai', '$base/azure/openai/v1', '{}', 'gpt-4.1-mini-2025-04-14'),
  ('az-legacy', 'azure_openai', '$base/azure/openai', '{"api_version": "2024-10-21"}', 'gpt-4.1-mini-2025-04-14'),
  ('tog', 'together', '$base/together/v1', '{}', 'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference'),
  ('fw', 'fireworks', '$base/fireworks/v1', '{"account_id": "acme"}', 'accounts/fireworks/models/llama-v3p1-8b-instruct'),
  ('mis', 'mistral', '$base/mistral/v1', '{}', 'open-mistral-7b'),
  ('mis-manual', 'mistral', '$base/mistral/v1', '{"auto_start": false}', 'open-mistral-7b'),
  ('rep', 'replicate', '$base/replicate/v1',
   '{"trainer_owner": "meta", "trainer_name": "llama-3-8b", "trainer_version": "abc123", "destination": "acme/shop-bot", "input": {"lora_rank": 8}}',
   NULL);
});
for my $p (qw(az az-legacy tog fw mis mis-manual rep))
{
	$node->safe_psql('postgres', "SET log_statement = 'none'; SELECT ft_set_api_key('$p', 'sk-test-secret-key-0123456789');");
}

sub job_field
{
	my ($job, $field) = @_;
	return $node->safe_psql('postgres', "SELECT $field FROM ft_jobs WHERE id = '$job'");
}

sub wait_for_job
{
	my ($job, $want, $timeout) = @_;
	my $deadline = time + ($timeout // 60);
	my $status = '';
	while (time < $deadline)
	{
		$status = job_field($job, 'status');
		return $status if $status =~ /^(?:$want)$/;
		sleep 0.2;
	}
	diag "job $job is still $status";
	diag $node->safe_psql('postgres', "SELECT type, message FROM ft_job_events WHERE job_id = '$job' ORDER BY created_at, seq");
	return $status;
}

my $n_avatars = 0;
sub new_avatar
{
	my $name = 'bot ' . ++$n_avatars;
	return $node->safe_psql('postgres', qq{
SELECT ft_create_avatar('$name', settings => '{"min_examples": 12, "quality_threshold": 0}', system_prompt => 'You are a friendly shop assistant.') AS a \\gset
SELECT count(ft_add_example(:'a', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Do you have size ' || i || ' in stock?'),
         jsonb_build_object('role', 'assistant', 'content', 'Yes, size ' || i || ' is in stock.'))))
  FROM generate_series(1, 20) i \\g /dev/null
SELECT :'a';
});
}

sub start_job
{
	my ($avatar, $provider, $options) = @_;
	$options //= '{}';
	return $node->safe_psql('postgres',
		qq{SELECT ft_create_job('$avatar', (SELECT default_model FROM ft_providers WHERE name = '$provider'),
		                        '{"provider": "$provider"}'::jsonb || '$options'::jsonb)});
}

sub provider_jobs_with_file
{
	my ($job) = @_;
	my $file = job_field($job, 'training_file_id');
	my @mine = grep {
		my $j = $_;
		($j->{training_file} // '') eq $file
		  || ($j->{dataset} // '') eq $file
		  || (grep { $_ eq $file } @{ $j->{training_files} // [] })
		  || (grep { !ref($_) && $_ eq $file } values %{ $j->{input} // {} })
	} @{ mock('GET', '/_mock/state')->{jobs} };
	return scalar @mine;
}

# The same end state as for OpenAI: succeeded, model recorded and active, one provider job.
sub check_success
{
	my ($label, $avatar, $job, $model_re) = @_;
	is(wait_for_job($job, 'succeeded|failed|cancelled'), 'succeeded', "$label: job succeeds");
	my $model = job_field($job, 'fine_tuned_model');
	like($model, $model_re, "$label: fine-tuned model recorded");
	is($node->safe_psql('postgres', "SELECT active_model FROM ft_avatars WHERE id = '$avatar'"), $model,
		"$label: avatar active_model set");
	is(provider_jobs_with_file($job), 1, "$label: exactly one provider job");
	ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_events WHERE job_id = '$job' AND provider_event_id IS NOT NULL") > 0,
		"$label: provider events stored");
}

my %jobs;

# --- Azure OpenAI, v1 API, with a 429 + Retry-After on the upload
mock('POST', '/_mock/faults', { match => { method => 'POST', path_regex => '^/azure/openai/v1/files$' }, times => 1,
	action => { status => 429, retry_after => 1 } });
my $a1 = new_avatar();
$jobs{az} = start_job($a1, 'az', '{"suffix": "shop_bot-1"}');
check_success('azure v1', $a1, $jobs{az}, qr/^gpt-4\.1-mini-2025-04-14\.ft-[0-9a-f]+$/);
is($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_events WHERE job_id = '$jobs{az}' AND type = 'worker_retry'"),
	'1', 'azure v1: the 429 was retried once');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_checkpoints WHERE job_id = '$jobs{az}'") > 0,
	'azure v1: checkpoints stored');

# --- Azure OpenAI legacy API (api-version on every request, also after an existing query string)
my $a2 = new_avatar();
$jobs{azl} = start_job($a2, 'az-legacy');
check_success('azure legacy', $a2, $jobs{azl}, qr/\.ft-/);
my @legacy = grep { $_->{path} =~ m{^/azure/openai/fine_tuning} } @{ mock('GET', '/_mock/state')->{requests} };
ok(@legacy >= 3 && !(grep { $_->{path} !~ /[?&]api-version=2024-10-21/ } @legacy), 'azure legacy: api-version on every call');

# --- Together, with a 500 on create (retried, still one provider job)
mock('POST', '/_mock/faults', { match => { method => 'POST', path_regex => '^/together/v1/fine-tunes$' }, times => 1,
	action => { status => 500 } });
my $a3 = new_avatar();
$jobs{tog} = start_job($a3, 'tog', '{"suffix": "shop", "n_epochs": 2, "learning_rate_multiplier": 2}');
check_success('together', $a3, $jobs{tog}, qr{^mockuser/Meta-Llama-3\.1-8B-Instruct-Reference-shop-});
is($node->safe_psql('postgres', "SELECT format FROM ft_datasets WHERE job_id = '$jobs{tog}'"), 'together_chat',
	'together: dataset built in Together\'s conversational format');
my ($create) = grep { $_->{method} eq 'POST' && $_->{path} eq '/together/v1/fine-tunes' && ($_->{status} // 0) == 200 } @{ mock('GET', '/_mock/state')->{requests} };
is_deeply([ $create->{body}{n_epochs}, $create->{body}{training_method}{method} ], [ 2, 'sft' ], 'together: flat hyperparameters');
ok(abs($create->{body}{learning_rate} - 2e-5) < 1e-12, 'together: learning rate = multiplier x 1e-5');

# --- Fireworks, with a reset after the create was processed (found again by its dataset)
mock('POST', '/_mock/faults', { match => { method => 'POST', path_regex => 'supervisedFineTuningJobs$' }, times => 1,
	action => { reset_after_processing => JSON::PP::true } });
my $a4 = new_avatar();
$jobs{fw} = start_job($a4, 'fw', '{"suffix": "Shop_Bot"}');
check_success('fireworks', $a4, $jobs{fw}, qr{^accounts/acme/models/shop-bot-[0-9a-f]{8}$});
like(job_field($jobs{fw}, 'training_file_id'), qr{^accounts/acme/datasets/pgft-[0-9a-f-]+-train$}, 'fireworks: job refers to our dataset');

# Fireworks cancel: DELETE, then the job reads as cancelled
mock('POST', '/_mock/config', { speed => 0.3 });
my $a5 = new_avatar();
my $fwc = start_job($a5, 'fw');
wait_for_job($fwc, 'validating_files|queued|running');
is($node->safe_psql('postgres', "SELECT ft_cancel_job('$fwc')"), 'cancelling', 'fireworks: cancel requested');
is(wait_for_job($fwc, 'succeeded|failed|cancelled'), 'cancelled', 'fireworks: DELETE cancels the job');
ok((grep { $_->{method} eq 'DELETE' } @{ mock('GET', '/_mock/state')->{requests} }), 'fireworks: cancelled with DELETE');
mock('POST', '/_mock/config', { speed => 4 });

# --- Mistral, auto start; then a 422 validation error; then auto_start false (start call)
my $a6 = new_avatar();
$jobs{mis} = start_job($a6, 'mis', '{"suffix": "a-suffix-longer-than-eighteen"}');
check_success('mistral', $a6, $jobs{mis}, qr/^ft:open-mistral-7b:a-suffix-longer-th:/);
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_metrics WHERE job_id = '$jobs{mis}'") > 0,
	'mistral: checkpoint metrics stored as metric rows');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_checkpoints WHERE job_id = '$jobs{mis}'") > 0,
	'mistral: inline checkpoints stored');

mock('POST', '/_mock/faults', { match => { method => 'POST', path_regex => '^/mistral/v1/fine_tuning/jobs$' }, times => 1,
	action => { status => 422, code => 'value_error', message => 'Model is not available for fine-tuning' } });
my $a7 = new_avatar();
my $bad = start_job($a7, 'mis');
is(wait_for_job($bad, 'succeeded|failed|cancelled'), 'failed', 'mistral 422: job failed');
is(job_field($bad, 'error_code'), 'value_error', 'mistral 422: code from detail[0].type');
like(job_field($bad, 'error_message'), qr/\["body"\]: Model is not available for fine-tuning/, 'mistral 422: loc and msg kept');

my $a8 = new_avatar();
$jobs{mism} = start_job($a8, 'mis-manual');
check_success('mistral manual start', $a8, $jobs{mism}, qr/^ft:open-mistral-7b:/);
my ($mj) = grep { $_->{kind} eq 'mistral' && !$_->{auto_start} } @{ mock('GET', '/_mock/state')->{jobs} };
is($mj->{start_calls}, 1, 'mistral: one start call once the job was VALIDATED');

# --- Replicate, with a connection reset on a poll
mock('POST', '/_mock/faults', { match => { method => 'GET', path_regex => '^/replicate/v1/trainings/' }, times => 1,
	action => { reset => JSON::PP::true } });
my $a9 = new_avatar();
$jobs{rep} = start_job($a9, 'rep', '{"n_epochs": 2}');
check_success('replicate', $a9, $jobs{rep}, qr{^acme/shop-bot:[0-9a-f]+$});
like(job_field($jobs{rep}, 'training_file_id'), qr{^http://127\.0\.0\.1:\d+/replicate/v1/files/}, 'replicate: file referenced by URL');
my ($rj) = grep { $_->{kind} eq 'replicate' } @{ mock('GET', '/_mock/state')->{jobs} };
is_deeply([ $rj->{input}{lora_rank}, $rj->{input}{num_train_epochs} ], [ 8, 2 ], 'replicate: settings.input merged, epochs passed');
is($node->safe_psql('postgres', "SELECT format FROM ft_datasets WHERE job_id = '$jobs{rep}'"), 'prompt_completion',
	'replicate: dataset in the trainer\'s prompt/completion format');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_metrics WHERE job_id = '$jobs{rep}'") > 0,
	'replicate: metrics read from the logs');

# Replicate failure keeps the provider's message
my $a10 = new_avatar();
my $rf = start_job($a10, 'rep');
my $pid = '';
for (1 .. 100) { $pid = job_field($rf, "coalesce(provider_job_id, '')"); last if $pid ne ''; sleep 0.1; }
mock('POST', "/_mock/jobs/$pid/fail", { message => 'CUDA out of memory' });
is(wait_for_job($rf, 'succeeded|failed|cancelled'), 'failed', 'replicate: failed training ends the job');
is(job_field($rf, 'error_code') . ' / ' . job_field($rf, 'error_message'), 'training_failed / CUDA out of memory',
	'replicate: error kept');

# DPO on a provider that cannot run it fails with a clear code
my $a11 = new_avatar();
$node->safe_psql('postgres', qq{INSERT INTO ft_preferences (avatar_id, input, preferred, non_preferred)
  SELECT '$a11', jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Hi ' || i))),
         to_jsonb('Hello! How can I help?'::text), to_jsonb('What?'::text) FROM generate_series(1, 20) i});
my $dpo = start_job($a11, 'mis', '{"method": "dpo"}');
is(wait_for_job($dpo, 'succeeded|failed|cancelled'), 'failed', 'dpo on mistral: failed');
is(job_field($dpo, 'error_code'), 'unsupported_method', 'dpo on mistral: unsupported_method');

my $state = mock('GET', '/_mock/state');
is(scalar(@{ $state->{violations} }), 0, 'no request broke a provider protocol') or diag explain $state->{violations};
unlike(slurp_file($node->logfile), qr/sk-test-secret-key-0123456789/, 'API key never in the server log');

$node->stop;
kill 'TERM', $mock_pid;
waitpid($mock_pid, 0);
done_testing();
