/*
 * SQL glue for getting conversations in: ft_redact, ft_import_transcript and the ft_capture
 * trigger. The algorithms live in redact.c and transcript.c; this file moves data between
 * them and the database.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "redact.h"
#include "transcript.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/resowner.h"

PG_FUNCTION_INFO_V1(ft_redact);
PG_FUNCTION_INFO_V1(ft_import_transcript);
PG_FUNCTION_INFO_V1(ft_capture);

#define MAX_CONTEXT_TURNS 1000

/* ---------- shared helpers ---------- */

/* Quoted name of the schema the calling function lives in (the extension's schema) */
static const char *
ExtSchema(FunctionCallInfo fcinfo)
{
	Oid			nsp = get_func_namespace(fcinfo->flinfo->fn_oid);

	return quote_identifier(get_namespace_name(nsp));
}

/* jsonb datum of a JSON text */
static Datum
JsonbFromText(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* Redaction counts as a JSON text */
static char *
CountsJson(const FtRedactCounts *counts)
{
	char		buf[160];

	ft_redact_counts_json(counts, buf, sizeof(buf));
	return pstrdup(buf);
}

/* Copy a malloc'd string into palloc'd memory and free it; NULL becomes an out-of-memory error */
static char *
TakeMalloced(char *s, size_t len)
{
	char	   *copy;

	if (s == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	copy = palloc(len + 1);
	memcpy(copy, s, len);
	copy[len] = '\0';
	free(s);
	return copy;
}

/* ---------- ft_redact ---------- */

/*
 * ft_redact(input text, OUT redacted text, OUT found jsonb): the text with personal data and
 * secrets replaced by tokens, and how many of each kind were found
 */
Datum
ft_redact(PG_FUNCTION_ARGS)
{
	text	   *input = PG_GETARG_TEXT_PP(0);
	FtRedactCounts counts;
	size_t		outlen = 0;
	char	   *out;
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "ft_redact must return a composite type");
	memset(&counts, 0, sizeof(counts));
	out = ft_redact_text(VARDATA_ANY(input), VARSIZE_ANY_EXHDR(input), &outlen, &counts);
	out = TakeMalloced(out, outlen);
	values[0] = PointerGetDatum(cstring_to_text_with_len(out, outlen));
	values[1] = JsonbFromText(CountsJson(&counts));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* ---------- ft_import_transcript ---------- */

typedef struct ImportContext
{
	int			index;
	int			count;
	int			line;
} ImportContext;

/* Error context: which example of the transcript was being stored */
static void
ImportErrorContext(void *arg)
{
	ImportContext *ctx = (ImportContext *) arg;

	if (ctx->line > 0)
		errcontext("storing example %d of %d (transcript line %d)", ctx->index, ctx->count, ctx->line);
	else
		errcontext("storing example %d of %d", ctx->index, ctx->count);
}

/* The avatar's redact setting (default true); errors P0002 when the avatar is not visible */
static bool
AvatarRedacts(const char *schema, Datum avatar)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {avatar};
	char	   *sql = psprintf("SELECT coalesce((a.settings->>'redact')::boolean, true) FROM %s.ft_get_avatar($1) a",
							   schema);
	bool		isnull;
	bool		result;

	if (SPI_execute_with_args(sql, 1, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read avatar settings");
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return isnull ? true : result;
}

/* Speakers as a comma-separated list, for messages */
static char *
SpeakerList(const FtTranscript *t)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	for (k = 0; k < t->nspeakers && k < 20; k++)
		appendStringInfo(&buf, "%s%s", k ? ", " : "", t->speakers[k]);
	if (t->nspeakers > 20)
		appendStringInfoString(&buf, ", ...");
	return buf.data;
}

/* Raise the parse error of a transcript */
static void
ReportParseError(const FtTranscript *t, FtTranscriptFormat asked)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("cannot read the transcript: %s", t->error),
			 asked == FT_TRANSCRIPT_AUTO
			 ? errhint("The format was detected as %s; pass format => 'speaker', 'whatsapp', 'telegram' or 'jsonl' to choose another.",
					   ft_transcript_format_name(t->format == FT_TRANSCRIPT_AUTO ? FT_TRANSCRIPT_JSONL : t->format))
			 : errhint("The text was read as format %s.", ft_transcript_format_name(asked))));
}

