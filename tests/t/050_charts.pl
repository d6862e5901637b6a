# The SVG charts render in a real browser: headless Chromium turns ft_loss_chart and
# ft_quality_histogram output into PNG screenshots, which must not be blank.
use strict;
use warnings;

use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($chromium) = grep { -x $_ } map { "$_/chromium" } split /:/, $ENV{PATH};
($chromium) = grep { -x $_ } map { "$_/chromium-browser" } split /:/, $ENV{PATH} unless $chromium;
plan skip_all => 'chromium is not installed (Debian package "chromium"); cannot render the charts'
  unless $chromium;

my $node = PostgreSQL::Test::Cluster->new('charts');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_finetune'
ft.worker_enabled = off
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_finetune');

# A finished job with a loss curve, written directly as the worker would, and scored examples.
$node->safe_psql('postgres', q{
INSERT INTO ft_avatars (id, name) VALUES ('c0c0c0c0-0000-4000-8000-000000000001', 'chart shop');
INSERT INTO ft_jobs (id, avatar_id, provider, model, status, created_at, finished_at)
VALUES ('c0b00000-0000-4000-8000-000000000001', 'c0c0c0c0-0000-4000-8000-000000000001', 'openai',
        'gpt-4o-mini-2024-07-18', 'succeeded', now() - interval '1 hour', now());
INSERT INTO ft_job_metrics (job_id, avatar_id, step, train_loss, valid_loss, full_valid_loss, source)
SELECT 'c0b00000-0000-4000-8000-000000000001', 'c0c0c0c0-0000-4000-8000-000000000001', s,
       2.5 * exp(-s / 25.0) + 0.3 + 0.05 * sin(s),
       CASE WHEN s % 10 = 0 THEN 2.4 * exp(-s / 30.0) + 0.45 END,
       CASE WHEN s = 100 THEN 0.6 END, 'result_file'
  FROM generate_series(1, 100) s;
SELECT count(ft_add_example('c0c0c0c0-0000-4000-8000-000000000001', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Question ' || i || ' about shoes?'),
         jsonb_build_object('role', 'assistant', 'content', repeat('Sure, I can help with that. ', 1 + i % 7)))))
  FROM generate_series(1, 40) i;
});

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

# Number of distinct colours in an 8-bit RGB(A) PNG, read with zlib only (Chromium writes
# non-interlaced truecolour images).
sub png_colours
{
	my ($file) = @_;
	my $py = <<'EOF';
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, w, h, ctype = 8, b'', 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
        assert depth == 8 and ctype in (2, 6), 'unexpected PNG format'
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours = set()
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        colours.add(bytes(line[x:x + 3]))
    prev = line
print(len(colours))
EOF
	my $script = "$dir/png_colours.py";
	open my $fh, '>', $script or die $!;
	print $fh $py;
	close $fh;
	my $out = `python3 '$script' '$file' 2>&1`;
	chomp $out;
	return $out;
}

# Render one SVG with headless Chromium; returns the PNG path or undef.
sub render
{
	my ($name, $svg) = @_;
	my $svg_file = "$dir/$name.svg";
	my $png = "$dir/$name.png";
	open my $fh, '>', $svg_file or die $!;
	print $fh $svg;
	close $fh;
	my $profile = tempdir(CLEANUP => 1);
	my @cmd = ($chromium, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
		'--disable-component-update', '--disable-sync', '--no-first-run', "--user-data-dir=$profile",
		"--screenshot=$png", '--window-size=800,600', "file://$svg_file");
	my $log = `@cmd 2>&1`;
	diag("chromium: $log") unless -s $png;
	return -s $png ? $png : undef;
}

my $blank = render('blank', '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="450"><rect width="800" height="450" fill="#ffffff"/></svg>');
ok($blank, 'chromium renders an SVG to PNG');
my $blank_colours = $blank ? png_colours($blank) : 0;
cmp_ok($blank_colours, '<=', 2, "a blank SVG renders with at most 2 colours ($blank_colours)");

for my $chart (
	[ 'loss', q{SELECT ft_loss_chart('c0b00000-0000-4000-8000-000000000001')} ],
	[ 'quality', q{SELECT ft_quality_histogram('c0c0c0c0-0000-4000-8000-000000000001')} ],
	[ 'nodata', q{SELECT ft_loss_chart(id) FROM ft_jobs WHERE false UNION ALL SELECT ft_quality_histogram(a) FROM ft_create_avatar('empty') a} ])
{
	my ($name, $sql) = @$chart;
	my $svg = $node->safe_psql('postgres', $sql);
	like($svg, qr{^<svg xmlns="http://www.w3.org/2000/svg"}, "$name: standalone SVG");
	my $png = render($name, $svg);
	ok($png, "$name: rendered to PNG");
	my $colours = $png ? png_colours($png) : 0;
	# Anti-aliased lines and text give many shades; the charts use 3 or more colours besides white.
	cmp_ok($colours, '>', 20, "$name: the picture is not blank ($colours colours)");
}

$node->stop;
done_testing();
