#!/bin/sh
# Build and run every tests/fuzz/fuzz_*.c libFuzzer target for a while, one after the other.
#
#   tests/fuzz/run.sh [seconds] [name ...]     e.g.  tests/fuzz/run.sh 300 providers results_csv
#
# seconds: how long each target runs (default 60). Names (fuzz_<name>.c) limit the targets.
# Each target is linked against the pure objects of the Makefile's PURE_OBJS (compiled here with
# the sanitizers, in a static library so only the objects a target needs are linked), jansson,
# libcurl and libm. Undefined behaviour is fatal (-fno-sanitize-recover) and leaks are reported.
# Seeds come from tests/fuzz/corpus/<name>/ (kept in git); the growing corpus, logs and crash
# artifacts go to tests/fuzz/bin/ (ignored by git). Exit status 1 when any target crashed.
#
# Environment: CC (default clang), FUZZ_FLAGS (extra libFuzzer flags), RSS_LIMIT_MB (2048).
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 2
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
CC=${CC:-clang}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}
BIN=tests/fuzz/bin
# per run, so two runs (say one per core) do not overwrite each other's objects
OBJ=$BIN/obj.$$
LIB=$OBJ/libpure_fuzz.a
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all"
CFLAGS="-g -O1 -Isrc $(pkg-config --cflags jansson libcurl) -DFT_SHARE_DIR=\"$ROOT\""
LIBS="$(pkg-config --libs jansson libcurl) -lm"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "run.sh: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2
	exit 2
fi

# The pure objects, read from the Makefile so the list never drifts from the build
PURE_SRCS=$(sed -n '/^PURE_OBJS[[:space:]]*=/,/^[[:space:]]*$/p' Makefile | tr ' \t\\' '\n\n\n' |
	sed -n 's/^\(src\/.*\)\.o$/\1.c/p')
if [ -z "$PURE_SRCS" ]; then
	echo "run.sh: no PURE_OBJS found in Makefile" >&2
	exit 2
fi

mkdir -p "$OBJ" "$BIN/artifacts"
trap 'rm -rf "$OBJ"' EXIT
for src in $PURE_SRCS; do
	# shellcheck disable=SC2086
	$CC $CFLAGS $SAN -c -o "$OBJ/$(basename "$src" .c).o" "$src" 2>>"$OBJ/build.log" ||
		{ cat "$OBJ/build.log" >&2; echo "run.sh: cannot compile $src" >&2; exit 2; }
done
ar rcs "$LIB" "$OBJ"/*.o

if [ $# -gt 0 ]; then
	TARGETS=""
	for name in "$@"; do TARGETS="$TARGETS tests/fuzz/fuzz_$name.c"; done
else
	TARGETS=$(ls tests/fuzz/fuzz_*.c)
fi

status=0
for src in $TARGETS; do
	name=$(basename "$src" .c)
	short=${name#fuzz_}
	exe=$BIN/$name
	log=$BIN/$name.log
	work=$BIN/corpus_$short
	seeds=tests/fuzz/corpus/$short
	dict=tests/fuzz/$name.dict
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o "$exe" "$src" \
		"$LIB" $LIBS 2>"$log"; then
		printf '%-22s BUILD FAILED (see %s)\n' "$name" "$log"
		status=1
		continue
	fi
	mkdir -p "$work"
	set -- "$work"
	[ -d "$seeds" ] && set -- "$@" "$seeds"
	dictflag=""
	[ -f "$dict" ] && dictflag="-dict=$dict"
	rm -f "$BIN/artifacts/$name-"*
	# shellcheck disable=SC2086
	FT_SHARE_DIR="$ROOT" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		"$exe" -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_LIMIT_MB" -detect_leaks=1 \
		-artifact_prefix="$BIN/artifacts/$name-" -print_final_stats=1 $dictflag ${FUZZ_FLAGS:-} "$@" \
		>"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
	[ -z "$runs" ] && runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
	crashes=$(ls "$BIN/artifacts/$name-"* 2>/dev/null | wc -l)
	if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
		crashes=1
	fi
	printf '%-22s runs=%-10s time=%ss cov=%-6s crashes=%s%s\n' "$name" "${runs:-?}" "${secs:-?}" "${cov:-?}" \
		"$crashes" "$([ "$crashes" -gt 0 ] && echo " (see $log, $BIN/artifacts/)")"
	[ "$crashes" -gt 0 ] && status=1
done
exit $status
