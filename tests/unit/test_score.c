/*
 * Unit tests of the phrase matcher (folding, boundaries, overlaps) and the quality score.
 */
#include <stdlib.h>
#include <string.h>

#include "lexicon_match.h"
#include "score.h"
#include "unit.h"

typedef struct Found
{
	int			n;
	int			patterns[32];
	size_t		starts[32];
} Found;

/* Matcher callback: remember what was found */
static void
Collect(void *arg, int pattern, size_t start, size_t end)
{
	Found	   *f = arg;

	if (f->n < 32)
	{
		f->patterns[f->n] = pattern;
		f->starts[f->n] = start;
	}
	f->n++;
}

/* Fold a C string into a static buffer */
static const char *
Fold(const char *s)
{
	static char buf[1024];

	FtFold(s, strlen(s), buf);
	return buf;
}

/* Scan a C string (folded first) and return what was found */
static Found
Scan(const FtLexicon *lex, const char *s)
{
	Found		f;
	char	   *buf = malloc(strlen(s) + 1);
	size_t		len = FtFold(s, strlen(s), buf);

	memset(&f, 0, sizeof(f));
	FtLexiconScan(lex, buf, len, Collect, &f);
	free(buf);
	return f;
}

static void
TestFold(void)
{
	IS_STR(Fold("  Héllo   WORLD \n"), "hello world", "case, accents, whitespace collapsed and trimmed");
	IS_STR(Fold("Straße Æsir Œuvre Łódź"), "strasse aesir oeuvre lodz", "ß, ligatures, Latin Extended-A");
	IS_STR(Fold("That\xE2\x80\x99s \xE2\x80\x9Cnice\xE2\x80\x9D\xE2\x80\xA6"), "that's \"nice\"...", "typographic quotes and ellipsis");
	IS_STR(Fold("e\xCC\x81t\xC3\xA9"), "ete", "combining accent dropped like the composed one");
	IS_STR(Fold("\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2"), "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "Cyrillic capitals lower-cased");
	IS_STR(Fold("\xC2\xBFQu\xC3\xA9 tal?"), "que tal?", "inverted question mark dropped");
	IS_STR(Fold("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x9F"), "\xE4\xBD\xA0\xE5\xA5\xBD?", "CJK kept, full-width question mark folded");
	IS_STR(Fold("bad \xFF\xC3 bytes"), "bad \xFF\xC3 bytes", "invalid UTF-8 copied, not lost");
}

static void
TestMatcher(void)
{
	FtLexicon  *lex = FtLexiconCreate();
	Found		f;

	IS_INT(FtLexiconAdd(lex, "I understand", 12, FT_KIND_GENERIC, 1.0f), 0, "phrase 0 added");
	IS_INT(FtLexiconAdd(lex, "understand", 10, FT_KIND_EMPATHY, 0.5f), 1, "phrase 1 added");
	IS_INT(FtLexiconAdd(lex, "Café", 5, FT_KIND_CONTEXT, 1.0f), 2, "phrase 2 added");
	IS_INT(FtLexiconAdd(lex, "as you mentioned", 16, FT_KIND_CONTEXT, 1.0f), 3, "phrase 3 added");
	IS_INT(FtLexiconAdd(lex, "   ", 3, FT_KIND_CONTEXT, 1.0f), -1, "blank phrase refused");
	IS_INT(FtLexiconAdd(lex, "he", 2, FT_KIND_GREETING, 1.0f), 4, "phrase 4 added");
	IS_INT(FtLexiconAdd(lex, "keep it up!", 11, FT_KIND_GENERIC, 1.0f), 5, "phrase 5 added");
	IS_INT(FtLexiconCompile(lex), 0, "compiled");
	IS_INT(FtLexiconSize(lex), 6, "six phrases");

	f = Scan(lex, "Well, I UNDERSTAND.");
	IS_INT(f.n, 2, "overlapping phrases both reported");
	IS_INT(f.patterns[0], 0, "longer phrase first at the same end");
	IS_INT(f.patterns[1], 1, "then the suffix phrase");
	f = Scan(lex, "I misunderstand you");
	IS_INT(f.n, 0, "no match inside a word");
	f = Scan(lex, "understanding");
	IS_INT(f.n, 0, "no match at a word prefix");
	f = Scan(lex, "the CAFE is nice");
	IS_INT(f.n, 1, "accent-insensitive");
	IS_INT(f.patterns[0], 2, "café found as cafe");
	f = Scan(lex, "caf\xC3\xA9s");
	IS_INT(f.n, 0, "café is not found in cafés");
	f = Scan(lex, "As   you\tmentioned, the cafe");
	IS_INT(f.n, 2, "whitespace runs match one space");
	f = Scan(lex, "the hero, he said");
	IS_INT(f.n, 1, "two-letter word only as a word");
	IS_INT((int) f.starts[0], 10, "at the right offset");
	f = Scan(lex, "Keep it up!!! Keep it up!");
	IS_INT(f.n, 2, "phrase ending in punctuation needs no boundary after it");
	f = Scan(lex, "understand\xF0\x9F\x98\x8A");
	IS_INT(f.n, 1, "emoji right after a word is a boundary");
	f = Scan(lex, "understand\xC3\xA9");
	IS_INT(f.n, 0, "accented letter after a word is not a boundary (é folds to e)");
	FtLexiconFree(lex);
}

static FtLexicon *
DefaultLexicon(void)
{
	static const struct
	{
		const char *phrase;
		int			kind;
		float		weight;
	}			phrases[] = {
		{"I'm sorry to hear", FT_KIND_EMPATHY, 1.0f}, {"that sounds", FT_KIND_EMPATHY, 0.5f},
		{"that's interesting", FT_KIND_GENERIC, 1.0f}, {"keep it up", FT_KIND_GENERIC, 1.0f},
		{"as you mentioned", FT_KIND_CONTEXT, 1.0f}, {"how about you", FT_KIND_QUESTION, 1.0f},
		{"hello", FT_KIND_GREETING, 1.0f},
	};
	FtLexicon  *lex = FtLexiconCreate();

	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		FtLexiconAdd(lex, phrases[i].phrase, strlen(phrases[i].phrase), phrases[i].kind, phrases[i].weight);
	FtLexiconCompile(lex);
	return lex;
}

/* Score a two-turn conversation */
static FtScoreResult
Score2(const FtLexicon *lex, const char *user, const char *assistant, bool dup)
{
	FtTurn		turns[3] = {
		{FT_ROLE_SYSTEM, "You are kind. Mail me at a@b.com", 32},
		{FT_ROLE_USER, user, strlen(user)},
		{FT_ROLE_ASSISTANT, assistant, strlen(assistant)}
	};
	FtScoreConfig config;
	FtScoreResult r;
	FtScoreScratch *scratch = FtScratchCreate();

	FtScoreDefaults(&config);
	FtScoreConversation(lex, turns, 3, &config, dup, scratch, &r);
	FtScratchFree(scratch);
	return r;
}

static void
TestScore(void)
{
	FtLexicon  *lex = DefaultLexicon();
	FtScoreResult r;

	r = Score2(lex, "My dog is sick and the vet appointment is tomorrow morning.",
			   "I'm sorry to hear your dog is sick. Waiting for the vet appointment is hard. What did they say so far?",
			   false);
	OK(r.in_band, "response of %d characters inside the 50-200 band", r.length);
	OK(r.question, "asks a question");
	IS_INT(r.empathy_hits, 1, "one empathy phrase");
	OK(r.context, "context by shared content words (%d)", r.overlap);
	OK(!r.pii, "no personal data outside the system prompt");
	OK(r.score > 0.99, "all positive components, no penalty: %.3f", r.score);

	r = Score2(lex, "I ran 5k today.", "That's interesting. Keep it up!", false);
	IS_INT(r.generic_hits, 2, "two generic phrases");
	OK(r.generic == 1.0, "generic capped at 1");
	OK(!r.in_band && !r.too_short, "31 characters: under the band but not too short");
	OK(r.score == 0.0, "generic reply scores 0: %.3f", r.score);

	r = Score2(lex, "Hi", "Ok.", false);
	OK(r.too_short, "too short");
	OK(r.score == 0.0, "too short scores 0");

	r = Score2(lex, "What's the plan for the weekend hiking trip?",
			   "As you mentioned, the hiking trip starts Saturday; call me on +1 (555) 123-4567 if anything changes. How about you?",
			   false);
	IS_INT(r.context_markers, 1, "context marker");
	OK(r.question, "question by lexicon and question mark");
	OK(r.pii, "phone number spotted");
	OK(r.score < 0.75 && r.score > 0.3, "pii penalised: %.3f", r.score);

	r = Score2(lex, "My dog is sick and the vet appointment is tomorrow morning.",
			   "I'm sorry to hear your dog is sick. Waiting for the vet appointment is hard. What did they say so far?",
			   true);
	OK(r.duplicate && r.score == 0.0, "duplicate scores 0");

	{
		FtTurn		turns[1] = {{FT_ROLE_USER, "hello there", 11}};
		FtScoreConfig config;
		FtScoreScratch *scratch = FtScratchCreate();

		FtScoreDefaults(&config);
		IS_INT(FtScoreConversation(lex, turns, 1, &config, false, scratch, &r), 0, "no assistant message scores");
		OK(r.length == 0 && r.too_short, "missing response counts as empty");
		FtScratchFree(scratch);
	}
	FtLexiconFree(lex);
}

static void
TestPii(void)
{
	OK(FtLooksLikePii("write to jane.doe@example.org now", 33), "e-mail");
	OK(!FtLooksLikePii("meet @ 5pm", 10), "lone at sign");
	OK(FtLooksLikePii("card 4111 1111 1111 1111", 24), "card number");
	OK(!FtLooksLikePii("on 2024-01-15 at 10.30", 22), "dates and times are not personal data");
	OK(!FtLooksLikePii("[EMAIL] and [PHONE]", 19), "redaction tokens are not personal data");
}

/*
 * The multi-pass scorer as it was before the fused passes, kept here as the reference the
 * fused FtScoreConversation must agree with exactly: fold, trimmed character count, phrase
 * scan, question mark, word splitting with FtNextWord, and the personal-data check, each a
 * pass of its own.
 */
static const char *const RefStopWords[] = {
	"about", "after", "again", "also", "because", "been", "before", "being", "could", "does",
	"doing", "from", "have", "having", "here", "into", "just", "know", "like", "more", "most",
	"much", "only", "other", "over", "really", "should", "some", "such", "than", "that", "their",
	"them", "then", "there", "these", "they", "thing", "things", "think", "this", "those", "very",
	"want", "well", "were", "what", "when", "where", "which", "while", "will", "with", "would",
	"your", "yours", "sure", "okay",
	"thanks", "thank", "please", "hello", "maybe", "make", "good", "great", NULL
};

typedef struct RefTally
{
	const FtLexicon *lex;
	int			hits[FT_KIND_COUNT];
	double		weight[FT_KIND_COUNT];
} RefTally;

static void
RefCount(void *arg, int pattern, size_t start, size_t end)
{
	RefTally   *t = arg;
	int			kind = FtLexiconKind(t->lex, pattern);

	t->hits[kind]++;
	t->weight[kind] += FtLexiconWeight(t->lex, pattern);
}

static bool
RefContentWord(const char *w, size_t len)
{
	if (len < 4)
		return false;
	for (const char *const *s = RefStopWords; *s; s++)
		if (strlen(*s) == len && memcmp(*s, w, len) == 0)
			return false;
	return true;
}

static bool
RefEmailAt(const char *s, size_t len, size_t at)
{
	size_t		i = at + 1,
				tail = 0;
	bool		dot = false;

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

static bool
RefPii(const char *s, size_t len)
{
	size_t		i = 0;

	while (i < len)
	{
		int			digits = 0,
					seps = 0;
		size_t		j = i;

		if (!(s[i] >= '0' && s[i] <= '9'))
		{
			if (s[i] == '@' && RefEmailAt(s, len, i))
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
		i = j;
	}
	return false;
}

/* Reference score; words are compared as strings, so no hash is involved */
static void
RefScore(const FtLexicon *lex, const FtTurn *turns, int nturns, const FtScoreConfig *config, FtScoreResult *r)
{
	int			response = -1;
	RefTally	t;

	memset(r, 0, sizeof(*r));
	memset(&t, 0, sizeof(t));
	t.lex = lex;
	for (int i = nturns - 1; i >= 0 && response < 0; i--)
		if (turns[i].role == FT_ROLE_ASSISTANT)
			response = i;
	if (response >= 0)
	{
		const FtTurn *resp = &turns[response];
		char	   *folded = malloc(resp->len + 1);
		size_t		flen = FtFold(resp->text, resp->len, folded),
					a = 0,
					b = resp->len,
					total = 0;

		while (a < b && (resp->text[a] == ' ' || (resp->text[a] >= '\t' && resp->text[a] <= '\r')))
			a++;
		while (b > a && (resp->text[b - 1] == ' ' || (resp->text[b - 1] >= '\t' && resp->text[b - 1] <= '\r')))
			b--;
		r->length = (int) FtCharCount(resp->text + a, b - a);
		FtLexiconScan(lex, folded, flen, RefCount, &t);
		r->question = memchr(folded, '?', flen) != NULL || t.hits[FT_KIND_QUESTION] > 0;
		for (int i = 0; i < response; i++)
			if (turns[i].role == FT_ROLE_USER)
				total += turns[i].len + 1;
		if (total > 0)
		{
			char	   *ctx = malloc(total + 1);
			size_t		clen = 0,
						pos = 0,
						ws,
						wl,
						nused = 0;
			size_t	   *used = calloc(total + 1, sizeof(size_t) * 2);

			for (int i = 0; i < response; i++)
				if (turns[i].role == FT_ROLE_USER)
				{
					clen += FtFold(turns[i].text, turns[i].len, ctx + clen);
					ctx[clen++] = ' ';
				}
			/* each distinct context content word can be claimed once */
			while (FtNextWord(ctx, clen, &pos, &ws, &wl))
				if (RefContentWord(ctx + ws, wl))
				{
					bool		seen = false;

					for (size_t k = 0; k < nused && !seen; k++)
						seen = used[2 * k + 1] == wl && memcmp(ctx + used[2 * k], ctx + ws, wl) == 0;
					if (!seen)
						used[2 * nused] = ws, used[2 * nused + 1] = wl, nused++;
				}
			pos = 0;
			while (FtNextWord(folded, flen, &pos, &ws, &wl))
				if (RefContentWord(folded + ws, wl))
					for (size_t k = 0; k < nused; k++)
						if (used[2 * k + 1] == wl && memcmp(ctx + used[2 * k], folded + ws, wl) == 0)
						{
							r->overlap++;
							used[2 * k + 1] = (size_t) -1;	/* claimed */
							break;
						}
			free(used);
			free(ctx);
		}
		free(folded);
	}
	for (int i = 0; i < nturns; i++)
		if (turns[i].role != FT_ROLE_SYSTEM && RefPii(turns[i].text, turns[i].len))
			r->pii = true;
	r->in_band = r->length >= config->band_min && r->length <= config->band_max;
	r->too_short = r->length < config->too_short;
	r->empathy_hits = t.hits[FT_KIND_EMPATHY];
	r->empathy = t.weight[FT_KIND_EMPATHY] > 1.0 ? 1.0 : t.weight[FT_KIND_EMPATHY];
	r->generic_hits = t.hits[FT_KIND_GENERIC];
	r->generic = t.weight[FT_KIND_GENERIC] > 1.0 ? 1.0 : t.weight[FT_KIND_GENERIC];
	r->greeting_hits = t.hits[FT_KIND_GREETING];
	r->context_markers = t.hits[FT_KIND_CONTEXT];
	r->context = r->context_markers > 0 || r->overlap >= 2;
}

/* Pieces generated texts are made of: words, lexicon phrases, accents, CJK, digits, odd bytes */
static const char *const Pieces[] = {
	"I'm sorry to hear", "That sounds", "that's interesting", "Keep it up", "as you mentioned",
	"How about you", "hello", "HELLO", "Caf\xC3\xA9", "na\xC3\xAFve", "e\xCC\x81t\xC3\xA9", "Stra\xC3\x9F" "e",
	"\xC3\x86sir", "\xE2\x80\x9Cquoted\xE2\x80\x9D", "\xE2\x80\xA6", "\xC2\xA0", "\xE2\x80\x94", "?", "!", ".",
	",", "  ", "\t", "\n", " ", " ", " ", "dog", "vet", "appointment", "tomorrow", "morning", "hiking",
	"trip", "weekend", "garden", "Garden", "running", "knee", "about", "really", "their", "\xE4\xBD\xA0\xE5\xA5\xBD",
	"\xF0\xA0\x80\x80\xF0\xA0\x80\x81", "\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2", "\xCE\x91\xCE\x92",
	"+1 (555) 123-4567", "4111 1111 1111 1111", "2024-01-15", "jane.doe@example.org", "a@b", "@", "12",
	"555-0100", "\xFF", "\xC3", "\x80", "\xE4\xBD", "\xF0\x9F\x98\x8A", "\xEF\xBB\xBF", "\xE2\x80\x8B", "ok",
	"understand", "understanding", "I understand", "x", "Zo\xC3\xAB", "\xC2\xBFQu\xC3\xA9?", "",
};

/* Deterministic xorshift generator */
static unsigned
Next(unsigned *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* A generated text of up to n pieces, in buf */
static size_t
Generate(unsigned *state, char *buf, int n)
{
	size_t		len = 0;
	int			count = (int) (Next(state) % (unsigned) n);

	for (int i = 0; i < count; i++)
	{
		const char *p = Pieces[Next(state) % (sizeof(Pieces) / sizeof(Pieces[0]))];

		memcpy(buf + len, p, strlen(p));
		len += strlen(p);
		if (Next(state) % 3 != 0)
			buf[len++] = ' ';
	}
	return len;
}

/* The fused scorer against the multi-pass reference on generated conversations */
static void
TestAgainstReference(void)
{
	static const struct
	{
		const char *phrase;
		int			kind;
		float		weight;
	}			phrases[] = {
		{"I'm sorry to hear", FT_KIND_EMPATHY, 1.0f}, {"that sounds", FT_KIND_EMPATHY, 0.5f},
		{"that's interesting", FT_KIND_GENERIC, 1.0f}, {"keep it up", FT_KIND_GENERIC, 1.0f},
		{"as you mentioned", FT_KIND_CONTEXT, 1.0f}, {"how about you", FT_KIND_QUESTION, 1.0f},
		{"hello", FT_KIND_GREETING, 1.0f}, {"I understand", FT_KIND_GENERIC, 0.7f},
		{"understand", FT_KIND_EMPATHY, 0.3f}, {"caf\xC3\xA9", FT_KIND_CONTEXT, 1.0f},
		{"\xE4\xBD\xA0\xE5\xA5\xBD", FT_KIND_GREETING, 1.0f}, {"...", FT_KIND_GENERIC, 0.2f},
		{"?", FT_KIND_QUESTION, 1.0f}, {"strasse", FT_KIND_EMPATHY, 0.25f},
	};
	FtLexicon  *lex = FtLexiconCreate();
	FtScoreScratch *scratch = FtScratchCreate();
	FtScoreConfig config;
	unsigned	state = 2463534242u;
	int			mismatches = 0,
				with_pii = 0,
				with_overlap = 0,
				with_phrases = 0;
	char	   *texts = malloc(6 * 4096);

	for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
		FtLexiconAdd(lex, phrases[i].phrase, strlen(phrases[i].phrase), phrases[i].kind, phrases[i].weight);
	FtLexiconCompile(lex);
	FtScoreDefaults(&config);
	for (int c = 0; c < 5000; c++)
	{
		FtTurn		turns[6];
		int			nturns = 1 + (int) (Next(&state) % 6);
		FtScoreResult got,
					want;

		for (int i = 0; i < nturns; i++)
		{
			static const FtRole roles[] = {FT_ROLE_SYSTEM, FT_ROLE_USER, FT_ROLE_USER, FT_ROLE_ASSISTANT,
			FT_ROLE_ASSISTANT, FT_ROLE_TOOL, FT_ROLE_OTHER};

			turns[i].role = roles[Next(&state) % 7];
			turns[i].text = texts + i * 4096;
			turns[i].len = Generate(&state, texts + i * 4096, 40);
		}
		if (FtScoreConversation(lex, turns, nturns, &config, false, scratch, &got) != 0)
		{
			mismatches++;
			continue;
		}
		RefScore(lex, turns, nturns, &config, &want);
		if (got.length != want.length || got.in_band != want.in_band || got.question != want.question ||
			got.empathy_hits != want.empathy_hits || got.empathy != want.empathy ||
			got.generic_hits != want.generic_hits || got.generic != want.generic ||
			got.greeting_hits != want.greeting_hits || got.too_short != want.too_short ||
			got.context != want.context || got.context_markers != want.context_markers ||
			got.overlap != want.overlap || got.pii != want.pii)
		{
			if (mismatches++ < 3)
				printf("# conversation %d differs: length %d/%d overlap %d/%d pii %d/%d empathy hits %d/%d\n",
					   c, got.length, want.length, got.overlap, want.overlap, got.pii, want.pii,
					   got.empathy_hits, want.empathy_hits);
		}
		with_pii += want.pii;
		with_overlap += want.overlap > 0;
		with_phrases += want.empathy_hits + want.generic_hits > 0;
	}
	IS_INT(mismatches, 0, "fused scorer agrees with the multi-pass reference on 5000 generated conversations");
	OK(with_pii > 100 && with_overlap > 100 && with_phrases > 100,
	   "the generated conversations exercise personal data (%d), overlap (%d) and phrases (%d)",
	   with_pii, with_overlap, with_phrases);
	free(texts);
	FtScratchFree(scratch);
	FtLexiconFree(lex);
}

int
main(void)
{
	TestFold();
	TestMatcher();
	TestScore();
	TestPii();
	TestAgainstReference();
	return unit_done();
}
