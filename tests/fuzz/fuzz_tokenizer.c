/*
 * libFuzzer target for src/tokenizer.c.  The first input byte picks the encoding and the
 * output capacity; the rest is the text (any bytes, not only UTF-8).  Checks, besides the
 * sanitizers: ft_encode and ft_count_tokens agree, ids are valid, the ids' bytes concatenate
 * back to the input, pieces tile the input, and a short output buffer gets a prefix of the ids.
 *
 * Build and run from the repository root:
 *   mkdir -p tests/fuzz/bin
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -DFT_SHARE_DIR="\"$PWD\"" \
 *     -o tests/fuzz/bin/fuzz_tokenizer tests/fuzz/fuzz_tokenizer.c src/tokenizer.c src/unicode_categories.c
 *   tests/fuzz/bin/fuzz_tokenizer -max_total_time=300 -max_len=4096 tests/fuzz/bin/corpus
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FtEncoding *encodings[2];

/* Load both rank files once; abort when they are missing (nothing to fuzz without them) */
static void
LoadOnce(void)
{
	static const char *names[2] = {"o200k_base", "cl100k_base"};
	const char *dir = getenv("FT_SHARE_DIR") ? getenv("FT_SHARE_DIR") : FT_SHARE_DIR;
	char		path[4096];
	char		err[512];
	int			i;

	if (encodings[0] != NULL)
		return;
	for (i = 0; i < 2; i++)
	{
		snprintf(path, sizeof(path), "%s/src/encodings/%s.tiktoken", dir, names[i]);
		encodings[i] = ft_encoding_load(path, names[i], err, sizeof(err));
		if (encodings[i] == NULL)
		{
			fprintf(stderr, "%s\n", err);
			abort();
		}
	}
}

/* Stop with a message: libFuzzer saves the input as a crash */
static void
Fail(const char *what)
{
	fprintf(stderr, "fuzz_tokenizer: %s\n", what);
	abort();
}

/* The pieces of the pre-tokeniser cover the text exactly, each non-empty */
static void
CheckPieces(FtEncodingKind kind, const char *text, size_t len)
{
	size_t		pos = 0;

	while (pos < len)
	{
		size_t		e = ft_pretokenize_next(kind, text, len, pos);

		if (e <= pos || e > len)
			Fail("piece does not advance");
		pos = e;
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const FtEncoding *enc;
	const char *text;
	size_t		len;
	size_t		n;
	size_t		count;
	size_t		cap;
	size_t		pos = 0;
	size_t		i;
	uint32_t   *ids;
	uint32_t   *prefix;

	if (size < 1)
		return 0;
	LoadOnce();
	enc = encodings[data[0] & 1];
	text = (const char *) data + 1;
	len = size - 1;

	CheckPieces(ft_encoding_kind(enc), text, len);
	ids = malloc((len + 1) * sizeof(uint32_t));
	n = ft_encode(enc, text, len, ids, len + 1);
	count = ft_count_tokens(enc, text, len);
	if (FT_ENCODE_FAILED(n) || n != count)
		Fail("ft_encode and ft_count_tokens disagree");
	if (n > len)
		Fail("more tokens than bytes");
	for (i = 0; i < n; i++)
	{
		const unsigned char *bytes;
		size_t		blen;

		if (!ft_token_bytes(enc, ids[i], &bytes, &blen))
			Fail("invalid token id");
		if (pos + blen > len || memcmp(text + pos, bytes, blen) != 0)
			Fail("tokens do not round-trip");
		pos += blen;
	}
	if (pos != len)
		Fail("tokens do not cover the input");

	/* A short buffer receives a prefix of the ids and the full count */
	cap = (data[0] >> 1) % (n + 1);
	prefix = malloc((cap + 1) * sizeof(uint32_t));
	if (ft_encode(enc, text, len, prefix, cap) != n || memcmp(prefix, ids, cap * sizeof(uint32_t)) != 0)
		Fail("short output buffer differs");
	free(prefix);
	free(ids);
	return 0;
}
