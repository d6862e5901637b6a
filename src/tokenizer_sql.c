/*
 * SQL functions over the tokenizer: ft_token_count, ft_tokenize, ft_chat_token_count and
 * ft_assistant_token_count, plus the C helpers other parts of pg_finetune call.
 *
 * Rank files are read on first use and kept for the life of the backend in malloc'd memory
 * (about 4.6 MB for o200k_base, 2.4 MB for cl100k_base), independent of memory contexts.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer_sql.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(ft_token_count);
PG_FUNCTION_INFO_V1(ft_tokenize);
PG_FUNCTION_INFO_V1(ft_chat_token_count);
PG_FUNCTION_INFO_V1(ft_assistant_token_count);

char	   *ft_tokenizer_dir = NULL;

#define N_KINDS 2

/* Loaded encodings and the file each came from, per pattern kind */
static FtEncoding *loaded[N_KINDS];
static char *loaded_from[N_KINDS];

static const char *const KindNames[N_KINDS] = {"o200k_base", "cl100k_base"};

/*
 * tiktoken's model-name table (tiktoken/model.py): exact names first, then prefixes in order,
 * so "ft:gpt-4o" wins over "ft:gpt-4".  Two prefixes are added where tiktoken would answer
 * cl100k_base for an o200k model: fine-tuned gpt-4.1 and o4-mini models.
 */
typedef struct ModelPrefix
{
	const char *prefix;
	bool		exact;
	FtEncodingKind kind;
} ModelPrefix;

static const ModelPrefix ModelPrefixes[] = {
	{"o1", true, FT_ENCODING_O200K_BASE},
	{"o3", true, FT_ENCODING_O200K_BASE},
	{"o4-mini", true, FT_ENCODING_O200K_BASE},
	{"gpt-5", true, FT_ENCODING_O200K_BASE},
	{"gpt-4.1", true, FT_ENCODING_O200K_BASE},
	{"gpt-4o", true, FT_ENCODING_O200K_BASE},
	{"gpt-4", true, FT_ENCODING_CL100K_BASE},
	{"gpt-3.5-turbo", true, FT_ENCODING_CL100K_BASE},
	{"gpt-3.5", true, FT_ENCODING_CL100K_BASE},
	{"gpt-35-turbo", true, FT_ENCODING_CL100K_BASE},
	{"davinci-002", true, FT_ENCODING_CL100K_BASE},
	{"babbage-002", true, FT_ENCODING_CL100K_BASE},
	{"text-embedding-ada-002", true, FT_ENCODING_CL100K_BASE},
	{"text-embedding-3-small", true, FT_ENCODING_CL100K_BASE},
	{"text-embedding-3-large", true, FT_ENCODING_CL100K_BASE},
	{"o1-", false, FT_ENCODING_O200K_BASE},
	{"o3-", false, FT_ENCODING_O200K_BASE},
	{"o4-mini-", false, FT_ENCODING_O200K_BASE},
	{"gpt-5-", false, FT_ENCODING_O200K_BASE},
	{"gpt-4.5-", false, FT_ENCODING_O200K_BASE},
	{"gpt-4.1-", false, FT_ENCODING_O200K_BASE},
	{"chatgpt-4o-", false, FT_ENCODING_O200K_BASE},
	{"gpt-4o-", false, FT_ENCODING_O200K_BASE},
	{"gpt-4-", false, FT_ENCODING_CL100K_BASE},
	{"gpt-3.5-turbo-", false, FT_ENCODING_CL100K_BASE},
	{"gpt-35-turbo-", false, FT_ENCODING_CL100K_BASE},
	{"ft:gpt-4o", false, FT_ENCODING_O200K_BASE},
	{"ft:gpt-4.1", false, FT_ENCODING_O200K_BASE},	/* not in tiktoken */
	{"ft:o4-mini", false, FT_ENCODING_O200K_BASE},	/* not in tiktoken */
	{"ft:gpt-4", false, FT_ENCODING_CL100K_BASE},
	{"ft:gpt-3.5-turbo", false, FT_ENCODING_CL100K_BASE},
	{"ft:davinci-002", false, FT_ENCODING_CL100K_BASE},
	{"ft:babbage-002", false, FT_ENCODING_CL100K_BASE},
};

