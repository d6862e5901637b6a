/*
 * Quality score of one training conversation: the formula is documented in score.h.
 *
 * Everything here works on borrowed text and one reusable scratch area, so scoring a row costs
 * no allocation once the scratch has grown to the largest conversation seen.
 */
#include "score.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *const FtScoreWeightNames[FT_W_COUNT] = {
	"length", "question", "empathy", "context", "generic", "too_short", "pii", "duplicate"
};

const char *const FtLexiconKindNames[FT_KIND_COUNT] = {
	"empathy", "generic", "question", "context", "greeting"
};

/* Frequent words that say nothing about what a conversation is about */
static const char *const StopWords[] = {
	"about", "after", "again", "also", "because", "been", "before", "being", "could", "does",
	"doing", "from", "have", "having", "here", "into", "just", "know", "like", "more", "most",
	"much", "only", "other", "over", "really", "should", "some", "such", "than", "that", "their",
	"them", "then", "there", "these", "they", "thing", "things", "think", "this", "those", "very",
	"want", "well", "were", "what", "when", "where", "which", "while", "will", "with", "would",
	"your", "yours", "sure", "okay",
	"thanks", "thank", "please", "hello", "maybe", "make", "good", "great", NULL
};

struct FtScoreScratch
{
	char	   *buf;			/* folded response, then folded context turns */
	size_t		cap;
	uint64_t   *words;			/* hashes of the context words, then of the response words */
	size_t		wordcap;
	uint64_t   *set;			/* open-addressing set of context word hashes; 0 empty, 1 deleted */
	size_t		setcap;
	size_t		setmask;		/* slots in use by the current conversation, minus one */
};

typedef struct MatchTally
{
	const FtLexicon *lex;
	int			hits[FT_KIND_COUNT];
	double		weight[FT_KIND_COUNT];
} MatchTally;

/* How the fused folding pass treats an ASCII byte */
enum
{
	ASCII_PLAIN,				/* copied as it is */
	ASCII_SPACE,				/* whitespace, collapsed */
	ASCII_UPPER,				/* lower-cased */
	ASCII_PII					/* digit or '@': copied, and the personal-data check looks there */
};

static const unsigned char AsciiKind[128] = {
	[' '] = ASCII_SPACE,['\t'] = ASCII_SPACE,['\n'] = ASCII_SPACE,['\v'] = ASCII_SPACE,
	['\f'] = ASCII_SPACE,['\r'] = ASCII_SPACE,
	['0'] = ASCII_PII,['1'] = ASCII_PII,['2'] = ASCII_PII,['3'] = ASCII_PII,['4'] = ASCII_PII,
	['5'] = ASCII_PII,['6'] = ASCII_PII,['7'] = ASCII_PII,['8'] = ASCII_PII,['9'] = ASCII_PII,
	['@'] = ASCII_PII,
	['A'] = ASCII_UPPER,['B'] = ASCII_UPPER,['C'] = ASCII_UPPER,['D'] = ASCII_UPPER,['E'] = ASCII_UPPER,
	['F'] = ASCII_UPPER,['G'] = ASCII_UPPER,['H'] = ASCII_UPPER,['I'] = ASCII_UPPER,['J'] = ASCII_UPPER,
	['K'] = ASCII_UPPER,['L'] = ASCII_UPPER,['M'] = ASCII_UPPER,['N'] = ASCII_UPPER,['O'] = ASCII_UPPER,
	['P'] = ASCII_UPPER,['Q'] = ASCII_UPPER,['R'] = ASCII_UPPER,['S'] = ASCII_UPPER,['T'] = ASCII_UPPER,
	['U'] = ASCII_UPPER,['V'] = ASCII_UPPER,['W'] = ASCII_UPPER,['X'] = ASCII_UPPER,['Y'] = ASCII_UPPER,
	['Z'] = ASCII_UPPER,
};

/* Whitespace trimmed from a response before its length is counted */
static inline bool
IsSpaceByte(unsigned char c)
{
	return c < 0x80 && AsciiKind[c] == ASCII_SPACE;
}

