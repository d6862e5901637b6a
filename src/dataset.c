/*
 * Datasets: an avatar's examples (or preferences) streamed as JSONL lines.
 *
 * One code path makes every line: options are resolved against the avatar, the rows are read
 * through a cursor, and a DestReceiver turns each row into a line as the executor produces it
 * (no tuple copies, memory reset per row). Lines are delivered in example id order, so the same
 * rows always give the same bytes: previews read through the primary key, full streams sort
 * their lines after a scan (in work_mem, else through temporary files). ft_jsonl,
 * ft_dataset_preview, ft_build_dataset and the worker's file writer are all callbacks of it.
 */
#include "postgres.h"

#include <unistd.h>

#include "dataset.h"
#include "jsonl_write.h"
#include "redact.h"
#include "sha256.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/buffile.h"
#include "storage/fd.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

/* Rows fetched from the cursor per round; memory does not depend on it (rows are not copied) */
#define FETCH_ROWS 10000

#define OPTION_HINT "Valid options are inject_system_prompt, include_excluded, include_duplicates, min_quality, " \
	"verified_only, max_examples, over_limit, redact, validation_share and seed."

typedef enum DatasetOption
{
	OPT_INJECT_SYSTEM_PROMPT,
	OPT_INCLUDE_EXCLUDED,
	OPT_INCLUDE_DUPLICATES,
	OPT_MIN_QUALITY,
	OPT_VERIFIED_ONLY,
	OPT_MAX_EXAMPLES,
	OPT_OVER_LIMIT,
	OPT_REDACT,
	OPT_VALIDATION_SHARE,
	OPT_SEED,
	OPT_COUNT
} DatasetOption;

static const char *const OptionNames[OPT_COUNT] = {
	"inject_system_prompt", "include_excluded", "include_duplicates", "min_quality", "verified_only",
	"max_examples", "over_limit", "redact", "validation_share", "seed"
};

/* Everything a stream needs, resolved once from the options and the avatar */
typedef struct DatasetPlan
{
	pg_uuid_t	avatar;
	FtFormat	format;
	bool		inject_system_prompt;
	bool		include_excluded;
	bool		include_duplicates;
	bool		verified_only;
	bool		over_limit_keep;
	bool		redact;
	bool		has_min_quality;
	double		min_quality;
	int64		max_examples;	/* 0: no cap */
	double		validation_share;
	char	   *seed;
	uint64		seed_hash;
	char	   *system_prompt;	/* active prompt to inject, or NULL */
	size_t		system_prompt_len;
	int64		token_limit;	/* 0: unknown */
	char	   *schema;			/* quoted schema of the extension */
	bool		want_train;
	bool		want_validation;
	bool		fast_start;		/* the caller stops early: read in id order through the index */
} DatasetPlan;

/* Where a raw JSON value was serialised inside the row's scratch buffer */
typedef struct RawFixup
{
	FtStr	   *target;
	size_t		offset;
} RawFixup;

/* Set of content hashes already streamed, to leave out later duplicates */
typedef struct SeenSet
{
	uint64	   *slots;			/* 0 = empty */
	size_t		mask;
	size_t		used;
} SeenSet;

/* The DestReceiver that turns each row into a line */
typedef struct LineReceiver
{
	DestReceiver pub;
	DatasetPlan *plan;
	FtEmitSplitLine emit;
	void	   *arg;
	bool		stop;
	MemoryContext streamcxt;
	MemoryContext rowcxt;
	SeenSet		seen;
	FtBuf		line;
	FtBuf		raw;			/* tool_calls and tools of the current row, serialised */
	FtMessage  *messages;
	size_t		messages_cap;
	RawFixup   *fixups;
	size_t		fixups_used;
	size_t		fixups_cap;
	struct LineSorter *sorter;	/* NULL when rows already come in id order */
	ResourceOwner owner;		/* the stream's, for the sorter's temporary files */
} LineReceiver;

/* ---------- options ---------- */

/* Raise the error for a badly typed option value */
static void
BadOption(const char *name, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for dataset option \"%s\"", name),
			 errdetail("The value must be %s.", expected),
			 errhint(OPTION_HINT)));
}

/* A JSON number as a double */
static double
JsonbNumber(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* A JSON number's canonical text */
static char *
JsonbNumberText(JsonbValue *v)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
}

/* A seed given as a string or an integer, as text */
static char *
SeedText(JsonbValue *v, const char *what)
{
	if (v->type == jbvString && v->val.string.len > 0)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return JsonbNumberText(v);
	BadOption(what, "a non-empty string or a number");
	return NULL;
}

/* validation_share must be a number in [0, 1) */
static double
ShareValue(JsonbValue *v, const char *what)
{
	double		share = v->type == jbvNumeric ? JsonbNumber(v) : -1;

	if (!(share >= 0 && share < 1))
		BadOption(what, "a number from 0 (no validation split) up to, but not including, 1");
	return share;
}

/* Apply one user option to the plan */
static void
ApplyOption(DatasetPlan *plan, DatasetOption opt, JsonbValue *v)
{
	const char *name = OptionNames[opt];

	switch (opt)
	{
		case OPT_INJECT_SYSTEM_PROMPT:
		case OPT_INCLUDE_EXCLUDED:
		case OPT_INCLUDE_DUPLICATES:
		case OPT_VERIFIED_ONLY:
		case OPT_REDACT:
			if (v->type != jbvBool)
				BadOption(name, "true or false");
			if (opt == OPT_INJECT_SYSTEM_PROMPT)
				plan->inject_system_prompt = v->val.boolean;
			else if (opt == OPT_INCLUDE_EXCLUDED)
				plan->include_excluded = v->val.boolean;
			else if (opt == OPT_INCLUDE_DUPLICATES)
				plan->include_duplicates = v->val.boolean;
			else if (opt == OPT_VERIFIED_ONLY)
				plan->verified_only = v->val.boolean;
			else
				plan->redact = v->val.boolean;
			break;
		case OPT_MIN_QUALITY:
			plan->has_min_quality = v->type != jbvNull;
			if (plan->has_min_quality)
			{
				plan->min_quality = v->type == jbvNumeric ? JsonbNumber(v) : -1;
				if (!(plan->min_quality >= 0 && plan->min_quality <= 1))
					BadOption(name, "null or a number from 0 to 1");
			}
			break;
		case OPT_MAX_EXAMPLES:
			plan->max_examples = 0;
			if (v->type != jbvNull)
			{
				double		n = v->type == jbvNumeric ? JsonbNumber(v) : 0;

				if (!(n >= 1 && n <= 100000000 && n == floor(n)))
					BadOption(name, "null (no cap) or a whole number from 1 to 100000000");
				plan->max_examples = (int64) n;
			}
			break;
		case OPT_OVER_LIMIT:
			if (v->type == jbvString && v->val.string.len == 4 && memcmp(v->val.string.val, "drop", 4) == 0)
				plan->over_limit_keep = false;
			else if (v->type == jbvString && v->val.string.len == 4 && memcmp(v->val.string.val, "keep", 4) == 0)
				plan->over_limit_keep = true;
			else
				BadOption(name, "\"drop\" or \"keep\"");
			break;
		case OPT_VALIDATION_SHARE:
			plan->validation_share = ShareValue(v, name);
			break;
		case OPT_SEED:
			plan->seed = SeedText(v, name);
			break;
		case OPT_COUNT:
			break;
	}
}

