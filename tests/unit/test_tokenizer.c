/*
 * Unit tests of src/tokenizer.c: the known traps of tiktoken re-implementations, the
 * pre-tokeniser's piece boundaries, the heap merge against a naive merge, pathological
 * inputs (timed, printed, not asserted), interrupts and rank-file errors.
 * Expected ids come from OpenAI's tiktoken (tokenizer.md §4 and the parity corpus).
 */
#include "tokenizer.h"
#include "unit.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

static FtEncoding *o200k;
static FtEncoding *cl100k;

/* Load a committed rank file or bail out */
static FtEncoding *
LoadOrBail(const char *name)
{
	char		path[4096];
	char		err[512];
	FtEncoding *enc;

	snprintf(path, sizeof(path), "%s/src/encodings/%s.tiktoken", FT_SHARE_DIR, name);
	enc = ft_encoding_load(path, name, err, sizeof(err));
	if (enc == NULL)
	{
		printf("Bail out! %s\n", err);
		exit(1);
	}
	return enc;
}

/* Printable form of a test text for TAP names (static buffer, at most 40 characters shown) */
static const char *
Shown(const char *text, size_t len)
{
	static char buf[4][200];
	static int	which = 0;
	char	   *out = buf[which = (which + 1) % 4];
	size_t		used = 0;
	size_t		i;

	for (i = 0; i < len && i < 40; i++)
	{
		unsigned char c = (unsigned char) text[i];

		if (c < 0x20)
			used += snprintf(out + used, 200 - used, "\\x%02X", c);
		else
			out[used++] = (char) c;
	}
	out[used] = '\0';
	return out;
}

/* Check the ids of a text against the expected list */
static void
CheckIds(const FtEncoding *enc, const char *text, size_t len, const uint32_t *want, size_t nwant)
{
	uint32_t	got[256];
	size_t		n = ft_encode(enc, text, len, got, 256);
	int			same = (n == nwant);
	size_t		i;

	for (i = 0; same && i < n; i++)
		same = (got[i] == want[i]);
	OK(same, "%s ids of \"%s\"", ft_encoding_name(enc), Shown(text, len));
	if (!same)
	{
		printf("#   got:");
		for (i = 0; i < n && i < 256; i++)
			printf(" %u", got[i]);
		printf("\n");
	}
	IS_INT(ft_count_tokens(enc, text, len), nwant, "%s count of \"%s\"", ft_encoding_name(enc), Shown(text, len));
}

/* Pieces of a text joined with '|' */
static void
Pieces(FtEncodingKind kind, const char *text, char *buf, size_t size)
{
	size_t		len = strlen(text);
	size_t		pos = 0;
	size_t		used = 0;

	buf[0] = '\0';
	while (pos < len)
	{
		size_t		e = ft_pretokenize_next(kind, text, len, pos);

		used += snprintf(buf + used, size - used, "%s%.*s", pos ? "|" : "", (int) (e - pos), text + pos);
		if (used >= size)
			break;
		pos = e;
	}
}

/* Check the pre-tokeniser's pieces */
static void
CheckPieces(FtEncodingKind kind, const char *text, const char *want)
{
	char		buf[1024];

	Pieces(kind, text, buf, sizeof(buf));
	IS_STR(buf, want, "%s pieces \"%s\"", kind == FT_ENCODING_O200K_BASE ? "o200k" : "cl100k", Shown(want, strlen(want)));
}

/* Concatenated token bytes equal the input */
static int
RoundTrips(const FtEncoding *enc, const char *text, size_t len)
{
	uint32_t   *ids = malloc((len + 1) * sizeof(uint32_t));
	size_t		n = ft_encode(enc, text, len, ids, len + 1);
	size_t		pos = 0;
	size_t		i;
	int			ok = n <= len;

	for (i = 0; ok && i < n; i++)
	{
		const unsigned char *b;
		size_t		blen;

		ok = ft_token_bytes(enc, ids[i], &b, &blen) && pos + blen <= len &&
			memcmp(text + pos, b, blen) == 0;
		pos += blen;
	}
	free(ids);
	return ok && pos == len;
}

