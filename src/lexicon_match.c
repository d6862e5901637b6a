/*
 * Multi-pattern phrase matching over folded text: case and accent folding of UTF-8, and an
 * Aho-Corasick automaton compiled into a dense transition table over byte classes.
 *
 * The alphabet is compressed to the bytes that occur in some phrase (everything else is one
 * class that always leads back to the root), so a lexicon of a few hundred phrases is a table of
 * a few hundred kilobytes at most and scanning costs one lookup per byte.
 */
#include "lexicon_match.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OUTPUT_BIT ((int32_t) 0x40000000)
#define STATE_MASK ((int32_t) 0x3FFFFFFF)
#define MAX_TABLE_ENTRIES ((size_t) 1 << 24)

typedef struct FtPattern
{
	char	   *text;			/* folded phrase */
	size_t		len;
	int			kind;
	float		weight;
	bool		word_start;		/* phrase begins with a word character: needs a boundary before */
	bool		word_end;		/* phrase ends with a word character: needs a boundary after */
	int			next;			/* next pattern ending in the same state, or -1 */
} FtPattern;

struct FtLexicon
{
	FtPattern  *patterns;
	int			npatterns;
	int			cap_patterns;
	/* compiled automaton */
	bool		compiled;
	unsigned char classes[256];
	int			nclasses;
	int			nstates;
	int32_t    *delta;			/* nstates * nclasses transitions, as row offsets of the
								 * target; OUTPUT_BIT marks a target where a phrase ends */
	int32_t    *first;			/* first pattern ending in a state, or -1 */
	int32_t    *dict;			/* nearest suffix state with patterns, or -1 */
};

/* One folding rule: code points lo..hi become repl ("" drops them) */
typedef struct FoldRange
{
	uint32_t	lo;
	uint32_t	hi;
	const char *repl;
} FoldRange;

/* Latin accents, ligatures and typographic punctuation; sorted by lo for the binary search */
static const FoldRange FoldRanges[] = {
	{0x00A0, 0x00A0, " "}, {0x00A1, 0x00A1, ""}, {0x00AB, 0x00AB, "\""}, {0x00AD, 0x00AD, ""},
	{0x00BB, 0x00BB, "\""}, {0x00BF, 0x00BF, ""},
	{0x00C0, 0x00C5, "a"}, {0x00C6, 0x00C6, "ae"}, {0x00C7, 0x00C7, "c"}, {0x00C8, 0x00CB, "e"},
	{0x00CC, 0x00CF, "i"}, {0x00D0, 0x00D0, "d"}, {0x00D1, 0x00D1, "n"}, {0x00D2, 0x00D6, "o"},
	{0x00D8, 0x00D8, "o"}, {0x00D9, 0x00DC, "u"}, {0x00DD, 0x00DD, "y"}, {0x00DE, 0x00DE, "th"},
	{0x00DF, 0x00DF, "ss"}, {0x00E0, 0x00E5, "a"}, {0x00E6, 0x00E6, "ae"}, {0x00E7, 0x00E7, "c"},
	{0x00E8, 0x00EB, "e"}, {0x00EC, 0x00EF, "i"}, {0x00F0, 0x00F0, "d"}, {0x00F1, 0x00F1, "n"},
	{0x00F2, 0x00F6, "o"}, {0x00F8, 0x00F8, "o"}, {0x00F9, 0x00FC, "u"}, {0x00FD, 0x00FD, "y"},
	{0x00FE, 0x00FE, "th"}, {0x00FF, 0x00FF, "y"},
	{0x0100, 0x0105, "a"}, {0x0106, 0x010D, "c"}, {0x010E, 0x0111, "d"}, {0x0112, 0x011B, "e"},
	{0x011C, 0x0123, "g"}, {0x0124, 0x0127, "h"}, {0x0128, 0x0131, "i"}, {0x0132, 0x0133, "ij"},
	{0x0134, 0x0135, "j"}, {0x0136, 0x0138, "k"}, {0x0139, 0x0142, "l"}, {0x0143, 0x014B, "n"},
	{0x014C, 0x0151, "o"}, {0x0152, 0x0153, "oe"}, {0x0154, 0x0159, "r"}, {0x015A, 0x0161, "s"},
	{0x0162, 0x0167, "t"}, {0x0168, 0x0173, "u"}, {0x0174, 0x0175, "w"}, {0x0176, 0x0178, "y"},
	{0x0179, 0x017E, "z"}, {0x017F, 0x017F, "s"},
	{0x0218, 0x0219, "s"}, {0x021A, 0x021B, "t"}, {0x02BC, 0x02BC, "'"},
	{0x0300, 0x036F, ""},		/* combining diacritics, so decomposed text folds like composed */
	{0x2010, 0x2015, "-"}, {0x2018, 0x2019, "'"}, {0x201B, 0x201B, "'"}, {0x201C, 0x201F, "\""},
	{0x2026, 0x2026, "..."}, {0x202F, 0x202F, " "}, {0x2060, 0x2060, ""}, {0x3000, 0x3000, " "},
	{0xFEFF, 0xFEFF, ""}, {0xFF01, 0xFF01, "!"}, {0xFF0C, 0xFF0C, ","}, {0xFF1F, 0xFF1F, "?"},
};

