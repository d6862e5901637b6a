/*
 * Fuzz target of the phrase matcher, the scorer and the MinHash signer.
 *
 * Input: phrases (one per line) up to the first NUL byte, then conversation turns (one per line,
 * the first byte of each choosing its role). Checks that nothing crashes or reads out of bounds
 * and that the invariants hold: folding never grows text, scores stay in [0,1], matches lie
 * inside the text, a signature is identical to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "lexicon_match.h"
#include "score.h"

typedef struct Bounds
{
	size_t		len;
} Bounds;

/* Every match must lie inside the scanned text */
static void
CheckMatch(void *arg, int pattern, size_t start, size_t end)
{
	Bounds	   *b = arg;

	if (start > end || end > b->len || pattern < 0)
		abort();
}

/* Add each line of the phrase section as a phrase of a kind chosen by its length */
static FtLexicon *
BuildLexicon(const char *data, size_t len)
{
	FtLexicon  *lex = FtLexiconCreate();
	size_t		start = 0;

	for (size_t i = 0; i <= len; i++)
		if (i == len || data[i] == '\n')
		{
			if (i > start)
				FtLexiconAdd(lex, data + start, i - start, (int) ((i - start) % FT_KIND_COUNT), 0.5f);
			start = i + 1;
		}
	if (FtLexiconCompile(lex) < 0)
	{
		FtLexiconFree(lex);
		return NULL;
	}
	return lex;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	const char *nul = memchr(text, '\0', size);
	size_t		plen = nul ? (size_t) (nul - text) : 0;
	const char *conv = nul ? nul + 1 : text;
	size_t		clen = size - (size_t) (conv - text);
	FtLexicon  *lex = BuildLexicon(text, plen);
	FtTurn		turns[64];
	int			nturns = 0;
	size_t		start = 0;
	char	   *folded = malloc(clen + 1);
	size_t		flen;
	Bounds		bounds;
	FtScoreConfig config;
	FtScoreResult result;
	FtScoreScratch *scratch = FtScratchCreate();
	uint32_t	sig[FT_MINHASH_K];
	uint64_t	prev = 0;

	if (lex == NULL || folded == NULL || scratch == NULL)
		abort();
	/* fold and scan the whole conversation section */
	flen = FtFold(conv, clen, folded);
	if (flen > clen)
		abort();
	bounds.len = flen;
	FtLexiconScan(lex, folded, flen, CheckMatch, &bounds);
	FtMinHashInit(sig);
	FtMinHashAdd(sig, folded, flen, &prev);
	if (FtMinHashSimilarity(sig, sig) != 1.0)
		abort();
	/* score it as turns */
	for (size_t i = 0; i <= clen && nturns < 64; i++)
		if (i == clen || conv[i] == '\n')
		{
			if (i > start)
			{
				turns[nturns].role = (FtRole) ((unsigned char) conv[start] % 5);
				turns[nturns].text = conv + start + 1;
				turns[nturns].len = i - start - 1;
				nturns++;
			}
			start = i + 1;
		}
	FtScoreDefaults(&config);
	config.band_min = size % 7;
	config.band_max = config.band_min + (int) (size % 300);
	if (FtScoreConversation(lex, turns, nturns, &config, size % 11 == 0, scratch, &result) != 0)
		abort();
	if (!(result.score >= 0.0 && result.score <= 1.0))
		abort();
	FtScratchFree(scratch);
	FtLexiconFree(lex);
	free(folded);
	return 0;
}