/*
 * Naive tiktoken merge (rescan all pairs after each merge) for one piece, used to check the
 * heap merge on long pieces.  Returns the number of parts; ids in out.
 */
static size_t
NaiveMerge(const FtEncoding *enc, const unsigned char *p, size_t n, uint32_t *out)
{
	size_t	   *start = malloc((n + 1) * sizeof(size_t));
	size_t		np = n + 1;
	size_t		i;

	for (i = 0; i <= n; i++)
		start[i] = i;
	for (;;)
	{
		uint32_t	best = UINT32_MAX;
		size_t		bi = 0;

		for (i = 0; i + 2 < np; i++)
		{
			uint32_t	r = ft_token_rank(enc, p + start[i], start[i + 2] - start[i]);

			if (r < best)
			{
				best = r;
				bi = i;
			}
		}
		if (best == UINT32_MAX)
			break;
		memmove(start + bi + 1, start + bi + 2, (np - bi - 2) * sizeof(size_t));
		np--;
	}
	for (i = 0; i + 1 < np; i++)
		out[i] = ft_token_rank(enc, p + start[i], start[i + 1] - start[i]);
	free(start);
	return np - 1;
}

/* The heap merge of long pieces equals the naive merge on random words */
static void
TestLargeMerge(const FtEncoding *enc)
{
	static const char alphabet[] = "aabcdeeinorst";
	unsigned	seed = 12345;
	int			bad = 0;
	int			trial;

	for (trial = 0; trial < 200; trial++)
	{
		size_t		n = 100 + (size_t) (trial * 7 % 400);
		unsigned char word[600];
		uint32_t	want[600];
		uint32_t	got[600];
		size_t		nw,
					ng,
					i;

		for (i = 0; i < n; i++)
		{
			seed = seed * 1103515245u + 12345u;
			word[i] = (unsigned char) alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		/* One letter run is one piece in both encodings */
		nw = NaiveMerge(enc, word, n, want);
		ng = ft_encode(enc, (const char *) word, n, got, 600);
		if (ng != nw || memcmp(got, want, nw * sizeof(uint32_t)) != 0)
		{
			if (bad++ == 0)
				printf("#   first difference at trial %d (%zu bytes): %zu vs %zu ids\n", trial, n, ng, nw);
		}
	}
	IS_INT(bad, 0, "%s heap merge equals the naive merge on 200 words of 100-499 bytes", ft_encoding_name(enc));
}

/* Seconds since an arbitrary point */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A pathological input finishes, round-trips, and counts like it encodes; prints the time */
static void
TestPathological(const FtEncoding *enc, const char *what, const char *unit, size_t repeat)
{
	size_t		ulen = strlen(unit);
	size_t		len = ulen * repeat;
	char	   *text = malloc(len + 1);
	double		t0;
	size_t		n;
	size_t		i;

	for (i = 0; i < repeat; i++)
		memcpy(text + i * ulen, unit, ulen);
	text[len] = '\0';
	t0 = Now();
	n = ft_count_tokens(enc, text, len);
	printf("# %s %s: %zu tokens in %.3f s\n", ft_encoding_name(enc), what, n, Now() - t0);
	OK(!FT_ENCODE_FAILED(n) && n > 0 && n < len, "%s %s completes", ft_encoding_name(enc), what);
	OK(RoundTrips(enc, text, len), "%s %s round-trips", ft_encoding_name(enc), what);
	IS_INT(ft_encode(enc, text, len, NULL, 0), n, "%s %s: ft_encode count equals ft_count_tokens", ft_encoding_name(enc), what);
	free(text);
}

/* A long pseudo-random lowercase word (one piece) */
static void
TestLongWord(const FtEncoding *enc)
{
	size_t		len = 200000;
	char	   *text = malloc(len);
	unsigned	seed = 42;
	double		t0;
	size_t		n;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		seed = seed * 1103515245u + 12345u;
		text[i] = 'a' + (seed >> 16) % 26;
	}
	t0 = Now();
	n = ft_count_tokens(enc, text, len);
	printf("# %s random word of %zu letters: %zu tokens in %.3f s\n", ft_encoding_name(enc), len, n, Now() - t0);
	OK(!FT_ENCODE_FAILED(n) && n > len / 10, "%s long word completes", ft_encoding_name(enc));
	OK(RoundTrips(enc, text, len), "%s long word round-trips", ft_encoding_name(enc));
	free(text);
}

