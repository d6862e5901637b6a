#!/usr/bin/env bash
# Worker benchmark (tests/bench/worker_bench.py): starts a throwaway cluster and the local
# provider, measures, stops both. Needs pg_finetune installed. Run as root or as a user that can
# run PostgreSQL. Usage: tests/bench/worker_bench.sh [jobs=1000] [watch_seconds=150]
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=${1:-1000}
WATCH=${2:-150}
DIR=$(mktemp -d /tmp/ft_worker_bench.XXXXXX)
BIN=$(pg_config --bindir)
USER_RUN=$([ "$(id -u)" -eq 0 ] && echo postgres || id -un)
as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$USER_RUN" -- "$@"; else "$@"; fi; }
chown "$USER_RUN" "$DIR" 2>/dev/null || true
cp tests/mock_provider/mock_openai.py tests/bench/worker_bench.py "$DIR/"
PORT=55432
# speed 0.04: a job spends about 150 s at the provider, so all of them are live while we watch
as sh -c "python3 $DIR/mock_openai.py --port 0 --port-file $DIR/mock.port --state-dir $DIR/mock --speed 0.04 --log $DIR/mock.log >/dev/null 2>&1 & echo \$! > $DIR/mock.pid"
for _ in $(seq 50); do [ -s "$DIR/mock.port" ] && break; sleep 0.1; done
MOCK_PORT=$(cat "$DIR/mock.port")
as "$BIN/initdb" -D "$DIR/data" -A trust -E UTF8 --no-locale >/dev/null
cat >> "$DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_finetune'
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DIR'
ft.allowed_provider_hosts = '127.0.0.1:$MOCK_PORT'
ft.poll_interval = 5
ft.poll_interval_validating = 5
CONF
as "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null || { tail "$DIR/server.log"; exit 1; }
trap 'tail -5 "$DIR/server.log" >&2; as "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1; kill $(cat $DIR/mock.pid) 2>/dev/null; rm -rf "$DIR"' EXIT
PSQL="$BIN/psql -h $DIR -p $PORT -U $USER_RUN -d postgres"
as $PSQL -XAtq -c "CREATE EXTENSION pg_finetune" \
	-c "INSERT INTO ft_providers (name, kind, base_url) VALUES ('bench', 'mock', 'http://127.0.0.1:$MOCK_PORT/v1')" \
	-c "SET log_statement = 'none'" -c "SELECT ft_set_api_key('bench', 'sk-bench-key-0000')" >/dev/null
as python3 "$DIR/worker_bench.py" "$PSQL" "http://127.0.0.1:$MOCK_PORT" 5 "$JOBS" "$WATCH"
