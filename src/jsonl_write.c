/*
 * Writing one compact JSON line per training example, in each dataset format.
 *
 * Key order is fixed here, not inherited from jsonb (which sorts keys by length, then bytes):
 * top level messages, tools, parallel_tool_calls; in a message role, content, name, tool_calls,
 * tool_call_id, weight. The same example always gives the same bytes, so dataset files can be
 * fingerprinted and rebuilt byte for byte.
 */
#include "jsonl_write.h"

#include <stdlib.h>

#include "sha256.h"

static const char *const FormatNames[] = {"chat", "dpo", "together_chat", "alpaca", "prompt_completion", NULL};

/* Start an empty buffer; nothing is allocated until the first append */
void
FtBufInit(FtBuf *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
}

/* Release the buffer's memory */
void
FtBufFree(FtBuf *buf)
{
	free(buf->data);
	FtBufInit(buf);
}

/* Make room for extra more bytes, doubling so appends stay amortised O(1) */
void
FtBufGrow(FtBuf *buf, size_t extra)
{
	size_t		cap = buf->cap ? buf->cap : 256;
	char	   *data;

	while (cap - buf->len < extra)
		cap *= 2;
	data = realloc(buf->data, cap);
	if (data == NULL)
		abort();				/* callers keep lines far below any allocation limit */
	buf->data = data;
	buf->cap = cap;
}

#define ONES ((uint64_t) 0x0101010101010101ULL)
#define HIGHS ((uint64_t) 0x8080808080808080ULL)

/*
 * True when one of the 8 bytes in w needs escaping: a control character, a quote or a backslash.
 * Checking a word at a time matters because training text is long and almost never needs it.
 */
static inline bool
WordNeedsEscape(uint64_t w)
{
	uint64_t	ctrl = (w - ONES * 0x20) & ~w;
	uint64_t	quote = w ^ (ONES * '"');
	uint64_t	backslash = w ^ (ONES * '\\');

	quote = (quote - ONES) & ~quote;
	backslash = (backslash - ONES) & ~backslash;
	return ((ctrl | quote | backslash) & HIGHS) != 0;
}

/* Append s as a quoted JSON string: quote, backslash and control characters escaped, UTF-8 kept */
void
FtJsonString(FtBuf *buf, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t		run = 0;
	size_t		i = 0;

	/* worst case every byte becomes \u00XX; reserving it up front keeps the loop branch-light */
	if (buf->cap - buf->len < n * 6 + 2)
		FtBufGrow(buf, n * 6 + 2);
	buf->data[buf->len++] = '"';
	while (i < n)
	{
		unsigned char c;
		char	   *o;

		if (i + 8 <= n)
		{
			uint64_t	w;

			memcpy(&w, s + i, 8);
			if (!WordNeedsEscape(w))
			{
				i += 8;
				continue;
			}
		}
		c = (unsigned char) s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
		{
			i++;
			continue;
		}
		memcpy(buf->data + buf->len, s + run, i - run);
		buf->len += i - run;
		run = i + 1;
		o = buf->data + buf->len;
		o[0] = '\\';
		switch (c)
		{
			case '"':
			case '\\':
				o[1] = (char) c;
				break;
			case '\n':
				o[1] = 'n';
				break;
			case '\r':
				o[1] = 'r';
				break;
			case '\t':
				o[1] = 't';
				break;
			case '\b':
				o[1] = 'b';
				break;
			case '\f':
				o[1] = 'f';
				break;
			default:
				memcpy(o + 1, "u00", 3);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				buf->len += 4;
				break;
		}
		buf->len += 2;
		i++;
	}
	/* an absent string (s NULL, n 0) is written as ""; memcpy must not see the NULL */
	if (n > run)
		memcpy(buf->data + buf->len, s + run, n - run);
	buf->len += n - run;
	buf->data[buf->len++] = '"';
}

/* Format number of a name, or -1 when unknown */
int
FtFormatFromName(const char *name)
{
	for (int i = 0; FormatNames[i]; i++)
		if (strcmp(FormatNames[i], name) == 0)
			return i;
	return -1;
}

/* Name of a format */
const char *
FtFormatName(FtFormat format)
{
	return FormatNames[format];
}