static int	interrupt_calls = 0;

/* Interrupt callback that asks to stop at once */
static int
StopNow(void *arg)
{
	interrupt_calls++;
	return *(int *) arg;
}

/* The callback is polled on long inputs and can abort an encoding */
static void
TestInterrupt(void)
{
	size_t		len = 1000000;
	char	   *text = malloc(len);
	int			stop = 0;
	size_t		n;

	memset(text, 'a', len);
	ft_set_interrupt_callback(StopNow, &stop);
	n = ft_count_tokens(o200k, text, len);
	OK(interrupt_calls > 0 && !FT_ENCODE_FAILED(n), "interrupt callback polled (%d calls) without stopping", interrupt_calls);
	stop = 1;
	IS_INT(ft_count_tokens(o200k, text, len), FT_ENCODE_ABORTED, "callback returning nonzero aborts a long piece");
	memset(text, ' ', len);
	for (size_t i = 1; i < len; i += 2)
		text[i] = 'x';
	IS_INT(ft_encode(cl100k, text, len, NULL, 0), FT_ENCODE_ABORTED, "callback returning nonzero aborts many short pieces");
	ft_set_interrupt_callback(NULL, NULL);
	OK(!FT_ENCODE_FAILED(ft_count_tokens(o200k, text, len)), "encoding works again without callback");
	free(text);
}

/* Write a file and try to load it as o200k_base; returns the error text (static) */
static const char *
LoadError(const char *content, size_t len)
{
	static char err[512];
	char		path[] = "/tmp/ft_tok_XXXXXX";
	int			fd = mkstemp(path);
	FtEncoding *enc;

	if (fd < 0 || write(fd, content, len) != (ssize_t) len)
		return "mkstemp failed";
	close(fd);
	err[0] = '\0';
	enc = ft_encoding_load(path, "o200k_base", err, sizeof(err));
	unlink(path);
	if (enc != NULL)
	{
		ft_encoding_free(enc);
		return NULL;
	}
	return err;
}