/* Decode one UTF-8 character; invalid bytes decode as U+FFFD of length 1 */
static inline size_t
DecodeUtf8(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t		n;
	uint32_t	v;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
		n = 2, v = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, v = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, v = c & 0x07;
	else
	{
		*cp = 0xFFFD;
		return 1;
	}
	if (n > len)
	{
		*cp = 0xFFFD;
		return 1;
	}
	for (size_t i = 1; i < n; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
		{
			*cp = 0xFFFD;
			return 1;
		}
		v = (v << 6) | (s[i] & 0x3F);
	}
	/* overlong forms and surrogates are not characters */
	if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
	{
		*cp = 0xFFFD;
		return 1;
	}
	*cp = v;
	return n;
}

/* Is this code point part of a word (letters, digits, scripts) rather than punctuation or a symbol? */
static inline bool
IsWordCodepoint(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
	if (cp <= 0xBF || cp == 0xD7 || cp == 0xF7)
		return false;
	if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
		(cp >= 0xFE00 && cp <= 0xFE0F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
		(cp >= 0xFF1A && cp <= 0xFF20) || cp >= 0x1F000)
		return false;
	return true;
}

/* Is an ASCII byte a word character? Bytes of multi-byte characters count as word bytes. */
bool
FtIsWordByte(unsigned char c)
{
	return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Folding rule of a code point, or NULL when it is kept as it is */
static const char *
FoldLookup(uint32_t cp)
{
	int			lo = 0,
				hi = (int) (sizeof(FoldRanges) / sizeof(FoldRanges[0])) - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (cp < FoldRanges[mid].lo)
			hi = mid - 1;
		else if (cp > FoldRanges[mid].hi)
			lo = mid + 1;
		else
			return FoldRanges[mid].repl;
	}
	return NULL;
}

/* Append a code point as UTF-8 */
static inline size_t
EncodeUtf8(uint32_t cp, char *out)
{
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	out[0] = (char) (0xE0 | (cp >> 12));
	out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[2] = (char) (0x80 | (cp & 0x3F));
	return 3;
}

/* Lower-case Greek and Cyrillic capitals (same UTF-8 length), else return cp unchanged */
static inline uint32_t
LowerNonLatin(uint32_t cp)
{
	if ((cp >= 0x0391 && cp <= 0x03A9 && cp != 0x03A2) || (cp >= 0x0410 && cp <= 0x042F))
		return cp + 0x20;
	if (cp >= 0x0400 && cp <= 0x040F)
		return cp + 0x50;
	return cp;
}

/*
 * Fold one non-ASCII character (or invalid byte) at s: returns the bytes consumed and sets
 * *action; for FT_FOLD_EMIT the folded form (at most 4 bytes) is written to out and its length
 * to *olen. Shared by FtFold and the scorer's fused pass so both fold identically.
 */
size_t
FtFoldWide(const unsigned char *s, size_t len, char *out, size_t *olen, int *action)
{
	uint32_t	cp;
	size_t		n = DecodeUtf8(s, len, &cp);
	const char *repl = (n > 1) ? FoldLookup(cp) : NULL;

	if (repl != NULL && repl[0] == ' ')
	{
		*action = FT_FOLD_SPACE;
		return n;
	}
	if (repl != NULL && repl[0] == '\0')
	{
		*action = FT_FOLD_DROP;
		return n;
	}
	*action = FT_FOLD_EMIT;
	if (repl != NULL)
	{
		size_t		rl = strlen(repl);

		memcpy(out, repl, rl);
		*olen = rl;
	}
	else if (n > 1 && LowerNonLatin(cp) != cp)
		*olen = EncodeUtf8(LowerNonLatin(cp), out);
	else
	{
		memcpy(out, s, n);
		*olen = n;
	}
	return n;
}

