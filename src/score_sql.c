/*
 * SQL glue of the quality score: ft_score(), the scoring trigger on ft_examples, and the
 * per-backend cache of compiled lexicons.
 *
 * A lexicon is compiled once per backend and owner (shared phrases plus the owner's own) and
 * dropped when ft_lexicon changes: a statement trigger on ft_lexicon queues a relcache
 * invalidation of the table, which every backend receives at commit and this backend also at
 * the end of the changing command; the relcache callback only bumps a generation counter, so
 * nothing is freed while a matcher is in use.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "example_check.h"
#include "lexicon_match.h"
#include "score.h"
#include "score_sql.h"

PG_FUNCTION_INFO_V1(ft_score);
PG_FUNCTION_INFO_V1(ft_examples_score);
PG_FUNCTION_INFO_V1(ft_lexicon_changed);

#define LEXICON_CACHE_SIZE 8

typedef struct LexiconEntry
{
	char	   *owner;			/* malloc'd */
	FtLexicon  *lex;
} LexiconEntry;

static LexiconEntry LexiconCache[LEXICON_CACHE_SIZE];
static int	LexiconCacheCount = 0;
static uint64 LexiconGeneration = 1;	/* bumped by the relcache callback */
static uint64 LexiconCacheGeneration = 0;	/* generation the cache was filled in */
static Oid	LexiconRelid = InvalidOid;
static bool CallbackRegistered = false;
static SPIPlanPtr DuplicatePlan = NULL;
static FtScoreScratch *Scratch = NULL;

/* Settings of one avatar that scoring needs */
typedef struct AvatarScoring
{
	pg_uuid_t	avatar;
	bool		valid;
	char	   *owner;
	double		threshold;
	FtScoreConfig config;
} AvatarScoring;

/* Per-call-site state kept in fn_extra for the length of one statement */
typedef struct CallCache
{
	Oid			schema;
	char	   *schema_name;
	AvatarScoring avatar;		/* the last avatar seen */
	char	   *caller;			/* ft_current_owner() of the statement, for ft_score without avatar */
	TupleDesc	result_desc;
	int			attnums[10];	/* trigger: column numbers, see ColumnNames */
} CallCache;

static const char *const ColumnNames[] = {
	"messages", "avatar_id", "owner_id", "id", "excluded", "exclusion_reason", "verified",
	"quality", "quality_components", "content_hash"
};
enum
{
	COL_MESSAGES, COL_AVATAR, COL_OWNER, COL_ID, COL_EXCLUDED, COL_REASON, COL_VERIFIED,
	COL_QUALITY, COL_COMPONENTS, COL_HASH
};

/* Relcache callback: any change of ft_lexicon (or a full reset) makes the compiled lexicons stale */
static void
LexiconInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == LexiconRelid)
	{
		LexiconGeneration++;
		/* the table may have been dropped and made again with another oid */
		LexiconRelid = InvalidOid;
	}
}

/* Drop every compiled lexicon and the saved plan when the generation moved on */
static void
RefreshLexiconCache(Oid schema)
{
	if (!CallbackRegistered)
	{
		CacheRegisterRelcacheCallback(LexiconInvalidate, (Datum) 0);
		CallbackRegistered = true;
	}
	if (LexiconCacheGeneration == LexiconGeneration && OidIsValid(LexiconRelid))
		return;
	for (int i = 0; i < LexiconCacheCount; i++)
	{
		free(LexiconCache[i].owner);
		FtLexiconFree(LexiconCache[i].lex);
	}
	LexiconCacheCount = 0;
	if (DuplicatePlan != NULL)
	{
		SPI_freeplan(DuplicatePlan);
		DuplicatePlan = NULL;
	}
	LexiconRelid = get_relname_relid("ft_lexicon", schema);
	LexiconCacheGeneration = LexiconGeneration;
}