/* Options that only make sense for examples, not for preference pairs */
static inline bool
ExampleOnlyOption(DatasetOption opt)
{
	return opt == OPT_INCLUDE_EXCLUDED || opt == OPT_INCLUDE_DUPLICATES || opt == OPT_MIN_QUALITY ||
		opt == OPT_VERIFIED_ONLY || opt == OPT_OVER_LIMIT;
}

/* Read the caller's options object into the plan, rejecting unknown keys; returns which were given */
static bool *
ParseOptions(DatasetPlan *plan, Jsonb *options)
{
	bool	   *given = palloc0(sizeof(bool) * OPT_COUNT);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			current = -1;

	if (options == NULL)
		return given;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dataset options must be a JSON object"),
				 errhint(OPTION_HINT)));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			current = -1;
			for (int i = 0; i < OPT_COUNT; i++)
				if ((int) strlen(OptionNames[i]) == v.val.string.len &&
					memcmp(OptionNames[i], v.val.string.val, v.val.string.len) == 0)
					current = i;
			if (current < 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown dataset option \"%.*s\"", v.val.string.len, v.val.string.val),
						 errhint(OPTION_HINT)));
			if (plan->format == FT_FORMAT_DPO && ExampleOnlyOption(current))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("dataset option \"%s\" does not apply to format dpo", OptionNames[current]),
						 errdetail("Preference pairs have no exclusion, duplicate, quality, verification or token columns."),
						 errhint("Leave the option out for format dpo.")));
		}
		else if (tok == WJB_VALUE)
		{
			given[current] = true;
			ApplyOption(plan, current, &v);
		}
	}
	return given;
}

/* Format number of a name, or error 22023 listing the formats */
static FtFormat
FormatOrError(const char *name)
{
	int			format = FtFormatFromName(name);

	if (format < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown dataset format \"%s\"", name),
				 errhint("Valid formats are " FT_FORMAT_NAMES ".")));
	return (FtFormat) format;
}

/* The quoted name of the schema pg_finetune lives in, so queries work whatever the search_path */
static char *
ExtensionSchema(void)
{
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT n.nspname FROM pg_catalog.pg_extension e "
					"JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
					"WHERE e.extname = 'pg_finetune'", true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "pg_finetune is not installed in this database");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return pstrdup(quote_identifier(NameStr(*DatumGetName(d))));
}

/* Read the avatar's settings, active prompt and token limit into the plan (defaults of options) */
static void
LoadAvatar(DatasetPlan *plan, bool *given)
{
	StringInfoData sql;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(&plan->avatar)};
	HeapTuple	row;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	Jsonb	   *settings;
	JsonbValue	v;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT a.settings, "
					 "(SELECT p.system_prompt FROM %1$s.ft_prompt_versions p WHERE p.avatar_id = a.id AND p.is_active), "
					 "(SELECT m.training_token_limit FROM %1$s.ft_models m WHERE m.model = a.base_model) "
					 "FROM %1$s.ft_avatars a WHERE a.id = $1", plan->schema);
	if (SPI_execute_with_args(sql.data, 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read avatar");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("avatar %s does not exist", DatumGetCString(DirectFunctionCall1(uuid_out, values[0]))),
				 errhint("List your avatars with SELECT id, name FROM ft_avatars.")));
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	settings = DatumGetJsonbP(SPI_getbinval(row, desc, 1, &isnull));
	if (!given[OPT_VALIDATION_SHARE] &&
		getKeyJsonValueFromContainer(&settings->root, "validation_share", 16, &v) != NULL)
		plan->validation_share = ShareValue(&v, "validation_share (avatar setting)");
	if (!given[OPT_SEED] && getKeyJsonValueFromContainer(&settings->root, "split_seed", 10, &v) != NULL)
		plan->seed = SeedText(&v, "split_seed (avatar setting)");
	d = SPI_getbinval(row, desc, 2, &isnull);
	if (!isnull && plan->inject_system_prompt)
	{
		plan->system_prompt = TextDatumGetCString(d);
		plan->system_prompt_len = strlen(plan->system_prompt);
	}
	d = SPI_getbinval(row, desc, 3, &isnull);
	plan->token_limit = isnull ? 0 : DatumGetInt32(d);
}

