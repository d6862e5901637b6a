/*
 * tokenizer.c: tiktoken-compatible BPE for o200k_base and cl100k_base, without PostgreSQL.
 *
 * Encoding a text is two steps, as in OpenAI's tiktoken (src/lib.rs):
 *  1. a pre-tokeniser cuts the text into pieces with the encoding's regex (pat_str); here the
 *     regex is hand-written, alternative by alternative, with the same leftmost-first and
 *     backtracking results as Rust's fancy-regex (see the comments on each matcher);
 *  2. each piece is byte-pair merged with the rank table of the .tiktoken file.
 *
 * Ranks live in an open-addressing hash table over one blob of token bytes; one- and two-byte
 * tokens also have direct tables because the merge loop asks for pairs most of the time.
 */
#include "tokenizer.h"
#include "unicode_categories.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_RANK UINT32_MAX

/* Pieces at least this long are merged with a heap instead of tiktoken's quadratic scan */
#define LARGE_PIECE 100

/* Longest token a rank file may hold (OpenAI's longest is 128 bytes) */
#define MAX_TOKEN_LEN 1024

/* Most tokens a rank file may hold: ranks and hash tags share 32-bit slots */
#define MAX_TOKENS (1u << 24)

struct FtEncoding
{
	FtEncodingKind kind;
	char		name[32];
	uint32_t	n_tokens;
	uint32_t	max_token_len;
	unsigned char *blob;		/* token bytes, concatenated in rank order */
	uint32_t   *offsets;		/* n_tokens + 1 offsets into blob */
	uint32_t   *slots;			/* hash table: tag << rank_bits | (rank + 1), 0 = empty */
	uint32_t	slot_mask;
	uint32_t	rank_bits;
	uint32_t	byte_rank[256];
	uint32_t   *pair_rank;		/* 65536 ranks of two-byte tokens */
	size_t		memory;
};

static FtInterruptCallback interrupt_callback = NULL;
static void *interrupt_arg = NULL;

/* Install (or clear, with NULL) the callback polled during long encodings */
void
ft_set_interrupt_callback(FtInterruptCallback callback, void *arg)
{
	interrupt_callback = callback;
	interrupt_arg = arg;
}

/* Map an encoding name to its pattern kind; 0 when the name is unknown */
int
ft_encoding_kind_from_name(const char *name, FtEncodingKind *kind)
{
	if (name == NULL)
		return 0;
	if (strcmp(name, "o200k_base") == 0)
		*kind = FT_ENCODING_O200K_BASE;
	else if (strcmp(name, "cl100k_base") == 0)
		*kind = FT_ENCODING_CL100K_BASE;
	else
		return 0;
	return 1;
}

/* ---------------------------------------------------------------- rank table */

/* 64-bit hash of a short byte string: 8 bytes per multiply, good enough for open addressing */
static inline uint64_t
HashBytes(const unsigned char *p, size_t len)
{
	uint64_t	h = 0x9E3779B97F4A7C15ull ^ ((uint64_t) len * 0xFF51AFD7ED558CCDull);
	uint64_t	v;

	while (len >= 8)
	{
		memcpy(&v, p, 8);
		h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
		h ^= h >> 31;
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		v = 0;
		memcpy(&v, p, len);
		h = (h ^ v) * 0x94D049BB133111EBull;
		h ^= h >> 29;
	}
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 32);
}

/* Rank of a byte string through the hash table only */
static uint32_t
HashLookup(const FtEncoding *enc, const unsigned char *p, size_t len)
{
	uint64_t	h = HashBytes(p, len);
	uint32_t	tag = (uint32_t) (h >> (32 + enc->rank_bits));
	uint32_t	rank_mask = (1u << enc->rank_bits) - 1;
	uint32_t	i = (uint32_t) h & enc->slot_mask;

	for (;;)
	{
		uint32_t	slot = enc->slots[i];
		uint32_t	rank;

		if (slot == 0)
			return NO_RANK;
		rank = (slot & rank_mask) - 1;
		if ((slot >> enc->rank_bits) == tag &&
			enc->offsets[rank + 1] - enc->offsets[rank] == len &&
			memcmp(enc->blob + enc->offsets[rank], p, len) == 0)
			return rank;
		i = (i + 1) & enc->slot_mask;
	}
}

