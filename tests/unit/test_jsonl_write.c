/* Unit tests of the JSONL writer: escaping, key order, each format's exact bytes, the split hash */
#include "jsonl_write.h"
#include "unit.h"

#define S(lit) ((FtStr) {(lit), sizeof(lit) - 1})
#define NONE ((FtStr) {NULL, 0})

static FtBuf out;

/* Escape s (with explicit length) and return the buffer as a C string */
static const char *
Escaped(const char *s, size_t n)
{
	out.len = 0;
	FtJsonString(&out, s, n);
	FtBufAppend(&out, "", 1);
	return out.data;
}

/* A plain message */
static FtMessage
Msg(FtStr role, FtStr content)
{
	FtMessage	m = {role, content, false, NONE, NONE, NONE, -1};

	return m;
}

/* Write an example in a format and return the line, or "(skipped)" */
static const char *
Line(FtFormat format, const FtMessage *messages, size_t n, FtStr prompt)
{
	FtExample	ex = {messages, n, NONE, -1};

	out.len = 0;
	if (!FtWriteExample(&out, format, &ex, prompt))
		return "(skipped)";
	FtBufAppend(&out, "", 1);
	return out.data;
}

static void
TestEscaping(void)
{
	IS_STR(Escaped("plain", 5), "\"plain\"", "plain text is quoted only");
	IS_STR(Escaped("a\"b\\c", 5), "\"a\\\"b\\\\c\"", "quote and backslash escaped");
	IS_STR(Escaped("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"", "short escapes");
	IS_STR(Escaped("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"", "other control characters as \\u00XX, DEL kept");
	IS_STR(Escaped("x\0y", 3), "\"x\\u0000y\"", "embedded NUL escaped");
	IS_STR(Escaped("h\xc3\xa9llo \xe2\x80\xa8 \xf0\x9f\x98\x80", 15),
		   "\"h\xc3\xa9llo \xe2\x80\xa8 \xf0\x9f\x98\x80\"", "UTF-8 (including U+2028 and emoji) passes through");
	IS_STR(Escaped("", 0), "\"\"", "empty string");
	IS_STR(Escaped("/</script>", 10), "\"/</script>\"", "slash not escaped");
}

/* The plain byte-by-byte escaper the fast one must agree with */
static void
ReferenceEscape(FtBuf *b, const unsigned char *s, size_t n)
{
	char		tmp[8];

	FtBufLit(b, "\"");
	for (size_t i = 0; i < n; i++)
	{
		if (s[i] == '"' || s[i] == '\\')
		{
			tmp[0] = '\\';
			tmp[1] = (char) s[i];
			FtBufAppend(b, tmp, 2);
		}
		else if (s[i] < 0x20)
		{
			const char *named = s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : s[i] == '\t' ? "\\t" :
				s[i] == '\b' ? "\\b" : s[i] == '\f' ? "\\f" : NULL;

			if (named)
				FtBufAppend(b, named, 2);
			else
			{
				snprintf(tmp, sizeof(tmp), "\\u%04x", s[i]);
				FtBufAppend(b, tmp, 6);
			}
		}
		else
			FtBufAppend(b, (const char *) &s[i], 1);
	}
	FtBufLit(b, "\"");
}

/* Random strings over bytes that matter, every length and position, against the reference */
static void
TestEscapingRandom(void)
{
	static const unsigned char alphabet[] = {'a', 'Z', ' ', '"', '\\', '\n', 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xa9, 0xff, 0x00, 0x5c};
	unsigned char s[64];
	FtBuf		ref;
	int			mismatches = 0;
	unsigned int seed = 12345;

	FtBufInit(&ref);
	for (int round = 0; round < 20000; round++)
	{
		size_t		n = (size_t) (round % 64);

		for (size_t i = 0; i < n; i++)
		{
			seed = seed * 1103515245u + 12345u;
			/* mostly plain letters so that whole clean words are common */
			s[i] = (seed >> 16) % 4 ? 'x' : alphabet[(seed >> 8) % sizeof(alphabet)];
		}
		ref.len = 0;
		ReferenceEscape(&ref, s, n);
		out.len = 0;
		FtJsonString(&out, (const char *) s, n);
		if (ref.len != out.len || memcmp(ref.data, out.data, ref.len) != 0)
			mismatches++;
	}
	IS_INT(mismatches, 0, "word-at-a-time escaper agrees with the byte-by-byte reference on 20,000 strings");
	FtBufFree(&ref);
}

static void
TestChat(void)
{
	FtMessage	m[3] = {Msg(S("user"), S("Hi")), Msg(S("assistant"), S("Hello!")), Msg(S("user"), S("x"))};
	FtMessage	tools[3];
	FtExample	ex;
	bool		written;

	m[1].weight = 1;
	m[1].name = S("bot");
	IS_STR(Line(FT_FORMAT_CHAT, m, 2, NONE),
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\",\"name\":\"bot\",\"weight\":1}]}",
		   "chat: key order role, content, name, weight; weight normalised");
	IS_STR(Line(FT_FORMAT_CHAT, m, 2, S("Be kind.")),
		   "{\"messages\":[{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\",\"name\":\"bot\",\"weight\":1}]}",
		   "chat: prompt injected when the example has no system message");
	m[0] = Msg(S("system"), S("Own."));
	IS_STR(Line(FT_FORMAT_CHAT, m, 2, S("Be kind.")),
		   "{\"messages\":[{\"role\":\"system\",\"content\":\"Own.\"},{\"role\":\"assistant\",\"content\":\"Hello!\",\"name\":\"bot\",\"weight\":1}]}",
		   "chat: own system message kept, nothing injected");

	tools[0] = Msg(S("user"), S("Weather?"));
	tools[1] = Msg(S("assistant"), NONE);
	tools[1].content_null = true;
	tools[1].tool_calls = S("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{}\"}}]");
	tools[1].weight = 0;
	tools[2] = Msg(S("tool"), S("sunny"));
	tools[2].tool_call_id = S("c1");
	ex.messages = tools;
	ex.n_messages = 3;
	ex.tools = S("[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}]");
	ex.parallel_tool_calls = 0;
	out.len = 0;
	written = FtWriteExample(&out, FT_FORMAT_CHAT, &ex, NONE);
	OK(written, "chat with tools is written");
	FtBufAppend(&out, "", 1);
	IS_STR(out.data,
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},"
		   "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{}\"}}],\"weight\":0},"
		   "{\"role\":\"tool\",\"content\":\"sunny\",\"tool_call_id\":\"c1\"}],"
		   "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}],\"parallel_tool_calls\":false}",
		   "chat: tool_calls, tool_call_id, tools and parallel_tool_calls in order");
	tools[1].content_null = false;
	out.len = 0;
	FtWriteExample(&out, FT_FORMAT_CHAT, &ex, NONE);
	FtBufAppend(&out, "", 1);
	OK(strstr(out.data, "\"content\":null") == NULL, "chat: absent content stays absent");
	out.len = 0;
	written = FtWriteExample(&out, FT_FORMAT_TOGETHER_CHAT, &ex, NONE);
	OK(!written && out.len == 0, "together_chat skips tool use");
	written = FtWriteExample(&out, FT_FORMAT_ALPACA, &ex, NONE);
	OK(!written && out.len == 0, "alpaca skips tool use");
	written = FtWriteExample(&out, FT_FORMAT_PROMPT_COMPLETION, &ex, NONE);
	OK(!written && out.len == 0, "prompt_completion skips tool use");
}

static void
TestTextFormats(void)
{
	FtMessage	one[2] = {Msg(S("user"), S("Hi")), Msg(S("assistant"), S("Hello!"))};
	FtMessage	multi[5] = {Msg(S("system"), S("Be brief.")), Msg(S("user"), S("A")), Msg(S("assistant"), S("B")),
	Msg(S("user"), S("C")), Msg(S("assistant"), S("D"))};

	one[1].weight = 1;
	one[1].name = S("n");
	IS_STR(Line(FT_FORMAT_TOGETHER_CHAT, one, 2, S("P")),
		   "{\"messages\":[{\"role\":\"system\",\"content\":\"P\"},{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"}]}",
		   "together_chat: roles and contents, prompt injected, weight and name dropped");
	IS_STR(Line(FT_FORMAT_ALPACA, one, 2, NONE),
		   "{\"instruction\":\"Hi\",\"input\":\"\",\"output\":\"Hello!\"}",
		   "alpaca without system prompt: first user message is the instruction");
	IS_STR(Line(FT_FORMAT_ALPACA, one, 2, S("P")),
		   "{\"instruction\":\"P\",\"input\":\"Hi\",\"output\":\"Hello!\"}",
		   "alpaca with injected prompt: lone user message is the input verbatim");
	IS_STR(Line(FT_FORMAT_ALPACA, multi, 5, S("ignored")),
		   "{\"instruction\":\"Be brief.\",\"input\":\"User: A\\nAssistant: B\\nUser: C\",\"output\":\"D\"}",
		   "alpaca multi-turn: own system prompt, turns rendered");
	IS_STR(Line(FT_FORMAT_ALPACA, multi + 1, 4, NONE),
		   "{\"instruction\":\"A\",\"input\":\"Assistant: B\\nUser: C\",\"output\":\"D\"}",
		   "alpaca multi-turn without prompt");
	IS_STR(Line(FT_FORMAT_PROMPT_COMPLETION, multi, 5, NONE),
		   "{\"prompt\":\"Be brief.\\n\\nUser: A\\nAssistant: B\\nUser: C\\nAssistant:\",\"completion\":\" D\"}",
		   "prompt_completion multi-turn");
	IS_STR(Line(FT_FORMAT_PROMPT_COMPLETION, one, 2, NONE),
		   "{\"prompt\":\"User: Hi\\nAssistant:\",\"completion\":\" Hello!\"}",
		   "prompt_completion without prompt");
	multi[4].weight = 0;
	IS_STR(Line(FT_FORMAT_PROMPT_COMPLETION, multi, 5, NONE),
		   "{\"prompt\":\"Be brief.\\n\\nUser: A\\nAssistant:\",\"completion\":\" B\"}",
		   "prompt_completion: an untrained (weight 0) last answer is not the output");
	IS_STR(Line(FT_FORMAT_ALPACA, multi, 1, NONE), "(skipped)", "alpaca: no assistant message, skipped");
	IS_STR(Line(FT_FORMAT_DPO, one, 2, NONE), "(skipped)", "dpo lines come from FtWritePreference only");
}