/* Default band 50-200 characters, too short under 20, and the default weights */
void
FtScoreDefaults(FtScoreConfig *config)
{
	static const double defaults[FT_W_COUNT] = {0.35, 0.25, 0.20, 0.20, 0.30, 0.50, 0.30, 1.00};

	config->band_min = 50;
	config->band_max = 200;
	config->too_short = 20;
	memcpy(config->weights, defaults, sizeof(defaults));
}

/* A scratch area for FtScoreConversation; NULL when out of memory */
FtScoreScratch *
FtScratchCreate(void)
{
	return calloc(1, sizeof(FtScoreScratch));
}

/* Free a scratch area */
void
FtScratchFree(FtScoreScratch *scratch)
{
	if (scratch == NULL)
		return;
	free(scratch->buf);
	free(scratch->words);
	free(scratch->set);
	free(scratch);
}

/* Kind number of a lexicon kind name, or -1 */
int
FtKindFromName(const char *name, size_t len)
{
	for (int k = 0; k < FT_KIND_COUNT; k++)
		if (strlen(FtLexiconKindNames[k]) == len && memcmp(FtLexiconKindNames[k], name, len) == 0)
			return k;
	return -1;
}

/* Grow the scratch buffer to hold need bytes */
static int
Reserve(FtScoreScratch *scratch, size_t need)
{
	char	   *grown;
	size_t		cap;

	if (need <= scratch->cap)
		return 0;
	cap = scratch->cap ? scratch->cap : 1024;
	while (cap < need)
		cap *= 2;
	grown = realloc(scratch->buf, cap);
	if (grown == NULL)
		return -1;
	scratch->buf = grown;
	scratch->cap = cap;
	return 0;
}

/* Matcher callback: count phrases per kind */
static void
Tally(void *arg, int pattern, size_t start, size_t end)
{
	MatchTally *t = arg;
	int			kind = FtLexiconKind(t->lex, pattern);

	if (kind < 0 || kind >= FT_KIND_COUNT)
		return;
	t->hits[kind]++;
	t->weight[kind] += FtLexiconWeight(t->lex, pattern);
}

#define STOP_SLOTS 1024			/* sparse, so that most lookups stop at the first slot */

static uint64_t StopSet[STOP_SLOTS];
static bool StopSetReady = false;

/* Hash the stop words once into a small open-addressing set */
static void
InitStopSet(void)
{
	for (const char *const *w = StopWords; *w; w++)
	{
		uint64_t	h = FtWordHash(*w, strlen(*w));
		size_t		i = h & (STOP_SLOTS - 1);

		while (StopSet[i] != 0 && StopSet[i] != h)
			i = (i + 1) & (STOP_SLOTS - 1);
		StopSet[i] = h;
	}
	StopSetReady = true;
}

/*
 * Is a folded word of at least four bytes (FtLexiconScanWords keeps no shorter ones), known by
 * its hash, meaningful enough to show a shared topic?
 */
static inline bool
IsContentWord(uint64_t h)
{
	for (size_t i = h & (STOP_SLOTS - 1); StopSet[i] != 0; i = (i + 1) & (STOP_SLOTS - 1))
		if (StopSet[i] == h)
			return false;
	return true;
}

/* Insert a hash into the set (which is kept at most half full) */
static void
SetInsert(FtScoreScratch *scratch, uint64_t h)
{
	size_t		mask = scratch->setmask;

	for (size_t i = h & mask;; i = (i + 1) & mask)
	{
		if (scratch->set[i] == h)
			return;
		if (scratch->set[i] == 0)
		{
			scratch->set[i] = h;
			return;
		}
	}
}

/* Remove a hash from the set; true when it was there */
static bool
SetTake(FtScoreScratch *scratch, uint64_t h)
{
	size_t		mask = scratch->setmask;

	for (size_t i = h & mask;; i = (i + 1) & mask)
	{
		if (scratch->set[i] == 0)
			return false;
		if (scratch->set[i] == h)
		{
			scratch->set[i] = 1;
			return true;
		}
	}
}

/*
 * Size the word set for up to nwords entries and empty it; only the slots this conversation
 * needs are cleared, however large the set grew for an earlier one
 */
static int
SetReset(FtScoreScratch *scratch, size_t nwords)
{
	size_t		cap = 16;

	while (cap < nwords * 2 + 2)
		cap *= 2;
	if (cap > scratch->setcap)
	{
		uint64_t   *grown = realloc(scratch->set, cap * sizeof(uint64_t));

		if (grown == NULL)
			return -1;
		scratch->set = grown;
		scratch->setcap = cap;
	}
	scratch->setmask = cap - 1;
	memset(scratch->set, 0, cap * sizeof(uint64_t));
	return 0;
}