/* Choose the assistant speaker or raise 22023 */
static int
PickAssistant(const FtTranscript *t, const char *requested, const char **rule)
{
	int			assistant;

	if (t->format == FT_TRANSCRIPT_JSONL)
	{
		*rule = "roles in the file";
		return -1;
	}
	assistant = ft_transcript_pick_assistant(t, requested, rule);
	if (assistant < 0 && requested)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("speaker \"%s\" does not appear in the transcript", requested),
				 errdetail("Speakers found: %s.", SpeakerList(t))));
	if (assistant < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the transcript has only one speaker"),
				 errdetail("Speakers found: %s.", SpeakerList(t)),
				 errhint("An example needs a user and an assistant speaker.")));
	return assistant;
}

/* Insert the cut examples through the normal ft_examples path */
static void
InsertExamples(const char *schema, Datum avatar, const FtExampleSet *set, text *category,
			   bool redact, const char *source)
{
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	char	   *sql = psprintf("INSERT INTO %s.ft_examples (avatar_id, messages, category, source, redactions) "
							   "VALUES ($1, $2::jsonb, $3, %s, $4::jsonb)", schema, quote_literal_cstr(source));
	SPIPlanPtr	plan = SPI_prepare(sql, 4, types);
	MemoryContext per_example = AllocSetContextCreate(CurrentMemoryContext, "ft_import example",
													  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	ImportContext ctx = {0, set->n, 0};
	ErrorContextCallback callback = {error_context_stack, ImportErrorContext, &ctx};
	int			k;

	if (plan == NULL)
		elog(ERROR, "could not prepare the example insert: %s", SPI_result_code_string(SPI_result));
	error_context_stack = &callback;
	for (k = 0; k < set->n; k++)
	{
		Datum		values[4];
		char		nulls[4] = {' ', ' ', category ? ' ' : 'n', redact ? ' ' : 'n'};

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(per_example);
		ctx.index = k + 1;
		ctx.line = set->items[k].line;
		values[0] = avatar;
		values[1] = CStringGetTextDatum(set->items[k].json);
		values[2] = category ? PointerGetDatum(category) : (Datum) 0;
		values[3] = CStringGetTextDatum(CountsJson(&set->items[k].counts));
		if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert an imported example");
		MemoryContextSwitchTo(old);
		MemoryContextReset(per_example);
	}
	error_context_stack = callback.previous;
	MemoryContextDelete(per_example);
	SPI_freeplan(plan);
}

/* The result object of ft_import_transcript */
static Datum
ImportReport(const FtTranscript *t, int assistant, const char *rule, const FtExampleSet *set, bool redact)
{
	StringInfoData buf;
	int			k,
				skipped = 0;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"format\": \"%s\", \"assistant_speaker\": ", ft_transcript_format_name(t->format));
	if (assistant >= 0)
		escape_json(&buf, t->speakers[assistant]);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfoString(&buf, ", \"assistant_rule\": ");
	escape_json(&buf, rule);
	appendStringInfoString(&buf, ", \"speakers\": [");
	for (k = 0; k < t->nspeakers; k++)
	{
		if (k)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, t->speakers[k]);
	}
	appendStringInfo(&buf, "], \"turns\": %d, \"examples\": %d, \"assistant_turns_without_user\": %d, \"skipped\": {",
					 t->format == FT_TRANSCRIPT_JSONL ? 0 : set->turns, set->n, set->orphan_turns);
	for (k = 0; k < t->nskips; k++)
	{
		appendStringInfoString(&buf, k ? ", " : "");
		escape_json(&buf, t->skips[k].reason);
		appendStringInfo(&buf, ": %d", t->skips[k].count);
		skipped += t->skips[k].count;
	}
	appendStringInfo(&buf, "}, \"skipped_total\": %d, \"redacted\": %s, \"redactions\": %s}",
					 skipped, redact ? "true" : "false", redact ? CountsJson(&set->total) : "null");
	return JsonbFromText(buf.data);
}