/* Rank of a byte string, NO_RANK when it is not a token */
static inline uint32_t
Lookup(const FtEncoding *enc, const unsigned char *p, size_t len)
{
	if (len == 2)
		return enc->pair_rank[(p[0] << 8) | p[1]];
	if (len == 1)
		return enc->byte_rank[p[0]];
	if (len > enc->max_token_len || len == 0)
		return NO_RANK;
	return HashLookup(enc, p, len);
}

/* Insert token `rank` into the hash table; 0 if the same bytes are already there */
static int
HashInsert(FtEncoding *enc, uint32_t rank)
{
	const unsigned char *p = enc->blob + enc->offsets[rank];
	size_t		len = enc->offsets[rank + 1] - enc->offsets[rank];
	uint64_t	h;
	uint32_t	i;

	if (HashLookup(enc, p, len) != NO_RANK)
		return 0;
	h = HashBytes(p, len);
	i = (uint32_t) h & enc->slot_mask;
	while (enc->slots[i] != 0)
		i = (i + 1) & enc->slot_mask;
	enc->slots[i] = ((uint32_t) (h >> (32 + enc->rank_bits)) << enc->rank_bits) | (rank + 1);
	return 1;
}

static void SetError(char *errbuf, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

/* Write a formatted message into the caller's error buffer */
static void
SetError(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* Value of one base64 digit, -1 for anything else */
static inline int
Base64Value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode padded standard base64 into out; returns the byte count or -1 when malformed */
static long
Base64Decode(const unsigned char *in, size_t len, unsigned char *out)
{
	long		n = 0;
	size_t		i;

	if (len == 0 || len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4)
	{
		int			a = Base64Value(in[i]);
		int			b = Base64Value(in[i + 1]);
		int			c = Base64Value(in[i + 2]);
		int			d = Base64Value(in[i + 3]);
		int			last = (i + 4 == len);

		if (a < 0 || b < 0)
			return -1;
		out[n++] = (unsigned char) ((a << 2) | (b >> 4));
		if (c < 0)
		{
			/* "xx==" only at the end */
			if (!last || in[i + 2] != '=' || in[i + 3] != '=')
				return -1;
			break;
		}
		out[n++] = (unsigned char) (((b & 15) << 4) | (c >> 2));
		if (d < 0)
		{
			if (!last || in[i + 3] != '=')
				return -1;
			break;
		}
		out[n++] = (unsigned char) (((c & 3) << 6) | d);
	}
	return n;
}

/* Read a whole file into a NUL-terminated malloc'd buffer */
static unsigned char *
ReadFile(const char *path, size_t *size, char *errbuf, size_t errlen)
{
	FILE	   *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t		cap = 0;
	size_t		n = 0;

	if (f == NULL)
	{
		SetError(errbuf, errlen, "could not open tokenizer file \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	for (;;)
	{
		size_t		got;

		if (cap - n < 65536)
		{
			unsigned char *bigger;

			cap = cap ? cap * 2 : 4 * 1024 * 1024;
			bigger = realloc(buf, cap + 1);
			if (bigger == NULL)
			{
				SetError(errbuf, errlen, "out of memory reading tokenizer file \"%s\"", path);
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = bigger;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		SetError(errbuf, errlen, "could not read tokenizer file \"%s\": %s", path, strerror(errno));
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*size = n;
	return buf;
}

/* Parse "base64 SP rank" lines into enc->blob / offsets; 0 with a message on error */
static int
ParseRanks(FtEncoding *enc, const unsigned char *text, size_t size,
		   const char *path, char *errbuf, size_t errlen)
{
	size_t		pos = 0;
	uint32_t	line = 0;
	size_t		blob_len = 0;

	while (pos < size)
	{
		const unsigned char *start = text + pos;
		const unsigned char *nl = memchr(start, '\n', size - pos);
		const unsigned char *end = nl ? nl : text + size;
		const unsigned char *sp = memchr(start, ' ', end - start);
		unsigned long rank = 0;
		const unsigned char *d;
		long		n;

		line++;
		if (sp == NULL || sp == end - 1)
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": line %u is not \"<base64> <rank>\"", path, line);
			return 0;
		}
		for (d = sp + 1; d < end; d++)
		{
			if (*d < '0' || *d > '9' || rank > MAX_TOKENS)
			{
				SetError(errbuf, errlen, "invalid tokenizer file \"%s\": line %u has a malformed rank", path, line);
				return 0;
			}
			rank = rank * 10 + (*d - '0');
		}
		if (rank != line - 1)
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": line %u has rank %lu, expected %u (ranks must be contiguous from 0)",
					 path, line, rank, line - 1);
			return 0;
		}
		if ((size_t) (sp - start) > (MAX_TOKEN_LEN / 3 + 1) * 4 ||
			(n = Base64Decode(start, sp - start, enc->blob + blob_len)) <= 0)
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": line %u has malformed base64", path, line);
			return 0;
		}
		if (blob_len + n > UINT32_MAX)
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": too large", path);
			return 0;
		}
		enc->offsets[line - 1] = (uint32_t) blob_len;
		blob_len += n;
		if ((uint32_t) n > enc->max_token_len)
			enc->max_token_len = (uint32_t) n;
		pos = (end - text) + 1;
	}
	if (line < 256)
	{
		SetError(errbuf, errlen, "invalid tokenizer file \"%s\": %u tokens, expected at least 256", path, line);
		return 0;
	}
	enc->offsets[line] = (uint32_t) blob_len;
	enc->n_tokens = line;
	return 1;
}

