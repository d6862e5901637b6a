#!/bin/sh
# Tokenizer benchmark: the C tokenizer against @dqbd/tiktoken (OpenAI's Rust tiktoken compiled
# to WebAssembly) on the same deterministic mixed chat corpus.  Checks that both give the same
# count for every text, then prints tokens/s of each, their ratio, and RSS after loading.
#
#   tests/bench/tokenizer_bench.sh [MiB]      (default 50; run from anywhere)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/out"
mib="${1:-50}"
mkdir -p "$out"

if [ ! -d "$here/node_modules/@dqbd/tiktoken" ]; then
	npm install --no-save --no-package-lock --prefix "$here" @dqbd/tiktoken@1.0.22 >/dev/null
fi

cc -O2 -Wall -Wextra -Werror -Wno-unused-parameter -I"$root/src" -o "$out/tokenizer_bench" \
	"$here/tokenizer_bench.c" "$root/src/tokenizer.c" "$root/src/unicode_categories.c"

corpus="$out/corpus_${mib}MiB.txt"
[ -f "$corpus" ] || node "$here/tokenizer_bench.mjs" gen "$corpus" "$mib"

"$out/tokenizer_bench" "$root/src/encodings" "$corpus" "$out/counts_c" | tee "$out/c.log"
node "$here/tokenizer_bench.mjs" count "$corpus" "$out/counts_dqbd" | tee "$out/dqbd.log"

status=0
for enc in o200k_base cl100k_base; do
	if cmp -s "$out/counts_c.$enc" "$out/counts_dqbd.$enc"; then
		echo "$enc: every text has the same count in both"
	else
		echo "$enc: COUNTS DIFFER (first differences below)"
		diff "$out/counts_c.$enc" "$out/counts_dqbd.$enc" | head -5
		status=1
	fi
	c=$(awk -v e="$enc" '$1 == "RESULT" && $3 == e { print $4 / $5 }' "$out/c.log")
	d=$(awk -v e="$enc" '$1 == "RESULT" && $3 == e { print $4 / $5 }' "$out/dqbd.log")
	awk -v e="$enc" -v c="$c" -v d="$d" 'BEGIN { printf "%s: C %.2f M tokens/s, @dqbd/tiktoken %.2f M tokens/s, ratio %.2fx\n", e, c / 1e6, d / 1e6, c / d }'
done
exit $status
