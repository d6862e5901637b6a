/*
 * Transcript parsers and example cutting (no PostgreSQL headers).
 *
 * A pasted conversation ("Speaker: text" lines, a WhatsApp export, a Telegram JSON export or
 * OpenAI chat JSONL) is parsed into speaker turns, one speaker is chosen as the assistant, and
 * training examples in the OpenAI chat shape are cut from the turns.
 */
#ifndef FT_TRANSCRIPT_H
#define FT_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>

#include "redact.h"

typedef enum FtTranscriptFormat
{
	FT_TRANSCRIPT_AUTO = 0,
	FT_TRANSCRIPT_SPEAKER,
	FT_TRANSCRIPT_WHATSAPP,
	FT_TRANSCRIPT_TELEGRAM,
	FT_TRANSCRIPT_JSONL
} FtTranscriptFormat;

/* One message of one speaker; consecutive messages of a speaker are already merged */
typedef struct FtTurn
{
	int			speaker;		/* index into FtTranscript.speakers */
	int			line;			/* line where the turn starts */
	char	   *text;
} FtTurn;

/* Lines or messages left out, grouped by reason (reason is a static string) */
typedef struct FtSkip
{
	const char *reason;
	int			count;
	int			first_line;
} FtSkip;

#define FT_TRANSCRIPT_MAX_SKIPS 16

typedef struct FtTranscript
{
	FtTranscriptFormat format;	/* the format parsed (detected when AUTO was asked) */
	char	  **speakers;		/* in order of first appearance */
	int			nspeakers;
	FtTurn	   *turns;
	int			nturns;
	int			turncap;
	char	  **examples;		/* JSONL only: each line as compact JSON */
	int		   *example_lines;
	int			nexamples;
	int			examplecap;
	FtSkip		skips[FT_TRANSCRIPT_MAX_SKIPS];
	int			nskips;
	int			error_line;		/* 0 when the error is not about one line */
	char		error[256];		/* set when parsing fails */
} FtTranscript;

/* A message given by role and content, for ft_chat_example_json */
typedef struct FtChatMessage
{
	const char *role;
	const char *content;
} FtChatMessage;

/* One cut example: the JSON text {"messages":[...]} and what was redacted in it */
typedef struct FtCutExample
{
	char	   *json;
	int			line;
	FtRedactCounts counts;
} FtCutExample;

typedef struct FtExampleSet
{
	FtCutExample *items;
	int			n;
	int			cap;
	int			turns;			/* conversation turns after role mapping and merging */
	int			orphan_turns;	/* assistant turns with no user turn before them */
	FtRedactCounts total;		/* redactions over all turns (each turn counted once) */
} FtExampleSet;

/* Name of a format ("speaker", "whatsapp", "telegram", "jsonl", "auto") */
extern const char *ft_transcript_format_name(FtTranscriptFormat format);

/* Format from its name (case-insensitive); false when unknown */
extern bool ft_transcript_format_from_name(const char *name, FtTranscriptFormat *format);

/*
 * Parse len bytes of text. Returns false with t->error (and t->error_line) set when the text
 * cannot be read; t must be freed with ft_transcript_free in both cases.
 */
extern bool ft_transcript_parse(const char *text, size_t len, FtTranscriptFormat format, FtTranscript *t);

extern void ft_transcript_free(FtTranscript *t);

/*
 * Which speaker is the assistant: the requested one (case-insensitive) when given, else the
 * first whose name says it is a bot (assistant, ai, bot, chatbot, chatgpt, gpt, model, agent,
 * or ending in "bot"), else the second speaker to appear. Returns the index and sets *rule to
 * "argument", "name" or "second speaker"; -1 with *rule explaining why when there is none.
 */
extern int	ft_transcript_pick_assistant(const FtTranscript *t, const char *requested, const char **rule);

/*
 * Cut examples: for each assistant turn, the user turn before it plus up to context_turns
 * earlier turns (the window never starts with an assistant turn). With redact, message
 * contents are redacted first. JSONL lines become one example each (contents redacted).
 * Returns false with errbuf set on failure (out of memory, invalid JSON line content).
 */
extern bool ft_transcript_examples(const FtTranscript *t, int assistant, int context_turns,
								   bool redact, FtExampleSet *set, char *errbuf, size_t errlen);

extern void ft_example_set_free(FtExampleSet *set);

/*
 * {"messages":[{"role":..,"content":..},...]} from role/content pairs, contents redacted when
 * asked (counts added into *counts). Returns malloc'd JSON or NULL on failure.
 */
extern char *ft_chat_example_json(const FtChatMessage *msgs, int n, bool redact, FtRedactCounts *counts);

#endif
