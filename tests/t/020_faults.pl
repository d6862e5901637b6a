# Provider faults: rate limits with Retry-After, 5xx, resets before and after processing,
# malformed JSON, timeouts, quota and validation errors, unknown statuses.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use FtTest;
use PostgreSQL::Test::Utils;
use Test::More;

start_mock(speed => 6);
my $node = new_ft_node('faults', request_timeout => 3000);

# Run one job under one set of faults; returns (job id, final status).
sub run_case
{
	my ($name, $faults, %opt) = @_;
	mock_delete('/_mock/faults');
	mock_post('/_mock/faults', $faults) if @$faults;
	my $avatar = setup_tenant_avatar($node, $name, 20);
	my $job = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
	my $status = wait_for_job($node, $job, 'succeeded|failed|cancelled', $opt{timeout} // 60);
	diag explain mock_get('/_mock/faults') if $ENV{FT_DEBUG};
	mock_delete('/_mock/faults');
	return ($job, $status);
}

sub provider_jobs_for
{
	my ($job) = @_;
	return scalar grep { (($_->{metadata} // {})->{pg_finetune_job} // '') eq $job } @{ mock_get('/_mock/state')->{jobs} };
}

sub events_of
{
	my ($job, $type) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM ft_job_events WHERE job_id = '$job' AND type = '$type'");
}

my ($job, $status);

($job, $status) = run_case('rate limited', [ { match => { method => 'POST', path_regex => '^/v1/files$' }, times => 2,
	action => { status => 429, retry_after => 1 } } ]);
is($status, 'succeeded', '429 with Retry-After: retried and succeeded');
is(events_of($job, 'worker_retry'), '2', 'two retries recorded');
ok($node->safe_psql('postgres', "SELECT min((data->>'delay_ms')::int) FROM ft_job_events WHERE job_id = '$job' AND type = 'worker_retry'") >= 1000,
	'Retry-After honoured');

($job, $status) = run_case('server errors', [ { match => { method => 'POST', path_regex => '^/v1/fine_tuning/jobs$' }, times => 1,
	action => { status => 503 } }, { match => { method => 'GET', path_regex => '^/v1/fine_tuning/jobs/[^/]+$' }, times => 1,
	action => { status => 502 } } ]);
is($status, 'succeeded', '5xx on create and poll: retried and succeeded');
is(provider_jobs_for($job), 1, 'one provider job after a 503 on create');

($job, $status) = run_case('ambiguous create', [ { match => { method => 'POST', path_regex => '^/v1/fine_tuning/jobs$' }, times => 1,
	action => { reset_after_processing => JSON::PP::true } } ]);
is($status, 'succeeded', 'connection reset after the provider created the job: job found again and finished');
is(provider_jobs_for($job), 1, 'never submitted twice');

($job, $status) = run_case('reset and garbage', [ { match => { method => 'GET', path_regex => '^/v1/fine_tuning/jobs/[^/]+$' }, times => 1,
	action => { reset => JSON::PP::true } }, { match => { method => 'GET', path_regex => '/events$' }, times => 1,
	action => { malformed_json => JSON::PP::true } }, { match => { method => 'GET', path_regex => '^/v1/fine_tuning/jobs/[^/]+$' }, times => 1,
	action => { truncated_json => JSON::PP::true } } ]);
is($status, 'succeeded', 'reset connection, malformed and truncated JSON: retried and succeeded');

($job, $status) = run_case('slow bodies', [ { match => { method => 'GET', path_regex => '^/v1/fine_tuning/jobs/[^/]+$' }, times => 2,
	action => { slow_body_ms => 1500 } } ]);
is($status, 'succeeded', 'slow response bodies are waited for within the request timeout');

($job, $status) = run_case('out of credit', [ { match => { method => 'POST', path_regex => '^/v1/fine_tuning/jobs$' }, times => 1,
	action => { status => 429, code => 'insufficient_quota' } } ]);
is($status, 'failed', 'quota 429 is a failure, not a retry');
is(job_field($node, $job, 'error_code'), 'insufficient_quota', 'quota code kept');
like(job_field($node, $job, 'provider_request_id'), qr/^req_/, 'provider request id kept');

($job, $status) = run_case('bad request', [ { match => { method => 'POST', path_regex => '^/v1/files$' }, times => 1,
	action => { status => 400, error => { message => 'File is not valid JSONL', type => 'invalid_request_error', param => 'file', code => 'invalid_file_format' } } } ]);
is($status, 'failed', '4xx fails at once');
is(job_field($node, $job, 'error_message'), 'File is not valid JSONL', "provider's message kept");
is(events_of($job, 'worker_retry'), '0', '4xx is not retried');

# Unknown statuses and quirky payloads neither crash nor wedge a job.
mock_post('/_mock/config', { event_quirks => JSON::PP::true, speed => 1 });
my $avatar = setup_tenant_avatar($node, 'quirks', 20);
$job = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
wait_for_job($node, $job, 'running', 60);
my $pjob = job_field($node, $job, 'provider_job_id');
mock_post("/_mock/jobs/$pjob/unknown_status", { status => 'pausing', duration_ms => 2500 });
sleep 2;
is(job_field($node, $job, 'status'), 'running', 'unknown provider status keeps our state');
is(job_field($node, $job, 'provider_status'), 'pausing', 'raw provider status visible');
mock_post('/_mock/config', { speed => 6 });
is(wait_for_job($node, $job, 'succeeded|failed|cancelled'), 'succeeded', 'job finishes after the unknown status');
is(events_of($job, 'worker_unknown_status'), '1', 'unknown status reported once');

# Last: a hung request leaves the mock's handler thread busy until the client gives up.
mock_post('/_mock/config', { event_quirks => JSON::PP::false });
($job, $status) = run_case('hanging provider', [ { match => { method => 'GET', path_regex => '^/v1/fine_tuning/jobs/[^/]+$' }, times => 1,
	action => { hang => JSON::PP::true } } ]);
is($status, 'succeeded', 'a request that hangs times out and is retried');
like($node->safe_psql('postgres', "SELECT string_agg(message, ' ') FROM ft_job_events WHERE job_id = '$job' AND type = 'worker_retry'"),
	qr/[Tt]imeout|timed out/, 'the timeout is named in the retry event');

is(scalar(@{ mock_get('/_mock/state')->{violations} }), 0, 'no malformed request reached the provider')
  or diag explain mock_get('/_mock/state')->{violations};
is($node->safe_psql('postgres', q{SELECT count(*) FROM ft_worker_status WHERE state = 'serving'}), '1', 'worker still serving');

$node->stop;
stop_mock();
done_testing();