/* Build the hash table and the direct tables; 0 with a message on duplicates or gaps */
static int
IndexRanks(FtEncoding *enc, const char *path, char *errbuf, size_t errlen)
{
	uint32_t	cap = 1024;
	uint32_t	r;
	int			b;

	while (cap < enc->n_tokens * 2u)
		cap <<= 1;
	enc->rank_bits = 1;
	while ((1u << enc->rank_bits) <= enc->n_tokens)
		enc->rank_bits++;
	enc->slots = calloc(cap, sizeof(uint32_t));
	enc->pair_rank = malloc(65536 * sizeof(uint32_t));
	if (enc->slots == NULL || enc->pair_rank == NULL)
	{
		SetError(errbuf, errlen, "out of memory loading tokenizer file \"%s\"", path);
		return 0;
	}
	enc->slot_mask = cap - 1;
	memset(enc->byte_rank, 0xFF, sizeof(enc->byte_rank));
	memset(enc->pair_rank, 0xFF, 65536 * sizeof(uint32_t));
	for (r = 0; r < enc->n_tokens; r++)
	{
		const unsigned char *p = enc->blob + enc->offsets[r];
		uint32_t	len = enc->offsets[r + 1] - enc->offsets[r];

		if (!HashInsert(enc, r))
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": token on line %u duplicates an earlier one", path, r + 1);
			return 0;
		}
		if (len == 1)
			enc->byte_rank[p[0]] = r;
		else if (len == 2)
			enc->pair_rank[(p[0] << 8) | p[1]] = r;
	}
	/* Every byte needs a rank, or a piece could end up with parts that are no tokens */
	for (b = 0; b < 256; b++)
		if (enc->byte_rank[b] == NO_RANK)
		{
			SetError(errbuf, errlen, "invalid tokenizer file \"%s\": byte 0x%02X has no rank", path, b);
			return 0;
		}
	enc->memory = sizeof(FtEncoding) + enc->offsets[enc->n_tokens] +
		(enc->n_tokens + 1) * sizeof(uint32_t) + (size_t) cap * sizeof(uint32_t) +
		65536 * sizeof(uint32_t);
	return 1;
}

/* Load a .tiktoken rank file for encoding `name`; NULL with a message naming the file on error */
FtEncoding *
ft_encoding_load(const char *path, const char *name, char *errbuf, size_t errlen)
{
	FtEncodingKind kind;
	FtEncoding *enc;
	unsigned char *text;
	size_t		size = 0;
	size_t		lines = 0;
	size_t		i;

	if (!ft_encoding_kind_from_name(name, &kind))
	{
		SetError(errbuf, errlen, "unknown encoding \"%s\"", name ? name : "(null)");
		return NULL;
	}
	text = ReadFile(path, &size, errbuf, errlen);
	if (text == NULL)
		return NULL;
	for (i = 0; i < size; i++)
		lines += (text[i] == '\n');
	enc = calloc(1, sizeof(FtEncoding));
	if (enc == NULL || lines + 1 > MAX_TOKENS)
	{
		SetError(errbuf, errlen, enc ? "invalid tokenizer file \"%s\": too many lines" :
				 "out of memory loading tokenizer file \"%s\"", path);
		free(enc);
		free(text);
		return NULL;
	}
	enc->kind = kind;
	snprintf(enc->name, sizeof(enc->name), "%s", name);
	/* base64 is 4 characters per 3 bytes, so the decoded tokens fit in 3/4 of the file */
	enc->blob = malloc(size / 4 * 3 + 16);
	enc->offsets = malloc((lines + 2) * sizeof(uint32_t));
	if (enc->blob == NULL || enc->offsets == NULL)
		SetError(errbuf, errlen, "out of memory loading tokenizer file \"%s\"", path);
	else if (ParseRanks(enc, text, size, path, errbuf, errlen) &&
			 IndexRanks(enc, path, errbuf, errlen))
	{
		unsigned char *shrunk = realloc(enc->blob, enc->offsets[enc->n_tokens] + 1);

		if (shrunk != NULL)
			enc->blob = shrunk;
		free(text);
		return enc;
	}
	free(text);
	ft_encoding_free(enc);
	return NULL;
}

