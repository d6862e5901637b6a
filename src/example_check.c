/*
 * Structural checks of training examples in the OpenAI chat fine-tuning shape.
 *
 * The same walk serves the write trigger (stop at the first problem and raise it) and the
 * reporting function (collect every problem), so the two can never disagree.
 */
#include "postgres.h"

#include "example_check.h"
#include "pg_compat.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(ft_check_example);
PG_FUNCTION_INFO_V1(ft_example_problems);
PG_FUNCTION_INFO_V1(ft_examples_before_write);

typedef struct CheckState
{
	List	   *problems;
	bool		first_only;
} CheckState;

static const char *const TopLevelKeys[] = {"messages", "tools", "parallel_tool_calls", NULL};
static const char *const MessageKeys[] = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", NULL};
static const char *const Roles[] = {"system", "user", "assistant", "tool", NULL};

static bool AddProblem(CheckState *state, const char *code, const char *path, const char *fmt,...) pg_attribute_printf(4, 5);

/* Record a problem; returns true when the caller should stop walking */
static bool
AddProblem(CheckState *state, const char *code, const char *path, const char *fmt,...)
{
	FtExampleProblem *problem = palloc(sizeof(FtExampleProblem));
	StringInfoData buf;
	va_list		args;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	problem->code = code;
	problem->path = pstrdup(path);
	problem->detail = buf.data;
	state->problems = lappend(state->problems, problem);
	return state->first_only;
}

/* Is name one of the NULL-terminated list? */
static inline bool
InList(const char *const *list, const char *name, int len)
{
	for (; *list; list++)
		if ((int) strlen(*list) == len && strncmp(*list, name, len) == 0)
			return true;
	return false;
}

/* Look up a key of an object container */
static inline bool
GetKey(JsonbContainer *container, const char *key, JsonbValue *out)
{
	return getKeyJsonValueFromContainer(container, key, strlen(key), out) != NULL;
}

static inline bool
IsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static inline bool
IsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* Human name of a JSON value's type, for error details */
static const char *
JsonTypeName(JsonbValue *v)
{
	if (IsObject(v))
		return "an object";
	if (IsArray(v))
		return "an array";
	switch (v->type)
	{
		case jbvNull:
			return "null";
		case jbvString:
			return "a string";
		case jbvNumeric:
			return "a number";
		case jbvBool:
			return "a boolean";
		default:
			return "an unexpected value";
	}
}

/* Report every key of an object that is not in the allowed list */
static bool
CheckKeys(CheckState *state, JsonbContainer *object, const char *const *allowed, const char *path)
{
	JsonbIterator *it = JsonbIteratorInit(object);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY || InList(allowed, v.val.string.val, v.val.string.len))
			continue;
		if (AddProblem(state, "unknown_key", path, "Key \"%.*s\" is not allowed here.",
					   v.val.string.len, v.val.string.val))
			return true;
	}
	return false;
}

/* weight must be the number 0 or 1 */
static bool
IsZeroOrOne(JsonbValue *v)
{
	char	   *text;
	bool		result;

	if (v->type != jbvNumeric)
		return false;
	text = numeric_normalize(v->val.numeric);
	/* normalised text has no trailing zeros, so 1.0 reads as 1 */
	result = strcmp(text, "0") == 0 || strcmp(text, "1") == 0;
	pfree(text);
	return result;
}

/* tool_calls: [{id, type: "function", function: {name, arguments}}] */
static bool
CheckToolCalls(CheckState *state, JsonbValue *calls, const char *path)
{
	uint32		n;

	if (!IsArray(calls) || JsonContainerSize(calls->val.binary.data) == 0)
		return AddProblem(state, "tool_calls_invalid", path, "tool_calls must be a non-empty array, not %s.",
						  IsArray(calls) ? "an empty array" : JsonTypeName(calls));
	n = JsonContainerSize(calls->val.binary.data);
	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *call = getIthJsonbValueFromContainer(calls->val.binary.data, i);
		JsonbValue	id,
					type,
					function,
					name,
					arguments;
		char	   *item = psprintf("%s[%u]", path, i);
		bool		valid = IsObject(call) &&
			GetKey(call->val.binary.data, "id", &id) && id.type == jbvString &&
			GetKey(call->val.binary.data, "type", &type) && type.type == jbvString &&
			type.val.string.len == 8 && strncmp(type.val.string.val, "function", 8) == 0 &&
			GetKey(call->val.binary.data, "function", &function) && IsObject(&function) &&
			GetKey(function.val.binary.data, "name", &name) && name.type == jbvString &&
			GetKey(function.val.binary.data, "arguments", &arguments) && arguments.type == jbvString;

		if (!valid && AddProblem(state, "tool_calls_invalid", item,
								 "Each tool call needs a string id, type \"function\" and a function object with string name and arguments."))
			return true;
	}
	return false;
}

