/*
 * Unit tests of the transcript parsers and of example cutting.
 */
#include "transcript.h"
#include "unit.h"

static FtTranscript T;

/* OK() evaluates its condition twice, so calls with side effects go through here */
#define CALL_OK(expr, ...) \
	do { \
		bool		call_ok_ = (expr); \
		OK(call_ok_, __VA_ARGS__); \
	} while (0)

/* Parse a C string with the given format; true on success */
static bool
P(const char *text, FtTranscriptFormat format)
{
	ft_transcript_free(&T);
	return ft_transcript_parse(text, strlen(text), format, &T);
}

/* Count under one skip reason */
static int
Skipped(const char *reason)
{
	int			k;

	for (k = 0; k < T.nskips; k++)
		if (strcmp(T.skips[k].reason, reason) == 0)
			return T.skips[k].count;
	return 0;
}

static const char *
Speaker(int turn)
{
	return turn < T.nturns ? T.speakers[T.turns[turn].speaker] : "(none)";
}

static const char *
Text(int turn)
{
	return turn < T.nturns ? T.turns[turn].text : "(none)";
}

static void
test_speaker_lines(void)
{
	CALL_OK(P("User: Hi there\nAssistant: Hello! How can I help?\nUser: My order is late.\n"
		 "It was due Monday.\n\nNote: it is a gift\nAssistant: Sorry to hear that.\nLet me check.\n",
		 FT_TRANSCRIPT_AUTO), "speaker lines parse");
	IS_STR(ft_transcript_format_name(T.format), "speaker", "detected speaker format");
	IS_INT(T.nspeakers, 2, "two speakers (Note: is a continuation)");
	IS_INT(T.nturns, 4, "four turns");
	IS_STR(Text(2), "My order is late.\nIt was due Monday.\n\nNote: it is a gift", "multi-line message kept whole");
	IS_STR(Text(3), "Sorry to hear that.\nLet me check.", "continuation of the assistant");
	IS_INT(T.turns[2].line, 3, "turn line number");

	CALL_OK(P("Me: hi\nMe: are you there?\nSam: yes\nSam: what's up\nMe: nothing\n", FT_TRANSCRIPT_SPEAKER), "merging");
	IS_INT(T.nturns, 3, "consecutive messages of one speaker merged");
	IS_STR(Text(0), "hi\nare you there?", "merged text");

	CALL_OK(P("preface line\nAna: hola\nLuis: qué tal\r\nAna: bien 😀\r\n", FT_TRANSCRIPT_AUTO), "CRLF and preface");
	IS_INT(Skipped("text before the first speaker"), 1, "preface skipped with a reason");
	IS_STR(Text(1), "qué tal", "CR stripped");
	IS_STR(Speaker(2), "Ana", "speaker of turn 3");

	CALL_OK(P("A: one\nB:\nA: two\n", FT_TRANSCRIPT_SPEAKER), "empty message");
	IS_INT(Skipped("empty message"), 1, "empty message skipped");
	IS_INT(T.nturns, 1, "A's messages merge across the skipped empty one");

	CALL_OK(!P("just some prose\nwith no speakers at all\n", FT_TRANSCRIPT_SPEAKER), "no speaker lines is an error");
	IS_INT(T.error_line, 1, "error names line 1");
	OK(strstr(T.error, "no \"Speaker: text\" line") != NULL, "error says why: %s", T.error);

	CALL_OK(!P("\n\n  \n", FT_TRANSCRIPT_AUTO), "empty transcript is an error");
	OK(strstr(T.error, "empty") != NULL, "error says empty");

	CALL_OK(P("at 10:30: meeting\nBob: see http://x.y/z: ok\nAmy: fine\n", FT_TRANSCRIPT_SPEAKER), "times and URLs are not speakers");
	IS_INT(T.nspeakers, 2, "only Bob and Amy");
}

