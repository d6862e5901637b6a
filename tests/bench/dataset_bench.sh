#!/bin/sh
# Dataset export benchmark (issue 5): for N examples (default 1,000,000) of one avatar, times in one run
#   (a) COPY (SELECT * FROM ft_jsonl(...)) TO '/dev/null'
#   (b) the SQL a user would write for the same lines (jsonb_build_object / jsonb_agg, the split by a
#       hash of the id, the active system prompt injected)
#   (c) COPY (SELECT messages::text FROM ft_examples WHERE avatar_id = ...) TO '/dev/null'
# and prints the ratios (targets: a at least 2x faster than b, within 1.3x of c), then the peak
# private memory of a backend running ft_build_dataset for 100,000 and for N examples.
#
# It runs a throwaway cluster as user postgres (initdb into /tmp, a free port, the library
# preloaded) and stops it at the end. Run as root or as postgres, after make install:
#   sh tests/bench/dataset_bench.sh [N]
# PG_BINDIR selects another PostgreSQL installation (default: pg_config --bindir).
set -eu

N=${1:-1000000}
BINDIR=${PG_BINDIR:-$(pg_config --bindir)}
DIR=$(mktemp -d /tmp/ft_dataset_bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_pg() {
	if [ "$(id -un)" = postgres ]; then sh -c "$1"; else su postgres -c "$1"; fi
}

chown postgres "$DIR" 2>/dev/null || true
as_pg "$BINDIR/initdb -D $DIR/data -E UTF8 --no-locale -A trust >$DIR/initdb.log 2>&1"
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_finetune'
shared_buffers = 2GB
work_mem = 4MB
max_wal_size = 8GB
fsync = off
synchronous_commit = off
full_page_writes = off
jit = off
CONF
as_pg "$BINDIR/pg_ctl -D $DIR/data -l $DIR/log -w start >/dev/null"
trap 'as_pg "$BINDIR/pg_ctl -D $DIR/data -m fast -w stop >/dev/null"; rm -rf "$DIR"' EXIT

PSQL="$BINDIR/psql -X -q -v ON_ERROR_STOP=1 -h $DIR -p $PORT -d postgres"
sql() { as_pg "$PSQL -At -c \"$1\""; }

# Milliseconds of one statement, best of three runs after one warm-up run
best_ms() {
	best=""
	for run in 0 1 2 3; do
		ms=$(as_pg "$PSQL -c '\\timing on' -c \"$1\"" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
		[ "$run" = 0 ] && continue
		best=$(python3 -c "print(min(float('$ms'), float('${best:-$ms}')))")
	done
	echo "$best"
}

# Peak private (anonymous) memory in kB of the backend while it runs a statement, and its baseline
# (resident shared buffers are left out: they are shared memory, not the backend's own)
peak_kb() {
	cat >"$DIR/sampler.sh" <<'SAMPLER'
pid=$1; out=$2; best=0
while kill -0 "$pid" 2>/dev/null; do
	v=$(sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
	[ -n "$v" ] && [ "$v" -gt "$best" ] && best=$v && echo "$best" >"$out"
	sleep 0.02
done
SAMPLER
	cat >"$DIR/peak.sql" <<PSQLEOF
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
\! sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\).*/\1/p' /proc/\$PID/status > $DIR/base
\! sh $DIR/sampler.sh \$PID $DIR/peak &
\! sleep 0.2
$1;
\! sleep 0.2
PSQLEOF
	chmod 644 "$DIR/peak.sql" "$DIR/sampler.sh"
	rm -f "$DIR/peak" "$DIR/base"
	as_pg "$PSQL -f $DIR/peak.sql >/dev/null"
	echo "$(cat $DIR/base) $(cat $DIR/peak)"
}

echo "# dataset benchmark: $N examples, PostgreSQL $(sql 'SHOW server_version')"
sql "CREATE EXTENSION pg_finetune" >/dev/null
A=$(sql "SELECT ft_create_avatar('bench', system_prompt => 'You are a friendly store assistant. Answer briefly.')")
SMALL=$(sql "SELECT ft_create_avatar('bench-100k', system_prompt => 'You are a friendly store assistant. Answer briefly.')")

# Realistic examples: mixed lengths, quotes and newlines to escape, some non-English text, a few
# with their own system prompt, categories and pattern types for the split and the cap. The write
# triggers are off while loading: this measures export, not scoring.
cat >"$DIR/load.sql" <<LOAD
ALTER TABLE ft_examples DISABLE TRIGGER USER;
CREATE TEMP TABLE phrases (i int, t text);
INSERT INTO phrases VALUES
 (0, 'Do you have this jacket in a medium size?'),
 (1, 'Where is my order? It was supposed to arrive "yesterday".'),
 (2, E'Can I return shoes after 30 days?\nI only wore them once.'),
 (3, 'Haben Sie dieses Produkt auch in Blau? Ich brauche es bis Freitag.'),
 (4, '¿Cuánto cuesta el envío a Madrid? Gracias de antemano.'),
 (5, 'この商品はまだ在庫がありますか？'),
 (6, 'Thanks! You have been very helpful today :)'),
 (7, 'My discount code SAVE10 does not work at checkout, what should I do?');
CREATE TEMP TABLE answers (i int, t text);
INSERT INTO answers VALUES
 (0, 'Yes, the jacket comes in medium. Would you like me to reserve one for you?'),
 (1, E'I am sorry about the delay. Your parcel left our warehouse on Monday; here is the tracking link.\nIs there anything else I can check?'),
 (2, 'Returns are accepted within 30 days. After that we can offer store credit if the item is unworn.'),
 (3, 'Ja, das Produkt gibt es auch in Blau. Bei Bestellung bis Mittwoch kommt es rechtzeitig an.'),
 (4, 'El envío a Madrid cuesta 4,95 € y es gratis a partir de 50 €.'),
 (5, 'はい、在庫がございます。ご注文いただければ明日発送いたします。'),
 (6, 'You are welcome! Have a lovely day and enjoy your purchase.'),
 (7, 'Codes are case-sensitive: please type SAVE10 in capitals. If it still fails, I can apply it for you.');
INSERT INTO ft_examples (avatar_id, messages, category, pattern_type, quality, verified, token_count, content_hash)
SELECT CASE WHEN g <= $N THEN '$A'::uuid ELSE '$SMALL'::uuid END,
       jsonb_build_object('messages',
         CASE WHEN g % 10 = 0 THEN jsonb_build_array(jsonb_build_object('role', 'system', 'content', 'You are terse.')) ELSE '[]'::jsonb END
         || jsonb_build_array(
              jsonb_build_object('role', 'user', 'content', q.t || ' (#' || g || ')'),
              jsonb_build_object('role', 'assistant', 'content', repeat(a.t || ' ', 1 + g % 3)))
         || CASE WHEN g % 4 = 0 THEN jsonb_build_array(
              jsonb_build_object('role', 'user', 'content', 'And one more thing: ' || q2.t),
              jsonb_build_object('role', 'assistant', 'content', a2.t, 'weight', 1)) ELSE '[]'::jsonb END),
       'category ' || (g % 12), (ARRAY['greeting','question','statement','joke','story','other'])[1 + g % 6],
       (g % 100) / 100.0, g % 3 = 0, 40 + g % 200, decode(md5(g::text), 'hex')
  FROM generate_series(1, $N + 100000) g
  JOIN phrases q ON q.i = g % 8 JOIN answers a ON a.i = g % 8
  JOIN phrases q2 ON q2.i = (g / 8) % 8 JOIN answers a2 ON a2.i = (g / 8) % 8;
ALTER TABLE ft_examples ENABLE TRIGGER USER;
VACUUM ANALYZE ft_examples;
LOAD
chmod 644 "$DIR/load.sql"
as_pg "$PSQL -f $DIR/load.sql" >/dev/null
echo "loaded: $(sql "SELECT count(*) FROM ft_examples WHERE avatar_id = '$A'") examples, table $(sql "SELECT pg_size_pretty(pg_table_size('ft_examples'))")"

# COPY in CSV with control-character quote and delimiter writes lines verbatim (text COPY would
# double backslashes); all three measurements use it.
RAW="WITH (FORMAT csv, QUOTE E'\\\\x01', DELIMITER E'\\\\x02')"
OPTS="{\\\"max_examples\\\": null}"
SEED="$A"

A_ALL="COPY (SELECT * FROM ft_jsonl('$A', 'all', 'chat', '$OPTS')) TO '/dev/null' $RAW"
A_TRAIN="COPY (SELECT * FROM ft_jsonl('$A', 'train', 'chat', '$OPTS')) TO '/dev/null' $RAW"
# (b): what a user writes without pg_finetune: hash split on the id, prompt injected when the
# example has no system message, lines rebuilt with jsonb_build_object / jsonb_agg.
B_TRAIN="COPY (
  SELECT jsonb_build_object('messages',
           CASE WHEN p.prompt IS NOT NULL AND NOT EXISTS (
                  SELECT 1 FROM jsonb_array_elements(e.messages->'messages') m WHERE m->>'role' = 'system')
                THEN jsonb_build_array(jsonb_build_object('role', 'system', 'content', p.prompt)) ELSE '[]'::jsonb END
           || (SELECT jsonb_agg(m ORDER BY n) FROM jsonb_array_elements(e.messages->'messages') WITH ORDINALITY AS x(m, n)))
         || (e.messages - 'messages')
  FROM ft_examples e CROSS JOIN (SELECT ft_active_prompt('$A') AS prompt) p
  WHERE e.avatar_id = '$A' AND NOT e.excluded
    AND ('x' || substr(md5('$SEED' || e.id::text), 1, 8))::bit(32)::bigint / 4294967296.0 >= 0.1
  ORDER BY e.id) TO '/dev/null' $RAW"
C_ALL="COPY (SELECT messages::text FROM ft_examples WHERE avatar_id = '$A') TO '/dev/null' $RAW"

ta=$(best_ms "$A_ALL")
tat=$(best_ms "$A_TRAIN")
tb=$(best_ms "$B_TRAIN")
tc=$(best_ms "$C_ALL")
printf '(a) ft_jsonl all splits        %10.0f ms\n' "$ta"
printf '(a) ft_jsonl train split       %10.0f ms\n' "$tat"
printf '(b) idiomatic SQL, train split %10.0f ms\n' "$tb"
printf '(c) messages::text, all rows   %10.0f ms\n' "$tc"
python3 -c "print('ratio b/a (train): %.2fx faster (target >= 2x)' % ($tb / $tat))"
python3 -c "print('ratio a/c (all):   %.2fx of the plain print (target <= 1.3x)' % ($ta / $tc))"

# Lines come in example id order (so a rebuild is byte-identical whatever the physical layout);
# ft_jsonl reads the heap in its own order and sorts the lines. For comparison, the same
# statements on the table clustered on its primary key (physical order = id order):
as_pg "$PSQL -c 'CLUSTER ft_examples USING ft_examples_pkey' -c 'VACUUM ANALYZE ft_examples'" >/dev/null
ta2=$(best_ms "$A_ALL")
tc2=$(best_ms "$C_ALL")
printf 'after CLUSTER ft_examples USING ft_examples_pkey:\n'
printf '(a) ft_jsonl all splits        %10.0f ms\n' "$ta2"
printf '(c) messages::text, all rows   %10.0f ms\n' "$tc2"
python3 -c "print('ratio a/c (all):   %.2fx of the plain print (target <= 1.3x)' % ($ta2 / $tc2))"

for who in "$SMALL:100000" "$A:$N"; do
	av=${who%%:*}
	n=${who#*:}
	set -- $(peak_kb "SELECT ft_build_dataset('$av', '{\"max_examples\": null}')")
	echo "ft_build_dataset of $n examples: backend private memory $1 kB before, peak $2 kB, growth $(( $2 - $1 )) kB"
done
set -- $(peak_kb "COPY (SELECT * FROM ft_jsonl('$A', 'all', 'chat', '{\"max_examples\": null}')) TO '/dev/null'")
echo "ft_jsonl of $N examples through COPY: backend private memory $1 kB before, peak $2 kB, growth $(( $2 - $1 )) kB"
sql "SELECT format, train_count, validation_count, train_bytes, validation_bytes, left(train_sha256, 16) FROM ft_datasets ORDER BY created_at"