/* Parse, pick, cut and insert; the malloc'd transcript and set are freed by the caller */
static Datum
ImportTranscript(FunctionCallInfo fcinfo, FtTranscript *t, FtExampleSet *set)
{
	Datum		avatar = PG_GETARG_DATUM(0);
	text	   *transcript = PG_GETARG_TEXT_PP(1);
	char	   *format_name = PG_ARGISNULL(2) ? "auto" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *speaker = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	int			context_turns = PG_ARGISNULL(4) ? 6 : PG_GETARG_INT32(4);
	text	   *category = PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6);
	const char *schema = ExtSchema(fcinfo);
	FtTranscriptFormat format;
	const char *rule = NULL;
	char		err[128];
	bool		redact;
	int			assistant;

	if (!ft_transcript_format_from_name(format_name, &format))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown transcript format \"%s\"", format_name),
				 errhint("Use auto, speaker, whatsapp, telegram or jsonl.")));
	if (context_turns < 0 || context_turns > MAX_CONTEXT_TURNS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("context_turns must be between 0 and %d", MAX_CONTEXT_TURNS)));
	redact = AvatarRedacts(schema, avatar);
	if (!PG_ARGISNULL(5))
		redact = PG_GETARG_BOOL(5);
	if (!ft_transcript_parse(VARDATA_ANY(transcript), VARSIZE_ANY_EXHDR(transcript), format, t))
		ReportParseError(t, format);
	assistant = PickAssistant(t, speaker, &rule);
	if (!ft_transcript_examples(t, assistant, context_turns, redact, set, err, sizeof(err)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION), errmsg("cannot cut examples: %s", err)));
	if (set->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the transcript gives no examples"),
				 errdetail("No turn of the assistant speaker \"%s\" follows a turn of another speaker.",
						   assistant >= 0 ? t->speakers[assistant] : "?"),
				 errhint("Name the speaker to learn from with assistant_speaker.")));
	InsertExamples(schema, avatar, set, category, redact, "import");
	return ImportReport(t, assistant, rule, set, redact);
}

/*
 * ft_import_transcript(avatar, transcript, format, assistant_speaker, context_turns, redact,
 * category): turn a pasted conversation into examples, all or nothing, and report what it did
 */
Datum
ft_import_transcript(PG_FUNCTION_ARGS)
{
	FtTranscript t;
	FtExampleSet set;
	volatile Datum result = (Datum) 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", PG_ARGISNULL(0) ? "avatar" : "transcript")));
	memset(&t, 0, sizeof(t));
	memset(&set, 0, sizeof(set));
	SPI_connect();
	PG_TRY();
	{
		result = ImportTranscript(fcinfo, &t, &set);
	}
	PG_FINALLY();
	{
		ft_example_set_free(&set);
		ft_transcript_free(&t);
	}
	PG_END_TRY();
	result = SPI_datumTransfer(result, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/* ---------- ft_capture ---------- */

typedef struct CaptureConfig
{
	const char *relname;		/* schema-qualified, quoted */
	int			avatar_att;
	int			conv_att;
	int			role_att;
	int			content_att;
	List	   *assistant_roles;	/* lower-case role values */
	List	   *user_roles;
	int			context_turns;
	int			norder;
	int			order_atts[INDEX_MAX_KEYS];
	int			npk;
	int			pk_atts[INDEX_MAX_KEYS];
	char	   *category;
} CaptureConfig;

/* Column number of a trigger argument naming a column; 42703 when it does not exist */
static int
CaptureColumn(Relation rel, Trigger *trigger, const char *name)
{
	int			att = SPI_fnumber(RelationGetDescr(rel), name);

	if (att <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist", name, RelationGetRelationName(rel)),
				 errdetail("Trigger \"%s\" names it in its ft_capture arguments.", trigger->tgname),
				 errhint("The arguments are ft_capture('avatar_col', 'conversation_col', 'role_col', 'content_col', "
						 "'option=value', ...); recreate the trigger with the right column names.")));
	return att;
}

/* Lower-cased, trimmed items of a comma-separated list */
static List *
CommaList(const char *value, bool lower)
{
	List	   *items = NIL;
	char	   *copy = pstrdup(value);
	char	   *tok,
			   *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		char	   *item = pstrdup(tok);
		size_t		len;

		while (*item == ' ')
			item++;
		len = strlen(item);
		while (len > 0 && item[len - 1] == ' ')
			item[--len] = '\0';
		if (len > 0)
			items = lappend(items, lower ? asc_tolower(item, len) : item);
	}
	return items;
}