/* Cookbook constants of the tool-definition accounting (num_tokens_for_tools) */
#define TOOL_PROP_INIT 3
#define TOOL_PROP_KEY 3
#define TOOL_ENUM_INIT (-3)
#define TOOL_ENUM_ITEM 3
#define TOOL_FUNC_END 12

/* Define ft.tokenizer_dir */
void
FtTokenizerDefineGUCs(void)
{
	DefineCustomStringVariable("ft.tokenizer_dir",
							   "Directory holding the tokenizer's BPE rank files (o200k_base.tiktoken, cl100k_base.tiktoken).",
							   "Empty means the pg_finetune directory under the installation's share directory.",
							   &ft_tokenizer_dir, "", PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Polled by the tokenizer: ask it to stop when CHECK_FOR_INTERRUPTS would act */
static int
TokenizerInterruptPending(void *arg)
{
	return INTERRUPTS_PENDING_CONDITION() && INTERRUPTS_CAN_BE_PROCESSED();
}

/* Full path of an encoding's rank file under ft.tokenizer_dir or the share directory */
static char *
RankFilePath(const char *name)
{
	char		share[MAXPGPATH];

	if (ft_tokenizer_dir != NULL && ft_tokenizer_dir[0] != '\0')
		return psprintf("%s/%s.tiktoken", ft_tokenizer_dir, name);
	get_share_path(my_exec_path, share);
	return psprintf("%s/pg_finetune/%s.tiktoken", share, name);
}

/* Report why a rank file could not be loaded */
static void
ReportLoadFailure(const char *path, const char *name, const char *message)
{
	struct stat st;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_FILE),
				errmsg("tokenizer file for encoding %s not found: \"%s\"", name, path),
				errhint("Install pg_finetune's rank files (make install copies them to SHAREDIR/pg_finetune), or point the setting ft.tokenizer_dir at the directory holding %s.tiktoken.", name));
	if (strstr(message, "out of memory") != NULL)
		ereport(ERROR,
				errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("%s", message));
	if (access(path, R_OK) != 0)
		ereport(ERROR,
				errcode_for_file_access(),
				errmsg("%s", message),
				errhint("Check the file's permissions, or the setting ft.tokenizer_dir."));
	ereport(ERROR,
			errcode(ERRCODE_DATA_CORRUPTED),
			errmsg("%s", message),
			errhint("Reinstall the rank file %s.tiktoken, or check the setting ft.tokenizer_dir.", name));
}

/* The loaded encoding of a kind, reading its rank file on first use or after a move */
static const FtEncoding *
GetEncoding(FtEncodingKind kind)
{
	const char *name = KindNames[kind];
	char	   *path = RankFilePath(name);
	char		err[1024];
	FtEncoding *enc;
	char	   *from;

	if (loaded[kind] != NULL && strcmp(loaded_from[kind], path) == 0)
	{
		pfree(path);
		return loaded[kind];
	}
	enc = ft_encoding_load(path, name, err, sizeof(err));
	if (enc == NULL)
		ReportLoadFailure(path, name, err);
	from = strdup(path);
	if (from == NULL)
	{
		ft_encoding_free(enc);
		ereport(ERROR, errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory"));
	}
	ft_encoding_free(loaded[kind]);
	free(loaded_from[kind]);
	loaded[kind] = enc;
	loaded_from[kind] = from;
	ft_set_interrupt_callback(TokenizerInterruptPending, NULL);
	pfree(path);
	return enc;
}

/* Schema of the pg_finetune extension, InvalidOid when it is not installed (PG15 lacks get_extension_schema) */
static Oid
ExtensionSchema(void)
{
	Oid			extoid = get_extension_oid("pg_finetune", true);
	Oid			result = InvalidOid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;

	if (!OidIsValid(extoid))
		return InvalidOid;
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tuple = systable_getnext(scan);
	if (HeapTupleIsValid(tuple))
		result = ((Form_pg_extension) GETSTRUCT(tuple))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/* Encoding of a model listed in ft_models; false when it is not listed */
static bool
ModelEncodingFromTable(const char *model, FtEncodingKind *kind)
{
	Oid			nsp = ExtensionSchema();
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *query;
	char	   *encoding = NULL;
	bool		found;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("ft_models", nsp)))
		return false;
	query = psprintf("SELECT encoding FROM %s.ft_models WHERE model = $1",
					 quote_identifier(get_namespace_name(nsp)));
	values[0] = CStringGetTextDatum(model);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(query, 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read ft_models");
	if (SPI_processed > 0)
		encoding = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	found = encoding != NULL;
	if (found && !ft_encoding_kind_from_name(encoding, kind))
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("model \"%s\" has unknown encoding \"%s\" in ft_models", model, encoding),
				errhint("Supported encodings are %s.", FT_ENCODING_NAMES));
	SPI_finish();
	return found;
}