static void
test_whatsapp(void)
{
	const char *ios =
		"\xE2\x80\x8E[12/01/2024, 09:15:02] Alice: \xE2\x80\x8EMessages and calls are end-to-end encrypted. No one outside of this chat can read them.\n"
		"[12/01/2024, 09:15:02] Alice created group \"Trip\"\n"
		"[12/01/2024, 09:16:10] Alice: Are we still on for Saturday?\n"
		"[12/01/2024, 09:17:45] Bob: Yes! Leaving at 8.\n"
		"Bring snacks.\n"
		"[12/01/2024, 09:18:00] Bob: \xE2\x80\x8Eimage omitted\n"
		"[12/01/2024, 09:20:31] Alice: Great: see you then <This message was edited>\n";
	const char *android =
		"12/31/23, 9:41\xE2\x80\xAFPM - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.\n"
		"12/31/23, 9:41\xE2\x80\xAFPM - Carol: Happy new year!\n"
		"12/31/23, 9:42 PM - Dan: <Media omitted>\n"
		"12/31/23, 9:43 PM - Dan: Same to you\n"
		"12/31/23, 9:44 PM - Dan: This message was deleted\n"
		"31.12.23, 21:45 - Carol: 🎉\n";

	CALL_OK(P(ios, FT_TRANSCRIPT_AUTO), "iOS export parses");
	IS_STR(ft_transcript_format_name(T.format), "whatsapp", "detected whatsapp");
	IS_INT(T.nturns, 3, "three turns");
	IS_STR(Speaker(0), "Alice", "first speaker");
	IS_STR(Text(1), "Yes! Leaving at 8.\nBring snacks.", "multi-line WhatsApp message");
	IS_STR(Text(2), "Great: see you then", "edited mark removed, colon in text kept");
	IS_INT(Skipped("system message"), 2, "group creation and the encryption notice are system lines");
	IS_INT(Skipped("media omitted"), 1, "image omitted skipped");

	CALL_OK(P(android, FT_TRANSCRIPT_AUTO), "Android export parses");
	IS_STR(ft_transcript_format_name(T.format), "whatsapp", "detected whatsapp (Android)");
	IS_INT(T.nturns, 3, "three turns");
	IS_STR(Text(2), "🎉", "dotted date and 24h time");
	IS_INT(Skipped("system message"), 1, "encryption notice is a system line");
	IS_INT(Skipped("media omitted"), 1, "<Media omitted> skipped");
	IS_INT(Skipped("deleted message"), 1, "deleted message skipped");

	CALL_OK(!P("hello\n[12/01/2024, 09:16:10] Alice: hi\n", FT_TRANSCRIPT_WHATSAPP), "forced whatsapp on a bad first line");
	IS_INT(T.error_line, 1, "error names line 1");
	OK(strstr(T.error, "WhatsApp") != NULL, "error says what was expected: %s", T.error);
}

static void
test_telegram(void)
{
	const char *tg =
		"{\"name\": \"Support\", \"type\": \"personal_chat\", \"messages\": [\n"
		" {\"id\": 1, \"type\": \"service\", \"action\": \"phone_call\"},\n"
		" {\"id\": 2, \"type\": \"message\", \"from\": \"Eve\", \"text\": \"Hi, is the shop open?\"},\n"
		" {\"id\": 3, \"type\": \"message\", \"from\": \"ShopBot\", \"text\": [\"Yes, until \", {\"type\": \"bold\", \"text\": \"8 pm\"}, \".\"]},\n"
		" {\"id\": 4, \"type\": \"message\", \"from\": \"Eve\", \"photo\": \"photos/1.jpg\", \"text\": \"\"},\n"
		" {\"id\": 5, \"type\": \"message\", \"from\": \"Eve\", \"text\": \"thanks\"}\n"
		"]}\n";

	CALL_OK(P(tg, FT_TRANSCRIPT_AUTO), "Telegram export parses");
	IS_STR(ft_transcript_format_name(T.format), "telegram", "detected telegram");
	IS_INT(T.nturns, 3, "three turns");
	IS_STR(Text(1), "Yes, until 8 pm.", "text parts joined");
	IS_INT(Skipped("service message"), 1, "service message skipped");
	IS_INT(Skipped("media omitted"), 1, "photo without caption skipped");

	CALL_OK(!P("{\"messages\": [\n {\"type\": \"message\",\n \"from\": \"A\" \"text\": \"x\"}]}", FT_TRANSCRIPT_AUTO),
	   "broken Telegram JSON");
	IS_INT(T.error_line, 3, "error names line 3");
	CALL_OK(!P("{\"chats\": []}", FT_TRANSCRIPT_TELEGRAM), "no messages array");
	OK(strstr(T.error, "\"messages\" array") != NULL, "error says a messages array is needed");
}