/* Is value (lower-cased) in the list? */
static bool
InRoleList(List *list, const char *value)
{
	ListCell   *lc;
	char	   *low = asc_tolower(value, strlen(value));

	foreach(lc, list)
		if (strcmp((char *) lfirst(lc), low) == 0)
			return true;
	return false;
}

/* Apply one "option=value" trigger argument */
static void
CaptureOption(CaptureConfig *cfg, Relation rel, Trigger *trigger, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char	   *key = eq ? pnstrdup(arg, eq - arg) : pstrdup(arg);
	const char *value = eq ? eq + 1 : "";
	ListCell   *lc;

	if (strcmp(key, "assistant_roles") == 0)
		cfg->assistant_roles = CommaList(value, true);
	else if (strcmp(key, "user_roles") == 0)
		cfg->user_roles = CommaList(value, true);
	else if (strcmp(key, "context_turns") == 0)
	{
		char	   *end;
		long		n = strtol(value, &end, 10);

		if (*value == '\0' || *end != '\0' || n < 0 || n > MAX_CONTEXT_TURNS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid ft_capture option \"%s\" of trigger \"%s\"", arg, trigger->tgname),
					 errhint("context_turns must be a whole number from 0 to %d.", MAX_CONTEXT_TURNS)));
		cfg->context_turns = (int) n;
	}
	else if (strcmp(key, "order_col") == 0)
	{
		cfg->norder = 0;
		foreach(lc, CommaList(value, false))
			if (cfg->norder < INDEX_MAX_KEYS)
				cfg->order_atts[cfg->norder++] = CaptureColumn(rel, trigger, (char *) lfirst(lc));
		if (cfg->norder == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("ft_capture option \"order_col\" of trigger \"%s\" names no column", trigger->tgname)));
	}
	else if (strcmp(key, "category") == 0)
		cfg->category = pstrdup(value);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown ft_capture option \"%s\" of trigger \"%s\"", key, trigger->tgname),
				 errhint("Options are assistant_roles, user_roles, context_turns, order_col and category, written as 'name=value'.")));
	if ((cfg->assistant_roles == NIL && strcmp(key, "assistant_roles") == 0) ||
		(cfg->user_roles == NIL && strcmp(key, "user_roles") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ft_capture option \"%s\" of trigger \"%s\" lists no roles", key, trigger->tgname)));
}

/* Primary key columns of the relation, the default order after order_col */
static void
CapturePrimaryKey(CaptureConfig *cfg, Relation rel)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	int			k;

	cfg->npk = 0;
	if (!OidIsValid(pk))
		return;
	idx = index_open(pk, AccessShareLock);
	for (k = 0; k < idx->rd_index->indnkeyatts && k < INDEX_MAX_KEYS; k++)
		cfg->pk_atts[cfg->npk++] = idx->rd_index->indkey.values[k];
	index_close(idx, AccessShareLock);
}

/* Read and check the trigger arguments; mistakes here are setup errors and do fail the insert */
static void
CaptureConfigure(CaptureConfig *cfg, Relation rel, Trigger *trigger)
{
	int			k;

	if (trigger->tgnargs < 4)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trigger \"%s\" gives ft_capture %d arguments, at least 4 are needed", trigger->tgname, trigger->tgnargs),
				 errhint("The arguments are ft_capture('avatar_col', 'conversation_col', 'role_col', 'content_col', 'option=value', ...).")));
	memset(cfg, 0, sizeof(*cfg));
	cfg->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel));
	cfg->avatar_att = CaptureColumn(rel, trigger, trigger->tgargs[0]);
	cfg->conv_att = CaptureColumn(rel, trigger, trigger->tgargs[1]);
	cfg->role_att = CaptureColumn(rel, trigger, trigger->tgargs[2]);
	cfg->content_att = CaptureColumn(rel, trigger, trigger->tgargs[3]);
	cfg->assistant_roles = CommaList("assistant,ai,bot", true);
	cfg->user_roles = CommaList("user,human", true);
	cfg->context_turns = 6;
	for (k = 4; k < trigger->tgnargs; k++)
		CaptureOption(cfg, rel, trigger, trigger->tgargs[k]);
	/* the primary key breaks ties of order_col (messages of one transaction share now()) */
	CapturePrimaryKey(cfg, rel);
	for (k = 0; k < cfg->npk && cfg->norder < INDEX_MAX_KEYS; k++)
	{
		int			j;

		for (j = 0; j < cfg->norder && cfg->order_atts[j] != cfg->pk_atts[k]; j++)
			;
		if (j == cfg->norder)
			cfg->order_atts[cfg->norder++] = cfg->pk_atts[k];
	}
}

