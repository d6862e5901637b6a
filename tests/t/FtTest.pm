# Helpers for pg_finetune's TAP tests: a node with the library preloaded, the local mock
# provider, and polling for job states.
package FtTest;

use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(start_mock stop_mock mock_get mock_post mock_delete new_ft_node setup_tenant_avatar
  wait_for_job job_field);

my $json = JSON::PP->new->canonical;
my ($mock_pid, $mock_port);

# Start tests/mock_provider/mock_openai.py on a free port; returns the port.
sub start_mock
{
	my (%opt) = @_;
	my $dir = tempdir(CLEANUP => 1);
	my $port_file = "$dir/port";
	my $speed = $opt{speed} // 4;
	$mock_pid = fork();
	if ($mock_pid == 0)
	{
		exec('python3', 'tests/mock_provider/mock_openai.py', '--port', '0', '--port-file', $port_file,
			'--state-dir', "$dir/state", '--speed', $speed, '--log', "$dir/mock.log")
		  or die "cannot start mock provider: $!";
	}
	for (1 .. 100)
	{
		last if -s $port_file;
		sleep 0.1;
	}
	open my $fh, '<', $port_file or die "mock provider did not start";
	$mock_port = <$fh>;
	chomp $mock_port;
	return $mock_port;
}

# A test that dies before stop_mock must not leave the provider running.
END { stop_mock() if $mock_pid; }

sub stop_mock
{
	kill 'TERM', $mock_pid if $mock_pid;
	waitpid($mock_pid, 0) if $mock_pid;
	$mock_pid = undef;
}

sub _request
{
	my ($method, $path, $body) = @_;
	my $res = HTTP::Tiny->new(timeout => 10)->request($method, "http://127.0.0.1:$mock_port$path",
		defined $body ? { content => $json->encode($body), headers => { 'Content-Type' => 'application/json' } } : {});
	die "mock $method $path failed: $res->{status} $res->{content}" unless $res->{success};
	return length $res->{content} ? $json->decode($res->{content}) : undef;
}

sub mock_get { return _request('GET', @_); }
sub mock_post { return _request('POST', @_); }
sub mock_delete { return _request('DELETE', @_); }

# A node preloading pg_finetune, polling fast and allowed to reach the mock on loopback.
sub new_ft_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_finetune'
ft.allowed_provider_hosts = 'api.openai.com,127.0.0.1:$mock_port'
ft.poll_interval = 1
ft.poll_interval_validating = 1
ft.connect_timeout = 2000
ft.request_timeout = ${\ ($opt{request_timeout} // 5000)}
max_worker_processes = 16
${\ ($opt{conf} // '')}
});
	$node->start;
	$node->safe_psql('postgres', q{CREATE EXTENSION pg_finetune});
	$node->safe_psql('postgres', qq{
INSERT INTO ft_providers (name, kind, base_url) VALUES ('mock', 'mock', 'http://127.0.0.1:$mock_port/v1');
});
	# Statement logging would record the key as typed: the README tells users to switch it off
	# for this call, as here.
	$node->safe_psql('postgres', q{SET log_statement = 'none'; SELECT ft_set_api_key('mock', 'sk-test-secret-key-0123456789');});
	return $node;
}

# An avatar with enough examples to be eligible; returns its id.
sub setup_tenant_avatar
{
	my ($node, $name, $n) = @_;
	$n //= 20;
	return $node->safe_psql('postgres', qq{
SELECT ft_create_avatar('$name', settings => '{"min_examples": 12, "quality_threshold": 0}', system_prompt => 'You are a friendly shop assistant.') AS a \\gset
SELECT count(ft_add_example(:'a', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Do you have size ' || i || ' in stock?'),
         jsonb_build_object('role', 'assistant', 'content', 'Yes, size ' || i || ' is in stock. Would you like me to reserve one for you?')),
         category => CASE WHEN i % 2 = 0 THEN 'stock' ELSE 'sizes' END))
  FROM generate_series(1, $n) i \\g /dev/null
SELECT :'a';
});
}

sub job_field
{
	my ($node, $job, $field) = @_;
	return $node->safe_psql('postgres', "SELECT $field FROM ft_jobs WHERE id = '$job'");
}

# Wait until a job reaches one of the given statuses; returns the status reached.
sub wait_for_job
{
	my ($node, $job, $want, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time + $timeout;
	my $status = '';
	while (time < $deadline)
	{
		$status = job_field($node, $job, 'status');
		return $status if $status =~ /^(?:$want)$/;
		sleep 0.2;
	}
	diag "job $job is still $status after ${timeout}s";
	diag $node->safe_psql('postgres', "SELECT type, message FROM ft_job_events WHERE job_id = '$job' ORDER BY created_at, seq");
	return $status;
}

1;