/* Compile the lexicon an owner sees: shared phrases, overridden by the owner's own ones */
static FtLexicon *
LoadLexicon(const char *schema_name, const char *owner)
{
	FtLexicon  *lex = FtLexiconCreate();
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(owner)};
	char	   *query;

	if (lex == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	/* a tenant row with the same kind and phrase replaces the shared one; weight 0 switches it off */
	query = psprintf("SELECT kind, phrase, weight FROM ("
					 " SELECT DISTINCT ON (l.kind, lower(l.phrase)) l.kind, l.phrase, l.weight"
					 " FROM %s.ft_lexicon l WHERE l.owner_id IS NULL OR l.owner_id = $1"
					 " ORDER BY l.kind, lower(l.phrase), l.owner_id NULLS LAST) s"
					 " WHERE weight > 0", quote_identifier(schema_name));
	SPI_connect();
	PG_TRY();
	{
		SPI_execute_with_args(query, 1, argtypes, args, NULL, true, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[i];
			char	   *kind = SPI_getvalue(row, SPI_tuptable->tupdesc, 1);
			char	   *phrase = SPI_getvalue(row, SPI_tuptable->tupdesc, 2);
			bool		isnull;
			float		weight = DatumGetFloat4(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
			int			k = kind ? FtKindFromName(kind, strlen(kind)) : -1;

			if (k >= 0 && phrase != NULL && FtLexiconAdd(lex, phrase, strlen(phrase), k, weight) == -2)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
	}
	PG_CATCH();
	{
		FtLexiconFree(lex);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	if (FtLexiconCompile(lex) < 0)
	{
		FtLexiconFree(lex);
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("phrase lexicon of owner \"%s\" is too large to compile", owner),
				 errhint("Remove phrases from ft_lexicon; a few thousand phrases compile comfortably.")));
	}
	return lex;
}

/* The compiled lexicon for an owner, from the cache or freshly built */
static const FtLexicon *
LexiconFor(CallCache *cache, const char *owner)
{
	LexiconEntry *entry;

	RefreshLexiconCache(cache->schema);
	for (int i = 0; i < LexiconCacheCount; i++)
		if (strcmp(LexiconCache[i].owner, owner) == 0)
			return LexiconCache[i].lex;
	if (LexiconCacheCount == LEXICON_CACHE_SIZE)
	{
		/* a backend serving many tenants: start over rather than track use */
		LexiconCacheGeneration = 0;
		RefreshLexiconCache(cache->schema);
	}
	entry = &LexiconCache[LexiconCacheCount];
	entry->lex = LoadLexicon(cache->schema_name, owner);
	entry->owner = strdup(owner);
	if (entry->owner == NULL)
	{
		FtLexiconFree(entry->lex);
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	}
	LexiconCacheCount++;
	return entry->lex;
}

/* Per-statement cache of a call site, made on first use */
static CallCache *
GetCallCache(FunctionCallInfo fcinfo)
{
	CallCache  *cache = fcinfo->flinfo->fn_extra;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallCache));
		cache->schema = get_func_namespace(fcinfo->flinfo->fn_oid);
		cache->schema_name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, get_namespace_name(cache->schema));
		fcinfo->flinfo->fn_extra = cache;
	}
	if (Scratch == NULL && (Scratch = FtScratchCreate()) == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return cache;
}

/* Raise the error of a bad score setting */
static void
BadSetting(const char *name, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid avatar setting \"%s\"", name),
			 errdetail("The setting must be %s.", expected),
			 errhint("Fix it with UPDATE ft_avatars SET settings = jsonb_set(settings, '{%s}', ...) WHERE id = ...", name)));
}

