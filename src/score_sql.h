/*
 * Helpers of the scoring glue shared with the de-duplication glue.
 */
#ifndef FT_SCORE_SQL_H
#define FT_SCORE_SQL_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "score.h"

extern FtTurn *FtExtractTurns(Jsonb *example, int *nturns);
extern bytea *FtContentHash(Jsonb *example);

#endif