/* Release an encoding returned by ft_encoding_load */
void
ft_encoding_free(FtEncoding *enc)
{
	if (enc == NULL)
		return;
	free(enc->blob);
	free(enc->offsets);
	free(enc->slots);
	free(enc->pair_rank);
	free(enc);
}

/* Which pre-tokeniser pattern the encoding uses */
FtEncodingKind
ft_encoding_kind(const FtEncoding *enc)
{
	return enc->kind;
}

/* Nonzero for o200k_base */
int
ft_encoding_is_o200k(const FtEncoding *enc)
{
	return enc->kind == FT_ENCODING_O200K_BASE;
}

/* The name the encoding was loaded as */
const char *
ft_encoding_name(const FtEncoding *enc)
{
	return enc->name;
}

/* Number of mergeable tokens (ranks 0 … n-1) */
size_t
ft_encoding_n_tokens(const FtEncoding *enc)
{
	return enc->n_tokens;
}

/* Bytes of heap held by the encoding */
size_t
ft_encoding_memory(const FtEncoding *enc)
{
	return enc->memory;
}

/* Bytes of one token; 0 when the id is not a mergeable token */
int
ft_token_bytes(const FtEncoding *enc, uint32_t token, const unsigned char **bytes, size_t *len)
{
	if (token >= enc->n_tokens)
		return 0;
	*bytes = enc->blob + enc->offsets[token];
	*len = enc->offsets[token + 1] - enc->offsets[token];
	return 1;
}

/* Rank of a byte string, UINT32_MAX when it is not a token */
uint32_t
ft_token_rank(const FtEncoding *enc, const void *bytes, size_t len)
{
	return Lookup(enc, bytes, len);
}

/* ---------------------------------------------------------------- pre-tokeniser */

#define CM(c) (1u << (c))
#define SET_L (CM(FT_UCAT_LU) | CM(FT_UCAT_LL) | CM(FT_UCAT_LT) | CM(FT_UCAT_LM) | CM(FT_UCAT_LO))
#define SET_N CM(FT_UCAT_NUMBER)
#define SET_WS CM(FT_UCAT_SPACE)
/* [^\s\p{L}\p{N}]: marks count here, they are neither letters nor numbers */
#define SET_PUNCT (CM(FT_UCAT_OTHER) | CM(FT_UCAT_MARK))
/* o200k's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
#define SET_UPPER (CM(FT_UCAT_LU) | CM(FT_UCAT_LT) | CM(FT_UCAT_LM) | CM(FT_UCAT_LO) | CM(FT_UCAT_MARK))
#define SET_LOWER (CM(FT_UCAT_LL) | CM(FT_UCAT_LM) | CM(FT_UCAT_LO) | CM(FT_UCAT_MARK))

typedef struct Text
{
	const unsigned char *s;
	size_t		len;
} Text;

/*
 * Class of the character at pos and its length in bytes.  Bytes that are not valid UTF-8
 * (impossible in PostgreSQL text, possible from C callers) are one-byte OTHER characters,
 * so every input is cut into pieces and round-trips.
 */