/* A numeric value of a JSON setting as double */
static double
NumberOf(JsonbValue *v, const char *name, const char *expected)
{
	if (v->type != jbvNumeric)
		BadSetting(name, expected);
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* length_band: [min, max] or {"min": .., "max": ..} */
static void
ParseLengthBand(JsonbValue *v, FtScoreConfig *config)
{
	const char *expected = "an array [min, max] or an object {\"min\": ..., \"max\": ...} of character counts with 0 <= min <= max";
	JsonbValue	lo,
				hi;
	double		min,
				max;

	if (v->type != jbvBinary)
		BadSetting("length_band", expected);
	if (JsonContainerIsArray(v->val.binary.data) && JsonContainerSize(v->val.binary.data) == 2)
	{
		lo = *getIthJsonbValueFromContainer(v->val.binary.data, 0);
		hi = *getIthJsonbValueFromContainer(v->val.binary.data, 1);
	}
	else if (!(JsonContainerIsObject(v->val.binary.data) &&
			   getKeyJsonValueFromContainer(v->val.binary.data, "min", 3, &lo) &&
			   getKeyJsonValueFromContainer(v->val.binary.data, "max", 3, &hi)))
		BadSetting("length_band", expected);
	min = NumberOf(&lo, "length_band", expected);
	max = NumberOf(&hi, "length_band", expected);
	if (!(min >= 0 && min <= max && max <= 1000000))
		BadSetting("length_band", expected);
	config->band_min = (int) min;
	config->band_max = (int) max;
}

/* score_weights: {"length": 0.35, ...}; keys left out keep their defaults */
static void
ParseWeights(JsonbValue *v, FtScoreConfig *config)
{
	const char *expected = "an object of weights between 0 and 10 with keys length, question, empathy, context, generic, too_short, pii, duplicate";
	JsonbIterator *it;
	JsonbValue	key,
				val;
	JsonbIteratorToken tok;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		BadSetting("score_weights", expected);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		int			w;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &val, true);
		for (w = 0; w < FT_W_COUNT; w++)
			if (strlen(FtScoreWeightNames[w]) == (size_t) key.val.string.len &&
				memcmp(FtScoreWeightNames[w], key.val.string.val, key.val.string.len) == 0)
				break;
		if (w == FT_W_COUNT)
			BadSetting("score_weights", expected);
		config->weights[w] = NumberOf(&val, "score_weights", expected);
		if (!(config->weights[w] >= 0 && config->weights[w] <= 10))
			BadSetting("score_weights", expected);
	}
}

/* Read the scoring settings out of an avatar's settings object */
static void
ParseSettings(Jsonb *settings, AvatarScoring *out)
{
	JsonbValue	v;

	FtScoreDefaults(&out->config);
	out->threshold = 0.8;
	if (settings == NULL || !JB_ROOT_IS_OBJECT(settings))
		return;
	if (getKeyJsonValueFromContainer(&settings->root, "quality_threshold", 17, &v))
	{
		out->threshold = NumberOf(&v, "quality_threshold", "a number between 0 and 1");
		if (!(out->threshold >= 0 && out->threshold <= 1))
			BadSetting("quality_threshold", "a number between 0 and 1");
	}
	if (getKeyJsonValueFromContainer(&settings->root, "length_band", 11, &v))
		ParseLengthBand(&v, &out->config);
	if (getKeyJsonValueFromContainer(&settings->root, "too_short", 9, &v))
	{
		double		t = NumberOf(&v, "too_short", "a number of characters between 0 and 100000");

		if (!(t >= 0 && t <= 100000))
			BadSetting("too_short", "a number of characters between 0 and 100000");
		out->config.too_short = (int) t;
	}
	if (getKeyJsonValueFromContainer(&settings->root, "score_weights", 13, &v))
		ParseWeights(&v, &out->config);
}

/*
 * Scoring settings and owner of an avatar, cached for the statement. With must_exist an avatar
 * the caller cannot see is an error (P0002); otherwise defaults are used.
 */