/* The options as they were really used, defaults filled in, for ft_datasets.options */
static Jsonb *
ResolvedOptions(DatasetPlan *plan)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"inject_system_prompt\": %s", plan->inject_system_prompt ? "true" : "false");
	if (plan->format != FT_FORMAT_DPO)
	{
		appendStringInfo(&s, ", \"include_excluded\": %s, \"include_duplicates\": %s, \"verified_only\": %s",
						 plan->include_excluded ? "true" : "false", plan->include_duplicates ? "true" : "false",
						 plan->verified_only ? "true" : "false");
		if (plan->has_min_quality)
			appendStringInfo(&s, ", \"min_quality\": %s", float8out_internal(plan->min_quality));
		else
			appendStringInfoString(&s, ", \"min_quality\": null");
		appendStringInfo(&s, ", \"over_limit\": \"%s\"", plan->over_limit_keep ? "keep" : "drop");
	}
	if (plan->max_examples > 0)
		appendStringInfo(&s, ", \"max_examples\": " INT64_FORMAT, plan->max_examples);
	else
		appendStringInfoString(&s, ", \"max_examples\": null");
	appendStringInfo(&s, ", \"redact\": %s, \"validation_share\": %s, \"seed\": ",
					 plan->redact ? "true" : "false", float8out_internal(plan->validation_share));
	escape_json(&s, plan->seed);
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* Defaults, then the caller's options, then the avatar's settings where no option was given */
static Jsonb *
ResolvePlan(DatasetPlan *plan, pg_uuid_t avatar, const char *format, Jsonb *options, MemoryContext resultcxt)
{
	bool	   *given;
	MemoryContext old;
	Jsonb	   *resolved;

	memset(plan, 0, sizeof(*plan));
	plan->avatar = avatar;
	plan->format = FormatOrError(format);
	plan->inject_system_prompt = true;
	plan->max_examples = 10000;
	plan->validation_share = 0.1;
	plan->want_train = plan->want_validation = true;
	given = ParseOptions(plan, options);
	plan->schema = ExtensionSchema();
	LoadAvatar(plan, given);
	/* the default seed is the avatar id itself: stable, and different for every avatar */
	if (plan->seed == NULL)
		plan->seed = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&plan->avatar)));
	plan->seed_hash = FtSplitSeedHash(plan->seed, strlen(plan->seed));
	old = MemoryContextSwitchTo(resultcxt);
	resolved = ResolvedOptions(plan);
	MemoryContextSwitchTo(old);
	return resolved;
}

/* ---------- the query ---------- */

/* The selection conditions on ft_examples alias a */
static void
AppendFilter(StringInfo sql, DatasetPlan *plan, const char *a)
{
	appendStringInfo(sql, "%s.avatar_id = $1", a);
	if (!plan->include_excluded)
		appendStringInfo(sql, " AND NOT %s.excluded", a);
	if (plan->has_min_quality)
		/* compared as real, the column's type, so a stored 0.7 passes min_quality 0.7 */
		appendStringInfo(sql, " AND %s.quality >= $2::real", a);
	if (plan->verified_only)
		appendStringInfo(sql, " AND %s.verified", a);
	if (!plan->over_limit_keep && plan->token_limit > 0)
		appendStringInfo(sql, " AND (%1$s.token_count IS NULL OR %1$s.token_count <= $3)", a);
}

