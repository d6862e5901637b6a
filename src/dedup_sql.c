/*
 * SQL glue of near-duplicate detection and diversity: ft_near_duplicates, ft_mark_duplicates
 * and ft_diversity read an avatar's examples once, sign each with MinHash (dedup.c) and let
 * LSH find the pairs.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "dedup.h"
#include "pg_compat.h"
#include "lexicon_match.h"
#include "score_sql.h"

PG_FUNCTION_INFO_V1(ft_near_duplicates);
PG_FUNCTION_INFO_V1(ft_mark_duplicates);
PG_FUNCTION_INFO_V1(ft_diversity);

#define FETCH_BATCH 1000
#define DIVERSITY_SAMPLE 1000

/* Signed examples of one avatar */
typedef struct SignedSet
{
	int32		n;
	int32		cap;
	pg_uuid_t  *ids;
	bool	   *excluded;
	uint64	   *labels;
	uint32	   *sigs;			/* n * FT_MINHASH_K */
} SignedSet;

/* Schema of the extension: the one this function lives in */
static const char *
SchemaOf(FunctionCallInfo fcinfo)
{
	return quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
}

/* Refuse thresholds outside (0, 1] */
static void
CheckThreshold(float4 threshold)
{
	if (!(threshold > 0 && threshold <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("similarity threshold must be greater than 0 and at most 1"),
				 errdetail("The threshold given was %g.", threshold),
				 errhint("0.8 finds close paraphrases; 0.95 only copies with small edits.")));
}

/* Raise P0002 unless the caller can see the avatar */
static void
CheckAvatar(const char *schema, Datum avatar)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {avatar};

	SPI_execute_with_args(psprintf("SELECT 1 FROM %s.ft_get_avatar($1)", schema), 1, argtypes, args, NULL, true, 1);
}

/* MinHash signature of a conversation's user and assistant text (system prompts are shared
 * by most examples and would make everything look alike) */
static void
SignExample(Jsonb *example, uint32 *sig)
{
	int			nturns;
	FtTurn	   *turns = FtExtractTurns(example, &nturns);
	uint64		prev = 0;

	FtMinHashInit(sig);
	for (int i = 0; i < nturns; i++)
	{
		char	   *folded;
		size_t		len;

		if (turns[i].role == FT_ROLE_SYSTEM || turns[i].len == 0)
			continue;
		folded = palloc(turns[i].len + 1);
		len = FtFold(turns[i].text, turns[i].len, folded);
		FtMinHashAdd(sig, folded, len, &prev);
	}
}

/* Make room for one more example */
static void
GrowSet(SignedSet *set)
{
	if (set->n < set->cap)
		return;
	set->cap = set->cap ? set->cap * 2 : 1024;
	if (set->ids == NULL)
	{
		set->ids = palloc_extended(sizeof(pg_uuid_t) * set->cap, MCXT_ALLOC_HUGE);
		set->excluded = palloc_extended(sizeof(bool) * set->cap, MCXT_ALLOC_HUGE);
		set->labels = palloc_extended(sizeof(uint64) * set->cap, MCXT_ALLOC_HUGE);
		set->sigs = palloc_extended(sizeof(uint32) * FT_MINHASH_K * set->cap, MCXT_ALLOC_HUGE);
		return;
	}
	set->ids = repalloc_huge(set->ids, sizeof(pg_uuid_t) * set->cap);
	set->excluded = repalloc_huge(set->excluded, sizeof(bool) * set->cap);
	set->labels = repalloc_huge(set->labels, sizeof(uint64) * set->cap);
	set->sigs = repalloc_huge(set->sigs, sizeof(uint32) * FT_MINHASH_K * set->cap);
}

/* Hash of an example's category and pattern type, for the label entropy */
static uint64
LabelHash(HeapTuple row, TupleDesc desc)
{
	char	   *category = SPI_getvalue(row, desc, 4);
	char	   *pattern = SPI_getvalue(row, desc, 5);
	uint64		h = 14695981039346656037ULL;
	const char *parts[2] = {category ? category : "", pattern ? pattern : ""};

	for (int p = 0; p < 2; p++)
	{
		for (const char *c = parts[p]; *c; c++)
			h = (h ^ (unsigned char) *c) * 1099511628211ULL;
		h = (h ^ 0x1F) * 1099511628211ULL;
	}
	return h;
}

/*
 * Read and sign an avatar's examples through a cursor, in creation order. sample > 0 reads at
 * most that many included examples (ordered by id, a deterministic pseudo-random sample).
 * Must be called inside SPI; the set lives in the caller's memory context.
 */
static void
LoadSignedSet(const char *schema, Datum avatar, int sample, SignedSet *set, MemoryContext target)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {avatar};
	char	   *query;
	Portal		portal;
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "ft dedup row", ALLOCSET_DEFAULT_SIZES);

	if (sample > 0)
		query = psprintf("SELECT id, messages, excluded, category, pattern_type FROM %s.ft_examples"
						 " WHERE avatar_id = $1 AND NOT excluded ORDER BY id LIMIT %d", schema, sample);
	else
		query = psprintf("SELECT id, messages, excluded, category, pattern_type FROM %s.ft_examples"
						 " WHERE avatar_id = $1 ORDER BY created_at, id", schema);
	portal = SPI_cursor_open_with_args(NULL, query, 1, argtypes, args, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_BATCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			MemoryContext old;

			CHECK_FOR_INTERRUPTS();
			old = MemoryContextSwitchTo(target);
			GrowSet(set);
			MemoryContextSwitchTo(row_cxt);
			set->ids[set->n] = *DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull));
			SignExample(DatumGetJsonbP(SPI_getbinval(row, desc, 2, &isnull)), set->sigs + (size_t) set->n * FT_MINHASH_K);
			set->excluded[set->n] = DatumGetBool(SPI_getbinval(row, desc, 3, &isnull));
			set->labels[set->n] = LabelHash(row, desc);
			set->n++;
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(row_cxt);
}