/* Encoding of a model by tiktoken's name table; false when no entry matches */
static bool
ModelEncodingFromPrefix(const char *model, FtEncodingKind *kind)
{
	int			i;

	for (i = 0; i < lengthof(ModelPrefixes); i++)
	{
		const ModelPrefix *p = &ModelPrefixes[i];

		if (p->exact ? strcmp(model, p->prefix) == 0 :
			strncmp(model, p->prefix, strlen(p->prefix)) == 0)
		{
			*kind = p->kind;
			return true;
		}
	}
	return false;
}

/* Pattern kind of an encoding name or model name, or an error listing the choices */
static FtEncodingKind
ResolveKind(const char *encoding_or_model)
{
	FtEncodingKind kind;

	if (ft_encoding_kind_from_name(encoding_or_model, &kind) ||
		ModelEncodingFromTable(encoding_or_model, &kind) ||
		ModelEncodingFromPrefix(encoding_or_model, &kind))
		return kind;
	ereport(ERROR,
			errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			errmsg("unknown encoding or model \"%s\"", encoding_or_model),
			errhint("Use an encoding (%s), a model listed in ft_models, or an OpenAI model name such as gpt-4o-mini-2024-07-18.",
					FT_ENCODING_NAMES));
	pg_unreachable();
}

/* Exported: the encoding of a model or encoding name */
const FtEncoding *
FtEncodingForModel(const char *model)
{
	return GetEncoding(ResolveKind(model));
}

/* Resolution cached per call site; valid while the transaction and command do not change */
typedef struct KindCache
{
	LocalTransactionId lxid;
	CommandId	cid;
	FtEncodingKind kind;
	int			len;
	char		key[FLEXIBLE_ARRAY_MEMBER];
} KindCache;

/* Encoding named by a text argument, resolving each distinct name once per command */
static const FtEncoding *
EncodingForArg(FunctionCallInfo fcinfo, text *arg)
{
	KindCache  *cache = (KindCache *) fcinfo->flinfo->fn_extra;
	int			len = VARSIZE_ANY_EXHDR(arg);
	CommandId	cid = GetCurrentCommandId(false);
	FtEncodingKind kind;

	if (cache != NULL && cache->len == len && cache->lxid == MyProc->lxid &&
		cache->cid == cid && memcmp(cache->key, VARDATA_ANY(arg), len) == 0)
		return GetEncoding(cache->kind);
	kind = ResolveKind(text_to_cstring(arg));
	if (cache == NULL || cache->len < len)
	{
		if (cache != NULL)
			pfree(cache);
		cache = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, offsetof(KindCache, key) + len);
		fcinfo->flinfo->fn_extra = cache;
	}
	cache->lxid = MyProc->lxid;
	cache->cid = cid;
	cache->kind = kind;
	cache->len = len;
	memcpy(cache->key, VARDATA_ANY(arg), len);
	return GetEncoding(kind);
}

/* Raise the error behind a failed encoding, or handle the pending interrupt that stopped it */
static void
RetryAfterFailure(size_t n)
{
	if (n == FT_ENCODE_NOMEM)
		ereport(ERROR,
				errcode(ERRCODE_OUT_OF_MEMORY),
				errmsg("out of memory while tokenizing"));
	/* Aborted because an interrupt is pending: process it (usually an error), then go on */
	CHECK_FOR_INTERRUPTS();
}

/* Exported: tokens of a text */
int64
FtCountTokens(const FtEncoding *enc, const char *text, size_t len)
{
	size_t		n;

	while (FT_ENCODE_FAILED(n = ft_count_tokens(enc, text, len)))
		RetryAfterFailure(n);
	return (int64) n;
}

