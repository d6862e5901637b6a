/*
 * libFuzzer target for the JSON line writer (src/jsonl_write.c): every format, any message
 * strings (absent, empty, control characters, invalid UTF-8, embedded NUL).
 *
 * Input: records separated by \x01. The first record is a header: one flag byte, then the
 * system prompt. Every other record is a message: one flag byte, then up to four fields split
 * by \x02 (role, content, name, tool_call_id). Flag bits of a message: 0-1 pick the role
 * (system, user, assistant, or the fuzzed field), 2 content absent, 3 content null, 4 name
 * present, 5 tool_calls present, 6 tool_call_id present, 7 weight absent (else the weight is 0
 * when the first field ends in '0', 1 otherwise).
 * Header bits: 0-2 the format, 3 system prompt present, 4 tools present, 5-6 parallel_tool_calls.
 *
 * Checks, besides the sanitizers: when every string is valid UTF-8 the line is valid JSON with
 * no raw newline; in the chat format it round-trips message count, roles and contents; the
 * preference line is valid JSON too; FtJsonString round-trips any bytes; split fractions lie in
 * [0, 1).
 *
 * Build and run from the repository root (or use tests/fuzz/run.sh):
 *   mkdir -p tests/fuzz/bin
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(pkg-config --cflags jansson) \
 *     -o tests/fuzz/bin/fuzz_jsonl_write tests/fuzz/fuzz_jsonl_write.c src/jsonl_write.c \
 *     src/sha256.c $(pkg-config --libs jansson) -lm
 *   tests/fuzz/bin/fuzz_jsonl_write -max_total_time=300 -detect_leaks=1 tests/fuzz/corpus/jsonl_write
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl_write.h"

#define MAX_MESSAGES 32

static const char ToolCalls[] = "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]";
static const char Tools[] = "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]";

/* Is the string valid UTF-8 (as jansson judges it)? Absent strings count as valid */
static bool
ValidUtf8(FtStr s)
{
	json_t	   *j;

	if (s.p == NULL)
		return true;
	j = json_stringn(s.p, s.len);
	json_decref(j);
	return j != NULL;
}

/* A json string value equals the bytes */
static bool
SameString(json_t *j, FtStr s)
{
	return json_is_string(j) && json_string_length(j) == s.len && memcmp(json_string_value(j), s.p, s.len) == 0;
}

/* Split [p, end) at the first sep; returns the start of the rest or NULL */
static const char *
Field(const char *p, const char *end, char sep, FtStr *out)
{
	const char *q = memchr(p, sep, end - p);

	out->p = p;
	out->len = (q ? q : end) - p;
	return q ? q + 1 : NULL;
}

/* Decode one message record */
static void
DecodeMessage(const char *p, const char *end, FtMessage *m)
{
	static const char *const roles[] = {"system", "user", "assistant"};
	unsigned	flags = p < end ? (unsigned char) *p++ : 0;
	FtStr		f[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};
	const char *q = p;

	for (int i = 0; i < 4 && q; i++)
		q = Field(q, end, '\x02', &f[i]);
	memset(m, 0, sizeof(*m));
	if ((flags & 3) < 3)
	{
		m->role.p = roles[flags & 3];
		m->role.len = strlen(roles[flags & 3]);
	}
	else
		m->role = f[0];			/* may be absent */
	if (!(flags & 4))
		m->content = f[1].p ? f[1] : f[0];
	m->content_null = (flags & 8) != 0;
	if (flags & 16)
		m->name = f[2];
	if (flags & 32)
	{
		m->tool_calls.p = ToolCalls;
		m->tool_calls.len = sizeof(ToolCalls) - 1;
	}
	if (flags & 64)
		m->tool_call_id = f[3];
	m->weight = (flags & 128) ? -1 : (f[0].len > 0 && f[0].p[f[0].len - 1] == '0') ? 0 : 1;
}

/* Check one written line: JSON when all strings were UTF-8, and no raw newline ever */
static json_t *
CheckLine(const FtBuf *out, bool utf8)
{
	json_t	   *parsed;

	if (out->len > 0 && memchr(out->data, '\n', out->len) != NULL)
		abort();
	if (!utf8)
		return NULL;
	parsed = json_loadb(out->data, out->len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(parsed))
		abort();
	return parsed;
}