/* Quoted column name */
static const char *
ColName(Relation rel, int att)
{
	return quote_identifier(NameStr(TupleDescAttr(RelationGetDescr(rel), att - 1)->attname));
}

/* One conversation turn being collected backwards: its role and its pieces, newest first */
typedef struct CaptureTurn
{
	bool		assistant;
	List	   *pieces;
} CaptureTurn;

/* Query of earlier messages of the conversation, newest first */
static char *
ContextQuery(const CaptureConfig *cfg, Relation rel)
{
	StringInfoData sql,
				keys,
				params;
	int			k;

	initStringInfo(&sql);
	initStringInfo(&keys);
	initStringInfo(&params);
	for (k = 0; k < cfg->norder; k++)
	{
		appendStringInfo(&keys, "t.%s, ", ColName(rel, cfg->order_atts[k]));
		appendStringInfo(&params, "$%d, ", k + 2);
	}
	appendStringInfo(&sql,
					 "SELECT t.%s::text, t.%s::text FROM %s t WHERE t.%s = $1 AND (%st.ctid) < (%s$%d) "
					 "ORDER BY ",
					 ColName(rel, cfg->role_att), ColName(rel, cfg->content_att), cfg->relname,
					 ColName(rel, cfg->conv_att), keys.data, params.data, cfg->norder + 2);
	for (k = 0; k < cfg->norder; k++)
		appendStringInfo(&sql, "t.%s DESC, ", ColName(rel, cfg->order_atts[k]));
	appendStringInfoString(&sql, "t.ctid DESC");
	return sql.data;
}

/* Add a message to the turns collected backwards; false once the window is full */
static bool
CollectTurn(List **turns, bool assistant, char *content, int limit)
{
	CaptureTurn *last = *turns ? (CaptureTurn *) llast(*turns) : NULL;
	CaptureTurn *turn;

	if (last && last->assistant == assistant)
	{
		last->pieces = lappend(last->pieces, content);
		return true;
	}
	if (list_length(*turns) >= limit)
		return false;
	turn = palloc0(sizeof(CaptureTurn));
	turn->assistant = assistant;
	turn->pieces = list_make1(content);
	*turns = lappend(*turns, turn);
	return true;
}

/* Read earlier messages of the conversation into turns (newest first), up to limit turns */
static void
ReadContext(const CaptureConfig *cfg, Relation rel, HeapTuple tuple, List **turns, int limit)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			nargs = cfg->norder + 2,
				k;
	Oid		   *types = palloc(sizeof(Oid) * nargs);
	Datum	   *values = palloc(sizeof(Datum) * nargs);
	char	   *nulls = palloc(nargs);
	SPIPlanPtr	plan;
	Portal		portal;
	bool		more = true,
				isnull;

	types[0] = SPI_gettypeid(desc, cfg->conv_att);
	values[0] = SPI_getbinval(tuple, desc, cfg->conv_att, &isnull);
	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION), errmsg("the conversation column of the message is null")));
	nulls[0] = ' ';
	for (k = 0; k < cfg->norder; k++)
	{
		types[k + 1] = SPI_gettypeid(desc, cfg->order_atts[k]);
		values[k + 1] = SPI_getbinval(tuple, desc, cfg->order_atts[k], &isnull);
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("the order column %s of the message is null", ColName(rel, cfg->order_atts[k]))));
		nulls[k + 1] = ' ';
	}
	types[nargs - 1] = TIDOID;
	values[nargs - 1] = PointerGetDatum(&tuple->t_self);
	nulls[nargs - 1] = ' ';
	plan = SPI_prepare(ContextQuery(cfg, rel), nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare the conversation query: %s", SPI_result_code_string(SPI_result));
	/* not read-only: rows inserted by the same statement (user and assistant together) must be seen */
	portal = SPI_cursor_open(NULL, plan, values, nulls, false);
	while (more)
	{
		uint64		r;

		SPI_cursor_fetch(portal, true, 32);
		if (SPI_processed == 0)
			break;
		for (r = 0; r < SPI_processed && more; r++)
		{
			char	   *role = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
			char	   *content = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
			bool		a;

			if (role == NULL || (!(a = InRoleList(cfg->assistant_roles, role)) && !InRoleList(cfg->user_roles, role)))
				continue;
			more = CollectTurn(turns, a, content ? content : pstrdup(""), limit);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
}

/* Join a turn's pieces (collected newest first) in time order */
static char *
TurnText(const CaptureTurn *turn)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	for (k = list_length(turn->pieces) - 1; k >= 0; k--)
	{
		appendStringInfoString(&buf, (char *) list_nth(turn->pieces, k));
		if (k > 0)
			appendStringInfoChar(&buf, '\n');
	}
	return buf.data;
}

/* Avatar id of the message as a uuid datum (a text column is parsed) */
static Datum
CaptureAvatar(const CaptureConfig *cfg, Relation rel, HeapTuple tuple)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		isnull;
	Datum		d = SPI_getbinval(tuple, desc, cfg->avatar_att, &isnull);

	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION), errmsg("the avatar column of the message is null")));
	if (SPI_gettypeid(desc, cfg->avatar_att) == UUIDOID)
		return d;
	return DirectFunctionCall1(uuid_in, CStringGetDatum(SPI_getvalue(tuple, desc, cfg->avatar_att)));
}