static AvatarScoring *
AvatarFor(CallCache *cache, MemoryContext mcxt, pg_uuid_t *avatar, bool must_exist)
{
	AvatarScoring *a = &cache->avatar;
	Oid			argtypes[1] = {UUIDOID};
	Datum		args[1] = {UUIDPGetDatum(avatar)};
	char	   *query;

	if (a->valid && memcmp(&a->avatar, avatar, sizeof(pg_uuid_t)) == 0)
		return a;
	query = psprintf("SELECT settings, owner_id FROM %s.ft_avatars WHERE id = $1", quote_identifier(cache->schema_name));
	SPI_connect();
	SPI_execute_with_args(query, 1, argtypes, args, NULL, true, 1);
	if (SPI_processed == 0 && must_exist)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("avatar %s does not exist", DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(avatar)))),
				 errhint("List your avatars with SELECT id, name FROM ft_avatars.")));
	{
		bool		isnull = true;
		Datum		settings = SPI_processed > 0 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : (Datum) 0;
		char	   *owner = SPI_processed > 0 ? SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2) : NULL;
		MemoryContext old = MemoryContextSwitchTo(mcxt);

		a->valid = false;
		ParseSettings(isnull ? NULL : DatumGetJsonbP(settings), a);
		a->owner = owner ? pstrdup(owner) : NULL;
		a->avatar = *avatar;
		a->valid = true;
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return a;
}

/* Role name of a JSON string */
static FtRole
RoleOf(JsonbValue *v)
{
	if (v->type != jbvString)
		return FT_ROLE_OTHER;
	switch (v->val.string.len)
	{
		case 4:
			if (memcmp(v->val.string.val, "user", 4) == 0)
				return FT_ROLE_USER;
			if (memcmp(v->val.string.val, "tool", 4) == 0)
				return FT_ROLE_TOOL;
			break;
		case 6:
			if (memcmp(v->val.string.val, "system", 6) == 0)
				return FT_ROLE_SYSTEM;
			break;
		case 9:
			if (memcmp(v->val.string.val, "assistant", 9) == 0)
				return FT_ROLE_ASSISTANT;
			break;
	}
	return FT_ROLE_OTHER;
}

/* The messages array of an example ({"messages": [...]} or a bare array), or NULL */
static JsonbContainer *
MessagesOf(Jsonb *example, JsonbValue *buf)
{
	if (JB_ROOT_IS_SCALAR(example))
		return NULL;
	if (JB_ROOT_IS_ARRAY(example))
		return &example->root;
	if (getKeyJsonValueFromContainer(&example->root, "messages", 8, buf) &&
		buf->type == jbvBinary && JsonContainerIsArray(buf->val.binary.data))
		return buf->val.binary.data;
	return NULL;
}

/*
 * Messages as turns pointing into the jsonb (nothing copied). Messages that are not objects
 * and contents that are not strings count as empty: scoring never rejects an example.
 */
FtTurn *
FtExtractTurns(Jsonb *example, int *nturns)
{
	JsonbValue	buf;
	JsonbContainer *messages = MessagesOf(example, &buf);
	uint32		n = messages ? JsonContainerSize(messages) : 0;
	FtTurn	   *turns = palloc0(sizeof(FtTurn) * (n + 1));

	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *m = getIthJsonbValueFromContainer(messages, i);
		JsonbValue	v;

		turns[i].role = FT_ROLE_OTHER;
		turns[i].text = "";
		if (m == NULL || m->type != jbvBinary || !JsonContainerIsObject(m->val.binary.data))
			continue;
		if (getKeyJsonValueFromContainer(m->val.binary.data, "role", 4, &v))
			turns[i].role = RoleOf(&v);
		if (getKeyJsonValueFromContainer(m->val.binary.data, "content", 7, &v) && v.type == jbvString)
		{
			turns[i].text = v.val.string.val;
			turns[i].len = v.val.string.len;
		}
	}
	*nturns = (int) n;
	return turns;
}

/* Append the tool calls of a message (function names and arguments) to the hashed text */
static void
AppendToolCalls(StringInfo buf, JsonbContainer *message)
{
	JsonbValue	calls;
	uint32		n;

	if (!getKeyJsonValueFromContainer(message, "tool_calls", 10, &calls) || calls.type != jbvBinary ||
		!JsonContainerIsArray(calls.val.binary.data))
		return;
	n = JsonContainerSize(calls.val.binary.data);
	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *call = getIthJsonbValueFromContainer(calls.val.binary.data, i);
		JsonbValue	function,
					v;

		if (call->type != jbvBinary || !JsonContainerIsObject(call->val.binary.data) ||
			!getKeyJsonValueFromContainer(call->val.binary.data, "function", 8, &function) ||
			function.type != jbvBinary || !JsonContainerIsObject(function.val.binary.data))
			continue;
		appendStringInfoString(buf, " call:");
		if (getKeyJsonValueFromContainer(function.val.binary.data, "name", 4, &v) && v.type == jbvString)
			appendBinaryStringInfo(buf, v.val.string.val, v.val.string.len);
		appendStringInfoChar(buf, ' ');
		if (getKeyJsonValueFromContainer(function.val.binary.data, "arguments", 9, &v) && v.type == jbvString)
			appendBinaryStringInfo(buf, v.val.string.val, v.val.string.len);
	}
}