/* content: a string, except that an assistant message with tool_calls may leave it out or null */
static bool
CheckContent(CheckState *state, JsonbContainer *message, bool is_assistant, bool has_tool_calls, const char *path)
{
	JsonbValue	content;
	char	   *where = psprintf("%s.content", path);

	if (!GetKey(message, "content", &content) || content.type == jbvNull)
	{
		if (is_assistant && has_tool_calls)
			return false;
		return AddProblem(state, "missing_content", where,
						  "The message has no content; only an assistant message with tool_calls may omit it.");
	}
	if (content.type != jbvString)
		return AddProblem(state, "content_not_string", where, "content must be a string, not %s.",
						  JsonTypeName(&content));
	return false;
}

/* Check one message; sets *is_assistant */
static bool
CheckMessage(CheckState *state, JsonbValue *message, int index, bool *is_assistant)
{
	char	   *path = psprintf("messages[%d]", index);
	JsonbContainer *obj;
	JsonbValue	role,
				v;
	bool		assistant,
				has_tool_calls;

	*is_assistant = false;
	if (!IsObject(message))
		return AddProblem(state, "message_not_object", path, "Each message must be an object, not %s.",
						  JsonTypeName(message));
	obj = message->val.binary.data;
	if (CheckKeys(state, obj, MessageKeys, path))
		return true;
	if (!GetKey(obj, "role", &role) || role.type != jbvString)
		return AddProblem(state, "missing_role", psprintf("%s.role", path),
						  "Each message needs a string role (system, user, assistant or tool).");
	if (!InList(Roles, role.val.string.val, role.val.string.len))
		return AddProblem(state, "unknown_role", psprintf("%s.role", path),
						  "Role \"%.*s\" is not one of system, user, assistant, tool.",
						  role.val.string.len, role.val.string.val);
	assistant = role.val.string.len == 9 && strncmp(role.val.string.val, "assistant", 9) == 0;
	*is_assistant = assistant;
	has_tool_calls = GetKey(obj, "tool_calls", &v);
	if (has_tool_calls && !assistant &&
		AddProblem(state, "tool_calls_not_allowed", psprintf("%s.tool_calls", path),
				   "Only assistant messages may carry tool_calls."))
		return true;
	if (has_tool_calls && assistant && CheckToolCalls(state, &v, psprintf("%s.tool_calls", path)))
		return true;
	if (CheckContent(state, obj, assistant, has_tool_calls, path))
		return true;
	if (GetKey(obj, "weight", &v))
	{
		if (!assistant && AddProblem(state, "weight_not_allowed", psprintf("%s.weight", path),
									 "Only assistant messages may carry a weight."))
			return true;
		if (assistant && !IsZeroOrOne(&v) &&
			AddProblem(state, "weight_invalid", psprintf("%s.weight", path), "weight must be 0 or 1."))
			return true;
	}
	if (GetKey(obj, "name", &v) && v.type != jbvString &&
		AddProblem(state, "name_not_string", psprintf("%s.name", path), "name must be a string."))
		return true;
	if (role.val.string.len == 4 && strncmp(role.val.string.val, "tool", 4) == 0 &&
		(!GetKey(obj, "tool_call_id", &v) || v.type != jbvString) &&
		AddProblem(state, "missing_tool_call_id", psprintf("%s.tool_call_id", path),
				   "A tool message needs the string tool_call_id of the call it answers."))
		return true;
	return false;
}

/* tools: [{type: "function", function: {name, ...}}] */
static bool
CheckTools(CheckState *state, JsonbContainer *root)
{
	JsonbValue	tools;
	uint32		n;

	if (!GetKey(root, "tools", &tools))
		return false;
	if (!IsArray(&tools))
		return AddProblem(state, "tools_not_array", "tools", "tools must be an array, not %s.", JsonTypeName(&tools));
	n = JsonContainerSize(tools.val.binary.data);
	for (uint32 i = 0; i < n; i++)
	{
		JsonbValue *tool = getIthJsonbValueFromContainer(tools.val.binary.data, i);
		JsonbValue	function,
					name;

		if (!(IsObject(tool) && GetKey(tool->val.binary.data, "function", &function) && IsObject(&function) &&
			  GetKey(function.val.binary.data, "name", &name) && name.type == jbvString) &&
			AddProblem(state, "tool_invalid", psprintf("tools[%u]", i),
					   "Each tool needs a function object with a string name."))
			return true;
	}
	return false;
}