/* The avatar's redact setting; 23503 when the caller cannot see the avatar */
static bool
CaptureRedacts(const char *schema, Datum avatar)
{
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {avatar};
	char	   *sql = psprintf("SELECT coalesce((a.settings->>'redact')::boolean, true) FROM %s.ft_avatars a WHERE a.id = $1",
							   schema);
	bool		isnull;
	bool		result;

	if (SPI_execute_with_args(sql, 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read avatar settings");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
				 errmsg("avatar %s does not exist", DatumGetCString(DirectFunctionCall1(uuid_out, avatar))),
				 errhint("The role inserting messages must be able to see the avatar in ft_avatars.")));
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return isnull ? true : result;
}

/* Turn the new assistant message into one example; errors are caught by the caller */
static void
CaptureMessage(const char *schema, const CaptureConfig *cfg, Relation rel, HeapTuple tuple,
			   volatile Datum *avatar_out, volatile bool *have_avatar)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum		avatar = CaptureAvatar(cfg, rel, tuple);
	bool		redact;
	List	   *turns = NIL;
	char	   *content = SPI_getvalue(tuple, desc, cfg->content_att);
	FtChatMessage *msgs;
	FtRedactCounts counts;
	FtExampleSet set;
	int			n,
				k;
	char	   *json;

	*avatar_out = avatar;
	*have_avatar = true;
	redact = CaptureRedacts(schema, avatar);
	CollectTurn(&turns, true, content ? content : pstrdup(""), INT_MAX);
	ReadContext(cfg, rel, tuple, &turns, cfg->context_turns + 2);
	/* the window starts with a user turn; an opening assistant message is no example */
	if (list_length(turns) > 1 && ((CaptureTurn *) llast(turns))->assistant)
		turns = list_delete_last(turns);
	if (list_length(turns) < 2)
		return;
	n = list_length(turns);
	msgs = palloc(sizeof(FtChatMessage) * n);
	for (k = 0; k < n; k++)
	{
		CaptureTurn *turn = list_nth(turns, n - 1 - k);

		msgs[k].role = turn->assistant ? "assistant" : "user";
		msgs[k].content = TurnText(turn);
	}
	memset(&counts, 0, sizeof(counts));
	json = ft_chat_example_json(msgs, n, redact, &counts);
	json = TakeMalloced(json, json ? strlen(json) : 0);
	memset(&set, 0, sizeof(set));
	set.n = 1;
	set.items = &(FtCutExample) {json, 0, counts};
	InsertExamples(schema, avatar, &set, cfg->category ? cstring_to_text(cfg->category) : NULL, redact, "capture");
}