/* Near pairs of a signed set, copied out of malloc'd memory */
static FtPair *
NearPairs(SignedSet *set, float4 threshold, size_t *npairs)
{
	FtPair	   *pairs;
	FtPair	   *copy;

	if (FtNearPairs(set->sigs, set->n, threshold, &pairs, npairs) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"),
						errdetail("Too many candidate pairs of near-duplicates.")));
	if (*npairs == 0)
		return NULL;
	copy = palloc_extended(sizeof(FtPair) * *npairs, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
	if (copy != NULL)
		memcpy(copy, pairs, sizeof(FtPair) * *npairs);
	free(pairs);
	if (copy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return copy;
}

/*
 * ft_near_duplicates(avatar, threshold): pairs of examples whose estimated Jaccard similarity
 * of word-pair shingles is at least threshold; example_a is the earlier one
 */
Datum
ft_near_duplicates(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		avatar = PG_GETARG_DATUM(0);
	float4		threshold = PG_GETARG_FLOAT4(1);
	const char *schema = SchemaOf(fcinfo);
	SignedSet	set = {0};
	FtPair	   *pairs;
	size_t		npairs;

	CheckThreshold(threshold);
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	CheckAvatar(schema, avatar);
	LoadSignedSet(schema, avatar, 0, &set, rsinfo->econtext->ecxt_per_query_memory);
	SPI_finish();
	pairs = NearPairs(&set, threshold, &npairs);
	for (size_t k = 0; k < npairs; k++)
	{
		Datum		values[3] = {UUIDPGetDatum(&set.ids[pairs[k].a]), UUIDPGetDatum(&set.ids[pairs[k].b]),
		Float4GetDatum(pairs[k].similarity)};
		bool		nulls[3] = {false, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * ft_mark_duplicates(avatar, threshold): walking examples in creation order, excludes each one
 * that is near an earlier example still in the dataset, with reason "duplicate: near <id>".
 * Examples already excluded are neither flagged again nor count as originals. Returns how many
 * were flagged.
 */
Datum
ft_mark_duplicates(PG_FUNCTION_ARGS)
{
	Datum		avatar = PG_GETARG_DATUM(0);
	float4		threshold = PG_GETARG_FLOAT4(1);
	const char *schema = SchemaOf(fcinfo);
	SignedSet	set = {0};
	FtPair	   *pairs;
	size_t		npairs;
	bool	   *flagged;
	Datum	   *dups,
			   *originals;
	int			nflagged = 0;
	int64		updated = 0;

	CheckThreshold(threshold);
	SPI_connect();
	CheckAvatar(schema, avatar);
	LoadSignedSet(schema, avatar, 0, &set, CurrentMemoryContext);
	pairs = NearPairs(&set, threshold, &npairs);
	flagged = palloc0(sizeof(bool) * (set.n + 1));
	dups = palloc(sizeof(Datum) * (set.n + 1));
	originals = palloc(sizeof(Datum) * (set.n + 1));
	/* pairs come sorted by the later example, so each is judged after all earlier ones */
	for (size_t k = 0; k < npairs; k++)
	{
		int32		a = pairs[k].a,
					b = pairs[k].b;

		if (set.excluded[a] || flagged[a] || set.excluded[b] || flagged[b])
			continue;
		flagged[b] = true;
		dups[nflagged] = UUIDPGetDatum(&set.ids[b]);
		originals[nflagged] = UUIDPGetDatum(&set.ids[a]);
		nflagged++;
	}
	if (nflagged > 0)
	{
		Oid			argtypes[3] = {UUIDOID, UUIDARRAYOID, UUIDARRAYOID};
		Datum		args[3] = {avatar,
			PointerGetDatum(construct_array(dups, nflagged, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
		PointerGetDatum(construct_array(originals, nflagged, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR))};

		SPI_execute_with_args(psprintf("UPDATE %s.ft_examples e"
									   " SET excluded = true, exclusion_reason = 'duplicate: near ' || d.original"
									   " FROM unnest($2, $3) AS d(dup, original)"
									   " WHERE e.avatar_id = $1 AND e.id = d.dup AND NOT e.excluded", schema),
							  3, argtypes, args, NULL, false, 0);
		updated = (int64) SPI_processed;
	}
	SPI_finish();
	PG_RETURN_INT32((int32) updated);
}

/*
 * ft_diversity(avatar): 0.8 * (1 - mean pairwise MinHash similarity) + 0.2 * normalised entropy
 * of (category, pattern_type), over up to DIVERSITY_SAMPLE included examples
 */
Datum
ft_diversity(PG_FUNCTION_ARGS)
{
	Datum		avatar = PG_GETARG_DATUM(0);
	const char *schema = SchemaOf(fcinfo);
	SignedSet	set = {0};
	double		diversity;

	SPI_connect();
	CheckAvatar(schema, avatar);
	LoadSignedSet(schema, avatar, DIVERSITY_SAMPLE, &set, CurrentMemoryContext);
	diversity = FtDiversity(set.sigs, set.labels, set.n);
	SPI_finish();
	PG_RETURN_FLOAT4((float4) diversity);
}