/* Grow the word hash array to hold need hashes */
static int
ReserveWords(FtScoreScratch *scratch, size_t need)
{
	uint64_t   *grown;
	size_t		cap;

	if (need <= scratch->wordcap)
		return 0;
	cap = scratch->wordcap ? scratch->wordcap : 256;
	while (cap < need)
		cap *= 2;
	grown = realloc(scratch->words, cap * sizeof(uint64_t));
	if (grown == NULL)
		return -1;
	scratch->words = grown;
	scratch->wordcap = cap;
	return 0;
}

/* 1 inside the band, falling linearly to 0 at length 0 below it and at twice the maximum above it */
static double
LengthScore(int length, const FtScoreConfig *config)
{
	if (length < config->band_min)
		return config->band_min > 0 ? (double) length / config->band_min : 1.0;
	if (length > config->band_max)
	{
		double		over = (double) (length - config->band_max) / (config->band_max > 0 ? config->band_max : 1);

		return over >= 1.0 ? 0.0 : 1.0 - over;
	}
	return 1.0;
}

/* Combine the components with the weights (formula in score.h) */
static double
Combine(const FtScoreResult *r, const double *w)
{
	double		pos_w = w[FT_W_LENGTH] + w[FT_W_QUESTION] + w[FT_W_EMPATHY] + w[FT_W_CONTEXT];
	double		score = 0.0;

	if (pos_w > 0)
		score = (w[FT_W_LENGTH] * r->length_score + w[FT_W_QUESTION] * r->question +
				 w[FT_W_EMPATHY] * r->empathy + w[FT_W_CONTEXT] * r->context) / pos_w;
	score -= w[FT_W_GENERIC] * r->generic + w[FT_W_TOO_SHORT] * r->too_short +
		w[FT_W_PII] * r->pii + w[FT_W_DUPLICATE] * r->duplicate;
	if (!(score > 0.0))			/* also catches NaN from odd weights */
		return 0.0;
	return score > 1.0 ? 1.0 : score;
}

/* An e-mail address at the '@' at position at: word characters before, a dotted domain after */
static bool
EmailAt(const char *s, size_t len, size_t at)
{
	size_t		i = at + 1;
	bool		dot = false;
	size_t		tail = 0;

	if (at == 0 || !(FtIsWordByte((unsigned char) s[at - 1]) || s[at - 1] == '.' || s[at - 1] == '_'))
		return false;
	for (; i < len && (FtIsWordByte((unsigned char) s[i]) || s[i] == '.' || s[i] == '-'); i++)
	{
		if (s[i] == '.')
			dot = true, tail = 0;
		else
			tail++;
	}
	return dot && tail >= 2;
}

/*
 * One step of the personal-data check at position i, which holds a digit or '@': an e-mail
 * address there, or a run of 9 to 19 digits starting there with at most two spaces, dashes,
 * dots or parentheses between digits. *next is where the check goes on.
 */
static bool
PiiAt(const unsigned char *s, size_t len, size_t i, size_t *next)
{
	int			digits = 0,
				seps = 0;
	size_t		j = i;

	if (s[i] == '@')
	{
		*next = i + 1;
		return EmailAt((const char *) s, len, i);
	}
	for (; j < len; j++)
	{
		if (s[j] >= '0' && s[j] <= '9')
			digits++, seps = 0;
		else if (seps < 2 && (s[j] == ' ' || s[j] == '-' || s[j] == '.' || s[j] == '(' || s[j] == ')'))
			seps++;
		else
			break;
	}
	*next = j;
	return digits >= 9 && digits <= 19;
}

/*
 * A tiny personal-data check for the score: an e-mail address, or a run of 9 to 19 digits with
 * at most two spaces, dashes, dots or parentheses between digits (phone, card or account numbers).
 * The redactor (ft_redact) is the thorough detector; this only has to notice what is left.
 */