static void
TestPreference(void)
{
	FtMessage	input[1] = {Msg(S("user"), S("Q"))};
	FtMessage	good = Msg(S("assistant"), S("good")),
				bad = Msg(S("assistant"), S("bad"));
	FtExample	ex = {input, 1, NONE, -1};

	good.weight = 1;
	out.len = 0;
	FtWritePreference(&out, &ex, &good, &bad, S("P"));
	FtBufAppend(&out, "", 1);
	IS_STR(out.data,
		   "{\"input\":{\"messages\":[{\"role\":\"system\",\"content\":\"P\"},{\"role\":\"user\",\"content\":\"Q\"}]},"
		   "\"preferred_output\":[{\"role\":\"assistant\",\"content\":\"good\"}],"
		   "\"non_preferred_output\":[{\"role\":\"assistant\",\"content\":\"bad\"}]}",
		   "dpo: input, preferred_output, non_preferred_output; no weights");
}

static void
TestSplit(void)
{
	unsigned char id[16] = {0};
	uint64_t	seed = FtSplitSeedHash("s", 1);
	int			below = 0;
	double		first;

	IS_INT(FtFormatFromName("together_chat"), FT_FORMAT_TOGETHER_CHAT, "format by name");
	IS_INT(FtFormatFromName("jsonl"), -1, "unknown format");
	IS_STR(FtFormatName(FT_FORMAT_PROMPT_COMPLETION), "prompt_completion", "format name");

	first = FtSplitFraction(seed, id);
	OK(first >= 0 && first < 1, "fraction in [0,1)");
	OK(FtSplitFraction(seed, id) == first, "same id and seed, same fraction");
	OK(FtSplitFraction(FtSplitSeedHash("t", 1), id) != first, "another seed moves it");
	/* 100,000 sequential ids: the share below 0.1 must be close to 10% */
	for (int i = 0; i < 100000; i++)
	{
		id[15] = (unsigned char) i;
		id[14] = (unsigned char) (i >> 8);
		id[13] = (unsigned char) (i >> 16);
		below += FtSplitFraction(seed, id) < 0.1;
	}
	OK(below > 9700 && below < 10300, "about 10%% of ids fall below 0.1 (%d)", below);
	IS_INT((long long) FtSplitSeedHash("", 0), (long long) 0xe3b0c44298fc1c14ULL, "seed hash is SHA-256's first 8 bytes");
}

int
main(void)
{
	FtBufInit(&out);
	TestEscaping();
	TestEscapingRandom();
	TestChat();
	TestTextFormats();
	TestPreference();
	TestSplit();
	FtBufFree(&out);
	return unit_done();
}
