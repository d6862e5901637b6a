# A job's whole life against the local provider: success (model activated, mirrored, NOTIFY),
# provider-side failure, and cancellation.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use FtTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

start_mock(speed => 4);
my $node = new_ft_node('lifecycle');

$node->safe_psql('postgres', q{
CREATE TABLE app_bots (id uuid PRIMARY KEY, model text);
SELECT ft_mirror_model_to('app_bots', 'id', 'model');
});
my $avatar = setup_tenant_avatar($node, 'shop bot');
$node->safe_psql('postgres', "INSERT INTO app_bots VALUES ('$avatar', NULL)");

# Listen in another session for the whole life of the job.
my ($out, $err) = ('', '');
my $listener = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c', 'LISTEN ft_jobs', '-c', 'SELECT pg_sleep(12)' ],
	'>', \$out, '2>', \$err);
sleep 1;

my $job = $node->safe_psql('postgres',
	qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock", "suffix": "shop", "n_epochs": 2}')});
like($job, qr/^[0-9a-f-]{36}$/, 'ft_create_job returns the job id at once');
is(wait_for_job($node, $job, 'succeeded|failed|cancelled'), 'succeeded', 'job succeeds');

my $model = job_field($node, $job, 'fine_tuned_model');
like($model, qr/^ft:gpt-4o-mini-2024-07-18:mock-org:shop:/, 'fine-tuned model recorded');
is($node->safe_psql('postgres', "SELECT active_model FROM ft_avatars WHERE id = '$avatar'"), $model,
	'avatar active_model updated');
is($node->safe_psql('postgres', "SELECT ft_chat_model('$avatar')"), $model, 'ft_chat_model serves it');
is($node->safe_psql('postgres', "SELECT model FROM app_bots WHERE id = '$avatar'"), $model,
	'model mirrored into the app table');
is($node->safe_psql('postgres', "SELECT count(*) FROM ft_model_versions WHERE avatar_id = '$avatar' AND deactivated_at IS NULL"),
	'1', 'one active model version');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_metrics WHERE job_id = '$job' AND source = 'result_file'") > 0,
	'metrics read from the result file');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_events WHERE job_id = '$job' AND provider_event_id IS NOT NULL") > 0,
	'provider events stored');
is($node->safe_psql('postgres', "SELECT count(*) - count(DISTINCT provider_event_id) FROM ft_job_events WHERE job_id = '$job' AND provider_event_id IS NOT NULL"),
	'0', 'each provider event stored once');
ok($node->safe_psql('postgres', "SELECT count(*) FROM ft_job_checkpoints WHERE job_id = '$job'") > 0, 'checkpoints stored');
ok(job_field($node, $job, 'dataset_id') ne '', 'dataset build recorded for the job');
ok(job_field($node, $job, 'trained_tokens') > 0, 'trained tokens recorded');