/* Key of the app row for the failure record: its primary key values, else its ctid */
static char *
MessageKey(const CaptureConfig *cfg, Relation rel, HeapTuple tuple)
{
	StringInfoData buf;
	int			k;

	initStringInfo(&buf);
	if (cfg->npk == 0)
		return DatumGetCString(DirectFunctionCall1(tidout, PointerGetDatum(&tuple->t_self)));
	for (k = 0; k < cfg->npk; k++)
	{
		char	   *v = SPI_getvalue(tuple, RelationGetDescr(rel), cfg->pk_atts[k]);

		appendStringInfo(&buf, "%s%s=%s", k ? ", " : "", NameStr(TupleDescAttr(RelationGetDescr(rel), cfg->pk_atts[k] - 1)->attname),
						 v ? v : "NULL");
	}
	return buf.data;
}

/* Record a capture that failed, in its own subtransaction; a failure here only warns */
static void
RecordFailure(const char *schema, const CaptureConfig *cfg, Relation rel, HeapTuple tuple,
			  Datum avatar, bool have_avatar, ErrorData *edata)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		Oid			types[6] = {UUIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
		Datum		values[6];
		char		nulls[6] = {have_avatar ? ' ' : 'n', ' ', ' ', ' ', ' ', ' '};
		char	   *conv = SPI_getvalue(tuple, RelationGetDescr(rel), cfg->conv_att);
		char	   *sql = psprintf("INSERT INTO %s.ft_capture_failures "
								   "(avatar_id, owner_id, source_table, conversation, message_key, reason, sqlstate) "
								   "VALUES ($1, coalesce((SELECT a.owner_id FROM %s.ft_avatars a WHERE a.id = $1), %s.ft_current_owner()), "
								   "$2, $3, $4, $5, $6)", schema, schema, schema);

		if (conv == NULL)
			nulls[2] = 'n';
		values[0] = avatar;
		values[1] = ObjectIdGetDatum(RelationGetRelid(rel));
		values[2] = conv ? CStringGetTextDatum(conv) : (Datum) 0;
		values[3] = CStringGetTextDatum(MessageKey(cfg, rel, tuple));
		values[4] = CStringGetTextDatum(edata->message ? edata->message : "unknown error");
		values[5] = CStringGetTextDatum(unpack_sql_state(edata->sqlerrcode));
		if (SPI_execute_with_args(sql, 6, types, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into ft_capture_failures");
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *again;

		MemoryContextSwitchTo(oldcontext);
		again = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ereport(WARNING,
				(errmsg("ft_capture could not record a failed capture: %s", again->message),
				 errdetail("The capture failed with SQLSTATE %s: %s", unpack_sql_state(edata->sqlerrcode), edata->message)));
	}
	PG_END_TRY();
}

/*
 * ft_capture(): AFTER INSERT FOR EACH ROW trigger on an app's chat-message table. Each new
 * assistant message becomes one example (source 'capture'). The work runs in a subtransaction:
 * when it fails the app's insert still succeeds and the failure is recorded in
 * ft_capture_failures. Only configuration mistakes (wrong column names, bad options) fail the
 * insert, since they are setup errors that must be seen at once.
 */
Datum
ft_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	CaptureConfig cfg;
	Relation	rel;
	HeapTuple	tuple;
	char	   *role;
	const char *schema;
	MemoryContext oldcontext;
	ResourceOwner oldowner;
	volatile Datum avatar = (Datum) 0;
	volatile bool have_avatar = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ft_capture must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ft_capture must be an AFTER INSERT FOR EACH ROW trigger")));
	rel = trigdata->tg_relation;
	tuple = trigdata->tg_trigtuple;
	CaptureConfigure(&cfg, rel, trigdata->tg_trigger);
	role = SPI_getvalue(tuple, RelationGetDescr(rel), cfg.role_att);
	if (role == NULL || !InRoleList(cfg.assistant_roles, role))
		return PointerGetDatum(NULL);
	schema = ExtSchema(fcinfo);
	SPI_connect();
	oldcontext = CurrentMemoryContext;
	oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		CaptureMessage(schema, &cfg, rel, tuple, &avatar, &have_avatar);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		/* a cancel or shutdown must still stop the statement */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		RecordFailure(schema, &cfg, rel, tuple, avatar, have_avatar, edata);
	}
	PG_END_TRY();
	SPI_finish();
	return PointerGetDatum(NULL);
}