bool
FtLooksLikePii(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *) text;
	size_t		i = 0;

	while (i < len)
	{
		/* most bytes are neither digits nor '@' */
		if (s[i] >= 0x80 || AsciiKind[s[i]] != ASCII_PII)
		{
			i++;
			continue;
		}
		if (PiiAt(s, len, i, &i))
			return true;
	}
	return false;
}

#define BYTES(b) (0x0101010101010101ULL * (b))

/*
 * Can eight bytes be folded by lower-casing them all at once? Only when they are ASCII without
 * control characters, digits or '@', and every space stands alone and not last (so no run is
 * collapsed and no space can turn out trailing). Sets *folded to the lower-cased bytes.
 */
static inline bool
PlainBlock(const unsigned char *p, uint64_t *folded)
{
	uint64_t	x,
				t,
				space,
				upper;

	memcpy(&x, p, 8);
	if (x & BYTES(0x80))
		return false;
	/* any byte below 0x20 (controls), or between '/' and ':' (digits), or equal to '@' */
	if (((x - BYTES(0x20)) & ~x & BYTES(0x80)) ||
		((BYTES(127 + 0x3A) - x) & ~x & (x + BYTES(127 - 0x2F)) & BYTES(0x80)) ||
		(((x ^ BYTES(0x40)) - BYTES(0x01)) & ~(x ^ BYTES(0x40)) & BYTES(0x80)))
		return false;
	/* exact per-byte mask of the spaces (no carries: every byte is below 0x80) */
	t = x ^ BYTES(0x20);
	space = ~(((t & BYTES(0x7F)) + BYTES(0x7F)) | t) & BYTES(0x80);
	if ((space & (space << 8)) || (space & 0x8000000000000000ULL))
		return false;
	upper = (x + BYTES(0x80 - 'A')) & ~(x + BYTES(0x80 - 'Z' - 1)) & BYTES(0x80);
	*folded = x | (upper >> 2);
	return true;
}

/*
 * Fold text exactly like FtFold and, in the same pass, measure its length in characters with
 * outer whitespace trimmed (when length is not NULL) and look for personal data like
 * FtLooksLikePii (unless *pii is already set). out needs len + 1 bytes.
 */
static size_t
FoldAndMeasure(const char *in, size_t len, char *out, int *length, bool *pii)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t		i = 0,
				o = 0,
				a = 0,
				b = len,
				cont = 0,		/* UTF-8 continuation bytes: len minus them is the characters */
				pii_next = *pii ? len : 0;	/* where the personal-data check resumes */
	bool		pending_space = false;

	while (i < len)
	{
		unsigned char c = s[i];
		char		wide[4];
		size_t		n,
					olen;
		int			action;
		uint64_t	block;

		/* eight plain ASCII bytes at once when nothing in them needs the careful path */
		if (!pending_space && i + 8 <= len && o > 0 && PlainBlock(s + i, &block))
		{
			memcpy(out + o, &block, 8);
			o += 8;
			i += 8;
			continue;
		}
		if (c < 0x80)
		{
			unsigned char kind = AsciiKind[c];

			if (kind == ASCII_SPACE)
			{
				pending_space = o > 0;
				i++;
				continue;
			}
			/* digits and '@' are rare: the check runs only there, as FtLooksLikePii would */
			if (kind == ASCII_PII && i >= pii_next && PiiAt(s, len, i, &pii_next))
			{
				*pii = true;
				pii_next = len;
			}
			if (pending_space)
				out[o++] = ' ', pending_space = false;
			out[o++] = (char) (kind == ASCII_UPPER ? c + 32 : c);
			i++;
			continue;
		}
		n = FtFoldWide(s + i, len - i, wide, &olen, &action);
		cont += n > 1 ? n - 1 : (c & 0xC0) == 0x80;
		if (action == FT_FOLD_SPACE)
			pending_space = o > 0;
		else if (action == FT_FOLD_EMIT)
		{
			if (pending_space)
				out[o++] = ' ', pending_space = false;
			memcpy(out + o, wide, olen);
			o += olen;
		}
		i += n;
	}
	out[o] = '\0';
	if (length != NULL)
	{
		/* trimmed whitespace is ASCII, one byte per character, and holds no continuation byte */
		while (a < b && IsSpaceByte(s[a]))
			a++;
		while (b > a && IsSpaceByte(s[b - 1]))
			b--;
		*length = (int) (b - a - cont);
	}
	return o;
}