my $state = mock_get('/_mock/state');
my @ours = grep { ($_->{metadata} // {})->{pg_finetune_job} // '' eq $job } @{ $state->{jobs} };
is(scalar(@ours), 1, 'provider holds exactly one job for ours');
is(scalar(@{ $state->{violations} }), 0, 'no malformed request reached the provider')
  or diag explain $state->{violations};

IPC::Run::finish($listener);
like($out, qr/"status" : "succeeded"|"status":"succeeded"|"succeeded"/, 'NOTIFY ft_jobs announced success');
like($out, qr/uploading/, 'NOTIFY announced intermediate states');

# Rollback goes back to the base model, activation by job id brings the model back.
is($node->safe_psql('postgres', "SELECT ft_rollback_model('$avatar')"), 'gpt-4o-mini-2024-07-18', 'rollback to base');
is($node->safe_psql('postgres', "SELECT model FROM app_bots WHERE id = '$avatar'"), '', 'mirror follows rollback');
is($node->safe_psql('postgres', "SELECT ft_activate_model('$avatar', '$job')"), $model, 'activate by job id');

# A provider-side failure keeps the provider's code and message.
my $job2 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
my $pid2 = '';
for (1 .. 100)
{
	$pid2 = job_field($node, $job2, "coalesce(provider_job_id, '')");
	last if $pid2 ne '';
	sleep 0.1;
}
mock_post("/_mock/jobs/$pid2/fail", { code => 'invalid_training_file', message => 'Example 3 is malformed' });
is(wait_for_job($node, $job2, 'succeeded|failed|cancelled'), 'failed', 'provider failure ends the job');
is(job_field($node, $job2, 'error_code'), 'invalid_training_file', 'provider error code kept');
like(job_field($node, $job2, 'error_message'), qr/Example 3 is malformed/, 'provider message kept');
is($node->safe_psql('postgres', "SELECT active_model FROM ft_avatars WHERE id = '$avatar'"), $model,
	'failed job leaves the active model alone');

# Cancellation while the provider runs the job.
mock_post('/_mock/config', { speed => 0.2 });
my $job3 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
is(wait_for_job($node, $job3, 'validating_files|queued|running'), job_field($node, $job3, 'status'), 'job submitted');
is($node->safe_psql('postgres', "SELECT ft_cancel_job('$job3')"), 'cancelling', 'cancel requested');
is(wait_for_job($node, $job3, 'succeeded|failed|cancelled'), 'cancelled', 'job cancelled at the provider');
my $pid3 = job_field($node, $job3, 'provider_job_id');
my ($p3) = grep { $_->{id} eq $pid3 } @{ mock_get('/_mock/state')->{jobs} };
is($p3->{status}, 'cancelled', 'provider job is cancelled too');

# A job not yet picked up is cancelled on the spot.
$node->safe_psql('postgres', 'ALTER SYSTEM SET ft.worker_enabled = off; SELECT pg_reload_conf();');
sleep 0.5;
my $job4 = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
is($node->safe_psql('postgres', "SELECT ft_cancel_job('$job4')"), 'cancelled', 'pending job cancelled at once');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET ft.worker_enabled; SELECT pg_reload_conf();');

is(scalar(@{ mock_get('/_mock/state')->{violations} }), 0, 'still no malformed request');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE ok) || '/' || count(*) FROM ft_doctor()
  WHERE check_name IN ('worker', 'polling', 'last worker error', 'provider mock host', 'provider mock key',
                       'tokenizer o200k_base', 'tokenizer cl100k_base')}), '7/7', 'ft_doctor: worker, mock provider and tokenizer healthy');
is($node->safe_psql('postgres', q{SELECT ok FROM ft_doctor() WHERE check_name = 'provider openai key'}), 'f',
	'ft_doctor notices the missing OpenAI key');
like($node->safe_psql('postgres', q{SELECT detail FROM ft_doctor() WHERE check_name = 'provider openai key'}),
	qr/no key: SELECT ft_set_api_key/, 'ft_doctor says how to add a missing key');
like($node->safe_psql('postgres', q{SELECT string_agg(check_name, ',') FROM ft_doctor()}),
	qr/^worker,databases served,polling,last worker error,.*provider mock host,provider mock key,.*tokenizer o200k_base,tokenizer cl100k_base$/,
	'ft_doctor checks the worker, every provider and the tokenizer');
unlike($node->safe_psql('postgres', q{SELECT string_agg(detail, ' ') FROM ft_doctor()}), qr/sk-test/, 'ft_doctor never shows a key');
my $log = slurp_file($node->logfile);
unlike($log, qr/sk-test-secret-key-0123456789/, 'API key never appears in the server log');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ft_audit WHERE action IN ('job_created', 'job_cancelled', 'model_activated', 'key_set')}) >= 6 ? 'ok' : 'few',
	'ok', 'audit trail records jobs, cancels, activations and keys');

$node->stop;
stop_mock();
done_testing();
