# pg_finetune loads from shared_preload_libraries, survives fast and immediate restarts, and its
# SQL functions also work when the library is not preloaded.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $example = q{'[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]'};

# Log lines that mean a backend or the postmaster crashed rather than stopped.
sub crash_lines
{
	my ($node, $from) = @_;
	my $log = slurp_file($node->logfile, $from);
	my @bad = grep { /PANIC|terminated by signal (?:4|6|7|8|11)\b|server process .* was terminated/ }
	  split /\n/, $log;
	return join("\n", @bad);
}

# The core SQL surface answers: an avatar, a prompt, an example, and the chat model.
sub core_works
{
	my ($node, $label) = @_;
	my $out = $node->safe_psql(
		'postgres', qq{
		SELECT ft_create_avatar('$label', system_prompt => 'You are $label.') AS id \\gset
		SELECT ft_add_example(:'id', $example) IS NOT NULL;
		SELECT ft_chat_model(:'id');
		SELECT ft_active_prompt(:'id');
		SELECT count(*) FROM ft_examples WHERE avatar_id = :'id';
	});
	is($out, "t\ngpt-4o-mini-2024-07-18\nYou are $label.\n1", "$label: core functions answer");
	return;
}

###############################################################################################
# A node that preloads the library
###############################################################################################
my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_finetune'\n");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), 'pg_finetune', 'library is preloaded');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_finetune');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pg_finetune'"),
	'0.1.0', 'extension created');

# Settings exist from the start of every session, and the ft. prefix is reserved.
is($node->safe_psql('postgres', 'SHOW ft.poll_interval'), '30s', 'ft.poll_interval is defined');
my ($rc, $stdout, $stderr) = $node->psql('postgres', 'SET ft.no_such_setting = 1');
isnt($rc, 0, 'unknown ft. setting is refused');
like($stderr, qr/invalid configuration parameter name "ft\.no_such_setting"/, 'with a clear message');

# A setting changed in postgresql.conf is picked up on reload.
$node->append_conf('postgresql.conf', "ft.poll_interval = '7s'\n");
$node->reload;
$node->poll_query_until('postgres', 'SHOW ft.poll_interval', '7s')
  or die 'ft.poll_interval was not reloaded';
pass('ft.poll_interval reloads');

core_works($node, 'before restarts');

# Fast restart: a clean shutdown, and everything is still there.
my $log_offset = -s $node->logfile;
$node->restart;
ok($node->log_contains(qr/database system was shut down at/, $log_offset),
	'fast restart shut down cleanly');
is(crash_lines($node, $log_offset), '', 'no crash during fast restart');
is($node->safe_psql('postgres', 'SHOW ft.poll_interval'), '7s', 'settings kept after fast restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ft_avatars'), '1', 'data kept after fast restart');
core_works($node, 'after fast restart');

# Immediate stop: crash recovery runs and the extension still answers.
$log_offset = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok($node->log_contains(qr/database system was interrupted|not properly shut down/, $log_offset),
	'immediate stop led to recovery');
ok($node->log_contains(qr/database system is ready to accept connections/, $log_offset),
	'server is ready after recovery');
is(crash_lines($node, $log_offset), '', 'no crash during immediate restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ft_avatars'), '2', 'committed data survived recovery');
core_works($node, 'after immediate restart');

# Errors raised by the library do not take the backend down.
($rc, $stdout, $stderr) = $node->psql('postgres', q{SELECT ft_check_example('{"messages": []}')});
like($stderr, qr/invalid training example: messages_not_array/, 'invalid example is an error');
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still answers after the error');

# messages is required: a NULL is refused as a not-null violation by every write path, and the
# check trigger must not crash on it.
$log_offset = -s $node->logfile;
my $avatar = $node->safe_psql('postgres', q{SELECT ft_create_avatar('null messages')});
my $row = $node->safe_psql('postgres', qq{SELECT ft_add_example('$avatar', $example)});
for my $sql (
	"INSERT INTO ft_examples (avatar_id, messages) VALUES ('$avatar', NULL)",
	"SELECT ft_add_example('$avatar', NULL)",
	"UPDATE ft_examples SET messages = NULL WHERE id = '$row'")
{
	($rc, $stdout, $stderr) = $node->psql('postgres', $sql);
	like(
		$stderr,
		qr/null value in column "messages" of relation "ft_examples" violates not-null constraint/,
		"NULL messages refused: $sql");
}
if (!is(crash_lines($node, $log_offset), '', 'NULL messages do not crash the backend'))
{
	# Test clusters run with restart_after_crash = off: bring the node back for the checks below.
	$node->stop('immediate', fail_ok => 1);
	$node->start;
}

# DROP EXTENSION and CREATE EXTENSION again while the library stays loaded.
$node->safe_psql('postgres', 'DROP EXTENSION pg_finetune');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname LIKE 'ft\_%'}),
	'0', 'DROP EXTENSION leaves no relation behind');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_finetune');
core_works($node, 'recreated');

is(crash_lines($node, 0), '', 'no crash in the whole log of the preloading node');
$node->stop;

###############################################################################################
# A node without the library preloaded: the SQL functions still work
###############################################################################################
my $plain = PostgreSQL::Test::Cluster->new('no_preload');
$plain->init;
$plain->start;

is($plain->safe_psql('postgres', 'SHOW shared_preload_libraries'), '', 'library is not preloaded');
$plain->safe_psql('postgres', 'CREATE EXTENSION pg_finetune');
core_works($plain, 'no preload');

# In a fresh session the library loads on first use; then its settings are there.
is( $plain->safe_psql(
		'postgres', qq{SELECT ft_check_example($example) IS NOT NULL;
		SHOW ft.poll_interval;}),
	"t\n30s",
	'library loads on demand and defines its settings');
($rc, $stdout, $stderr) = $plain->psql('postgres', q{SELECT ft_check_example('[]')});
like($stderr, qr/invalid training example/, 'example checks work without preload');

is(crash_lines($plain, 0), '', 'no crash in the log of the plain node');
$plain->stop;

done_testing();