/* How many examples pass the filter, counting no further than limit */
static int64
CountSelected(DatasetPlan *plan, Oid *argtypes, Datum *values, const char *nulls, int64 limit)
{
	StringInfoData sql;
	bool		isnull;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT count(*) FROM (SELECT 1 FROM %s.ft_examples e WHERE ", plan->schema);
	AppendFilter(&sql, plan, "e");
	appendStringInfo(&sql, " LIMIT " INT64_FORMAT ") c", limit);
	if (SPI_execute_with_args(sql.data, 4, argtypes, values, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not count examples");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The rows to stream, in id order. Under the cap everything selected is read and duplicates are
 * left out while streaming; over it, the best example of every (category, pattern_type) comes
 * first, then every second best, and so on (round-robin by quality rank), duplicates removed in
 * SQL so the cap counts distinct examples.
 */
static char *
ExamplesQuery(DatasetPlan *plan, Oid *argtypes, Datum *values, const char *nulls, bool *ordered)
{
	StringInfoData sql;
	const char *cols = "e.id, e.messages, e.token_count, e.content_hash";

	initStringInfo(&sql);
	if (plan->max_examples == 0 ||
		CountSelected(plan, argtypes, values, nulls, plan->max_examples + 1) <= plan->max_examples)
	{
		appendStringInfo(&sql, "SELECT %s FROM %s.ft_examples e WHERE ", cols, plan->schema);
		AppendFilter(&sql, plan, "e");
		/* a caller that stops early wants the first lines at once, through the primary key */
		*ordered = plan->fast_start;
		if (plan->fast_start)
			appendStringInfoString(&sql, " ORDER BY e.id");
		return sql.data;
	}
	appendStringInfo(&sql,
					 "SELECT %s FROM %s.ft_examples e WHERE e.avatar_id = $1 AND e.id IN ("
					 "SELECT r.id FROM (SELECT s.id, s.quality, s.verified, s.rating, "
					 "row_number() OVER (PARTITION BY s.category, s.pattern_type "
					 "ORDER BY s.quality DESC NULLS LAST, s.verified DESC, s.rating DESC NULLS LAST, s.id) AS rank "
					 "FROM %s.ft_examples s WHERE ", cols, plan->schema, plan->schema);
	AppendFilter(&sql, plan, "s");
	if (!plan->include_duplicates)
	{
		appendStringInfo(&sql, " AND NOT EXISTS (SELECT 1 FROM %s.ft_examples d WHERE ", plan->schema);
		AppendFilter(&sql, plan, "d");
		appendStringInfoString(&sql, " AND d.content_hash = s.content_hash AND d.id < s.id)");
	}
	appendStringInfoString(&sql,
						   ") r ORDER BY r.rank, r.quality DESC NULLS LAST, r.verified DESC, r.rating DESC NULLS LAST, r.id "
						   "LIMIT $4) ORDER BY e.id");
	*ordered = true;
	return sql.data;
}

/* Preference pairs in id order; over the cap, the most recent ones */
static char *
PreferencesQuery(DatasetPlan *plan)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT p.id, p.input, p.preferred, p.non_preferred FROM %s.ft_preferences p "
					 "WHERE p.avatar_id = $1", plan->schema);
	if (plan->max_examples > 0)
		appendStringInfo(&sql, " AND p.id IN (SELECT q.id FROM %s.ft_preferences q WHERE q.avatar_id = $1 "
						 "ORDER BY q.created_at DESC, q.id LIMIT $4)", plan->schema);
	appendStringInfoString(&sql, " ORDER BY p.id");
	return sql.data;
}

/* ---------- decoding rows ---------- */

/* Append a separating comma unless the previous byte opened a container or ended a key */
static inline void
Separator(FtBuf *buf, size_t start)
{
	char		last;

	if (buf->len == start)
		return;
	last = buf->data[buf->len - 1];
	if (last != '[' && last != '{' && last != ':')
		FtBufLit(buf, ",");
}

/* Append a JSON scalar */
static void
AppendScalar(FtBuf *buf, JsonbValue *v)
{
	char	   *num;

	switch (v->type)
	{
		case jbvNull:
			FtBufLit(buf, "null");
			break;
		case jbvBool:
			if (v->val.boolean)
				FtBufLit(buf, "true");
			else
				FtBufLit(buf, "false");
			break;
		case jbvString:
			FtJsonString(buf, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			num = JsonbNumberText(v);
			FtBufAppend(buf, num, strlen(num));
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", v->type);
	}
}

/*
 * Append a container as compact JSON. Nested objects (tool schemas, tool calls) keep jsonb's
 * stored key order (shorter keys first, then bytewise), which is stable.
 */
static void
AppendJsonb(FtBuf *buf, JsonbContainer *container)
{
	JsonbIterator *it = JsonbIteratorInit(container);
	JsonbValue	v;
	JsonbIteratorToken tok;
	size_t		start = buf->len;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_ARRAY:
				Separator(buf, start);
				FtBufLit(buf, "[");
				break;
			case WJB_BEGIN_OBJECT:
				Separator(buf, start);
				FtBufLit(buf, "{");
				break;
			case WJB_END_ARRAY:
				FtBufLit(buf, "]");
				break;
			case WJB_END_OBJECT:
				FtBufLit(buf, "}");
				break;
			case WJB_KEY:
				Separator(buf, start);
				FtJsonString(buf, v.val.string.val, v.val.string.len);
				FtBufLit(buf, ":");
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				Separator(buf, start);
				AppendScalar(buf, &v);
				break;
			default:
				break;
		}
	}
}

/* Grow an array that lives as long as the stream (not reset per row) */
static void *
GrowArray(LineReceiver *r, void *array, Size size)
{
	return array ? repalloc(array, size) : MemoryContextAlloc(r->streamcxt, size);
}

/* Serialise a container into the row's scratch buffer; target is pointed at it once the row is decoded */
static void
AddRaw(LineReceiver *r, FtStr *target, JsonbContainer *container)
{
	size_t		offset = r->raw.len;

	AppendJsonb(&r->raw, container);
	if (r->fixups_used == r->fixups_cap)
	{
		r->fixups_cap = r->fixups_cap ? r->fixups_cap * 2 : 16;
		r->fixups = GrowArray(r, r->fixups, r->fixups_cap * sizeof(RawFixup));
	}
	r->fixups[r->fixups_used].target = target;
	r->fixups[r->fixups_used].offset = offset;
	r->fixups_used++;
	target->len = r->raw.len - offset;
}

/* Point every raw value at its bytes, now that the scratch buffer no longer moves */
static void
ApplyFixups(LineReceiver *r)
{
	for (size_t i = 0; i < r->fixups_used; i++)
		r->fixups[i].target->p = r->raw.data + r->fixups[i].offset;
}

/*
 * One member (key and value) of a jsonb object, read in place. Walking the stored members once
 * is much cheaper than one binary search per wanted key, and builds no JsonbValue.
 */
typedef struct Member
{
	const char *key;
	uint32		key_len;
	JEntry		entry;
	const char *value;			/* string bytes, or the aligned start of a numeric or container */
	uint32		value_len;
} Member;

/* Member i of an object container */
static inline void
GetMember(JsonbContainer *obj, uint32 count, uint32 i, Member *m)
{
	const char *base = (const char *) &obj->children[count * 2];
	uint32		voff = getJsonbOffset(obj, i + count);

	m->key = base + getJsonbOffset(obj, i);
	m->key_len = getJsonbLength(obj, i);
	m->entry = obj->children[i + count];
	m->value_len = getJsonbLength(obj, i + count);
	/* numerics and containers are stored int-aligned, as fillJsonbValue reads them */
	m->value = JBE_ISSTRING(m->entry) ? base + voff : base + INTALIGN(voff);
}

/* Element i of an array container, when it is itself a container */
static inline JsonbContainer *
GetElementContainer(JsonbContainer *array, uint32 count, uint32 i)
{
	const char *base = (const char *) &array->children[count];

	if (!JBE_ISCONTAINER(array->children[i]))
		return NULL;
	return (JsonbContainer *) (base + INTALIGN(getJsonbOffset(array, i)));
}

#define KEY_IS(m, lit) ((m)->key_len == sizeof(lit) - 1 && memcmp((m)->key, lit, sizeof(lit) - 1) == 0)

/* A member's value as a string, or absent when it is not a string */
static inline FtStr
MemberString(Member *m)
{
	FtStr		s = {NULL, 0};

	if (JBE_ISSTRING(m->entry))
	{
		s.p = m->value;
		s.len = m->value_len;
	}
	return s;
}

/* Replace a content string by its redacted copy (in the row's memory) */
static void
RedactContent(FtStr *content)
{
	size_t		outlen;
	char	   *red;
	char	   *copy;

	if (content->p == NULL)
		return;
	red = ft_redact_text(content->p, content->len, &outlen, NULL);
	if (red == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory while redacting")));
	copy = palloc(outlen + 1);
	memcpy(copy, red, outlen);
	free(red);
	content->p = copy;
	content->len = outlen;
}

/* Decode one message object */
static void
DecodeMessage(LineReceiver *r, JsonbContainer *obj, FtMessage *out)
{
	uint32		count = JsonContainerSize(obj);
	Member		m;

	memset(out, 0, sizeof(*out));
	out->weight = -1;
	for (uint32 i = 0; i < count; i++)
	{
		GetMember(obj, count, i, &m);
		if (KEY_IS(&m, "role"))
			out->role = MemberString(&m);
		else if (KEY_IS(&m, "content"))
		{
			out->content = MemberString(&m);
			out->content_null = JBE_ISNULL(m.entry);
		}
		else if (KEY_IS(&m, "name"))
			out->name = MemberString(&m);
		else if (KEY_IS(&m, "tool_call_id"))
			out->tool_call_id = MemberString(&m);
		else if (KEY_IS(&m, "tool_calls") && JBE_ISCONTAINER(m.entry))
			AddRaw(r, &out->tool_calls, (JsonbContainer *) m.value);
		else if (KEY_IS(&m, "weight") && JBE_ISNUMERIC(m.entry))
		{
			/* the write trigger allows only 0 and 1 (any spelling, such as 1.0); written back as 0 or 1 */
			out->weight = DatumGetFloat8(DirectFunctionCall1(numeric_float8, PointerGetDatum(m.value))) != 0;
		}
	}
	if (r->plan->redact)
		RedactContent(&out->content);
}

/*
 * Decode an example: {"messages": [...], "tools": [...], "parallel_tool_calls": b}, or a bare
 * messages array (accepted for preference inputs).
 */
static void
DecodeExample(LineReceiver *r, Jsonb *jb, FtExample *ex)
{
	JsonbContainer *messages = NULL;
	uint32		n;

	ex->tools.p = NULL;
	ex->parallel_tool_calls = -1;
	if (JB_ROOT_IS_ARRAY(jb) && !JB_ROOT_IS_SCALAR(jb))
		messages = &jb->root;
	else if (JB_ROOT_IS_OBJECT(jb))
	{
		uint32		count = JsonContainerSize(&jb->root);
		Member		m;

		for (uint32 i = 0; i < count; i++)
		{
			GetMember(&jb->root, count, i, &m);
			if (KEY_IS(&m, "messages") && JBE_ISCONTAINER(m.entry) &&
				JsonContainerIsArray((JsonbContainer *) m.value))
				messages = (JsonbContainer *) m.value;
			else if (KEY_IS(&m, "tools") && JBE_ISCONTAINER(m.entry))
				AddRaw(r, &ex->tools, (JsonbContainer *) m.value);
			else if (KEY_IS(&m, "parallel_tool_calls") && JBE_ISBOOL(m.entry))
				ex->parallel_tool_calls = JBE_ISBOOL_TRUE(m.entry);
		}
	}
	n = messages ? JsonContainerSize(messages) : 0;
	if (n > r->messages_cap)
	{
		r->messages_cap = Max(n, 2 * r->messages_cap);
		r->messages = GrowArray(r, r->messages, r->messages_cap * sizeof(FtMessage));
	}
	for (uint32 i = 0; i < n; i++)
	{
		JsonbContainer *message = GetElementContainer(messages, n, i);

		if (message == NULL || !JsonContainerIsObject(message))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("message %u of a stored example is not an object", i),
					 errhint("Check the example with ft_example_problems.")));
		DecodeMessage(r, message, &r->messages[i]);
	}
	ex->messages = r->messages;
	ex->n_messages = n;
}