/*
 * SHA-256 of the normalised conversation: per message "role:" and the folded content (lower
 * case, accents stripped, whitespace collapsed) plus any tool calls, one message per line.
 */
bytea *
FtContentHash(Jsonb *example)
{
	JsonbValue	buf;
	JsonbContainer *messages = MessagesOf(example, &buf);
	uint32		n = messages ? JsonContainerSize(messages) : 0;
	StringInfoData text;
	pg_cryptohash_ctx *ctx;
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	initStringInfo(&text);
	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *m = getIthJsonbValueFromContainer(messages, i);
		JsonbValue	v;

		if (m->type != jbvBinary || !JsonContainerIsObject(m->val.binary.data))
		{
			appendStringInfoString(&text, "?\n");
			continue;
		}
		if (getKeyJsonValueFromContainer(m->val.binary.data, "role", 4, &v) && v.type == jbvString)
			appendBinaryStringInfo(&text, v.val.string.val, v.val.string.len);
		appendStringInfoChar(&text, ':');
		if (getKeyJsonValueFromContainer(m->val.binary.data, "content", 7, &v) && v.type == jbvString)
		{
			enlargeStringInfo(&text, v.val.string.len + 1);
			text.len += FtFold(v.val.string.val, v.val.string.len, text.data + text.len);
		}
		AppendToolCalls(&text, m->val.binary.data);
		appendStringInfoChar(&text, '\n');
	}
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) text.data, text.len) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	pfree(text.data);
	return result;
}

/*
 * Another example of the avatar with the same content hash that is not itself flagged as an
 * exact duplicate; copies of one conversation thus keep exactly one unflagged member. Two
 * transactions inserting the same conversation at once do not see each other (no lock is taken).
 */
