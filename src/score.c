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
	uint64_t   *set;			/* open-addressing set of context word hashes; 0 empty, 1 deleted */
	size_t		setcap;
};

typedef struct MatchTally
{
	const FtLexicon *lex;
	int			hits[FT_KIND_COUNT];
	double		weight[FT_KIND_COUNT];
} MatchTally;

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

/* FNV-1a: cheap 64-bit hash of a word, never 0 or 1 (the set's empty and deleted marks) */
static inline uint64_t
WordHash(const char *w, size_t len)
{
	uint64_t	h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) w[i]) * 1099511628211ULL;
	return h < 2 ? h + 2 : h;
}

#define STOP_SLOTS 256

static uint64_t StopSet[STOP_SLOTS];
static bool StopSetReady = false;

/* Hash the stop words once into a small open-addressing set */
static void
InitStopSet(void)
{
	for (const char *const *w = StopWords; *w; w++)
	{
		uint64_t	h = WordHash(*w, strlen(*w));
		size_t		i = h & (STOP_SLOTS - 1);

		while (StopSet[i] != 0 && StopSet[i] != h)
			i = (i + 1) & (STOP_SLOTS - 1);
		StopSet[i] = h;
	}
	StopSetReady = true;
}

/* Is a folded word (of length len and hash h) long and meaningful enough to show a shared topic? */
static inline bool
IsContentWord(size_t len, uint64_t h)
{
	if (len < 4)
		return false;
	for (size_t i = h & (STOP_SLOTS - 1); StopSet[i] != 0; i = (i + 1) & (STOP_SLOTS - 1))
		if (StopSet[i] == h)
			return false;
	return true;
}

/* Insert a hash into the set (which is kept at most half full) */
static void
SetInsert(FtScoreScratch *scratch, uint64_t h)
{
	size_t		mask = scratch->setcap - 1;

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
	size_t		mask = scratch->setcap - 1;

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

/* Size the word set for up to nwords entries and empty it */
static int
SetReset(FtScoreScratch *scratch, size_t nwords)
{
	size_t		cap = 64;

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
	else
		cap = scratch->setcap;
	memset(scratch->set, 0, cap * sizeof(uint64_t));
	return 0;
}

/*
 * Content words of the response that also occur in user turns before it. ctx is scratch space
 * after the folded response.
 */
static int
CountOverlap(FtScoreScratch *scratch, const FtTurn *turns, int response, size_t resp_len, int *overlap)
{
	size_t		total = 0,
				pos = 0,
				ws,
				wl;
	char	   *ctx;
	size_t		clen = 0;

	*overlap = 0;
	for (int i = 0; i < response; i++)
		if (turns[i].role == FT_ROLE_USER)
			total += turns[i].len + 1;
	if (total == 0)
		return 0;
	if (Reserve(scratch, resp_len + 1 + total + 1) < 0 || SetReset(scratch, total / 4 + 1) < 0)
		return -1;
	ctx = scratch->buf + resp_len + 1;
	for (int i = 0; i < response; i++)
		if (turns[i].role == FT_ROLE_USER)
		{
			clen += FtFold(turns[i].text, turns[i].len, ctx + clen);
			ctx[clen++] = ' ';
		}
	if (!StopSetReady)
		InitStopSet();
	while (FtNextWord(ctx, clen, &pos, &ws, &wl))
	{
		uint64_t	h = wl >= 4 ? WordHash(ctx + ws, wl) : 0;

		if (IsContentWord(wl, h))
			SetInsert(scratch, h);
	}
	pos = 0;
	while (FtNextWord(scratch->buf, resp_len, &pos, &ws, &wl))
	{
		uint64_t	h = wl >= 4 ? WordHash(scratch->buf + ws, wl) : 0;

		if (IsContentWord(wl, h) && SetTake(scratch, h))
			(*overlap)++;
	}
	return 0;
}

/* Length in characters with outer whitespace trimmed */
static int
TrimmedLength(const char *text, size_t len)
{
	size_t		a = 0,
				b = len;

	while (a < b && (text[a] == ' ' || (text[a] >= '\t' && text[a] <= '\r')))
		a++;
	while (b > a && (text[b - 1] == ' ' || (text[b - 1] >= '\t' && text[b - 1] <= '\r')))
		b--;
	return (int) FtCharCount(text + a, b - a);
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

/*
 * Score a conversation. duplicate says whether the caller found the same content elsewhere.
 * Returns 0, or -1 when out of memory.
 */
int
FtScoreConversation(const FtLexicon *lex, const FtTurn *turns, int nturns, const FtScoreConfig *config,
					bool duplicate, FtScoreScratch *scratch, FtScoreResult *r)
{
	int			response = -1;
	size_t		flen = 0;
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

		if (Reserve(scratch, t->len + 1) < 0)
			return -1;
		r->length = TrimmedLength(t->text, t->len);
		flen = FtFold(t->text, t->len, scratch->buf);
		if (lex != NULL)
			FtLexiconScan(lex, scratch->buf, flen, Tally, &tally);
		r->question = memchr(scratch->buf, '?', flen) != NULL || tally.hits[FT_KIND_QUESTION] > 0;
		if (CountOverlap(scratch, turns, response, flen, &r->overlap) < 0)
			return -1;
	}
	for (int i = 0; i < nturns; i++)
		if (turns[i].role != FT_ROLE_SYSTEM && FtLooksLikePii(turns[i].text, turns[i].len))
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
 * A tiny personal-data check for the score: an e-mail address, or a run of 9 to 19 digits with
 * at most two spaces, dashes, dots or parentheses between digits (phone, card or account numbers).
 * The redactor (ft_redact) is the thorough detector; this only has to notice what is left.
 */
bool
FtLooksLikePii(const char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		int			digits = 0;
		size_t		j = i;
		int			seps = 0;

		/* most bytes are neither digits nor '@' */
		if (!(s[i] >= '0' && s[i] <= '9'))
		{
			if (s[i] == '@' && EmailAt(s, len, i))
				return true;
			i++;
			continue;
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
		if (digits >= 9 && digits <= 19)
			return true;
		i = j > i ? j : i + 1;
	}
	return false;
}
