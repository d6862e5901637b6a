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

int
main(void)
{
	TestFold();
	TestMatcher();
	TestScore();
	TestPii();
	return unit_done();
}