/* Token ids of a text in a palloc'd array; *count receives their number */
static uint32_t *
EncodeIds(const FtEncoding *enc, const char *text, size_t len, size_t *count)
{
	/* About four bytes per token in prose; a second pass when the guess was short */
	size_t		cap = len / 3 + 16;
	uint32_t   *ids = palloc_extended(cap * sizeof(uint32_t), MCXT_ALLOC_HUGE);
	size_t		n;

	for (;;)
	{
		n = ft_encode(enc, text, len, ids, cap);
		if (FT_ENCODE_FAILED(n))
		{
			RetryAfterFailure(n);
			continue;
		}
		if (n <= cap)
			break;
		cap = n;
		ids = repalloc_huge(ids, cap * sizeof(uint32_t));
	}
	*count = n;
	return ids;
}

/* Token count as SQL integer */
static int32
CountAsInt32(int64 n)
{
	if (n > PG_INT32_MAX)
		ereport(ERROR,
				errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				errmsg("token count %lld exceeds the integer range", (long long) n));
	return (int32) n;
}

/* ft_token_count(text, encoding_or_model): tokens of a text */
Datum
ft_token_count(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const FtEncoding *enc = EncodingForArg(fcinfo, PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT32(CountAsInt32(FtCountTokens(enc, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t))));
}

/* ft_tokenize(text, encoding_or_model): token ids of a text, as tiktoken's encode_ordinary */
Datum
ft_tokenize(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const FtEncoding *enc = EncodingForArg(fcinfo, PG_GETARG_TEXT_PP(1));
	size_t		n;
	uint32_t   *ids = EncodeIds(enc, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &n);
	ArrayType  *result;
	size_t		nbytes;

	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT4OID));
	/* Build the int4[] in place: ids are below 2^31, so their bits are the int4 values */
	if (n > (MaxAllocSize - ARR_OVERHEAD_NONULLS(1)) / sizeof(int32))
		ereport(ERROR,
				errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				errmsg("text has too many tokens (%zu) for an array", n));
	nbytes = ARR_OVERHEAD_NONULLS(1) + n * sizeof(int32);
	result = palloc0(nbytes);
	SET_VARSIZE(result, nbytes);
	result->ndim = 1;
	result->dataoffset = 0;
	result->elemtype = INT4OID;
	ARR_DIMS(result)[0] = (int) n;
	ARR_LBOUND(result)[0] = 1;
	memcpy(ARR_DATA_PTR(result), ids, n * sizeof(int32));
	pfree(ids);
	PG_RETURN_ARRAYTYPE_P(result);
}

/* ---------------------------------------------------------------- chat accounting */