/*
 * Fold text for matching: ASCII lower case, Latin accents stripped (é→e, ß→ss, Æ→ae),
 * typographic quotes and dashes made ASCII, whitespace runs collapsed to one space and trimmed.
 * out needs len + 1 bytes (folding never grows text); returns the folded length.
 */
size_t
FtFold(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t		i = 0,
				o = 0;
	bool		pending_space = false;

	while (i < len)
	{
		unsigned char c = s[i];
		char		wide[4];
		size_t		olen;
		int			action;

		if (c < 0x80)
		{
			if (c == ' ' || (c >= '\t' && c <= '\r'))
			{
				pending_space = o > 0;
				i++;
				continue;
			}
			if (pending_space)
				out[o++] = ' ', pending_space = false;
			out[o++] = (char) ((c >= 'A' && c <= 'Z') ? c + 32 : c);
			i++;
			continue;
		}
		i += FtFoldWide(s + i, len - i, wide, &olen, &action);
		if (action == FT_FOLD_SPACE)
			pending_space = o > 0;
		else if (action == FT_FOLD_EMIT)
		{
			if (pending_space)
				out[o++] = ' ', pending_space = false;
			memcpy(out + o, wide, olen);
			o += olen;
		}
	}
	out[o] = '\0';
	return o;
}

/* Does a word character end just before pos? */
static bool
WordBefore(const char *text, size_t pos)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		start = pos;
	uint32_t	cp;

	if (pos == 0)
		return false;
	if (s[pos - 1] < 0x80)
		return FtIsWordByte(s[pos - 1]);
	/* walk back over at most three continuation bytes to the lead byte */
	start = pos - 1;
	while (start > 0 && pos - start < 4 && (s[start] & 0xC0) == 0x80)
		start--;
	if (DecodeUtf8(s + start, pos - start, &cp) != pos - start)
		return true;
	return IsWordCodepoint(cp);
}

/* Does a word character start at pos? */
static bool
WordAt(const char *text, size_t len, size_t pos)
{
	uint32_t	cp;

	if (pos >= len)
		return false;
	DecodeUtf8((const unsigned char *) text + pos, len - pos, &cp);
	return IsWordCodepoint(cp);
}

/* An empty lexicon */
FtLexicon *
FtLexiconCreate(void)
{
	return calloc(1, sizeof(FtLexicon));
}

/* Free a lexicon and its automaton */
void
FtLexiconFree(FtLexicon *lex)
{
	if (lex == NULL)
		return;
	for (int i = 0; i < lex->npatterns; i++)
		free(lex->patterns[i].text);
	free(lex->patterns);
	free(lex->delta);
	free(lex->first);
	free(lex->dict);
	free(lex);
}

/*
 * Add a phrase (folded here). Returns its index, -1 when it folds to nothing, -2 when out of
 * memory. Must be called before FtLexiconCompile.
 */
int
FtLexiconAdd(FtLexicon *lex, const char *phrase, size_t len, int kind, float weight)
{
	FtPattern  *p;
	char	   *folded;
	size_t		flen;
	uint32_t	cp;

	if (lex->compiled)
		return -2;
	folded = malloc(len + 1);
	if (folded == NULL)
		return -2;
	flen = FtFold(phrase, len, folded);
	if (flen == 0)
	{
		free(folded);
		return -1;
	}
	if (lex->npatterns == lex->cap_patterns)
	{
		int			cap = lex->cap_patterns ? lex->cap_patterns * 2 : 64;
		FtPattern  *grown = realloc(lex->patterns, cap * sizeof(FtPattern));

		if (grown == NULL)
		{
			free(folded);
			return -2;
		}
		lex->patterns = grown;
		lex->cap_patterns = cap;
	}
	p = &lex->patterns[lex->npatterns];
	p->text = folded;
	p->len = flen;
	p->kind = kind;
	p->weight = weight;
	DecodeUtf8((const unsigned char *) folded, flen, &cp);
	p->word_start = IsWordCodepoint(cp);
	p->word_end = WordBefore(folded, flen);
	p->next = -1;
	return lex->npatterns++;
}