/* Missing, corrupt and unknown rank files fail with a message naming the problem */
static void
TestLoadErrors(void)
{
	char		err[512] = "";
	char		good[256 * 16];
	size_t		used = 0;
	const char *msg;
	int			b;

	OK(ft_encoding_load("/nonexistent/o200k_base.tiktoken", "o200k_base", err, sizeof(err)) == NULL &&
	   strstr(err, "/nonexistent/o200k_base.tiktoken") != NULL, "missing file fails naming it: %s", err);
	OK(ft_encoding_load("/nonexistent/x", "p50k_base", err, sizeof(err)) == NULL &&
	   strstr(err, "p50k_base") != NULL, "unknown encoding name fails: %s", err);

	/* A minimal valid file: the 256 single bytes */
	for (b = 0; b < 256; b++)
	{
		static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

		used += snprintf(good + used, sizeof(good) - used, "%c%c== %d\n", digits[b >> 2], digits[(b & 3) << 4], b);
	}
	OK(LoadError(good, used) == NULL, "256 single bytes load");
	msg = LoadError(good, used - 1);
	OK(msg == NULL, "last line without newline loads");
	OK((msg = LoadError("", 0)) != NULL && strstr(msg, "at least 256"), "empty file fails: %s", msg ? msg : "");
	OK((msg = LoadError("IQ== 0\nIg== 2\n", 14)) != NULL && strstr(msg, "contiguous"), "rank gap fails: %s", msg ? msg : "");
	OK((msg = LoadError("I*== 0\n", 7)) != NULL && strstr(msg, "base64"), "bad base64 fails: %s", msg ? msg : "");
	OK((msg = LoadError("IQ==\n", 5)) != NULL && strstr(msg, "line 1"), "missing rank fails: %s", msg ? msg : "");
	OK((msg = LoadError("IQ== x1\n", 8)) != NULL && strstr(msg, "rank"), "malformed rank fails: %s", msg ? msg : "");
	used += snprintf(good + used, sizeof(good) - used, "IQ== 256\n");
	OK((msg = LoadError(good, used)) != NULL && strstr(msg, "line 257 duplicates"), "duplicate token fails: %s", msg ? msg : "");
	/* Byte 0x00 replaced by the two bytes 00 00 */
	memcpy(good, "AAA=", 4);
	OK((msg = LoadError(good, used - 9)) != NULL && strstr(msg, "byte 0x00 has no rank"), "a file without byte 0x00 fails: %s", msg ? msg : "");
	OK((msg = LoadError("\x00\x01\x02", 3)) != NULL, "binary garbage fails: %s", msg ? msg : "");
}