static void
test_jsonl(void)
{
	const char *jl =
		"{\"messages\": [{\"role\": \"user\", \"content\": \"Mail me at a@b.com\"}, {\"role\": \"assistant\", \"content\": \"Done\"}]}\n"
		"\n"
		"[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"call +44 20 7946 0958\"}]}, {\"role\": \"assistant\", \"content\": \"ok\"}]\n";
	FtExampleSet set;
	char		err[128];

	CALL_OK(P(jl, FT_TRANSCRIPT_AUTO), "JSONL parses");
	IS_STR(ft_transcript_format_name(T.format), "jsonl", "detected jsonl");
	IS_INT(T.nexamples, 2, "two examples, blank line ignored");
	IS_INT(T.example_lines[1], 3, "line numbers kept");
	CALL_OK(ft_transcript_examples(&T, -1, 6, true, &set, err, sizeof(err)), "JSONL examples");
	IS_INT(set.n, 2, "one example per line");
	OK(strstr(set.items[0].json, "Mail me at [EMAIL]") != NULL, "string content redacted: %s", set.items[0].json);
	OK(strstr(set.items[1].json, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"call [PHONE]\"}]}") != NULL,
	   "bare array wrapped, part redacted: %s", set.items[1].json);
	IS_INT(set.total.n[FT_REDACT_EMAIL] + set.total.n[FT_REDACT_PHONE], 2, "two redactions");
	ft_example_set_free(&set);

	CALL_OK(P("{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", FT_TRANSCRIPT_AUTO), "single-line JSONL detected");
	IS_STR(ft_transcript_format_name(T.format), "jsonl", "one object with roles is JSONL");

	CALL_OK(!P("{\"messages\": []}\n{\"messages\": [}\n", FT_TRANSCRIPT_AUTO), "bad second line");
	IS_INT(T.error_line, 2, "error names line 2");
	OK(strstr(T.error, "line 2: invalid JSON") != NULL, "error text: %s", T.error);
	CALL_OK(!P("{\"messages\": []}\n{\"prompt\": \"x\"}\n", FT_TRANSCRIPT_JSONL), "line without messages");
	IS_INT(T.error_line, 2, "error names line 2");
	CALL_OK(!P("a\xff" "b", FT_TRANSCRIPT_AUTO), "invalid UTF-8");
	OK(strstr(T.error, "UTF-8") != NULL, "error says UTF-8");
}