/* Number of phrases */
int
FtLexiconSize(const FtLexicon *lex)
{
	return lex->npatterns;
}

/* Kind given to a phrase when it was added */
int
FtLexiconKind(const FtLexicon *lex, int pattern)
{
	return lex->patterns[pattern].kind;
}

/* Weight given to a phrase when it was added */
float
FtLexiconWeight(const FtLexicon *lex, int pattern)
{
	return lex->patterns[pattern].weight;
}

/* Make room for one more trie state; returns its number or -1 */
static int
NewState(FtLexicon *lex, int *cap)
{
	int			s = lex->nstates;

	if (s == *cap)
	{
		int			ncap = *cap * 2;
		int32_t    *d;

		/* row offsets must fit beside OUTPUT_BIT; also keeps a huge lexicon from eating memory */
		if ((size_t) ncap * lex->nclasses > MAX_TABLE_ENTRIES)
			return -1;
		d = realloc(lex->delta, (size_t) ncap * lex->nclasses * sizeof(int32_t));

		if (d == NULL)
			return -1;
		lex->delta = d;
		*cap = ncap;
	}
	for (int c = 0; c < lex->nclasses; c++)
		lex->delta[(size_t) s * lex->nclasses + c] = -1;
	lex->nstates++;
	return s;
}

/* Byte classes: each byte used by some phrase gets its own class, all others share class 0 */
static void
BuildClasses(FtLexicon *lex)
{
	memset(lex->classes, 0, sizeof(lex->classes));
	lex->nclasses = 1;
	for (int i = 0; i < lex->npatterns; i++)
		for (size_t j = 0; j < lex->patterns[i].len; j++)
		{
			unsigned char b = (unsigned char) lex->patterns[i].text[j];

			if (lex->classes[b] == 0)
				lex->classes[b] = (unsigned char) lex->nclasses++;
		}
}

/* Insert every phrase into the trie; returns the number of states or -1 */
static int
BuildTrie(FtLexicon *lex, int32_t **first_out)
{
	int			cap = 64;
	int32_t    *first;

	lex->nstates = 0;
	lex->delta = malloc((size_t) cap * lex->nclasses * sizeof(int32_t));
	if (lex->delta == NULL || NewState(lex, &cap) < 0)
		return -1;
	for (int i = 0; i < lex->npatterns; i++)
	{
		int			s = 0;

		for (size_t j = 0; j < lex->patterns[i].len; j++)
		{
			size_t		at = (size_t) s * lex->nclasses + lex->classes[(unsigned char) lex->patterns[i].text[j]];
			int			t = lex->delta[at];

			if (t < 0)
			{
				t = NewState(lex, &cap);
				if (t < 0)
					return -1;
				lex->delta[at] = t;
			}
			s = t;
		}
		lex->patterns[i].next = s;	/* temporarily: the final state */
	}
	first = malloc((size_t) lex->nstates * sizeof(int32_t));
	if (first == NULL)
		return -1;
	for (int s = 0; s < lex->nstates; s++)
		first[s] = -1;
	/* chain patterns per final state, in reverse so the lists keep insertion order */
	for (int i = lex->npatterns - 1; i >= 0; i--)
	{
		int			s = lex->patterns[i].next;

		lex->patterns[i].next = first[s];
		first[s] = i;
	}
	*first_out = first;
	return lex->nstates;
}

/*
 * Number the states in breadth-first order (order holds every state but the root): scanning
 * spends most of its time in the shallow states, and this keeps their rows together in cache.
 */