static bool
FindDuplicate(CallCache *cache, pg_uuid_t *avatar, bytea *hash, pg_uuid_t *self, bool read_only,
			  pg_uuid_t *found)
{
	Oid			argtypes[3] = {UUIDOID, BYTEAOID, UUIDOID};
	Datum		args[3] = {UUIDPGetDatum(avatar), PointerGetDatum(hash), self ? UUIDPGetDatum(self) : (Datum) 0};
	char		nulls[3] = {' ', ' ', self ? ' ' : 'n'};
	bool		result = false;

	SPI_connect();
	RefreshLexiconCache(cache->schema);
	if (DuplicatePlan == NULL)
	{
		char	   *query = psprintf("SELECT id FROM %s.ft_examples WHERE avatar_id = $1 AND content_hash = $2"
									 " AND id IS DISTINCT FROM $3"
									 " AND NOT (excluded AND coalesce(exclusion_reason, '') LIKE 'duplicate: exact%%')"
									 " LIMIT 1", quote_identifier(cache->schema_name));
		SPIPlanPtr	plan = SPI_prepare(query, 3, argtypes);

		if (plan == NULL)
			elog(ERROR, "could not prepare the duplicate query: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		DuplicatePlan = plan;
	}
	SPI_execute_plan(DuplicatePlan, args, nulls, read_only, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		*found = *DatumGetUUIDP(id);
		result = true;
	}
	SPI_finish();
	return result;
}

#define NUMERIC_CACHE_SIZE 1024

/* Numerics of the small values components take, built once per backend */
static Numeric NumericCache[2][NUMERIC_CACHE_SIZE];

/*
 * value / 10^scale as a numeric (scale 0 or 3); the common small values come from a cache, so a
 * row's components cost no numeric arithmetic. jsonb only copies the numerics it is given.
 */
static Numeric
CachedNumeric(int64 value, int scale)
{
	Numeric    *slot;

	if (value < 0 || value >= NUMERIC_CACHE_SIZE)
		return scale ? int64_div_fast_to_numeric(value, scale) : int64_to_numeric(value);
	slot = &NumericCache[scale ? 1 : 0][value];
	if (*slot == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*slot = scale ? int64_div_fast_to_numeric(value, scale) : int64_to_numeric(value);
		MemoryContextSwitchTo(old);
	}
	return *slot;
}

/* Set a key of a pair (keys are string literals, so nothing is copied) */
static inline JsonbPair *
Pair(JsonbPair *pairs, int *n, const char *key)
{
	JsonbPair  *p = &pairs[(*n)++];

	p->key.type = jbvString;
	p->key.val.string.val = (char *) key;
	p->key.val.string.len = strlen(key);
	p->order = *n;
	return p;
}

static inline void
PairBool(JsonbPair *pairs, int *n, const char *key, bool value)
{
	JsonbPair  *p = Pair(pairs, n, key);

	p->value.type = jbvBool;
	p->value.val.boolean = value;
}

/* A number rounded to three decimals (exact decimal, no float noise in the JSON) */
static inline void
PairNumber(JsonbPair *pairs, int *n, const char *key, double value)
{
	JsonbPair  *p = Pair(pairs, n, key);

	p->value.type = jbvNumeric;
	p->value.val.numeric = CachedNumeric((int64) (value * 1000.0 + (value >= 0 ? 0.5 : -0.5)), 3);
}

static inline void
PairInt(JsonbPair *pairs, int *n, const char *key, int value)
{
	JsonbPair  *p = Pair(pairs, n, key);

	p->value.type = jbvNumeric;
	p->value.val.numeric = CachedNumeric(value, 0);
}

/*
 * The components of a score as the JSON object stored in quality_components. The pairs are
 * written in jsonb's own key order (shorter keys first, then bytewise), so the object is
 * serialised directly without the sort that pushJsonbValue would do for every row.
 */
static Jsonb *
ComponentsJson(const FtScoreResult *r, pg_uuid_t *duplicate_of)
{
	JsonbPair	pairs[16];
	JsonbValue	object;
	int			n = 0;

	PairBool(pairs, &n, "pii", r->pii);
	PairInt(pairs, &n, "length", r->length);
	PairBool(pairs, &n, "context", r->context);
	PairNumber(pairs, &n, "empathy", r->empathy);
	PairNumber(pairs, &n, "generic", r->generic);
	PairBool(pairs, &n, "in_band", r->in_band);
	PairInt(pairs, &n, "overlap", r->overlap);
	PairBool(pairs, &n, "question", r->question);
	PairBool(pairs, &n, "duplicate", r->duplicate);
	PairBool(pairs, &n, "too_short", r->too_short);
	if (duplicate_of != NULL)
	{
		JsonbPair  *p = Pair(pairs, &n, "duplicate_of");
		char	   *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(duplicate_of)));

		p->value.type = jbvString;
		p->value.val.string.val = id;
		p->value.val.string.len = strlen(id);
	}
	PairInt(pairs, &n, "empathy_hits", r->empathy_hits);
	PairInt(pairs, &n, "generic_hits", r->generic_hits);
	PairNumber(pairs, &n, "length_score", r->length_score);
	PairInt(pairs, &n, "greeting_hits", r->greeting_hits);
	PairInt(pairs, &n, "context_markers", r->context_markers);
	object.type = jbvObject;
	object.val.object.nPairs = n;
	object.val.object.pairs = pairs;
	return JsonbValueToJsonb(&object);
}

