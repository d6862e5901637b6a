/*
 * Stored token counts of examples: the trigger that fills ft_examples.token_count and
 * assistant_token_count for the avatar's base model, and ft_model_encoding, which tells
 * whether (and how) a model can be counted without raising an error.
 *
 * The write path stays cheap: an avatar's base model is read and resolved to an encoding
 * once per statement (cached in the trigger's fn_extra, which lives as long as the
 * statement's executor), so a multi-row INSERT pays one lookup per avatar, not per row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "tokenizer_sql.h"

PG_FUNCTION_INFO_V1(ft_examples_tokens);
PG_FUNCTION_INFO_V1(ft_model_encoding);

/* Avatars remembered per statement; a statement rarely touches more than one */
#define AVATAR_CACHE_SIZE 8

/* Encoding of one avatar's base model; encoding NULL when the model is unknown */
typedef struct AvatarEncoding
{
	pg_uuid_t	avatar;
	char	   *encoding;
} AvatarEncoding;

/* Per-statement state of the trigger, in fn_extra */
typedef struct TokenCache
{
	LocalTransactionId lxid;
	char	   *schema;			/* schema of ft_examples, hence of ft_avatars and ft_models */
	int			attnums[4];		/* see ColumnNames */
	int			used;
	int			next;			/* slot to overwrite when full */
	AvatarEncoding avatars[AVATAR_CACHE_SIZE];
} TokenCache;

static const char *const ColumnNames[] = {"messages", "avatar_id", "token_count", "assistant_token_count"};
enum
{
	COL_MESSAGES, COL_AVATAR, COL_TOKENS, COL_ASSISTANT
};

/*
 * Encoding name of a model, or NULL when it is unknown (not an encoding, not in ft_models,
 * no tiktoken prefix).  The lookup raises 22023 for an unknown model; it is caught in a
 * subtransaction so that callers can carry on.  Any other error (a missing rank file, out
 * of memory) is raised again: it is a broken installation, not an unknown model.
 */
static char *
EncodingNameOrNull(const char *model, MemoryContext resultcxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile result = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		const FtEncoding *enc = FtEncodingForModel(model);

		result = MemoryContextStrdup(resultcxt, ft_encoding_name(enc));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode != ERRCODE_INVALID_PARAMETER_VALUE)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return result;
}

/* ft_model_encoding(model): encoding name of a model, NULL when unknown */
Datum
ft_model_encoding(PG_FUNCTION_ARGS)
{
	char	   *encoding = EncodingNameOrNull(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											  CurrentMemoryContext);

	if (encoding == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(encoding));
}

/* The trigger's per-statement cache, made on the first row (and anew in a new transaction) */
static TokenCache *
GetTokenCache(FunctionCallInfo fcinfo, Relation rel)
{
	TokenCache *cache = (TokenCache *) fcinfo->flinfo->fn_extra;
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (cache != NULL && cache->lxid == MyProc->lxid)
		return cache;
	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(TokenCache));
		fcinfo->flinfo->fn_extra = cache;
		cache->schema = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt,
											get_namespace_name(RelationGetNamespace(rel)));
		for (i = 0; i < lengthof(ColumnNames); i++)
		{
			cache->attnums[i] = SPI_fnumber(desc, ColumnNames[i]);
			if (cache->attnums[i] <= 0)
				elog(ERROR, "ft_examples_tokens: table has no column \"%s\"", ColumnNames[i]);
		}
	}
	cache->lxid = MyProc->lxid;
	cache->used = 0;
	cache->next = 0;
	return cache;
}

/*
 * Plan of the lookup: the avatar's base model and, when ft_models lists it, its encoding.
 * Kept for the backend's life (the plan cache revalidates it after DDL); made again when
 * the extension's schema is another one (dropped and created elsewhere).
 */
static SPIPlanPtr LookupPlan = NULL;
static char *LookupPlanSchema = NULL;