static int
Renumber(FtLexicon *lex, const int32_t *order, int n)
{
	int			nc = lex->nclasses,
				ns = lex->nstates;
	int32_t    *id = malloc((size_t) ns * sizeof(int32_t));
	int32_t    *delta = malloc((size_t) ns * nc * sizeof(int32_t));
	int32_t    *first = malloc((size_t) ns * sizeof(int32_t));
	int32_t    *dict = malloc((size_t) ns * sizeof(int32_t));

	if (id == NULL || delta == NULL || first == NULL || dict == NULL || n != ns - 1)
	{
		free(id);
		free(delta);
		free(first);
		free(dict);
		return -1;
	}
	id[0] = 0;
	for (int k = 0; k < n; k++)
		id[order[k]] = k + 1;
	for (int s = 0; s < ns; s++)
	{
		int			t = id[s];

		for (int c = 0; c < nc; c++)
			delta[(size_t) t * nc + c] = id[lex->delta[(size_t) s * nc + c]];
		first[t] = lex->first[s];
		dict[t] = lex->dict[s] < 0 ? -1 : id[lex->dict[s]];
	}
	free(id);
	free(lex->delta);
	free(lex->first);
	free(lex->dict);
	lex->delta = delta;
	lex->first = first;
	lex->dict = dict;
	return 0;
}

/* Breadth-first pass: failure links folded into the transition table, and dictionary links */
static int
BuildLinks(FtLexicon *lex)
{
	int			nc = lex->nclasses;
	int32_t    *fail = malloc((size_t) lex->nstates * sizeof(int32_t));
	int32_t    *queue = malloc((size_t) lex->nstates * sizeof(int32_t));
	int			head = 0,
				tail = 0;

	lex->dict = malloc((size_t) lex->nstates * sizeof(int32_t));
	if (fail == NULL || queue == NULL || lex->dict == NULL)
	{
		free(fail);
		free(queue);
		return -1;
	}
	fail[0] = 0;
	lex->dict[0] = -1;
	for (int c = 0; c < nc; c++)
	{
		int			t = lex->delta[c];

		if (t < 0)
			lex->delta[c] = 0;
		else
		{
			fail[t] = 0;
			lex->dict[t] = -1;
			queue[tail++] = t;
		}
	}
	while (head < tail)
	{
		int			s = queue[head++];

		for (int c = 0; c < nc; c++)
		{
			size_t		at = (size_t) s * nc + c;
			int			t = lex->delta[at];
			int			f = lex->delta[(size_t) fail[s] * nc + c];

			if (t < 0)
			{
				lex->delta[at] = f;
				continue;
			}
			fail[t] = f;
			lex->dict[t] = lex->first[f] >= 0 ? f : lex->dict[f];
			queue[tail++] = t;
		}
	}
	free(fail);
	if (Renumber(lex, queue, tail) < 0)
	{
		free(queue);
		return -1;
	}
	free(queue);
	/*
	 * Store each target as its row offset (state * nclasses), tagged when the state reports
	 * something, so scanning costs one load and no multiplication per byte.
	 */
	for (size_t i = 0; i < (size_t) lex->nstates * nc; i++)
	{
		int			t = lex->delta[i];

		lex->delta[i] = (t * nc) | ((lex->first[t] >= 0 || lex->dict[t] >= 0) ? OUTPUT_BIT : 0);
	}
	return 0;
}

/* Compile the automaton; returns 0, or -1 when out of memory */
int
FtLexiconCompile(FtLexicon *lex)
{
	if (lex->compiled)
		return 0;
	BuildClasses(lex);
	if (BuildTrie(lex, &lex->first) < 0 || BuildLinks(lex) < 0)
		return -1;
	lex->compiled = true;
	return 0;
}

/* Report one state's phrases that sit on word boundaries */
static inline void
ReportState(const FtLexicon *lex, int s, const char *text, size_t len, size_t end, FtMatchFn fn, void *arg)
{
	for (int p = lex->first[s]; p >= 0; p = lex->patterns[p].next)
	{
		const FtPattern *pat = &lex->patterns[p];
		size_t		start = end - pat->len;

		if (pat->word_start && WordBefore(text, start))
			continue;
		if (pat->word_end && WordAt(text, len, end))
			continue;
		fn(arg, p, start, end);
	}
}

/* Scan folded text and call fn for every phrase found at word boundaries (overlaps included) */
void
FtLexiconScan(const FtLexicon *lex, const char *folded, size_t len, FtMatchFn fn, void *arg)
{
	const unsigned char *s = (const unsigned char *) folded;
	const int32_t *delta = lex->delta;
	int			nc = lex->nclasses;
	const unsigned char *classes = lex->classes;
	int32_t		row = 0;

	if (!lex->compiled || lex->npatterns == 0)
		return;
	for (size_t i = 0; i < len; i++)
	{
		int32_t		d = delta[row + classes[s[i]]];
		int			state,
					out;

		row = d & STATE_MASK;
		if (!(d & OUTPUT_BIT))
			continue;
		state = row / nc;
		out = lex->first[state] >= 0 ? state : lex->dict[state];
		for (; out >= 0; out = lex->dict[out])
			ReportState(lex, out, folded, len, i + 1, fn, arg);
	}
}