/* A preference side: a plain string (the assistant's content) or an assistant message object */
static void
DecodeOutput(LineReceiver *r, Jsonb *jb, FtMessage *m)
{
	static const char assistant[] = "assistant";

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbValue	v;

		memset(m, 0, sizeof(*m));
		m->weight = -1;
		if (JsonbExtractScalar(&jb->root, &v) && v.type == jbvString)
		{
			m->content.p = v.val.string.val;
			m->content.len = v.val.string.len;
		}
		if (r->plan->redact)
			RedactContent(&m->content);
	}
	else
		DecodeMessage(r, &jb->root, m);
	m->role.p = assistant;
	m->role.len = sizeof(assistant) - 1;
}

/* ---------- duplicates ---------- */

/* The set's key of a content hash (never 0, which marks an empty slot) */
static inline uint64
SeenKey(bytea *hash)
{
	uint64		key = hash_bytes_extended((unsigned char *) VARDATA_ANY(hash), VARSIZE_ANY_EXHDR(hash), 0);

	return key ? key : 1;
}

/* Make room for one more key (the table is kept at most half full) and prefetch its slot */
static void
SeenReserve(LineReceiver *r, uint64 key)
{
	SeenSet    *set = &r->seen;

	if (set->slots == NULL || (set->used + 1) * 2 > set->mask + 1)
	{
		size_t		size = set->slots ? (set->mask + 1) * 2 : 4096;
		uint64	   *old = set->slots;
		size_t		oldsize = old ? set->mask + 1 : 0;

		set->slots = MemoryContextAllocHuge(r->streamcxt, size * sizeof(uint64));
		memset(set->slots, 0, size * sizeof(uint64));
		set->mask = size - 1;
		for (size_t j = 0; j < oldsize; j++)
		{
			size_t		i;

			if (old[j] == 0)
				continue;
			for (i = old[j] & set->mask; set->slots[i] != 0; i = (i + 1) & set->mask)
				;
			set->slots[i] = old[j];
		}
		if (old)
			pfree(old);
	}
#ifdef __GNUC__
	/* the probe comes after the row is formatted, by which time the slot is in cache */
	__builtin_prefetch(&set->slots[key & set->mask]);
#endif
}

/* Start loading the slot of a key that will be probed soon */
static inline void
SeenPrefetch(LineReceiver *r, uint64 key)
{
#ifdef __GNUC__
	if (r->seen.slots)
		__builtin_prefetch(&r->seen.slots[key & r->seen.mask]);
#endif
}

/* True when the key was seen before; remembers it (after SeenReserve) */
static bool
SeenBefore(LineReceiver *r, uint64 key)
{
	SeenSet    *set = &r->seen;
	size_t		i;

	for (i = key & set->mask; set->slots[i] != 0; i = (i + 1) & set->mask)
		if (set->slots[i] == key)
			return true;
	set->slots[i] = key;
	set->used++;
	return false;
}

/* ---------- id order ---------- */

/*
 * Reading a large selection through the primary key in id order is a random walk over the heap
 * when ids are random uuids. Instead the rows are read in whatever order the plan gives, their
 * lines are put in order here, and only then delivered: in memory while they fit in work_mem,
 * else spilled into 256 temporary files by the first byte of the id (uuids compare bytewise, so
 * bucket order is id order) and sorted one bucket at a time.
 */
#define SORT_BUCKETS 256

/* One formatted line (or, with deliver false, only a duplicate marker) waiting for its turn */
typedef struct PendingLine
{
	pg_uuid_t	id;
	uint64		key;			/* content hash key, 0 = none */
	int64		tokens;
	uint32		len;
	bool		validation;
	bool		deliver;
	char		line[FLEXIBLE_ARRAY_MEMBER];
} PendingLine;

#define PENDING_HEADER offsetof(PendingLine, line)

typedef struct LineSorter
{
	MemoryContext cxt;			/* the pending lines; reset after each delivery */
	PendingLine **lines;
	size_t		n;
	size_t		cap;
	Size		bytes;
	Size		limit;
	BufFile    *buckets[SORT_BUCKETS];
	bool		spilled;
} LineSorter;

/* Hand a line on in id order: the first copy of a content hash wins, later ones are dropped */
static void
Deliver(LineReceiver *r, PendingLine *p, const char *line)
{
	if (p->key)
	{
		SeenReserve(r, p->key);
		if (SeenBefore(r, p->key))
			return;
	}
	if (p->deliver && !r->stop)
		r->stop = !r->emit(r->arg, p->validation, line, p->len, p->tokens);
}