/* Score turns with a lexicon and settings; rounds the score to four decimals */
static void
ScoreTurns(const FtLexicon *lex, FtTurn *turns, int nturns, const FtScoreConfig *config, bool duplicate,
		   FtScoreResult *r)
{
	if (FtScoreConversation(lex, turns, nturns, config, duplicate, Scratch, r) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	r->score = floor(r->score * 10000.0 + 0.5) / 10000.0;
}

/* ft_current_owner() of the caller, once per statement */
static const char *
CallerOwner(CallCache *cache, MemoryContext mcxt)
{
	if (cache->caller == NULL)
	{
		char	   *query = psprintf("SELECT %s.ft_current_owner()", quote_identifier(cache->schema_name));

		SPI_connect();
		SPI_execute(query, true, 1);
		if (SPI_processed != 1)
			elog(ERROR, "ft_current_owner() returned no row");
		cache->caller = MemoryContextStrdup(mcxt, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		SPI_finish();
	}
	return cache->caller;
}

/*
 * ft_score(messages, avatar): score and components of a conversation. With an avatar, its
 * settings and lexicon apply and exact duplicates among its examples are looked up.
 */
Datum
ft_score(PG_FUNCTION_ARGS)
{
	CallCache  *cache;
	Jsonb	   *example;
	FtTurn	   *turns;
	int			nturns;
	FtScoreResult r;
	AvatarScoring defaults;
	AvatarScoring *settings = &defaults;
	const char *owner;
	bool		duplicate = false;
	pg_uuid_t	duplicate_of;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	cache = GetCallCache(fcinfo);
	if (cache->result_desc == NULL)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "ft_score must return a composite");
		old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		cache->result_desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
	}
	example = PG_GETARG_JSONB_P(0);
	if (!PG_ARGISNULL(1))
	{
		pg_uuid_t  *avatar = PG_GETARG_UUID_P(1);

		settings = AvatarFor(cache, fcinfo->flinfo->fn_mcxt, avatar, true);
		owner = settings->owner;
		duplicate = FindDuplicate(cache, avatar, FtContentHash(example), NULL, true, &duplicate_of);
	}
	else
	{
		ParseSettings(NULL, &defaults);
		owner = CallerOwner(cache, fcinfo->flinfo->fn_mcxt);
	}
	turns = FtExtractTurns(example, &nturns);
	ScoreTurns(LexiconFor(cache, owner), turns, nturns, &settings->config, duplicate, &r);
	values[0] = Float4GetDatum((float4) r.score);
	values[1] = JsonbPGetDatum(ComponentsJson(&r, duplicate ? &duplicate_of : NULL));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(cache->result_desc, values, nulls)));
}

/* Does a nullable text start with prefix? */
static inline bool
StartsWith(const char *text, const char *prefix)
{
	return text != NULL && strncmp(text, prefix, strlen(prefix)) == 0;
}

/*
 * Whether the scorer may set excluded/exclusion_reason of this row: only reasons it wrote itself
 * ("quality: ...", "duplicate: exact ...") or a row nobody excluded; a near-duplicate flag of
 * ft_mark_duplicates is reconsidered only when the content changed. A manual exclusion (any other
 * reason, or none) is never touched.
 */
static bool
ExclusionManaged(bool excluded, const char *reason, bool content_changed)
{
	if (reason == NULL)
		return !excluded;
	if (StartsWith(reason, "quality:") || StartsWith(reason, "duplicate: exact"))
		return true;
	return StartsWith(reason, "duplicate: near") && content_changed;
}

/* Column numbers of ft_examples, looked up once per statement */
static void
LookupColumns(CallCache *cache, TupleDesc desc)
{
	if (cache->attnums[0] != 0)
		return;
	for (int i = 0; i < (int) lengthof(ColumnNames); i++)
	{
		cache->attnums[i] = SPI_fnumber(desc, ColumnNames[i]);
		if (cache->attnums[i] <= 0)
			elog(ERROR, "ft_examples_score: table has no column \"%s\"", ColumnNames[i]);
	}
}

/* Column value of a tuple; NULL pointer result when the column is null */
static inline Datum
Column(HeapTuple tuple, TupleDesc desc, CallCache *cache, int col, bool *isnull)
{
	return heap_getattr(tuple, cache->attnums[col], desc, isnull);
}