static inline bool
StrIs(FtStr s, const char *lit)
{
	size_t		n = strlen(lit);

	return s.p != NULL && s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Append ,"key": */
static inline void
Key(FtBuf *out, const char *key, bool first)
{
	if (!first)
		FtBufLit(out, ",");
	FtBufAppend(out, "\"", 1);
	FtBufAppend(out, key, strlen(key));
	FtBufLit(out, "\":");
}

/* Index of the example's own system prompt (its first system message), or -1 */
static long
SystemIndex(const FtExample *example)
{
	for (size_t i = 0; i < example->n_messages; i++)
		if (StrIs(example->messages[i].role, "system"))
			return (long) i;
	return -1;
}

static inline bool
HasSystemMessage(const FtExample *example)
{
	for (size_t i = 0; i < example->n_messages; i++)
		if (StrIs(example->messages[i].role, "system"))
			return true;
	return false;
}

/* One message object in the fixed key order; weight only when asked for */
static void
WriteMessage(FtBuf *out, const FtMessage *m, bool with_weight)
{
	FtBufLit(out, "{\"role\":");
	FtJsonString(out, m->role.p, m->role.len);
	if (m->content.p)
	{
		FtBufLit(out, ",\"content\":");
		FtJsonString(out, m->content.p, m->content.len);
	}
	else if (m->content_null)
		FtBufLit(out, ",\"content\":null");
	if (m->name.p)
	{
		FtBufLit(out, ",\"name\":");
		FtJsonString(out, m->name.p, m->name.len);
	}
	if (m->tool_calls.p)
	{
		FtBufLit(out, ",\"tool_calls\":");
		FtBufAppend(out, m->tool_calls.p, m->tool_calls.len);
	}
	if (m->tool_call_id.p)
	{
		FtBufLit(out, ",\"tool_call_id\":");
		FtJsonString(out, m->tool_call_id.p, m->tool_call_id.len);
	}
	if (with_weight && m->weight >= 0)
		FtBufAppend(out, m->weight ? ",\"weight\":1" : ",\"weight\":0", 11);
	FtBufLit(out, "}");
}

/* {"role":"system","content":...} for an injected prompt */
static void
WriteSystemMessage(FtBuf *out, FtStr prompt)
{
	FtBufLit(out, "{\"role\":\"system\",\"content\":");
	FtJsonString(out, prompt.p, prompt.len);
	FtBufLit(out, "}");
}

/* "messages":[...] with the prompt injected first when the example has no system message */
static void
WriteMessages(FtBuf *out, const FtExample *example, FtStr system_prompt, bool with_weight)
{
	bool		first = true;

	FtBufLit(out, "\"messages\":[");
	if (system_prompt.p && !HasSystemMessage(example))
	{
		WriteSystemMessage(out, system_prompt);
		first = false;
	}
	for (size_t i = 0; i < example->n_messages; i++)
	{
		if (!first)
			FtBufLit(out, ",");
		WriteMessage(out, &example->messages[i], with_weight);
		first = false;
	}
	FtBufLit(out, "]");
}

/* messages, tools, parallel_tool_calls: the OpenAI chat shape (also DPO's input object) */
static void
WriteChatBody(FtBuf *out, const FtExample *example, FtStr system_prompt, bool with_weight)
{
	WriteMessages(out, example, system_prompt, with_weight);
	if (example->tools.p)
	{
		Key(out, "tools", false);
		FtBufAppend(out, example->tools.p, example->tools.len);
	}
	if (example->parallel_tool_calls >= 0)
	{
		Key(out, "parallel_tool_calls", false);
		if (example->parallel_tool_calls)
			FtBufLit(out, "true");
		else
			FtBufLit(out, "false");
	}
}

/* True when the example uses tools, which the plain-text formats cannot express */
static bool
UsesTools(const FtExample *example)
{
	for (size_t i = 0; i < example->n_messages; i++)
	{
		const FtMessage *m = &example->messages[i];

		if (m->tool_calls.p || StrIs(m->role, "tool") || (!m->content.p))
			return true;
	}
	return false;
}

/* Together conversational: roles and contents only; tool use is not expressible, so skipped */
static bool
WriteTogetherChat(FtBuf *out, const FtExample *example, FtStr system_prompt)
{
	bool		first = true;

	if (UsesTools(example))
		return false;
	FtBufLit(out, "{\"messages\":[");
	if (system_prompt.p && !HasSystemMessage(example))
	{
		WriteSystemMessage(out, system_prompt);
		first = false;
	}
	for (size_t i = 0; i < example->n_messages; i++)
	{
		const FtMessage *m = &example->messages[i];

		if (!first)
			FtBufLit(out, ",");
		FtBufLit(out, "{\"role\":");
		FtJsonString(out, m->role.p, m->role.len);
		FtBufLit(out, ",\"content\":");
		FtJsonString(out, m->content.p, m->content.len);
		FtBufLit(out, "}");
		first = false;
	}
	FtBufLit(out, "]}");
	return true;
}

/* Index of the assistant message that becomes the output: the last trained one, or -1 */
static long
OutputIndex(const FtExample *example)
{
	for (size_t i = example->n_messages; i-- > 0;)
	{
		const FtMessage *m = &example->messages[i];

		if (StrIs(m->role, "assistant") && m->weight != 0)
			return (long) i;
	}
	return -1;
}

/* Append "User: ...\nAssistant: ..." lines for messages [from, to), except the message skip */
static void
RenderTurns(FtBuf *text, const FtExample *example, size_t from, size_t to, long skip)
{
	bool		first = true;

	for (size_t i = from; i < to; i++)
	{
		const FtMessage *m = &example->messages[i];

		if ((long) i == skip)
			continue;
		if (!first)
			FtBufLit(text, "\n");
		if (StrIs(m->role, "user"))
			FtBufLit(text, "User: ");
		else if (StrIs(m->role, "assistant"))
			FtBufLit(text, "Assistant: ");
		else
			FtBufLit(text, "System: ");
		FtBufAppend(text, m->content.p, m->content.len);
		first = false;
	}
}

/* The only message of [from, to) other than skip, or -1 when there are none or several */
static long
LoneTurn(const FtExample *example, size_t from, size_t to, long skip)
{
	long		found = -1;

	for (size_t i = from; i < to; i++)
	{
		if ((long) i == skip)
			continue;
		if (found >= 0)
			return -1;
		found = (long) i;
	}
	return found;
}

/*
 * Alpaca: instruction is the system prompt (own or injected); input is the conversation before
 * the output (a lone user message verbatim, several turns as "User: ...\nAssistant: ..." lines).
 * Without a system prompt the first user message is the instruction and the rest is the input.
 */
static bool
WriteAlpaca(FtBuf *out, const FtExample *example, FtStr system_prompt)
{
	long		last = OutputIndex(example);
	long		own = SystemIndex(example);
	FtStr		instruction = own >= 0 ? example->messages[own].content : system_prompt;
	FtBuf		input;
	size_t		from = 0;
	long		lone;

	if (UsesTools(example) || last < 0)
		return false;
	if (instruction.p == NULL)
	{
		/* no system prompt anywhere, so the example starts with its first user message */
		if (last == 0 || !StrIs(example->messages[0].role, "user"))
			return false;
		instruction = example->messages[0].content;
		from = 1;
	}
	FtBufInit(&input);
	/* allocated now: appending an empty content to a buffer without memory would memcpy to NULL */
	FtBufGrow(&input, 0);
	lone = LoneTurn(example, from, (size_t) last, own);
	if (lone >= 0 && StrIs(example->messages[lone].role, "user"))
		FtBufAppend(&input, example->messages[lone].content.p, example->messages[lone].content.len);
	else
		RenderTurns(&input, example, from, (size_t) last, own);
	FtBufLit(out, "{\"instruction\":");
	FtJsonString(out, instruction.p, instruction.len);
	FtBufLit(out, ",\"input\":");
	FtJsonString(out, input.data ? input.data : "", input.len);
	FtBufLit(out, ",\"output\":");
	FtJsonString(out, example->messages[last].content.p, example->messages[last].content.len);
	FtBufLit(out, "}");
	FtBufFree(&input);
	return true;
}

/*
 * Prompt/completion: the prompt is the system prompt and a blank line, then the messages before
 * the output as "User: ..." / "Assistant: ..." lines, then a final "Assistant:"; the completion
 * is the output after one space, the usual convention for continuing after the colon.
 */
static bool
WritePromptCompletion(FtBuf *out, const FtExample *example, FtStr system_prompt)
{
	long		last = OutputIndex(example);
	long		own = SystemIndex(example);
	FtStr		prompt = own >= 0 ? example->messages[own].content : system_prompt;
	FtBuf		text;

	if (UsesTools(example) || last < 0)
		return false;
	FtBufInit(&text);
	/* allocated now: an empty system prompt would otherwise be appended to a NULL buffer */
	FtBufGrow(&text, 0);
	if (prompt.p)
	{
		FtBufAppend(&text, prompt.p, prompt.len);
		FtBufLit(&text, "\n\n");
	}
	RenderTurns(&text, example, 0, (size_t) last, own);
	if (text.len > 0 && text.data[text.len - 1] != '\n')
		FtBufLit(&text, "\n");
	FtBufLit(&text, "Assistant:");
	FtBufLit(out, "{\"prompt\":");
	FtJsonString(out, text.data, text.len);
	FtBufLit(out, ",\"completion\":");
	text.len = 0;
	FtBufLit(&text, " ");
	FtBufAppend(&text, example->messages[last].content.p, example->messages[last].content.len);
	FtJsonString(out, text.data, text.len);
	FtBufLit(out, "}");
	FtBufFree(&text);
	return true;
}

/*
 * Append one example as a line (no newline) in the given format; false when the example cannot
 * be expressed in it (tool use in the text formats) and nothing was written.
 */
bool
FtWriteExample(FtBuf *out, FtFormat format, const FtExample *example, FtStr system_prompt)
{
	switch (format)
	{
		case FT_FORMAT_CHAT:
			FtBufLit(out, "{");
			WriteChatBody(out, example, system_prompt, true);
			FtBufLit(out, "}");
			return true;
		case FT_FORMAT_TOGETHER_CHAT:
			return WriteTogetherChat(out, example, system_prompt);
		case FT_FORMAT_ALPACA:
			return WriteAlpaca(out, example, system_prompt);
		case FT_FORMAT_PROMPT_COMPLETION:
			return WritePromptCompletion(out, example, system_prompt);
		case FT_FORMAT_DPO:
			break;
	}
	return false;
}

/* OpenAI preference line: input (chat shape without weights) and one assistant message per side */
bool
FtWritePreference(FtBuf *out, const FtExample *input, const FtMessage *preferred,
				  const FtMessage *non_preferred, FtStr system_prompt)
{
	FtBufLit(out, "{\"input\":{");
	WriteChatBody(out, input, system_prompt, false);
	FtBufLit(out, "},\"preferred_output\":[");
	WriteMessage(out, preferred, false);
	FtBufLit(out, "],\"non_preferred_output\":[");
	WriteMessage(out, non_preferred, false);
	FtBufLit(out, "]}");
	return true;
}

/* murmur3's 64-bit finaliser: every input bit affects every output bit */
static inline uint64_t
Mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* 64 bits of SHA-256 of the split seed, computed once per dataset */
uint64_t
FtSplitSeedHash(const char *seed, size_t len)
{
	FtSha256	ctx;
	unsigned char digest[32];
	uint64_t	h = 0;

	FtSha256Init(&ctx);
	FtSha256Update(&ctx, seed, len);
	FtSha256Final(&ctx, digest);
	for (int i = 0; i < 8; i++)
		h = h << 8 | digest[i];
	return h;
}

/*
 * A value in [0,1) that depends only on the seed and the example id: an example is in the
 * validation split when it is below the validation share, so its side never changes when other
 * examples come or go.
 */
double
FtSplitFraction(uint64_t seed_hash, const unsigned char id[16])
{
	uint64_t	hi = 0,
				lo = 0,
				h;

	for (int i = 0; i < 8; i++)
	{
		hi = hi << 8 | id[i];
		lo = lo << 8 | id[8 + i];
	}
	h = Mix64(seed_hash ^ hi);
	h = Mix64(h ^ lo ^ 0x9e3779b97f4a7c15ULL);
	return (double) (h >> 11) * (1.0 / 9007199254740992.0);
}
