#!/bin/sh
# Scoring and near-duplicate benchmark of pg_finetune, printing ratios measured in one run.
#
#   tests/bench/scoring_bench.sh            (after make install; as root or as a non-root user)
#
# Starts a throwaway PostgreSQL cluster (as user postgres when run as root), generates N
# deterministic realistic examples (tests/bench/scoring_data.sql) and times, on the same table:
#   (a) the C scorer:            SELECT sum((ft_score(messages)).score) FROM bench
#   (b) the same rules in PL/pgSQL with regular expressions (tests/bench/scoring_plpgsql.sql),
#       on the first PLPGSQL_N rows, compared with the C scorer on the same rows and scaled to N
#   (c) sequential scans reading the same column: count(messages) (tuples only),
#       count(messages -> 'messages') (every value opened) and count(messages::text) (every
#       value turned into text, the baseline we call fair: it reads all of each value)
# then the trigger path (INSERT of DEDUP_N examples into ft_examples with and without the
# scoring trigger) and ft_near_duplicates over those DEDUP_N examples of one avatar.
# Each timed statement runs twice and the faster run counts (warm cache); parallel query and JIT
# are off so that every figure is one backend's work.
set -eu

N=${N:-1000000}
PLPGSQL_N=${PLPGSQL_N:-50000}
DEDUP_N=${DEDUP_N:-100000}
PORT=${BENCH_PORT:-55499}
DIR=${BENCH_DIR:-/tmp/ft_scoring_bench}
HERE=$(cd "$(dirname "$0")" && pwd)
BINDIR=$(pg_config --bindir)

if [ "$(id -u)" = 0 ]; then
	AS="su postgres -c"
else
	AS="sh -c"
fi

rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
cp "$HERE/scoring_data.sql" "$HERE/scoring_plpgsql.sql" "$DIR/"
chmod a+r "$DIR"/*.sql

$AS "$BINDIR/initdb -D '$DIR/data' -E UTF8 --no-locale -A trust >/dev/null"
$AS "$BINDIR/pg_ctl -D '$DIR/data' -l '$DIR/log' -w -o \"-p $PORT -k '$DIR' -c shared_buffers=2GB -c work_mem=256MB -c maintenance_work_mem=1GB -c max_wal_size=16GB -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c jit=off -c max_parallel_workers_per_gather=0\" start >/dev/null"
trap '$AS "$BINDIR/pg_ctl -D \"$DIR/data\" -m fast stop >/dev/null" || true' EXIT

cat > "$DIR/bench.sql" <<EOF
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = error;
CREATE EXTENSION pg_finetune;
\i $DIR/scoring_data.sql
\i $DIR/scoring_plpgsql.sql
\echo generating $N examples ...
CREATE TABLE bench AS SELECT i AS id, bench_messages(i) AS messages FROM generate_series(1, $N) i;
VACUUM ANALYZE bench;
SELECT pg_size_pretty(pg_relation_size('bench')) AS table_size,
       round(avg(pg_column_size(messages))) AS avg_value_bytes,
       round(avg(char_length(messages -> 'messages' -> -1 ->> 'content'))) AS avg_response_chars
  FROM bench \gset
\echo table :table_size, values of :avg_value_bytes bytes on average, responses of :avg_response_chars characters

CREATE TEMP TABLE t (what text, ms double precision);
-- warm up: load the table into shared buffers and compile the lexicon
SELECT count(messages::text) FROM bench \g /dev/null
SELECT (ft_score(messages)).score FROM bench LIMIT 1 \g /dev/null
INSERT INTO t SELECT 'scan count(messages)', least(bench_ms('SELECT count(messages) FROM bench'), bench_ms('SELECT count(messages) FROM bench'));
INSERT INTO t SELECT 'scan count(messages->messages)', least(bench_ms('SELECT count(messages -> ''messages'') FROM bench'), bench_ms('SELECT count(messages -> ''messages'') FROM bench'));
INSERT INTO t SELECT 'scan count(messages::text)', least(bench_ms('SELECT count(messages::text) FROM bench'), bench_ms('SELECT count(messages::text) FROM bench'));
INSERT INTO t SELECT 'C ft_score, all rows', least(bench_ms('SELECT sum((ft_score(messages)).score) FROM bench'), bench_ms('SELECT sum((ft_score(messages)).score) FROM bench'));
INSERT INTO t SELECT 'C ft_score, subset', least(bench_ms('SELECT sum((ft_score(messages)).score) FROM bench WHERE id <= $PLPGSQL_N'), bench_ms('SELECT sum((ft_score(messages)).score) FROM bench WHERE id <= $PLPGSQL_N'));
INSERT INTO t SELECT 'PL/pgSQL score, subset', least(bench_ms('SELECT sum((bench_plpgsql_score(b.messages, r)).score) FROM bench b, bench_rx r WHERE b.id <= $PLPGSQL_N'), bench_ms('SELECT sum((bench_plpgsql_score(b.messages, r)).score) FROM bench b, bench_rx r WHERE b.id <= $PLPGSQL_N'));

-- how faithful the PL/pgSQL version is: share of the subset where both give the same score
SELECT round(100.0 * avg((abs(c.score - p.score) < 0.0001)::int), 1) AS agree_pct,
       round(100.0 * avg((c.components->'question' = p.components->'question')::int), 1) AS agree_question,
       round(100.0 * avg((c.components->'context' = p.components->'context')::int), 1) AS agree_context,
       round(100.0 * avg((c.components->'empathy_hits' = p.components->'empathy_hits')::int), 1) AS agree_empathy,
       round(100.0 * avg((c.components->'pii' = p.components->'pii')::int), 1) AS agree_pii
  FROM bench b, bench_rx r, ft_score(b.messages) c, bench_plpgsql_score(b.messages, r) p
 WHERE b.id <= 20000 \gset
\echo C and PL/pgSQL agree on :agree_pct% of scores (question :agree_question%, context :agree_context%, empathy hits :agree_empathy%, pii :agree_pii%) over the first 20000 rows

-- trigger path and near-duplicates: DEDUP_N examples of one avatar
SELECT ft_create_avatar('bench', settings => '{"quality_threshold": 0.5}') AS avatar \gset
SELECT ft_create_avatar('bench-noscore') AS avatar2 \gset
INSERT INTO t SELECT 'INSERT $DEDUP_N into ft_examples, scoring on', bench_ms(format('INSERT INTO ft_examples (avatar_id, messages) SELECT %L, messages FROM bench WHERE id <= $DEDUP_N', :'avatar'));
ALTER TABLE ft_examples DISABLE TRIGGER ft_examples_score;
INSERT INTO t SELECT 'INSERT $DEDUP_N into ft_examples, scoring off', bench_ms(format('INSERT INTO ft_examples (avatar_id, messages) SELECT %L, messages FROM bench WHERE id <= $DEDUP_N', :'avatar2'));
ALTER TABLE ft_examples ENABLE TRIGGER ft_examples_score;
VACUUM ANALYZE ft_examples;
INSERT INTO t SELECT 'ft_rescore $DEDUP_N', bench_ms(format('SELECT ft_rescore(%L)', :'avatar'));
SELECT count(*) FILTER (WHERE excluded AND exclusion_reason LIKE 'duplicate: exact%') AS exact_dups,
       count(*) FILTER (WHERE excluded AND exclusion_reason LIKE 'quality:%') AS low_quality
  FROM ft_examples WHERE avatar_id = :'avatar' \gset
\echo of $DEDUP_N examples: :exact_dups exact duplicates and :low_quality under threshold 0.5
INSERT INTO t SELECT 'ft_near_duplicates over $DEDUP_N (0.8)', bench_ms(format('CREATE TEMP TABLE pairs AS SELECT * FROM ft_near_duplicates(%L, 0.8)', :'avatar'));
SELECT count(*) AS npairs, count(DISTINCT example_b) AS nlater FROM pairs \gset
\echo ft_near_duplicates found :npairs pairs (:nlater distinct later examples)
INSERT INTO t SELECT 'ft_mark_duplicates over $DEDUP_N (0.8)', bench_ms(format('SELECT ft_mark_duplicates(%L, 0.8)', :'avatar'));
INSERT INTO t SELECT 'ft_diversity (1000-example sample)', bench_ms(format('SELECT ft_diversity(%L)', :'avatar'));

\echo
SELECT what, ms FROM t;
\echo
SELECT round((SELECT ms FROM t WHERE what = 'PL/pgSQL score, subset') / (SELECT ms FROM t WHERE what = 'C ft_score, subset'))::numeric(10,1) AS "PL/pgSQL / C on the same $PLPGSQL_N rows (target >= 20)",
       round(((SELECT ms FROM t WHERE what = 'PL/pgSQL score, subset') * $N / $PLPGSQL_N / (SELECT ms FROM t WHERE what = 'C ft_score, all rows'))::numeric, 1) AS "PL/pgSQL scaled to $N / C all rows";
SELECT round(((SELECT ms FROM t WHERE what = 'C ft_score, all rows') / (SELECT ms FROM t WHERE what = 'scan count(messages::text)'))::numeric, 2) AS "C score / scan ::text (target <= 1.5)",
       round(((SELECT ms FROM t WHERE what = 'C ft_score, all rows') / (SELECT ms FROM t WHERE what = 'scan count(messages->messages)'))::numeric, 2) AS "C score / scan ->",
       round(((SELECT ms FROM t WHERE what = 'C ft_score, all rows') / (SELECT ms FROM t WHERE what = 'scan count(messages)'))::numeric, 2) AS "C score / scan count(messages)",
       round(((SELECT ms FROM t WHERE what = 'C ft_score, all rows') * 1000 / $N)::numeric, 2) AS "C us per example";
SELECT round((((SELECT ms FROM t WHERE what LIKE 'INSERT % scoring on') - (SELECT ms FROM t WHERE what LIKE 'INSERT % scoring off')) * 1000 / $DEDUP_N)::numeric, 2) AS "trigger cost, us per inserted row",
       round(((SELECT ms FROM t WHERE what LIKE 'INSERT % scoring on') / (SELECT ms FROM t WHERE what LIKE 'INSERT % scoring off'))::numeric, 2) AS "INSERT time with / without scoring";
EOF
chmod a+r "$DIR/bench.sql"
$AS "$BINDIR/psql -X -q -h '$DIR' -p $PORT -d postgres -f '$DIR/bench.sql'"
