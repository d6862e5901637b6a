# Dataset files over ft.max_single_upload go up through the multi-part Uploads API, streamed
# part by part from disk, and the assembled files are byte for byte what the dataset build made.
use strict;
use warnings;
use FindBin;
use lib $FindBin::Bin;
use FtTest;
use PostgreSQL::Test::Utils;
use Test::More;

start_mock(speed => 6);
my $node = new_ft_node('large_upload', conf => "ft.max_single_upload = '1kB'\nft.upload_part_size = '1kB'");
my $avatar = setup_tenant_avatar($node, 'big files', 40);
my $job = $node->safe_psql('postgres', qq{SELECT ft_create_job('$avatar', options => '{"provider": "mock"}')});
is(wait_for_job($node, $job, 'succeeded|failed|cancelled'), 'succeeded', 'job with multi-part uploads succeeds')
  or diag job_field($node, $job, "error_code || ': ' || error_message");

my @requests = @{ mock_get('/_mock/requests')->{requests} };
my $begins = grep { $_->{method} eq 'POST' && $_->{path} eq '/v1/uploads' } @requests;
my $parts = grep { $_->{method} eq 'POST' && $_->{path} =~ m{^/v1/uploads/[^/]+/parts$} } @requests;
my $completes = grep { $_->{method} eq 'POST' && $_->{path} =~ m{^/v1/uploads/[^/]+/complete$} } @requests;
my $plain = grep { $_->{method} eq 'POST' && $_->{path} eq '/v1/files' } @requests;
my ($train_bytes, $valid_bytes) = split /\|/, $node->safe_psql('postgres',
	"SELECT d.train_bytes, d.validation_bytes FROM ft_datasets d JOIN ft_jobs j ON j.dataset_id = d.id WHERE j.id = '$job'");
# Files over 1 kB go in parts, smaller ones in one request.
my @sizes = grep { $_ > 0 } ($train_bytes, $valid_bytes);
my @large = grep { $_ > 1024 } @sizes;
ok(@large >= 1, "the training file ($train_bytes bytes) is over the limit");
is($begins, scalar(@large), 'one multi-part upload per file over the limit');
is($completes, scalar(@large), 'each multi-part upload completed once');
is($plain, @sizes - @large, 'files under the limit go in one request');
my $expected_parts = 0;
$expected_parts += int(($_ + 1023) / 1024) for @large;
is($parts, $expected_parts, "large files sent in 1 kB parts (train $train_bytes, validation $valid_bytes bytes)");

my %files = map { $_->{id} => $_ } @{ mock_get('/_mock/state')->{files} };
my ($train_id, $valid_id) = split /\|/, $node->safe_psql('postgres',
	"SELECT training_file_id, validation_file_id FROM ft_jobs WHERE id = '$job'");
is($files{$train_id}{bytes}, $train_bytes, 'assembled training file has the dataset size');
is($files{$valid_id}{bytes}, $valid_bytes, 'assembled validation file has the dataset size');
is(scalar(@{ mock_get('/_mock/state')->{violations} }), 0, 'no malformed request reached the provider')
  or diag explain mock_get('/_mock/state')->{violations};

$node->stop;
stop_mock();
done_testing();
