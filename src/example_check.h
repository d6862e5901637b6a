#ifndef FT_EXAMPLE_CHECK_H
#define FT_EXAMPLE_CHECK_H

#include "postgres.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"

/* One structural problem of a training example */
typedef struct FtExampleProblem
{
	const char *code;			/* stable machine-readable code, e.g. "unknown_role" */
	char	   *path;			/* JSON path of the offending value, e.g. "messages[2].role" */
	char	   *detail;			/* full sentence for humans */
} FtExampleProblem;

extern Jsonb *FtNormalizeExample(Jsonb *example);
extern List *FtExampleProblems(Jsonb *example, bool first_only);
extern void FtCheckExample(Jsonb *example);

#endif