int
main(void)
{
	o200k = LoadOrBail("o200k_base");
	cl100k = LoadOrBail("cl100k_base");
	printf("# memory: o200k_base %zu bytes (%zu tokens), cl100k_base %zu bytes (%zu tokens)\n",
		   ft_encoding_memory(o200k), ft_encoding_n_tokens(o200k),
		   ft_encoding_memory(cl100k), ft_encoding_n_tokens(cl100k));
	IS_INT(ft_encoding_n_tokens(o200k), 199998, "o200k_base has 199,998 ranks");
	IS_INT(ft_encoding_n_tokens(cl100k), 100256, "cl100k_base has 100,256 ranks");
	OK(ft_encoding_is_o200k(o200k) && !ft_encoding_is_o200k(cl100k), "encoding kinds");

	/* tokenizer.md §4: U+0085 is \s (JS peers get it wrong), U+FEFF is not */
	CheckIds(cl100k, " \xC2\x85" "0", 4, (const uint32_t[]) {220, 126, 227, 15}, 4);
	CheckIds(o200k, "x \xEF\xBB\xBFy", 6, (const uint32_t[]) {87, 71280, 88}, 3);
	CheckIds(o200k, "", 0, NULL, 0);
	CheckIds(o200k, "\r\n\r\n", 4, (const uint32_t[]) {1414}, 1);
	CheckIds(cl100k, "\r\n\r\n", 4, (const uint32_t[]) {881}, 1);
	CheckIds(o200k, "   \n  \t ", 8, (const uint32_t[]) {10190, 256, 7758}, 3);
	CheckIds(cl100k, "   \n  \t ", 8, (const uint32_t[]) {5996, 79199}, 2);
	/* Contractions in capitals */
	CheckIds(o200k, "I'M HERE, they're 'quoted' don't WON'T", 38,
			 (const uint32_t[]) {40, 95346, 32396, 11, 18940, 461, 121546, 6, 4128, 147667, 51532}, 11);
	CheckIds(cl100k, "I'M HERE, they're 'quoted' don't WON'T", 38,
			 (const uint32_t[]) {40, 28703, 19804, 11, 814, 2351, 364, 64825, 6, 1541, 956, 98467, 17773}, 13);
	CheckIds(o200k, "1234567890123", 13, (const uint32_t[]) {7633, 19354, 29338, 19267, 18}, 5);
	/* Combining marks: letters in o200k's word classes, not \p{L} in cl100k's */
	CheckIds(o200k, "a\xCC\x81" "e\xCC\x81", 6, (const uint32_t[]) {64, 13430, 68, 13430}, 4);
	CheckIds(cl100k, "a\xCC\x81" "e\xCC\x81", 6, (const uint32_t[]) {64, 54939, 68, 54939}, 4);

	/* Piece boundaries (tokenizer.md §3) */
	CheckPieces(FT_ENCODING_O200K_BASE, "a  b", "a| | b");
	CheckPieces(FT_ENCODING_CL100K_BASE, "a  b", "a| | b");
	CheckPieces(FT_ENCODING_CL100K_BASE, "it's SHE'LL x'K", "it|'s| SHE|'LL| x|'K");
	CheckPieces(FT_ENCODING_O200K_BASE, "it's SHE'LL x'K", "it's| SHE'LL| x|'K");
	CheckPieces(FT_ENCODING_O200K_BASE, "HelloWorld ABCdef", "Hello|World| ABCdef");
	CheckPieces(FT_ENCODING_CL100K_BASE, "HelloWorld ABCdef", "HelloWorld| ABCdef");
	CheckPieces(FT_ENCODING_O200K_BASE, "12345 x", "123|45| x");
	CheckPieces(FT_ENCODING_CL100K_BASE, "a\r\n\r\n  b", "a|\r\n\r\n| | b");
	CheckPieces(FT_ENCODING_O200K_BASE, "x)//\n/y", "x|)//\n/|y");
	CheckPieces(FT_ENCODING_CL100K_BASE, "x)//\n/y", "x|)//\n|/y");
	CheckPieces(FT_ENCODING_O200K_BASE, "end   ", "end|   ");
	/* U+180E is not White_Space; U+3000 is */
	CheckPieces(FT_ENCODING_CL100K_BASE, "a\xE1\xA0\x8E" "b", "a|\xE1\xA0\x8E" "b");
	CheckPieces(FT_ENCODING_CL100K_BASE, "a\xE3\x80\x80\xE3\x80\x80" "b", "a|\xE3\x80\x80|\xE3\x80\x80" "b");

	/* Round trips, including bytes that are not UTF-8 */
	OK(RoundTrips(o200k, "\xFF\xC3(\xE2\x82 \xF0\x9F\x98", 9), "o200k invalid UTF-8 round-trips");
	OK(RoundTrips(cl100k, "\xFF\xC3(\xE2\x82 \xF0\x9F\x98", 9), "cl100k invalid UTF-8 round-trips");
	{
		uint32_t	few[3] = {0, 0, 12345};
		uint32_t	all[8];

		IS_INT(ft_encode(o200k, "one two three four", 18, all, 8), 4, "four words are four tokens");
		IS_INT(ft_encode(o200k, "one two three four", 18, few, 2), 4, "ft_encode returns the full count when out is short");
		OK(few[0] == all[0] && few[1] == all[1] && few[2] == 12345, "and fills only what fits");
	}

	TestLargeMerge(o200k);
	TestLargeMerge(cl100k);

	TestPathological(o200k, "100,000 x 'a'", "a", 100000);
	TestPathological(cl100k, "100,000 x 'a'", "a", 100000);
	TestPathological(o200k, "100,000 spaces", " ", 100000);
	TestPathological(cl100k, "100,000 spaces", " ", 100000);
	TestPathological(o200k, "30,000 x U+7684", "\xE7\x9A\x84", 30000);
	TestPathological(cl100k, "30,000 x U+7684", "\xE7\x9A\x84", 30000);
	TestPathological(o200k, "100,000 x '='", "=", 100000);
	TestPathological(o200k, "50,000 x \"\\r\\n\"", "\r\n", 50000);
	TestLongWord(o200k);
	TestLongWord(cl100k);

	TestInterrupt();
	TestLoadErrors();

	ft_encoding_free(o200k);
	ft_encoding_free(cl100k);
	return unit_done();
}