/* ASCII word characters (letters and digits) */
static const bool AsciiWord[128] = {
	['0'] = 1,['1'] = 1,['2'] = 1,['3'] = 1,['4'] = 1,['5'] = 1,['6'] = 1,['7'] = 1,['8'] = 1,['9'] = 1,
	['a'] = 1,['b'] = 1,['c'] = 1,['d'] = 1,['e'] = 1,['f'] = 1,['g'] = 1,['h'] = 1,['i'] = 1,['j'] = 1,
	['k'] = 1,['l'] = 1,['m'] = 1,['n'] = 1,['o'] = 1,['p'] = 1,['q'] = 1,['r'] = 1,['s'] = 1,['t'] = 1,
	['u'] = 1,['v'] = 1,['w'] = 1,['x'] = 1,['y'] = 1,['z'] = 1,
	['A'] = 1,['B'] = 1,['C'] = 1,['D'] = 1,['E'] = 1,['F'] = 1,['G'] = 1,['H'] = 1,['I'] = 1,['J'] = 1,
	['K'] = 1,['L'] = 1,['M'] = 1,['N'] = 1,['O'] = 1,['P'] = 1,['Q'] = 1,['R'] = 1,['S'] = 1,['T'] = 1,
	['U'] = 1,['V'] = 1,['W'] = 1,['X'] = 1,['Y'] = 1,['Z'] = 1,
};

/* Ideographs and kana have no spaces between words, so each one is a word of its own */
static inline bool
IsIdeograph(uint32_t cp)
{
	return (cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x3FFFF);
}

/*
 * Find the next word of (folded) text at or after *pos: a run of word characters, or a single
 * ideograph. Sets *start and *wlen, moves *pos past it; returns false at the end of the text.
 */
bool
FtNextWord(const char *text, size_t len, size_t *pos, size_t *start, size_t *wlen)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		i = *pos;
	uint32_t	cp;
	size_t		n = 0;

	/* skip separators */
	while (i < len)
	{
		if (s[i] < 0x80 && !AsciiWord[s[i]])
		{
			i++;
			continue;
		}
		n = (s[i] < 0x80) ? (cp = s[i], 1) : DecodeUtf8(s + i, len - i, &cp);
		if (IsWordCodepoint(cp))
			break;
		i += n;
	}
	if (i >= len)
	{
		*pos = len;
		return false;
	}
	*start = i;
	if (IsIdeograph(cp))
		i += n;
	else
		while (i < len)
		{
			if (s[i] < 0x80)
			{
				if (!AsciiWord[s[i]])
					break;
				i++;
				continue;
			}
			n = DecodeUtf8(s + i, len - i, &cp);
			if (!IsWordCodepoint(cp) || IsIdeograph(cp))
				break;
			i += n;
		}
	*wlen = i - *start;
	*pos = i;
	return true;
}

/* Specialised copies of a hot loop are only made when the compiler is told to inline */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#define FNV_BASIS 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

/* Finish a word of folded text: keep the hash of words of at least four bytes */
static inline size_t
KeepWord(uint64_t *hashes, size_t nh, size_t wlen, uint64_t h)
{
	if (wlen >= 4)
		hashes[nh++] = h < 2 ? h + 2 : h;
	return nh;
}

/* Feed one byte to the automaton and report the phrases that end with it */
static ALWAYS_INLINE int32_t
StepAutomaton(const FtLexicon *lex, int32_t row, unsigned char c, const char *folded, size_t len,
			  size_t end, FtMatchFn fn, void *arg)
{
	int32_t		d = lex->delta[row + lex->classes[c]];

	row = d & STATE_MASK;
	if (d & OUTPUT_BIT)
	{
		int			state = row / lex->nclasses;
		int			out = lex->first[state] >= 0 ? state : lex->dict[state];

		for (; out >= 0; out = lex->dict[out])
			ReportState(lex, out, folded, len, end, fn, arg);
	}
	return row;
}