/* Append a pending line to the bucket file of its id */
static void
WriteToBucket(LineReceiver *r, PendingLine *header, const char *line)
{
	LineSorter *s = r->sorter;
	int			b = header->id.data[0];

	if (s->buckets[b] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(r->streamcxt);
		ResourceOwner owner = CurrentResourceOwner;

		/* rows arrive while the cursor's portal runs; the files must outlive the portal */
		CurrentResourceOwner = r->owner;
		s->buckets[b] = BufFileCreateTemp(false);
		CurrentResourceOwner = owner;
		MemoryContextSwitchTo(old);
	}
	BufFileWrite(s->buckets[b], header, PENDING_HEADER);
	if (header->len > 0)
		BufFileWrite(s->buckets[b], (void *) line, header->len);
}

/* Keep a line for later; past work_mem everything goes to the bucket files */
static void
SorterAdd(LineReceiver *r, PendingLine *header, const char *line)
{
	LineSorter *s = r->sorter;
	PendingLine *p;

	if (s->spilled)
	{
		WriteToBucket(r, header, line);
		return;
	}
	p = MemoryContextAlloc(s->cxt, PENDING_HEADER + header->len);
	memcpy(p, header, PENDING_HEADER);
	if (header->len > 0)
		memcpy(p->line, line, header->len);
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->lines = s->lines ? repalloc_huge(s->lines, s->cap * sizeof(PendingLine *)) :
			MemoryContextAllocHuge(r->streamcxt, s->cap * sizeof(PendingLine *));
	}
	s->lines[s->n++] = p;
	s->bytes += PENDING_HEADER + header->len + sizeof(PendingLine *);
	if (s->bytes > s->limit)
	{
		for (size_t i = 0; i < s->n; i++)
			WriteToBucket(r, s->lines[i], s->lines[i]->line);
		MemoryContextReset(s->cxt);
		s->n = 0;
		s->bytes = 0;
		s->spilled = true;
	}
}

/* qsort comparator: uuid order is bytewise order */
static int
ComparePending(const void *a, const void *b)
{
	return memcmp((*(PendingLine *const *) a)->id.data, (*(PendingLine *const *) b)->id.data, UUID_LEN);
}

/* Sort the lines held in memory and deliver them */
static void
DeliverHeld(LineReceiver *r)
{
	LineSorter *s = r->sorter;

	qsort(s->lines, s->n, sizeof(PendingLine *), ComparePending);
	for (size_t i = 0; i < s->n && !r->stop; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(r->rowcxt);

		/* the duplicate check is a random access; start it a few lines ahead */
		if (i + 8 < s->n && s->lines[i + 8]->key)
			SeenPrefetch(r, s->lines[i + 8]->key);
		Deliver(r, s->lines[i], s->lines[i]->line);
		MemoryContextSwitchTo(old);
		MemoryContextReset(r->rowcxt);
	}
	MemoryContextReset(s->cxt);
	s->n = 0;
	s->bytes = 0;
}

/* Read one bucket file back into memory */
static void
LoadBucket(LineReceiver *r, BufFile *file)
{
	LineSorter *s = r->sorter;
	PendingLine header;

	if (BufFileSeek(file, 0, 0, SEEK_SET) != 0)
		ereport(ERROR, (errcode_for_file_access(), errmsg("could not rewind dataset sort file: %m")));
	while (BufFileRead(file, &header, PENDING_HEADER) == PENDING_HEADER)
	{
		PendingLine *p = MemoryContextAlloc(s->cxt, PENDING_HEADER + header.len);

		memcpy(p, &header, PENDING_HEADER);
		if (header.len > 0 && BufFileRead(file, p->line, header.len) != header.len)
			ereport(ERROR, (errcode_for_file_access(), errmsg("could not read dataset sort file: %m")));
		if (s->n == s->cap)
		{
			s->cap = s->cap ? s->cap * 2 : 1024;
			s->lines = s->lines ? repalloc_huge(s->lines, s->cap * sizeof(PendingLine *)) :
				MemoryContextAllocHuge(r->streamcxt, s->cap * sizeof(PendingLine *));
		}
		s->lines[s->n++] = p;
	}
}

/* Deliver everything kept, in id order */
static void
SorterFinish(LineReceiver *r)
{
	LineSorter *s = r->sorter;

	if (!s->spilled)
	{
		DeliverHeld(r);
		return;
	}
	for (int b = 0; b < SORT_BUCKETS; b++)
	{
		if (s->buckets[b] == NULL)
			continue;
		if (!r->stop)
		{
			LoadBucket(r, s->buckets[b]);
			DeliverHeld(r);
		}
		BufFileClose(s->buckets[b]);
		s->buckets[b] = NULL;
	}
}

/* ---------- the receiver ---------- */

/*
 * Turn one row into a line and hand it on, directly or through the sorter; everything allocated
 * for the row is freed after it. Duplicates (same content_hash as an earlier row by id, whichever
 * split) are formatted and dropped on delivery, when the rows are in id order.
 */