/* Chat lines keep every message's role and content, after an injected system prompt */
static void
CheckChat(json_t *line, const FtExample *ex, FtStr prompt)
{
	json_t	   *messages = json_object_get(line, "messages");
	size_t		offset = 0;
	bool		has_system = false;

	for (size_t i = 0; i < ex->n_messages; i++)
		has_system |= ex->messages[i].role.p && ex->messages[i].role.len == 6 && memcmp(ex->messages[i].role.p, "system", 6) == 0;
	if (prompt.p && !has_system)
	{
		if (!SameString(json_object_get(json_array_get(messages, 0), "content"), prompt))
			abort();
		offset = 1;
	}
	if (json_array_size(messages) != ex->n_messages + offset)
		abort();
	for (size_t i = 0; i < ex->n_messages; i++)
	{
		json_t	   *m = json_array_get(messages, i + offset);
		const FtMessage *in = &ex->messages[i];

		if (in->role.p && !SameString(json_object_get(m, "role"), in->role))
			abort();
		if (in->content.p && !SameString(json_object_get(m, "content"), in->content))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *) data;
	const char *end = p + size;
	FtMessage	messages[MAX_MESSAGES];
	FtExample	ex;
	FtStr		header,
				prompt = {NULL, 0};
	unsigned	hflags;
	bool		utf8;
	FtBuf		out;
	json_t	   *parsed;
	unsigned char id[16] = {0};
	double		fraction;

	/* FtJsonString alone: any bytes round-trip */
	FtBufInit(&out);
	FtJsonString(&out, p, size);
	if (ValidUtf8((FtStr) {p, size}))
	{
		json_t	   *j = json_loadb(out.data, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

		if (!SameString(j, (FtStr) {p, size}))
			abort();
		json_decref(j);
	}
	FtBufFree(&out);

	/* the example */
	p = Field(p, end, '\x01', &header);
	hflags = header.len > 0 ? (unsigned char) header.p[0] : 0;
	if (hflags & 8)
	{
		prompt.p = header.len > 0 ? header.p + 1 : "";
		prompt.len = header.len > 0 ? header.len - 1 : 0;
	}
	memset(&ex, 0, sizeof(ex));
	ex.messages = messages;
	while (p && ex.n_messages < MAX_MESSAGES)
	{
		FtStr		rec;

		p = Field(p, end, '\x01', &rec);
		DecodeMessage(rec.p, rec.p + rec.len, &messages[ex.n_messages++]);
	}
	if (hflags & 16)
	{
		ex.tools.p = Tools;
		ex.tools.len = sizeof(Tools) - 1;
	}
	ex.parallel_tool_calls = (hflags >> 5 & 3) == 3 ? -1 : (int) (hflags >> 5 & 1);
	utf8 = ValidUtf8(prompt);
	for (size_t i = 0; i < ex.n_messages; i++)
		utf8 = utf8 && ValidUtf8(messages[i].role) && ValidUtf8(messages[i].content) &&
			ValidUtf8(messages[i].name) && ValidUtf8(messages[i].tool_call_id);

	for (int format = FT_FORMAT_CHAT; format <= FT_FORMAT_PROMPT_COMPLETION; format++)
	{
		FtBufInit(&out);
		/* a non-empty buffer: lines are appended after what is there */
		FtBufLit(&out, "x");
		out.len = 0;
		if (FtWriteExample(&out, (FtFormat) format, &ex, prompt))
		{
			parsed = CheckLine(&out, utf8);
			if (parsed && format == FT_FORMAT_CHAT)
				CheckChat(parsed, &ex, prompt);
			json_decref(parsed);
		}
		else if (out.len != 0)
			abort();			/* refused examples write nothing */
		FtBufFree(&out);
		if (FtFormatFromName(FtFormatName((FtFormat) format)) != format)
			abort();
	}

	/* preference line: the last two messages as the two sides, the rest as input */
	if (ex.n_messages >= 2)
	{
		FtExample	input = ex;

		input.n_messages -= 2;
		FtBufInit(&out);
		FtWritePreference(&out, &input, &messages[ex.n_messages - 2], &messages[ex.n_messages - 1], prompt);
		json_decref(CheckLine(&out, utf8));
		FtBufFree(&out);
	}

	/* format names and the split: any name, any seed */
	{
		char	   *name = malloc(header.len + 1);

		memcpy(name, header.p, header.len);
		name[header.len] = '\0';
		if (FtFormatFromName(name) < -1 || FtFormatFromName(name) > FT_FORMAT_PROMPT_COMPLETION)
			abort();
		free(name);
	}
	memcpy(id, data, size < 16 ? size : 16);
	fraction = FtSplitFraction(FtSplitSeedHash((const char *) data, size), id);
	if (!(fraction >= 0.0 && fraction < 1.0))
		abort();
	return 0;
}