/*
 * Trigger on ft_examples (BEFORE INSERT OR UPDATE OF messages, verified): fills quality,
 * quality_components and content_hash, and manages exclusion for low quality and exact
 * duplicates (see ExclusionManaged).
 */
Datum
ft_examples_score(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CallCache  *cache;
	HeapTuple	tuple;
	TupleDesc	desc;
	Datum		example_datum;
	bool		isnull,
				excluded,
				verified,
				content_changed = true,
				duplicate;
	Jsonb	   *example;
	pg_uuid_t  *avatar,
			   *id;
	pg_uuid_t	duplicate_of;
	char	   *reason = NULL;
	AvatarScoring *settings;
	bytea	   *hash;
	FtTurn	   *turns;
	int			nturns;
	FtScoreResult r;
	int			cols[5];
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "ft_examples_score must be a BEFORE ROW trigger");
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = trigdata->tg_relation->rd_att;
	cache = GetCallCache(fcinfo);
	LookupColumns(cache, desc);
	/* NULL is left for the NOT NULL constraint to report; detoasting it would crash */
	example_datum = Column(tuple, desc, cache, COL_MESSAGES, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	example = DatumGetJsonbP(example_datum);
	avatar = DatumGetUUIDP(Column(tuple, desc, cache, COL_AVATAR, &isnull));
	id = DatumGetUUIDP(Column(tuple, desc, cache, COL_ID, &isnull));
	excluded = DatumGetBool(Column(tuple, desc, cache, COL_EXCLUDED, &isnull));
	verified = DatumGetBool(Column(tuple, desc, cache, COL_VERIFIED, &isnull));
	{
		Datum		d = Column(tuple, desc, cache, COL_REASON, &isnull);

		reason = isnull ? NULL : TextDatumGetCString(d);
	}
	settings = AvatarFor(cache, fcinfo->flinfo->fn_mcxt, avatar, false);
	hash = FtContentHash(example);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		Datum		old = Column(trigdata->tg_trigtuple, desc, cache, COL_HASH, &isnull);

		content_changed = isnull || !datumIsEqual(old, PointerGetDatum(hash), false, -1);
	}
	/* not read-only: the command counter moves on, so rows inserted earlier by the same statement count */
	duplicate = FindDuplicate(cache, avatar, hash, id, false, &duplicate_of);
	turns = FtExtractTurns(example, &nturns);
	{
		bool		owner_null;
		Datum		owner = Column(tuple, desc, cache, COL_OWNER, &owner_null);

		ScoreTurns(LexiconFor(cache, owner_null ? "" : TextDatumGetCString(owner)), turns, nturns,
				   &settings->config, duplicate, &r);
	}
	if (ExclusionManaged(excluded, reason, content_changed))
	{
		excluded = duplicate || (!verified && r.score < settings->threshold);
		if (duplicate)
			reason = psprintf("duplicate: exact copy of %s",
							  DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&duplicate_of))));
		else if (excluded)
			reason = psprintf("quality: score %.2f below threshold %.2f", r.score, settings->threshold);
		else
			reason = NULL;
	}
	cols[0] = cache->attnums[COL_QUALITY];
	values[0] = Float4GetDatum((float4) r.score);
	cols[1] = cache->attnums[COL_COMPONENTS];
	values[1] = JsonbPGetDatum(ComponentsJson(&r, duplicate ? &duplicate_of : NULL));
	cols[2] = cache->attnums[COL_HASH];
	values[2] = PointerGetDatum(hash);
	cols[3] = cache->attnums[COL_EXCLUDED];
	values[3] = BoolGetDatum(excluded);
	cols[4] = cache->attnums[COL_REASON];
	values[4] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	nulls[4] = reason == NULL;
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 5, cols, values, nulls));
}

/*
 * Statement trigger on ft_lexicon: tell every backend (at commit) and this one (at the end of
 * the command) that compiled lexicons are stale
 */
Datum
ft_lexicon_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(trigdata->tg_event))
		elog(ERROR, "ft_lexicon_changed must be an AFTER trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