static bool
ReceiveRow(TupleTableSlot *slot, DestReceiver *self)
{
	LineReceiver *r = (LineReceiver *) self;
	DatasetPlan *plan = r->plan;
	FtStr		prompt = {plan->system_prompt, plan->system_prompt_len};
	MemoryContext old;
	pg_uuid_t  *id;
	bool		isnull;
	bool		validation;
	bool		written;
	int64		tokens = 0;
	uint64		key = 0;
	PendingLine pending;

	if (r->stop)
		return true;
	old = MemoryContextSwitchTo(r->rowcxt);
	id = DatumGetUUIDP(slot_getattr(slot, 1, &isnull));
	if (plan->format != FT_FORMAT_DPO && !plan->include_duplicates)
	{
		Datum		hash = slot_getattr(slot, 4, &isnull);

		if (!isnull)
			key = SeenKey(DatumGetByteaPP(hash));
	}
	validation = plan->validation_share > 0 &&
		FtSplitFraction(plan->seed_hash, id->data) < plan->validation_share;
	pending.id = *id;
	pending.key = key;
	pending.validation = validation;
	pending.tokens = 0;
	pending.len = 0;
	pending.deliver = false;
	if (validation ? !plan->want_validation : !plan->want_train)
	{
		/* not wanted, but it still hides later copies of itself in the wanted split */
		if (key && r->sorter)
			SorterAdd(r, &pending, NULL);
		else if (key)
			Deliver(r, &pending, NULL);
		goto done;
	}
	r->raw.len = 0;
	r->line.len = 0;
	r->fixups_used = 0;
	if (plan->format == FT_FORMAT_DPO)
	{
		FtExample	input;
		FtMessage	preferred,
					non_preferred;

		DecodeExample(r, DatumGetJsonbP(slot_getattr(slot, 2, &isnull)), &input);
		DecodeOutput(r, DatumGetJsonbP(slot_getattr(slot, 3, &isnull)), &preferred);
		DecodeOutput(r, DatumGetJsonbP(slot_getattr(slot, 4, &isnull)), &non_preferred);
		ApplyFixups(r);
		written = FtWritePreference(&r->line, &input, &preferred, &non_preferred, prompt);
	}
	else
	{
		FtExample	example;
		Datum		count;

		DecodeExample(r, DatumGetJsonbP(slot_getattr(slot, 2, &isnull)), &example);
		ApplyFixups(r);
		count = slot_getattr(slot, 3, &isnull);
		tokens = isnull ? 0 : DatumGetInt32(count);
		written = FtWriteExample(&r->line, plan->format, &example, prompt);
	}
	pending.tokens = tokens;
	pending.len = written ? (uint32) r->line.len : 0;
	pending.deliver = written;
	if (r->sorter)
	{
		if (written || key)
			SorterAdd(r, &pending, r->line.data);
	}
	else
		Deliver(r, &pending, r->line.data);
done:
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->rowcxt);
	return true;
}

/* Nothing to set up per fetch: the receiver's state lives as long as the stream */
static void
ReceiverStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

/* Nothing to finish per fetch */
static void
ReceiverShutdown(DestReceiver *self)
{
}

/* The receiver is freed with the stream's memory context */
static void
ReceiverDestroy(DestReceiver *self)
{
}

/* ---------- streaming ---------- */

/*
 * Open the cursor and run it to the end (or until the callback says stop) into the receiver,
 * through the sorter unless the query already returns rows in id order
 */
static void
RunCursor(DatasetPlan *plan, LineReceiver *r)
{
	Oid			argtypes[4] = {UUIDOID, FLOAT8OID, INT8OID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *sql;
	bool		ordered = true;
	Portal		portal;

	values[0] = UUIDPGetDatum(&plan->avatar);
	values[1] = Float8GetDatum(plan->min_quality);
	values[2] = Int64GetDatum(plan->token_limit);
	values[3] = Int64GetDatum(plan->max_examples);
	if (plan->format == FT_FORMAT_DPO)
		sql = PreferencesQuery(plan);
	else
		sql = ExamplesQuery(plan, argtypes, values, nulls, &ordered);
	if (!ordered)
	{
		r->sorter = MemoryContextAllocZero(r->streamcxt, sizeof(LineSorter));
		r->sorter->cxt = AllocSetContextCreate(r->streamcxt, "ft dataset sort", ALLOCSET_DEFAULT_SIZES);
		r->sorter->limit = (Size) work_mem * 1024;
	}
	portal = SPI_cursor_open_with_args(NULL, sql, 4, argtypes, values, nulls, true,
									   plan->fast_start ? CURSOR_OPT_FAST_PLAN : 0);
	/* fetching into our own receiver streams rows through without SPI's tuple copies */
	while (!r->stop && PortalRunFetch(portal, FETCH_FORWARD, FETCH_ROWS, &r->pub) == FETCH_ROWS)
		;
	SPI_cursor_close(portal);
	if (r->sorter)
		SorterFinish(r);
}

/*
 * Stream both splits of the avatar's dataset (those wanted) into emit; returns the resolved
 * options, allocated in the caller's memory context.
 */
Jsonb *
FtStreamDatasetSplits(pg_uuid_t avatar, const char *format, Jsonb *options, bool want_train,
					  bool want_validation, bool fast_start, FtEmitSplitLine emit, void *arg)
{
	MemoryContext callercxt = CurrentMemoryContext;
	MemoryContext streamcxt = AllocSetContextCreate(callercxt, "ft dataset stream", ALLOCSET_DEFAULT_SIZES);
	LineReceiver *r = MemoryContextAllocZero(streamcxt, sizeof(LineReceiver));
	DatasetPlan *plan = MemoryContextAllocZero(streamcxt, sizeof(DatasetPlan));
	Jsonb	   *resolved;
	bool		pushed_snapshot;

	r->pub.receiveSlot = ReceiveRow;
	r->pub.rStartup = ReceiverStartup;
	r->pub.rShutdown = ReceiverShutdown;
	r->pub.rDestroy = ReceiverDestroy;
	r->pub.mydest = DestNone;
	r->plan = plan;
	r->emit = emit;
	r->arg = arg;
	r->streamcxt = streamcxt;
	r->owner = CurrentResourceOwner;
	r->rowcxt = AllocSetContextCreate(streamcxt, "ft dataset row", ALLOCSET_DEFAULT_SIZES);
	FtBufInit(&r->line);
	FtBufInit(&r->raw);

	/* a background worker may call this without a snapshot; read-only SPI needs one */
	pushed_snapshot = !ActiveSnapshotSet();
	if (pushed_snapshot)
		PushActiveSnapshot(GetTransactionSnapshot());
	SPI_connect();
	resolved = ResolvePlan(plan, avatar, format, options, callercxt);
	plan->want_train = want_train;
	plan->want_validation = want_validation;
	plan->fast_start = fast_start;
	PG_TRY();
	{
		RunCursor(plan, r);
	}
	PG_FINALLY();
	{
		/* the line buffers are plain malloc, so they must be freed on error too */
		FtBufFree(&r->line);
		FtBufFree(&r->raw);
	}
	PG_END_TRY();
	SPI_finish();
	if (pushed_snapshot)
		PopActiveSnapshot();
	MemoryContextDelete(streamcxt);
	return resolved;
}

/* Adapter from the split-aware callback to a one-split FtEmitLine */
typedef struct OneSplit
{
	FtEmitLine	emit;
	void	   *arg;
} OneSplit;

static bool
EmitOneSplit(void *arg, bool validation, const char *line, size_t len, int64 tokens)
{
	OneSplit   *one = arg;

	one->emit(one->arg, line, len);
	return true;
}

/* "train", "validation" or "all", else error 22023 listing them */
void
FtParseSplit(const char *split, bool *want_train, bool *want_validation)
{
	*want_train = strcmp(split, "train") == 0 || strcmp(split, "all") == 0;
	*want_validation = strcmp(split, "validation") == 0 || strcmp(split, "all") == 0;
	if (!*want_train && !*want_validation)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown dataset split \"%s\"", split),
				 errhint("Valid splits are train, validation and all.")));
}

