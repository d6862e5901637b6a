/*
 * SQL-callable dataset functions: ft_jsonl, ft_build_dataset and ft_dataset_preview, thin
 * callbacks around the one stream in dataset.c.
 */
#include "postgres.h"

#include "dataset.h"
#include "pg_compat.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(ft_jsonl);
PG_FUNCTION_INFO_V1(ft_build_dataset);
PG_FUNCTION_INFO_V1(ft_dataset_preview);

/* Where ft_jsonl's lines go */
typedef struct TupleSink
{
	Tuplestorestate *store;
	TupleDesc	desc;
} TupleSink;

/* Append one line as a text row */
static void
EmitToTuplestore(void *arg, const char *line, size_t len)
{
	TupleSink  *sink = arg;
	Datum		value = PointerGetDatum(cstring_to_text_with_len(line, (int) len));
	bool		isnull = false;

	tuplestore_putvalues(sink->store, sink->desc, &value, &isnull);
}

/*
 * One JSON line per example of the avatar. Materialize mode: the executor keeps a set-returning
 * function's rows in a tuplestore anyway when it is called in FROM, and the tuplestore spills to
 * disk above work_mem, so memory stays bounded for any dataset size.
 */
Datum
ft_jsonl(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleSink	sink;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	sink.store = rsinfo->setResult;
	sink.desc = rsinfo->setDesc;
	FtStreamDataset(*PG_GETARG_UUID_P(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
					text_to_cstring(PG_GETARG_TEXT_PP(2)), PG_GETARG_JSONB_P(3), EmitToTuplestore, &sink);
	return (Datum) 0;
}

/*
 * Build the avatar's dataset only to count, measure and fingerprint it, record it in
 * ft_datasets and return the row's id
 */
Datum
ft_build_dataset(PG_FUNCTION_ARGS)
{
	FtDatasetSummary summary;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	*id = FtBuildDatasetToFiles(*PG_GETARG_UUID_P(0), text_to_cstring(PG_GETARG_TEXT_PP(2)),
								PG_GETARG_JSONB_P(1), NULL, NULL, &summary);
	PG_RETURN_UUID_P(id);
}

/* The first lines of each split, kept for the preview */
typedef struct PreviewState
{
	int			limit;
	int			count[2];
	char	  **lines[2];
	MemoryContext cxt;
} PreviewState;

/* Keep a line while its split has room; stop once both splits are full */
static bool
EmitToPreview(void *arg, bool validation, const char *line, size_t len, int64 tokens)
{
	PreviewState *p = arg;
	int			s = validation ? 1 : 0;

	if (p->count[s] < p->limit)
	{
		char	   *copy = MemoryContextAlloc(p->cxt, len + 1);

		memcpy(copy, line, len);
		copy[len] = '\0';
		p->lines[s][p->count[s]++] = copy;
	}
	return p->count[0] < p->limit || p->count[1] < p->limit;
}

/*
 * The first n lines of the train and of the validation split, for a quick look in psql
 */
Datum
ft_dataset_preview(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n = PG_GETARG_INT32(1);
	PreviewState p;
	static const char *const names[2] = {"train", "validation"};

	if (n < 0 || n > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("preview size must be between 0 and 1000"),
				 errhint("Use ft_jsonl for whole splits.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (n == 0)
		return (Datum) 0;
	memset(&p, 0, sizeof(p));
	p.limit = n;
	p.cxt = CurrentMemoryContext;
	p.lines[0] = palloc(sizeof(char *) * n);
	p.lines[1] = palloc(sizeof(char *) * n);
	FtStreamDatasetSplits(*PG_GETARG_UUID_P(0), text_to_cstring(PG_GETARG_TEXT_PP(2)), PG_GETARG_JSONB_P(3),
						  true, true, true, EmitToPreview, &p);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < p.count[s]; i++)
		{
			Datum		values[3] = {CStringGetTextDatum(names[s]), Int32GetDatum(i + 1),
			CStringGetTextDatum(p.lines[s][i])};
			bool		nulls[3] = {false, false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	return (Datum) 0;
}

/*
 * Write the avatar's dataset into server files (superuser-only, in ft_internal): the worker's
 * file path, callable for operators and tests. Returns the ft_datasets row id.
 */
PG_FUNCTION_INFO_V1(ft_write_dataset_files);

Datum
ft_write_dataset_files(PG_FUNCTION_ARGS)
{
	FtDatasetFiles files;
	FtDatasetSummary summary;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));
	pg_uuid_t  *job = PG_ARGISNULL(5) ? NULL : PG_GETARG_UUID_P(5);

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("avatar, train_path, format and options must not be null")));
	files.train_path = text_to_cstring(PG_GETARG_TEXT_PP(1));
	files.validation_path = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	*id = FtBuildDatasetToFiles(*PG_GETARG_UUID_P(0), text_to_cstring(PG_GETARG_TEXT_PP(3)),
								PG_GETARG_JSONB_P(4), job, &files, &summary);
	PG_RETURN_UUID_P(id);
}