/* The saved lookup plan for the given schema */
static SPIPlanPtr
GetLookupPlan(const char *schema)
{
	Oid			argtypes[1] = {UUIDOID};
	char	   *query;
	SPIPlanPtr	plan;

	if (LookupPlan != NULL && strcmp(LookupPlanSchema, schema) == 0)
		return LookupPlan;
	query = psprintf("SELECT a.base_model, m.encoding FROM %1$s.ft_avatars a "
					 "LEFT JOIN %1$s.ft_models m ON m.model = a.base_model WHERE a.id = $1",
					 quote_identifier(schema));
	plan = SPI_prepare(query, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the base model lookup: %s", SPI_result_code_string(SPI_result));
	if (LookupPlan != NULL)
	{
		SPI_freeplan(LookupPlan);
		LookupPlan = NULL;
	}
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the base model lookup plan");
	free(LookupPlanSchema);
	LookupPlanSchema = strdup(schema);
	if (LookupPlanSchema == NULL)
	{
		SPI_freeplan(plan);
		ereport(ERROR, errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"));
	}
	LookupPlan = plan;
	return plan;
}

/* String copied out of SPI's memory, which SPI_finish frees; NULL stays NULL */
static char *
CopyOut(char *v)
{
	char	   *copy;

	if (v == NULL)
		return NULL;
	copy = SPI_palloc(strlen(v) + 1);
	strcpy(copy, v);
	return copy;
}

/*
 * Base model of an avatar as the caller sees it (NULL when not visible) and, when the
 * model is listed in ft_models, its encoding (else NULL)
 */
static char *
AvatarBaseModel(TokenCache *cache, pg_uuid_t *avatar, char **listed_encoding)
{
	Datum		values[1] = {UUIDPGetDatum(avatar)};
	char	   *model = NULL;

	*listed_encoding = NULL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_plan(GetLookupPlan(cache->schema), values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read ft_avatars");
	if (SPI_processed > 0)
	{
		model = CopyOut(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		*listed_encoding = CopyOut(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	SPI_finish();
	return model;
}

/* Encoding name for an avatar's examples, looked up once per statement; NULL when unknown */
static const char *
AvatarEncodingName(TokenCache *cache, MemoryContext cxt, pg_uuid_t *avatar)
{
	AvatarEncoding *slot;
	char	   *model;
	char	   *listed;
	int			i;

	for (i = 0; i < cache->used; i++)
		if (memcmp(cache->avatars[i].avatar.data, avatar->data, UUID_LEN) == 0)
			return cache->avatars[i].encoding;
	if (cache->used < AVATAR_CACHE_SIZE)
		slot = &cache->avatars[cache->used++];
	else
	{
		slot = &cache->avatars[cache->next];
		cache->next = (cache->next + 1) % AVATAR_CACHE_SIZE;
		if (slot->encoding != NULL)
			pfree(slot->encoding);
	}
	model = AvatarBaseModel(cache, avatar, &listed);
	slot->avatar = *avatar;
	if (listed != NULL)
		/* ft_models only holds valid encoding names (CHECK): no error to catch */
		slot->encoding = MemoryContextStrdup(cxt, listed);
	else
		slot->encoding = model == NULL ? NULL : EncodingNameOrNull(model, cxt);
	return slot->encoding;
}

/* True when two varlena datums hold the same bytes */
static bool
SameVarlena(Datum a, Datum b)
{
	struct varlena *x = PG_DETOAST_DATUM_PACKED(a);
	struct varlena *y = PG_DETOAST_DATUM_PACKED(b);

	return VARSIZE_ANY_EXHDR(x) == VARSIZE_ANY_EXHDR(y) &&
		memcmp(VARDATA_ANY(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(x)) == 0;
}

/*
 * An UPDATE that rewrites the same messages of the same avatar and leaves both counts as
 * they were (ft_rescore does that for every row) needs no recount.  A recount is asked
 * for by setting a count column (ft_recount_tokens sets them to NULL), and NULL counts
 * are always retried, since the base model may have become known.
 */
static bool
CountsStillValid(TriggerData *trigdata, TokenCache *cache)
{
	HeapTuple	oldtup = trigdata->tg_trigtuple;
	HeapTuple	newtup = trigdata->tg_newtuple;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	Datum		o,
				n;
	bool		onull,
				nnull;
	int			cols[] = {COL_TOKENS, COL_ASSISTANT, COL_AVATAR, COL_MESSAGES};
	int			i;

	for (i = 0; i < lengthof(cols); i++)
	{
		int			attnum = cache->attnums[cols[i]];

		o = heap_getattr(oldtup, attnum, desc, &onull);
		n = heap_getattr(newtup, attnum, desc, &nnull);
		if (onull || nnull)
			return false;
		if (cols[i] == COL_MESSAGES ? !SameVarlena(o, n) :
			!datumIsEqual(o, n, TupleDescAttr(desc, attnum - 1)->attbyval,
						  TupleDescAttr(desc, attnum - 1)->attlen))
			return false;
	}
	return true;
}

/*
 * Trigger on ft_examples (BEFORE INSERT OR UPDATE OF messages, avatar_id, token_count,
 * assistant_token_count): stores the example's cookbook token count and its assistant
 * content tokens for the avatar's base model.  An unknown base model leaves both NULL
 * rather than refusing the row.
 */
Datum
ft_examples_tokens(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TokenCache *cache;
	HeapTuple	tuple;
	TupleDesc	desc;
	Datum		d;
	bool		isnull;
	const char *encoding;
	int			cols[2];
	Datum		values[2] = {(Datum) 0, (Datum) 0};
	bool		nulls[2] = {true, true};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "ft_examples_tokens must be a BEFORE INSERT OR UPDATE ROW trigger");
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	cache = GetTokenCache(fcinfo, trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && CountsStillValid(trigdata, cache))
		return PointerGetDatum(tuple);

	d = heap_getattr(tuple, cache->attnums[COL_AVATAR], desc, &isnull);
	encoding = isnull ? NULL : AvatarEncodingName(cache, fcinfo->flinfo->fn_mcxt, DatumGetUUIDP(d));
	d = heap_getattr(tuple, cache->attnums[COL_MESSAGES], desc, &isnull);
	if (encoding != NULL && !isnull)
	{
		int			assistant = 0;

		/* by encoding name: resolved without a table lookup, and safe if the rank file moved */
		values[0] = Int32GetDatum(FtChatTokenCount(DatumGetJsonbP(d), FtEncodingForModel(encoding),
												   &assistant));
		values[1] = Int32GetDatum(assistant);
		nulls[0] = nulls[1] = false;
	}
	cols[0] = cache->attnums[COL_TOKENS];
	cols[1] = cache->attnums[COL_ASSISTANT];
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 2, cols, values, nulls));
}
