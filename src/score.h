/*
 * Quality score of one training conversation (no PostgreSQL headers).
 *
 * The response is the last assistant message; earlier turns are its context. The score is
 *
 *   positive = (w.length * length_score + w.question * question + w.empathy * empathy
 *               + w.context * context) / (w.length + w.question + w.empathy + w.context)
 *   score    = clamp(positive - w.generic * generic - w.too_short * too_short
 *                    - w.pii * pii - w.duplicate * duplicate, 0, 1)
 *
 * where length_score is 1 inside the length band and falls off linearly outside it, question,
 * context, too_short, pii and duplicate are 0 or 1, and empathy and generic are the summed
 * lexicon weights of the matched phrases, capped at 1.
 */
#ifndef FT_SCORE_H
#define FT_SCORE_H

#include <stdbool.h>
#include <stddef.h>

#include "lexicon_match.h"

/* Lexicon kinds the scorer uses (ft_lexicon.kind) */
typedef enum FtPhraseKind
{
	FT_KIND_EMPATHY,
	FT_KIND_GENERIC,
	FT_KIND_QUESTION,
	FT_KIND_CONTEXT,
	FT_KIND_GREETING,
	FT_KIND_COUNT
} FtPhraseKind;

/* Weights of the score formula, in the order of FtScoreWeightNames */
typedef enum FtScoreWeight
{
	FT_W_LENGTH,
	FT_W_QUESTION,
	FT_W_EMPATHY,
	FT_W_CONTEXT,
	FT_W_GENERIC,
	FT_W_TOO_SHORT,
	FT_W_PII,
	FT_W_DUPLICATE,
	FT_W_COUNT
} FtScoreWeight;

typedef enum FtRole
{
	FT_ROLE_OTHER,
	FT_ROLE_SYSTEM,
	FT_ROLE_USER,
	FT_ROLE_ASSISTANT,
	FT_ROLE_TOOL
} FtRole;

/* One message: role and content (not necessarily NUL-terminated) */
typedef struct FtTurn
{
	FtRole		role;
	const char *text;
	size_t		len;
} FtTurn;

typedef struct FtScoreConfig
{
	int			band_min;		/* good response length, in characters */
	int			band_max;
	int			too_short;		/* responses shorter than this are penalised */
	double		weights[FT_W_COUNT];
} FtScoreConfig;

typedef struct FtScoreResult
{
	int			length;			/* characters of the response, outer whitespace trimmed */
	bool		in_band;
	double		length_score;
	bool		question;
	int			empathy_hits;
	double		empathy;
	int			generic_hits;
	double		generic;
	int			greeting_hits;
	bool		too_short;
	bool		context;
	int			context_markers;
	int			overlap;		/* content words shared with earlier user turns */
	bool		pii;
	bool		duplicate;
	double		score;
} FtScoreResult;

typedef struct FtScoreScratch FtScoreScratch;

extern const char *const FtScoreWeightNames[FT_W_COUNT];
extern const char *const FtLexiconKindNames[FT_KIND_COUNT];

extern void FtScoreDefaults(FtScoreConfig *config);
extern FtScoreScratch *FtScratchCreate(void);
extern void FtScratchFree(FtScoreScratch *scratch);
extern int	FtScoreConversation(const FtLexicon *lex, const FtTurn *turns, int nturns,
								const FtScoreConfig *config, bool duplicate,
								FtScoreScratch *scratch, FtScoreResult *result);
extern bool FtLooksLikePii(const char *text, size_t len);
extern int	FtKindFromName(const char *name, size_t len);

#endif