static inline int
CharAt(const Text *t, size_t pos, size_t *clen)
{
	const unsigned char *s = t->s + pos;
	size_t		left = t->len - pos;
	uint32_t	cp;

	if (s[0] < 0x80)
	{
		*clen = 1;
		return ft_unicode_class(s[0]);
	}
	if (s[0] >= 0xC2 && s[0] < 0xE0 && left >= 2 && (s[1] & 0xC0) == 0x80)
	{
		*clen = 2;
		cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
	}
	else if (s[0] >= 0xE0 && s[0] < 0xF0 && left >= 3 &&
			 (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80)
	{
		*clen = 3;
		cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
	}
	else if (s[0] >= 0xF0 && s[0] < 0xF5 && left >= 4 && (s[1] & 0xC0) == 0x80 &&
			 (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80)
	{
		*clen = 4;
		cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
	}
	else
	{
		*clen = 1;
		return FT_UCAT_OTHER;
	}
	return ft_unicode_class(cp);
}

/* Class bit of the character at pos (0 past the end) */
static inline uint32_t
ClassBitAt(const Text *t, size_t pos, size_t *clen)
{
	if (pos >= t->len)
	{
		*clen = 0;
		return 0;
	}
	return CM(CharAt(t, pos, clen));
}

/* End of the longest run of characters from pos whose classes are in `set` */
static inline size_t
RunOf(const Text *t, size_t pos, uint32_t set)
{
	size_t		clen;

	while (pos < t->len && (ClassBitAt(t, pos, &clen) & set))
		pos += clen;
	return pos;
}

/* \r or \n */
static inline int
IsCrLf(const Text *t, size_t pos)
{
	return pos < t->len && (t->s[pos] == '\r' || t->s[pos] == '\n');
}

/*
 * Length of (?i:'s|'t|'re|'ve|'m|'ll|'d) at pos, 0 if none.  Rust's (?i) uses Unicode simple
 * case folding, under which U+017F LATIN SMALL LETTER LONG S also matches 's'.
 */
static size_t
ContractionAt(const Text *t, size_t pos)
{
	const unsigned char *s = t->s + pos;
	size_t		left = t->len - pos;
	int			c1,
				c2;

	if (left < 2 || s[0] != '\'')
		return 0;
	c1 = s[1] | 0x20;
	c2 = left >= 3 ? (s[2] | 0x20) : 0;
	if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
		return 2;
	if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
		return 3;
	if (left >= 3 && s[1] == 0xC5 && s[2] == 0xBF)
		return 3;
	return 0;
}

/* [^\r\n\p{L}\p{N}]: the optional one-character prefix of the word alternatives */
static inline int
IsWordPrefix(const Text *t, size_t pos, uint32_t bit)
{
	return (bit & (SET_PUNCT | SET_WS)) && !IsCrLf(t, pos);
}

/*
 * o200k [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+ from s: end or 0.
 * The greedy upper run [s,u) is followed by the lower run when u starts one; otherwise the
 * regex backtracks into the upper run to its last character that is also "lower" (Lm, Lo, M)
 * and the lower run is that one character.
 */
static size_t
O200kLowerWordAt(const Text *t, size_t s)
{
	size_t		pos = s;
	size_t		last_lower_end = 0;
	size_t		clen;
	uint32_t	bit;

	while ((bit = ClassBitAt(t, pos, &clen)) & SET_UPPER)
	{
		pos += clen;
		if (bit & SET_LOWER)
			last_lower_end = pos;
	}
	if (bit & SET_LOWER)
		return RunOf(t, pos, SET_LOWER);
	return last_lower_end;
}

/* o200k [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]* from s: end or 0 */
static size_t
O200kUpperWordAt(const Text *t, size_t s)
{
	size_t		u = RunOf(t, s, SET_UPPER);

	if (u == s)
		return 0;
	return RunOf(t, u, SET_LOWER);
}

/*
 * \p{N}{1,3}, then ` ?[^\s\p{L}\p{N}]+` followed by `[\r\n]*` (cl100k) or `[\r\n/]*` (o200k),
 * then the three whitespace alternatives.  Shared by both patterns; 0 if none matches.
 */
static size_t
TailAlternatives(const Text *t, size_t pos, uint32_t bit, size_t clen, int o200k)
{
	size_t		e;
	size_t		next_len;

	if (bit & SET_N)
	{
		int			k;

		e = pos + clen;
		for (k = 1; k < 3 && (ClassBitAt(t, e, &next_len) & SET_N); k++)
			e += next_len;
		return e;
	}
	e = 0;
	if (t->s[pos] == ' ' && (ClassBitAt(t, pos + 1, &next_len) & SET_PUNCT))
		e = RunOf(t, pos + 1, SET_PUNCT);
	else if (bit & SET_PUNCT)
		e = RunOf(t, pos, SET_PUNCT);
	if (e != 0)
	{
		while (IsCrLf(t, e) || (o200k && e < t->len && t->s[e] == '/'))
			e++;
		return e;
	}
	if (bit & SET_WS)
	{
		/* One pass over the whitespace run serves \s*[\r\n]+, \s+(?!\S) and \s+ */
		size_t		last_crlf_end = 0;
		size_t		last_start = pos;

		e = pos;
		while (ClassBitAt(t, e, &next_len) & SET_WS)
		{
			last_start = e;
			if (IsCrLf(t, e))
				last_crlf_end = e + 1;
			e += next_len;
		}
		if (last_crlf_end != 0)
			return last_crlf_end;	/* \s* backtracks to the last newline */
		if (e == t->len || last_start == pos)
			return e;			/* \s+(?!\S) at the end, or the lone \s+ */
		return last_start;		/* \s+(?!\S): leave the last space to the next word */
	}
	return 0;
}

/*
 * cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static size_t
Cl100kPieceEnd(const Text *t, size_t pos)
{
	size_t		clen;
	size_t		next_len;
	uint32_t	bit = ClassBitAt(t, pos, &clen);
	size_t		n;

	if ((n = ContractionAt(t, pos)) != 0)
		return pos + n;
	if (bit & SET_L)
		return RunOf(t, pos + clen, SET_L);
	if (IsWordPrefix(t, pos, bit) && (ClassBitAt(t, pos + clen, &next_len) & SET_L))
		return RunOf(t, pos + clen, SET_L);
	return TailAlternatives(t, pos, bit, clen, 0);
}

/*
 * o200k_base: the two word alternatives (each with an optional prefix character and an
 * optional contraction suffix), then \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|
 * \s+(?!\S)|\s+.  Each word alternative first tries with the prefix, then without it.
 */
static size_t
O200kPieceEnd(const Text *t, size_t pos)
{
	size_t		clen;
	uint32_t	bit = ClassBitAt(t, pos, &clen);
	int			prefix = IsWordPrefix(t, pos, bit);
	size_t		e = 0;

	if (bit & (SET_L | SET_PUNCT | SET_WS))
	{
		if (prefix)
			e = O200kLowerWordAt(t, pos + clen);
		if (e == 0)
			e = O200kLowerWordAt(t, pos);
		if (e == 0 && prefix)
			e = O200kUpperWordAt(t, pos + clen);
		if (e == 0)
			e = O200kUpperWordAt(t, pos);
		if (e != 0)
			return e + ContractionAt(t, e);
	}
	return TailAlternatives(t, pos, bit, clen, 1);
}

/* End of the piece that starts at pos (pos < len); always > pos */
size_t
ft_pretokenize_next(FtEncodingKind kind, const char *utf8, size_t len, size_t pos)
{
	Text		t = {(const unsigned char *) utf8, len};
	size_t		e;

	if (pos >= len)
		return len;
	e = kind == FT_ENCODING_O200K_BASE ? O200kPieceEnd(&t, pos) : Cl100kPieceEnd(&t, pos);
	/* Cannot happen: every character starts some alternative.  Guard the loop anyway. */
	if (e <= pos || e > len)
		e = pos + 1;
	return e;
}

/* ---------------------------------------------------------------- byte pair merge */

/* Where the tokens go: ids are stored while there is room, all are counted */
typedef struct Sink
{
	uint32_t   *out;
	size_t		cap;
	size_t		count;
	unsigned	work;			/* units since the last interrupt poll */
	int			aborted;
	int			nomem;
} Sink;

/* Append one token id */
static inline void
Emit(Sink *sink, uint32_t rank)
{
	if (sink->count < sink->cap)
		sink->out[sink->count] = rank;
	sink->count++;
}

/* Count `units` of work and poll the interrupt callback every FT_INTERRUPT_INTERVAL */
static inline int
PollInterrupt(Sink *sink, unsigned units)
{
	sink->work += units;
	if (sink->work >= FT_INTERRUPT_INTERVAL)
	{
		sink->work = 0;
		if (interrupt_callback != NULL && interrupt_callback(interrupt_arg))
			sink->aborted = 1;
	}
	return sink->aborted;
}

/*
 * tiktoken's _byte_pair_merge for short pieces: parts are kept in an array and the lowest
 * ranked adjacent pair (leftmost on ties) is merged until no pair is a token.
 */
static void
MergeSmall(const FtEncoding *enc, const unsigned char *p, size_t n, Sink *sink)
{
	uint32_t	start[LARGE_PIECE + 1];
	uint32_t	rank[LARGE_PIECE + 1];
	size_t		np = n + 1;
	uint32_t	min_rank = NO_RANK;
	size_t		min_i = 0;
	size_t		i;

	for (i = 0; i + 1 < n; i++)
	{
		start[i] = (uint32_t) i;
		rank[i] = enc->pair_rank[(p[i] << 8) | p[i + 1]];
		if (rank[i] < min_rank)
		{
			min_rank = rank[i];
			min_i = i;
		}
	}
	start[n - 1] = (uint32_t) (n - 1);
	rank[n - 1] = NO_RANK;
	start[n] = (uint32_t) n;
	rank[n] = NO_RANK;

	while (min_rank != NO_RANK)
	{
		i = min_i;
		/* Rank of the pair that will start at part j once parts[i + 1] is gone */
#define MERGED_RANK(j) ((j) + 3 < np ? Lookup(enc, p + start[j], start[(j) + 3] - start[j]) : NO_RANK)
		if (i > 0)
			rank[i - 1] = MERGED_RANK(i - 1);
		rank[i] = MERGED_RANK(i);
#undef MERGED_RANK
		memmove(start + i + 1, start + i + 2, (np - i - 2) * sizeof(uint32_t));
		memmove(rank + i + 1, rank + i + 2, (np - i - 2) * sizeof(uint32_t));
		np--;
		min_rank = NO_RANK;
		for (i = 0; i + 1 < np; i++)
			if (rank[i] < min_rank)
			{
				min_rank = rank[i];
				min_i = i;
			}
	}
	if (sink->out == NULL)
		sink->count += np - 1;
	else
		for (i = 0; i + 1 < np; i++)
			Emit(sink, Lookup(enc, p + start[i], start[i + 1] - start[i]));
}

/* Binary min-heap of (rank << 32 | start), the order of tiktoken's _byte_pair_merge_large */
typedef struct Heap
{
	uint64_t   *v;
	size_t		n;
	size_t		cap;
} Heap;

/* Push one entry; 0 when out of memory */
static int
HeapPush(Heap *h, uint64_t x)
{
	size_t		i;

	if (h->n == h->cap)
	{
		size_t		cap = h->cap * 2;
		uint64_t   *v = realloc(h->v, cap * sizeof(uint64_t));

		if (v == NULL)
			return 0;
		h->v = v;
		h->cap = cap;
	}
	i = h->n++;
	while (i > 0 && h->v[(i - 1) / 2] > x)
	{
		h->v[i] = h->v[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->v[i] = x;
	return 1;
}

/* Pop the smallest entry (the heap must not be empty) */
static uint64_t
HeapPop(Heap *h)
{
	uint64_t	top = h->v[0];
	uint64_t	x = h->v[--h->n];
	size_t		i = 0;

	for (;;)
	{
		size_t		c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1] < h->v[c])
			c++;
		if (h->v[c] >= x)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n > 0)
		h->v[i] = x;
	return top;
}

/*
 * Heap-based merge for long pieces, O(n log n), same result as MergeSmall: parts form a
 * linked list indexed by their start byte, the heap holds candidate pairs, and an entry is
 * stale when its part is gone or the part's current pair rank differs (a part's pair only
 * grows, and distinct byte strings have distinct ranks, so a rank identifies the pair).
 */
static void
MergeLarge(const FtEncoding *enc, const unsigned char *p, size_t n, Sink *sink)
{
	uint32_t   *next = malloc((n + 1) * sizeof(uint32_t));
	uint32_t   *prev = malloc((n + 1) * sizeof(uint32_t));
	uint32_t   *rank = malloc((n + 1) * sizeof(uint32_t));
	Heap		heap = {malloc(n * sizeof(uint64_t)), 0, n};
	size_t		i;

	if (next == NULL || prev == NULL || rank == NULL || heap.v == NULL)
	{
		sink->nomem = 1;
		goto done;
	}
	for (i = 0; i < n; i++)
	{
		next[i] = (uint32_t) (i + 1);
		prev[i] = (uint32_t) (i - 1);	/* wraps to UINT32_MAX for the first part */
		rank[i] = i + 1 < n ? enc->pair_rank[(p[i] << 8) | p[i + 1]] : NO_RANK;
		if (rank[i] != NO_RANK)
			heap.v[heap.n++] = ((uint64_t) rank[i] << 32) | i;
	}
	/* Heapify bottom-up */
	for (i = heap.n / 2; i-- > 0;)
	{
		size_t		j = i;
		uint64_t	x = heap.v[j];

		for (;;)
		{
			size_t		c = 2 * j + 1;

			if (c >= heap.n)
				break;
			if (c + 1 < heap.n && heap.v[c + 1] < heap.v[c])
				c++;
			if (heap.v[c] >= x)
				break;
			heap.v[j] = heap.v[c];
			j = c;
		}
		heap.v[j] = x;
	}
	while (heap.n > 0)
	{
		uint64_t	top = HeapPop(&heap);
		uint32_t	r = (uint32_t) (top >> 32);
		uint32_t	s = (uint32_t) top;
		uint32_t	gone;

		if (PollInterrupt(sink, 1))
			goto done;
		if (rank[s] != r)
			continue;			/* stale entry */
		/* Merge part s with its successor */
		gone = next[s];
		next[s] = next[gone];
		if (next[s] < n)
			prev[next[s]] = s;
		rank[gone] = NO_RANK;
		rank[s] = next[s] < n ? Lookup(enc, p + s, next[next[s]] - s) : NO_RANK;
		if (rank[s] != NO_RANK && !HeapPush(&heap, ((uint64_t) rank[s] << 32) | s))
			sink->nomem = 1;
		if (prev[s] != UINT32_MAX)
		{
			uint32_t	q = prev[s];

			rank[q] = Lookup(enc, p + q, next[s] - q);
			if (rank[q] != NO_RANK && !HeapPush(&heap, ((uint64_t) rank[q] << 32) | q))
				sink->nomem = 1;
		}
		if (sink->nomem)
			goto done;
	}
	for (i = 0; i < n; i = next[i])
		Emit(sink, sink->out ? Lookup(enc, p + i, next[i] - i) : 0);
done:
	free(next);
	free(prev);
	free(rank);
	free(heap.v);
}

/* Encode one piece: a whole-token fast path, else the merge for its size */
static inline void
EncodePiece(const FtEncoding *enc, const unsigned char *p, size_t n, Sink *sink)
{
	uint32_t	r = Lookup(enc, p, n);

	if (r != NO_RANK)
		Emit(sink, r);
	else if (n < LARGE_PIECE)
		MergeSmall(enc, p, n, sink);
	else
		MergeLarge(enc, p, n, sink);
}

/* Cut the text into pieces and encode each into the sink */
static size_t
EncodeText(const FtEncoding *enc, const char *utf8, size_t len, Sink *sink)
{
	Text		t = {(const unsigned char *) utf8, len};
	size_t		pos = 0;

	while (pos < len)
	{
		size_t		e = enc->kind == FT_ENCODING_O200K_BASE ?
			O200kPieceEnd(&t, pos) : Cl100kPieceEnd(&t, pos);

		if (e <= pos || e > len)
			e = pos + 1;
		EncodePiece(enc, t.s + pos, e - pos, sink);
		if (sink->nomem)
			return FT_ENCODE_NOMEM;
		/* A piece costs about its length in work */
		if (PollInterrupt(sink, 1 + (unsigned) ((e - pos) >> 4)))
			return FT_ENCODE_ABORTED;
		pos = e;
	}
	return sink->aborted ? FT_ENCODE_ABORTED : sink->count;
}

/*
 * Token ids of a text (tiktoken's encode_ordinary).  Stores at most outcap ids in out and
 * returns the total count, which may be larger; FT_ENCODE_ABORTED / FT_ENCODE_NOMEM on failure.
 */
size_t
ft_encode(const FtEncoding *enc, const char *utf8, size_t len, uint32_t *out, size_t outcap)
{
	uint32_t	dummy;
	Sink		sink = {out ? out : &dummy, out ? outcap : 0, 0, 0, 0, 0};

	return EncodeText(enc, utf8, len, &sink);
}

/* Number of tokens of a text without producing the ids */
size_t
ft_count_tokens(const FtEncoding *enc, const char *utf8, size_t len)
{
	Sink		sink = {NULL, 0, 0, 0, 0, 0};

	return EncodeText(enc, utf8, len, &sink);
}