/* Stream one split ("train", "validation" or "all") of the avatar's dataset into a callback */
void
FtStreamDataset(pg_uuid_t avatar, const char *split, const char *format, Jsonb *options,
				FtEmitLine emit, void *arg)
{
	OneSplit	one = {emit, arg};
	bool		want_train,
				want_validation;

	FtParseSplit(split, &want_train, &want_validation);
	FtStreamDatasetSplits(avatar, format, options, want_train, want_validation, false, EmitOneSplit, &one);
}

/* ---------- building files ---------- */

typedef struct BuildState
{
	FtSha256	sha[2];
	int64		count[2];
	int64		bytes[2];
	int64		tokens[2];
	FILE	   *file[2];
	const char *path[2];
} BuildState;

/* Count, hash and (when a file is open) write one line and its newline */
static bool
EmitToBuild(void *arg, bool validation, const char *line, size_t len, int64 tokens)
{
	BuildState *b = arg;
	int			s = validation ? 1 : 0;

	FtSha256Update(&b->sha[s], line, len);
	FtSha256Update(&b->sha[s], "\n", 1);
	b->count[s]++;
	b->bytes[s] += len + 1;
	b->tokens[s] += tokens;
	if (b->file[s] && (fwrite(line, 1, len, b->file[s]) != len || putc('\n', b->file[s]) == EOF))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write dataset file \"%s\": %m", b->path[s])));
	return true;
}

/* Open a dataset file for writing, replacing what was there */
static FILE *
OpenDatasetFile(const char *path)
{
	FILE	   *f = fopen(path, "wb");

	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open dataset file \"%s\" for writing: %m", path)));
	return f;
}

/* Flush, fsync and close a dataset file; errors are reported, not lost */
static void
CloseDatasetFile(FILE **f, const char *path)
{
	FILE	   *file = *f;

	*f = NULL;
	if (fflush(file) != 0 || pg_fsync(fileno(file)) != 0)
	{
		int			save = errno;

		fclose(file);
		errno = save;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write dataset file \"%s\": %m", path)));
	}
	if (fclose(file) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close dataset file \"%s\": %m", path)));
}

/* Insert the ft_datasets row describing a build and return its id */
static pg_uuid_t
RecordDataset(pg_uuid_t avatar, const char *format, Jsonb *resolved, const pg_uuid_t *job_id,
			  const FtDatasetSummary *s)
{
	StringInfoData sql;
	Oid			argtypes[12] = {UUIDOID, UUIDOID, TEXTOID, JSONBOID, INT8OID, INT8OID, INT8OID, INT8OID,
	TEXTOID, TEXTOID, INT8OID, INT8OID};
	Datum		values[12];
	char		nulls[12];
	bool		dpo = strcmp(format, "dpo") == 0;
	bool		isnull;
	pg_uuid_t	id;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(&avatar);
	values[1] = job_id ? UUIDPGetDatum(job_id) : (Datum) 0;
	nulls[1] = job_id ? ' ' : 'n';
	values[2] = CStringGetTextDatum(format);
	values[3] = JsonbPGetDatum(resolved);
	values[4] = Int64GetDatum(s->train_count);
	values[5] = Int64GetDatum(s->validation_count);
	values[6] = Int64GetDatum(s->train_bytes);
	values[7] = Int64GetDatum(s->validation_bytes);
	values[8] = CStringGetTextDatum(s->train_sha256);
	values[9] = CStringGetTextDatum(s->validation_sha256);
	values[10] = Int64GetDatum(s->train_tokens);
	values[11] = Int64GetDatum(s->validation_tokens);
	/* preference pairs carry no token counts */
	nulls[10] = nulls[11] = dpo ? 'n' : ' ';

	SPI_connect();
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO %s.ft_datasets (avatar_id, job_id, format, options, train_count, validation_count, "
					 "train_bytes, validation_bytes, train_sha256, validation_sha256, train_tokens, validation_tokens) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id", ExtensionSchema());
	if (SPI_execute_with_args(sql.data, 12, argtypes, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not record dataset");
	id = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return id;
}

/*
 * Stream the avatar's dataset into files (either path may be NULL, or files itself: then lines
 * are only counted and hashed), record an ft_datasets row and return its id. A failed build
 * removes its partial files.
 */
pg_uuid_t
FtBuildDatasetToFiles(pg_uuid_t avatar, const char *format, Jsonb *options, const pg_uuid_t *job_id,
					  const FtDatasetFiles *files, FtDatasetSummary *summary)
{
	BuildState *b = palloc0(sizeof(BuildState));
	Jsonb	   *volatile resolved = NULL;

	FtSha256Init(&b->sha[0]);
	FtSha256Init(&b->sha[1]);
	b->path[0] = files ? files->train_path : NULL;
	b->path[1] = files ? files->validation_path : NULL;
	PG_TRY();
	{
		for (int s = 0; s < 2; s++)
			if (b->path[s])
				b->file[s] = OpenDatasetFile(b->path[s]);
		resolved = FtStreamDatasetSplits(avatar, format, options, true, true, false, EmitToBuild, b);
		for (int s = 0; s < 2; s++)
			if (b->file[s])
				CloseDatasetFile(&b->file[s], b->path[s]);
	}
	PG_CATCH();
	{
		for (int s = 0; s < 2; s++)
		{
			if (b->file[s])
				fclose(b->file[s]);
			if (b->path[s])
				unlink(b->path[s]);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	summary->train_count = b->count[0];
	summary->validation_count = b->count[1];
	summary->train_bytes = b->bytes[0];
	summary->validation_bytes = b->bytes[1];
	summary->train_tokens = b->tokens[0];
	summary->validation_tokens = b->tokens[1];
	FtSha256Hex(&b->sha[0], summary->train_sha256);
	FtSha256Hex(&b->sha[1], summary->validation_sha256);
	return RecordDataset(avatar, format, resolved, job_id, summary);
}