/* Value of a key in a JSON object container, NULL when absent */
static JsonbValue *
GetKey(JsonbContainer *obj, const char *key)
{
	if (obj == NULL || !JsonContainerIsObject(obj))
		return NULL;
	return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

/* Container of a jbvBinary value of the wanted kind, else NULL */
static JsonbContainer *
AsContainer(JsonbValue *v, bool want_array)
{
	if (v == NULL || v->type != jbvBinary)
		return NULL;
	if (want_array ? !JsonContainerIsArray(v->val.binary.data) :
		!JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/* Tokens of a JSON string value (0 for anything else) */
static int64
StringTokens(const FtEncoding *enc, JsonbValue *v)
{
	if (v == NULL || v->type != jbvString)
		return 0;
	return FtCountTokens(enc, v->val.string.val, v->val.string.len);
}

/* Text of a JSON value as the tool accounting concatenates it: strings bare, others as JSON */
static void
AppendValueText(StringInfo buf, JsonbValue *v)
{
	if (v == NULL)
		return;
	if (v->type == jbvString)
		appendBinaryStringInfo(buf, v->val.string.val, v->val.string.len);
	else if (v->type == jbvBinary)
		(void) JsonbToCString(buf, v->val.binary.data, v->val.binary.len);
	else
	{
		Jsonb	   *scalar = JsonbValueToJsonb(v);

		(void) JsonbToCString(buf, &scalar->root, VARSIZE(scalar));
	}
}

/* Append a description without one trailing period, as the cookbook does */
static void
AppendDescription(StringInfo buf, JsonbValue *v)
{
	int			start = buf->len;

	AppendValueText(buf, v);
	if (buf->len > start && buf->data[buf->len - 1] == '.')
		buf->data[--buf->len] = '\0';
}

/* Tokens of a StringInfo */
static int64
BufTokens(const FtEncoding *enc, StringInfo buf)
{
	return FtCountTokens(enc, buf->data, buf->len);
}

/*
 * Tokens of a message's content: a string, or an array of content parts whose "text" strings
 * are counted (the cookbook predates content parts; images and audio are not counted)
 */
static int64
ContentTokens(const FtEncoding *enc, JsonbValue *content)
{
	JsonbContainer *parts = AsContainer(content, true);
	int64		n = 0;
	uint32		i;

	if (parts == NULL)
		return StringTokens(enc, content);
	for (i = 0; i < JsonContainerSize(parts); i++)
	{
		JsonbValue *part = getIthJsonbValueFromContainer(parts, i);

		n += StringTokens(enc, GetKey(AsContainer(part, false), "text"));
	}
	return n;
}

/*
 * Tokens of assistant tool calls.  The cookbook formula skips non-string values, so a tool
 * call would cost nothing; we count the strings the model actually produces: each call's
 * function name and arguments JSON text ("function_call" of the legacy format likewise).
 */
static int64
FunctionCallTokens(const FtEncoding *enc, JsonbContainer *call)
{
	return StringTokens(enc, GetKey(call, "name")) + StringTokens(enc, GetKey(call, "arguments"));
}

/* Tokens of a "tool_calls" array */
static int64
ToolCallsTokens(const FtEncoding *enc, JsonbValue *calls)
{
	JsonbContainer *arr = AsContainer(calls, true);
	int64		n = 0;
	uint32		i;

	for (i = 0; arr != NULL && i < JsonContainerSize(arr); i++)
	{
		JsonbContainer *call = AsContainer(getIthJsonbValueFromContainer(arr, i), false);

		n += FunctionCallTokens(enc, AsContainer(GetKey(call, "function"), false));
	}
	return n;
}

/* A message must be a JSON object */
static JsonbContainer *
MessageContainer(JsonbContainer *messages, uint32 i)
{
	JsonbContainer *msg = AsContainer(getIthJsonbValueFromContainer(messages, i), false);

	if (msg == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("message %u is not a JSON object", i + 1),
				errhint("Each message is an object such as {\"role\": \"user\", \"content\": \"Hi\"}."));
	return msg;
}

/*
 * Cookbook tokens of one message: 3, plus the tokens of every string value, plus 1 for a
 * name; tool calls as FunctionCallTokens says.  *assistant gets the content tokens of an
 * assistant message.
 */
static int64
MessageTokens(const FtEncoding *enc, JsonbContainer *msg, int64 *assistant)
{
	JsonbValue *role = GetKey(msg, "role");
	bool		is_assistant = role != NULL && role->type == jbvString &&
		role->val.string.len == 9 && memcmp(role->val.string.val, "assistant", 9) == 0;
	JsonbIterator *it = JsonbIteratorInit(msg);
	JsonbIteratorToken tok;
	JsonbValue	key = {0};
	JsonbValue	v;
	int64		n = 3;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = v;
		else if (tok == WJB_VALUE)
		{
			const char *k = key.val.string.val;
			int			klen = key.val.string.len;

			if (klen == 7 && memcmp(k, "content", 7) == 0)
			{
				int64		c = ContentTokens(enc, &v);

				n += c;
				if (is_assistant)
					*assistant += c;
			}
			else if (klen == 10 && memcmp(k, "tool_calls", 10) == 0)
				n += ToolCallsTokens(enc, &v);
			else if (klen == 13 && memcmp(k, "function_call", 13) == 0)
				n += FunctionCallTokens(enc, AsContainer(&v, false));
			else
			{
				n += StringTokens(enc, &v);
				if (klen == 4 && memcmp(k, "name", 4) == 0)
					n += 1;
			}
		}
	}
	return n;
}

/* Tokens of one function's properties (cookbook num_tokens_for_tools) */
static int64
PropertiesTokens(const FtEncoding *enc, JsonbContainer *props)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	key = {0};
	JsonbValue	v;
	int64		n;

	if (props == NULL || JsonContainerSize(props) == 0)
		return 0;
	n = TOOL_PROP_INIT;
	it = JsonbIteratorInit(props);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		JsonbContainer *prop;
		JsonbContainer *items;
		StringInfoData line;
		uint32		i;

		if (tok == WJB_KEY)
		{
			key = v;
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		prop = AsContainer(&v, false);
		n += TOOL_PROP_KEY;
		if ((items = AsContainer(GetKey(prop, "enum"), true)) != NULL)
		{
			n += TOOL_ENUM_INIT;
			for (i = 0; i < JsonContainerSize(items); i++)
			{
				StringInfoData item;

				initStringInfo(&item);
				AppendValueText(&item, getIthJsonbValueFromContainer(items, i));
				n += TOOL_ENUM_ITEM + BufTokens(enc, &item);
				pfree(item.data);
			}
		}
		initStringInfo(&line);
		appendBinaryStringInfo(&line, key.val.string.val, key.val.string.len);
		appendStringInfoChar(&line, ':');
		AppendValueText(&line, GetKey(prop, "type"));
		appendStringInfoChar(&line, ':');
		AppendDescription(&line, GetKey(prop, "description"));
		n += BufTokens(enc, &line);
		pfree(line.data);
	}
	return n;
}

/*
 * Tokens of tool definitions (cookbook num_tokens_for_tools): per function func_init
 * (7 for o200k_base, 10 for cl100k_base) + "name:description" + properties; 12 once at the end.
 * Entries may be {"type": "function", "function": {...}} or bare functions (legacy "functions").
 */
static int64
ToolsTokens(const FtEncoding *enc, JsonbContainer *tools)
{
	int			func_init = ft_encoding_is_o200k(enc) ? 7 : 10;
	int64		n = 0;
	uint32		i;

	if (tools == NULL || JsonContainerSize(tools) == 0)
		return 0;
	for (i = 0; i < JsonContainerSize(tools); i++)
	{
		JsonbContainer *tool = AsContainer(getIthJsonbValueFromContainer(tools, i), false);
		JsonbContainer *fn = AsContainer(GetKey(tool, "function"), false);
		StringInfoData line;

		if (fn == NULL)
			fn = tool;
		n += func_init;
		initStringInfo(&line);
		AppendValueText(&line, GetKey(fn, "name"));
		appendStringInfoChar(&line, ':');
		AppendDescription(&line, GetKey(fn, "description"));
		n += BufTokens(enc, &line);
		pfree(line.data);
		n += PropertiesTokens(enc, AsContainer(GetKey(AsContainer(GetKey(fn, "parameters"), false),
													  "properties"), false));
	}
	return n + TOOL_FUNC_END;
}

/* Exported: cookbook tokens of a chat example */
int
FtChatTokenCount(Jsonb *example, const FtEncoding *enc, int *assistant_tokens)
{
	JsonbContainer *root = &example->root;
	JsonbContainer *messages = NULL;
	int64		n = 3;			/* every reply is primed with <|start|>assistant<|message|> */
	int64		assistant = 0;
	uint32		i;

	if (JsonContainerIsArray(root) && !JsonContainerIsScalar(root))
		messages = root;
	else if (JsonContainerIsObject(root))
	{
		messages = AsContainer(GetKey(root, "messages"), true);
		n += ToolsTokens(enc, AsContainer(GetKey(root, "tools"), true));
		n += ToolsTokens(enc, AsContainer(GetKey(root, "functions"), true));
	}
	if (messages == NULL)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("chat example must be a JSON array of messages or an object with a \"messages\" array"),
				errhint("Pass [{\"role\": \"user\", \"content\": \"Hi\"}] or {\"messages\": [...], \"tools\": [...]}."));
	for (i = 0; i < JsonContainerSize(messages); i++)
		n += MessageTokens(enc, MessageContainer(messages, i), &assistant);
	if (assistant_tokens != NULL)
		*assistant_tokens = CountAsInt32(assistant);
	return CountAsInt32(n);
}

/* ft_chat_token_count(messages, model): cookbook token count of a chat example */
Datum
ft_chat_token_count(PG_FUNCTION_ARGS)
{
	Jsonb	   *messages = PG_GETARG_JSONB_P(0);
	const FtEncoding *enc = EncodingForArg(fcinfo, PG_GETARG_TEXT_PP(1));

	PG_RETURN_INT32(FtChatTokenCount(messages, enc, NULL));
}

/* ft_assistant_token_count(messages, model): content tokens of the assistant messages */
Datum
ft_assistant_token_count(PG_FUNCTION_ARGS)
{
	Jsonb	   *messages = PG_GETARG_JSONB_P(0);
	const FtEncoding *enc = EncodingForArg(fcinfo, PG_GETARG_TEXT_PP(1));
	int			assistant = 0;

	(void) FtChatTokenCount(messages, enc, &assistant);
	PG_RETURN_INT32(assistant);
}