/*
 * One pass of FtLexiconScan and FtNextWord together; the flags are constants at each call so
 * the compiler drops the unused half.
 */
static ALWAYS_INLINE size_t
ScanWords(const FtLexicon *lex, bool automaton, bool words, const char *folded, size_t len,
		  FtMatchFn fn, void *arg, uint64_t *hashes)
{
	const unsigned char *s = (const unsigned char *) folded;
	int32_t		row = 0;
	size_t		nh = 0,
				wstart = 0,
				i = 0;
	bool		in_word = false,
				after_letter = false;	/* the previous byte is an ASCII letter or digit */
	uint64_t	h = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		uint32_t	cp;
		size_t		n;

		if (c < 0x80)
		{
			bool		letter = AsciiWord[c];

			if (words)
			{
				if (letter)
				{
					if (!in_word)
						in_word = true, wstart = i, h = FNV_BASIS;
					h = (h ^ c) * FNV_PRIME;
				}
				else if (in_word)
				{
					in_word = false;
					nh = KeepWord(hashes, nh, i - wstart, h);
				}
			}
			/*
			 * In the root state, a letter inside a word can be skipped: nothing is under way,
			 * and a phrase starting there would start inside a word, which is never reported
			 * (a phrase starting with a letter needs a boundary before it). Scanning then goes
			 * on exactly as if the text began after this byte.
			 */
			if (automaton && !(row == 0 && letter && after_letter))
				row = StepAutomaton(lex, row, c, folded, len, i + 1, fn, arg);
			after_letter = letter;
			i++;
			continue;
		}
		after_letter = false;
		n = DecodeUtf8(s + i, len - i, &cp);
		if (words)
		{
			bool		word = IsWordCodepoint(cp);

			if (word && !IsIdeograph(cp))
			{
				if (!in_word)
					in_word = true, wstart = i, h = FNV_BASIS;
				for (size_t k = 0; k < n; k++)
					h = (h ^ s[i + k]) * FNV_PRIME;
			}
			else
			{
				if (in_word)
				{
					in_word = false;
					nh = KeepWord(hashes, nh, i - wstart, h);
				}
				if (word)
				{
					/* an ideograph is a word of its own */
					uint64_t	ih = FNV_BASIS;

					for (size_t k = 0; k < n; k++)
						ih = (ih ^ s[i + k]) * FNV_PRIME;
					nh = KeepWord(hashes, nh, n, ih);
				}
			}
		}
		if (automaton)
			for (size_t k = 0; k < n; k++)
				row = StepAutomaton(lex, row, s[i + k], folded, len, i + k + 1, fn, arg);
		i += n;
	}
	if (words && in_word)
		nh = KeepWord(hashes, nh, len - wstart, h);
	return nh;
}

/*
 * FtLexiconScan and the words of FtNextWord in one pass over folded text: calls fn for every
 * phrase (lex may be NULL to skip matching) and, when hashes is not NULL, stores there the
 * FtWordHash of every word of at least four bytes, in order (room for len / 4 + 1 is enough).
 * Returns the number of hashes stored.
 */
size_t
FtLexiconScanWords(const FtLexicon *lex, const char *folded, size_t len, FtMatchFn fn, void *arg,
				   uint64_t *hashes)
{
	bool		automaton = lex != NULL && lex->compiled && lex->npatterns > 0;

	if (automaton && hashes != NULL)
		return ScanWords(lex, true, true, folded, len, fn, arg, hashes);
	if (automaton)
		return ScanWords(lex, true, false, folded, len, fn, arg, NULL);
	if (hashes != NULL)
		return ScanWords(NULL, false, true, folded, len, NULL, NULL, hashes);
	return 0;
}

/* FNV-1a hash of a word, never 0 or 1 (so sets can use those as marks) */
uint64_t
FtWordHash(const char *w, size_t len)
{
	uint64_t	h = FNV_BASIS;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) w[i]) * FNV_PRIME;
	return h < 2 ? h + 2 : h;
}

/* Number of UTF-8 characters in text (invalid bytes count one each) */
size_t
FtCharCount(const char *text, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
		n += ((unsigned char) text[i] & 0xC0) != 0x80;
	return n;
}