/*
 * Score a conversation. duplicate says whether the caller found the same content elsewhere.
 * Returns 0, or -1 when out of memory.
 *
 * Each text is read twice at most: once raw (folding, length and personal data together) and
 * once folded (phrases and words together). Context words are the words of the user turns
 * before the response; the response's content words found among them make the overlap.
 */
int
FtScoreConversation(const FtLexicon *lex, const FtTurn *turns, int nturns, const FtScoreConfig *config,
					bool duplicate, FtScoreScratch *scratch, FtScoreResult *r)
{
	int			response = -1;
	size_t		context = 0;	/* bytes of user turns before the response, one more each */
	MatchTally	tally;

	memset(r, 0, sizeof(*r));
	memset(&tally, 0, sizeof(tally));
	tally.lex = lex;
	for (int i = nturns - 1; i >= 0 && response < 0; i--)
		if (turns[i].role == FT_ROLE_ASSISTANT)
			response = i;
	if (response >= 0)
	{
		const FtTurn *t = &turns[response];
		size_t		flen,
					clen = 0,
					nctx = 0,
					nresp;
		char	   *ctx;

		for (int i = 0; i < response; i++)
			if (turns[i].role == FT_ROLE_USER)
				context += turns[i].len + 1;
		if (Reserve(scratch, t->len + 1 + context + 1) < 0 ||
			ReserveWords(scratch, (t->len + context) / 4 + 2) < 0)
			return -1;
		flen = FoldAndMeasure(t->text, t->len, scratch->buf, &r->length, &r->pii);
		if (context > 0)
		{
			ctx = scratch->buf + flen + 1;
			for (int i = 0; i < response; i++)
				if (turns[i].role == FT_ROLE_USER)
				{
					clen += FoldAndMeasure(turns[i].text, turns[i].len, ctx + clen, NULL, &r->pii);
					ctx[clen++] = ' ';
				}
			if (!StopSetReady)
				InitStopSet();
			nctx = FtLexiconScanWords(NULL, ctx, clen, NULL, NULL, scratch->words);
			if (SetReset(scratch, nctx) < 0)
				return -1;
			for (size_t w = 0; w < nctx; w++)
				if (IsContentWord(scratch->words[w]))
					SetInsert(scratch, scratch->words[w]);
		}
		nresp = FtLexiconScanWords(lex, scratch->buf, flen, Tally, &tally,
								   context > 0 ? scratch->words + nctx : NULL);
		/* the set holds content words only, so a stop word of the response is never taken */
		for (size_t w = 0; w < nresp; w++)
			if (SetTake(scratch, scratch->words[nctx + w]))
				r->overlap++;
		r->question = memchr(scratch->buf, '?', flen) != NULL || tally.hits[FT_KIND_QUESTION] > 0;
	}
	/* the turns not folded above: everything after the response, and before it all but user turns */
	for (int i = 0; i < nturns && !r->pii; i++)
		if (turns[i].role != FT_ROLE_SYSTEM && i != response &&
			!(context > 0 && i < response && turns[i].role == FT_ROLE_USER) &&
			FtLooksLikePii(turns[i].text, turns[i].len))
			r->pii = true;
	r->in_band = r->length >= config->band_min && r->length <= config->band_max;
	r->length_score = LengthScore(r->length, config);
	r->too_short = r->length < config->too_short;
	r->empathy_hits = tally.hits[FT_KIND_EMPATHY];
	r->empathy = tally.weight[FT_KIND_EMPATHY] > 1.0 ? 1.0 : (tally.weight[FT_KIND_EMPATHY] < 0 ? 0 : tally.weight[FT_KIND_EMPATHY]);
	r->generic_hits = tally.hits[FT_KIND_GENERIC];
	r->generic = tally.weight[FT_KIND_GENERIC] > 1.0 ? 1.0 : (tally.weight[FT_KIND_GENERIC] < 0 ? 0 : tally.weight[FT_KIND_GENERIC]);
	r->greeting_hits = tally.hits[FT_KIND_GREETING];
	r->context_markers = tally.hits[FT_KIND_CONTEXT];
	r->context = r->context_markers > 0 || r->overlap >= 2;
	r->duplicate = duplicate;
	r->score = Combine(r, config->weights);
	return 0;
}