/* Walk the whole example */
static void
WalkExample(CheckState *state, Jsonb *example)
{
	JsonbContainer *root = &example->root;
	JsonbValue	messages,
				v;
	uint32		n;
	bool		any_assistant = false;

	if (!JsonContainerIsObject(root) || JB_ROOT_IS_SCALAR(example))
	{
		AddProblem(state, "not_an_object", "$", "An example must be a JSON object with a \"messages\" array.");
		return;
	}
	if (CheckKeys(state, root, TopLevelKeys, "$"))
		return;
	if (!GetKey(root, "messages", &messages))
	{
		AddProblem(state, "missing_messages", "messages", "The example has no \"messages\" array.");
		return;
	}
	if (!IsArray(&messages) || JsonContainerSize(messages.val.binary.data) == 0)
	{
		AddProblem(state, "messages_not_array", "messages", "messages must be a non-empty array, not %s.",
				   IsArray(&messages) ? "an empty array" : JsonTypeName(&messages));
		return;
	}
	if (CheckTools(state, root))
		return;
	if (GetKey(root, "parallel_tool_calls", &v) && v.type != jbvBool &&
		AddProblem(state, "parallel_tool_calls_invalid", "parallel_tool_calls", "parallel_tool_calls must be a boolean."))
		return;
	n = JsonContainerSize(messages.val.binary.data);
	for (uint32 i = 0; i < n; i++)
	{
		bool		is_assistant;

		if (CheckMessage(state, getIthJsonbValueFromContainer(messages.val.binary.data, i), i, &is_assistant))
			return;
		any_assistant |= is_assistant;
	}
	if (!any_assistant)
		AddProblem(state, "no_assistant_message", "messages",
				   "An example needs at least one assistant message to learn from.");
}

/* A bare messages array is accepted and stored as {"messages": [...]} */
Jsonb *
FtNormalizeExample(Jsonb *example)
{
	JsonbParseState *parse = NULL;
	JsonbValue	key,
				value;

	if (!JB_ROOT_IS_ARRAY(example) || JB_ROOT_IS_SCALAR(example))
		return example;
	key.type = jbvString;
	key.val.string.val = "messages";
	key.val.string.len = 8;
	value.type = jbvBinary;
	value.val.binary.data = &example->root;
	value.val.binary.len = VARSIZE(example) - VARHDRSZ;
	pushJsonbValue(&parse, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&parse, WJB_KEY, &key);
	pushJsonbValue(&parse, WJB_VALUE, &value);
	return JsonbValueToJsonb(pushJsonbValue(&parse, WJB_END_OBJECT, NULL));
}

/* Structural problems of a (normalised) example */
List *
FtExampleProblems(Jsonb *example, bool first_only)
{
	CheckState	state = {NIL, first_only};

	WalkExample(&state, example);
	return state.problems;
}

/* Raise the first problem of an example, if any */
void
FtCheckExample(Jsonb *example)
{
	List	   *problems = FtExampleProblems(example, true);
	FtExampleProblem *first;

	if (problems == NIL)
		return;
	first = linitial(problems);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid training example: %s at %s", first->code, first->path),
			 errdetail("%s", first->detail),
			 errhint("An example looks like {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}.")));
}

/*
 * Check an example and return it in stored form
 */
Datum
ft_check_example(PG_FUNCTION_ARGS)
{
	Jsonb	   *example = FtNormalizeExample(PG_GETARG_JSONB_P(0));

	FtCheckExample(example);
	PG_RETURN_JSONB_P(example);
}

/*
 * Every structural problem of an example, as rows
 */
Datum
ft_example_problems(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	foreach(lc, FtExampleProblems(FtNormalizeExample(PG_GETARG_JSONB_P(0)), false))
	{
		FtExampleProblem *p = lfirst(lc);
		Datum		values[3] = {CStringGetTextDatum(p->code), CStringGetTextDatum(p->path),
		CStringGetTextDatum(p->detail)};
		bool		nulls[3] = {false, false, false};

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * Trigger: check and normalise messages before a row of ft_examples is written
 */
Datum
ft_examples_before_write(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	int			attnum;
	bool		isnull;
	Datum		value;
	Jsonb	   *example;
	Jsonb	   *normal;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "ft_examples_before_write must be a BEFORE ROW trigger");
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = trigdata->tg_relation->rd_att;
	attnum = SPI_fnumber(desc, "messages");
	if (attnum <= 0)
		elog(ERROR, "ft_examples_before_write: table has no messages column");
	value = heap_getattr(tuple, attnum, desc, &isnull);
	/* NULL is left for the NOT NULL constraint to report */
	if (isnull)
		return PointerGetDatum(tuple);
	example = DatumGetJsonbP(value);
	normal = FtNormalizeExample(example);
	FtCheckExample(normal);
	if (normal != example)
	{
		bool		replace_null = false;

		value = JsonbPGetDatum(normal);
		tuple = heap_modify_tuple_by_cols(tuple, desc, 1, &attnum, &value, &replace_null);
	}
	return PointerGetDatum(tuple);
}
