/*
 * Writing one compact JSON line per training example, in each dataset format.
 *
 * No PostgreSQL headers: the glue (dataset.c) decodes stored examples into the small structs
 * below and this file writes the bytes, so the exact output can be unit-tested alone.
 */
#ifndef FT_JSONL_WRITE_H
#define FT_JSONL_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Growable byte buffer on malloc; reused from line to line so a stream allocates once */
typedef struct FtBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} FtBuf;

/* A byte string that may be absent (p == NULL) */
typedef struct FtStr
{
	const char *p;
	size_t		len;
} FtStr;

/* One chat message, decoded; tool_calls is kept as raw compact JSON written by the caller */
typedef struct FtMessage
{
	FtStr		role;
	FtStr		content;		/* absent when the message has no string content */
	bool		content_null;	/* the stored message says "content": null */
	FtStr		name;
	FtStr		tool_calls;		/* raw JSON array, or absent */
	FtStr		tool_call_id;
	int			weight;			/* 0 or 1, or -1 when absent */
} FtMessage;

/* One example: its messages and the optional tools (raw JSON) and parallel_tool_calls */
typedef struct FtExample
{
	const FtMessage *messages;
	size_t		n_messages;
	FtStr		tools;
	int			parallel_tool_calls;	/* 0, 1, or -1 when absent */
} FtExample;

typedef enum FtFormat
{
	FT_FORMAT_CHAT,
	FT_FORMAT_DPO,
	FT_FORMAT_TOGETHER_CHAT,
	FT_FORMAT_ALPACA,
	FT_FORMAT_PROMPT_COMPLETION
} FtFormat;

#define FT_FORMAT_NAMES "chat, dpo, together_chat, alpaca, prompt_completion"

extern void FtBufInit(FtBuf *buf);
extern void FtBufFree(FtBuf *buf);
extern void FtBufGrow(FtBuf *buf, size_t extra);

/* Append n bytes */
static inline void
FtBufAppend(FtBuf *buf, const char *s, size_t n)
{
	if (buf->cap - buf->len < n)
		FtBufGrow(buf, n);
	memcpy(buf->data + buf->len, s, n);
	buf->len += n;
}

/* Append a NUL-terminated literal */
#define FtBufLit(buf, lit) FtBufAppend((buf), (lit), sizeof(lit) - 1)

extern void FtJsonString(FtBuf *buf, const char *s, size_t n);

extern int	FtFormatFromName(const char *name);
extern const char *FtFormatName(FtFormat format);

extern bool FtWriteExample(FtBuf *out, FtFormat format, const FtExample *example, FtStr system_prompt);
extern bool FtWritePreference(FtBuf *out, const FtExample *input, const FtMessage *preferred,
							  const FtMessage *non_preferred, FtStr system_prompt);

extern uint64_t FtSplitSeedHash(const char *seed, size_t len);
extern double FtSplitFraction(uint64_t seed_hash, const unsigned char id[16]);

#endif