static void
test_examples(void)
{
	FtExampleSet set;
	char		err[128];
	const char *rule = NULL;
	int			a;

	CALL_OK(P("Bot: Welcome!\nUser: hi, I'm at ann@example.com\nBot: Hi Ann\nUser: price?\nBot: 10 EUR\nUser: thanks\n",
		 FT_TRANSCRIPT_AUTO), "bot transcript");
	a = ft_transcript_pick_assistant(&T, NULL, &rule);
	IS_STR(T.speakers[a], "Bot", "Bot picked by name");
	IS_STR(rule, "name", "rule is name");
	CALL_OK(ft_transcript_examples(&T, a, 6, true, &set, err, sizeof(err)), "cut");
	IS_INT(set.n, 2, "two examples (opening greeting has no user turn)");
	IS_INT(set.orphan_turns, 1, "one assistant turn without a user turn");
	IS_INT(set.turns, 6, "six turns");
	IS_STR(set.items[0].json,
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"hi, I'm at [EMAIL]\"},{\"role\":\"assistant\",\"content\":\"Hi Ann\"}]}",
		   "first example starts at the user turn");
	IS_INT(set.items[0].counts.n[FT_REDACT_EMAIL], 1, "example counts its redaction");
	IS_INT(set.items[1].counts.n[FT_REDACT_EMAIL], 1, "context turn's redaction counted too");
	IS_INT(set.total.n[FT_REDACT_EMAIL], 1, "each turn counted once in the total");
	ft_example_set_free(&set);

	CALL_OK(ft_transcript_examples(&T, a, 0, false, &set, err, sizeof(err)), "cut without context");
	IS_STR(set.items[1].json,
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"price?\"},{\"role\":\"assistant\",\"content\":\"10 EUR\"}]}",
		   "context_turns 0 keeps only the user turn");
	ft_example_set_free(&set);

	CALL_OK(ft_transcript_examples(&T, a, 1, false, &set, err, sizeof(err)), "cut with one context turn");
	OK(strncmp(set.items[1].json, "{\"messages\":[{\"role\":\"user\",\"content\":\"price?", 45) == 0,
	   "window never starts with the assistant: %s", set.items[1].json);
	ft_example_set_free(&set);

	CALL_OK(P("Ann: hi\nBen: hello\nCid: hey all\nBen: welcome\n", FT_TRANSCRIPT_AUTO), "group chat");
	a = ft_transcript_pick_assistant(&T, NULL, &rule);
	IS_STR(T.speakers[a], "Ben", "second speaker picked");
	IS_STR(rule, "second speaker", "rule is second speaker");
	IS_INT(ft_transcript_pick_assistant(&T, "ann", &rule), 0, "requested speaker, case-insensitive");
	IS_INT(ft_transcript_pick_assistant(&T, "Zed", &rule), -1, "unknown speaker");
	CALL_OK(ft_transcript_examples(&T, a, 6, false, &set, err, sizeof(err)), "cut group chat");
	IS_STR(set.items[1].json,
		   "{\"messages\":[{\"role\":\"user\",\"content\":\"Ann: hi\"},{\"role\":\"assistant\",\"content\":\"hello\"},"
		   "{\"role\":\"user\",\"content\":\"Cid: hey all\"},{\"role\":\"assistant\",\"content\":\"welcome\"}]}",
		   "user turns of a group keep their names");
	ft_example_set_free(&set);

	CALL_OK(P("Solo: talking to myself\n", FT_TRANSCRIPT_AUTO), "one speaker parses");
	IS_INT(ft_transcript_pick_assistant(&T, NULL, &rule), -1, "no assistant with one speaker");

	{
		FtChatMessage msgs[] = {{"user", "my card 4111 1111 1111 1111"}, {"assistant", "noted"}};
		FtRedactCounts c;
		char	   *j;

		memset(&c, 0, sizeof(c));
		j = ft_chat_example_json(msgs, 2, true, &c);
		IS_STR(j, "{\"messages\":[{\"role\":\"user\",\"content\":\"my card [CARD]\"},{\"role\":\"assistant\",\"content\":\"noted\"}]}",
			   "chat example JSON");
		IS_INT(c.n[FT_REDACT_CARD], 1, "card counted");
		free(j);
	}
}

int
main(void)
{
	FtTranscriptFormat f;

	CALL_OK(ft_transcript_format_from_name("WhatsApp", &f) && f == FT_TRANSCRIPT_WHATSAPP, "format names");
	CALL_OK(!ft_transcript_format_from_name("csv", &f), "unknown format name");
	test_speaker_lines();
	test_whatsapp();
	test_telegram();
	test_jsonl();
	test_examples();
	ft_transcript_free(&T);
	return unit_done();
}
