/*
 * PostgreSQL side of the tokenizer: rank files loaded once per backend, model → encoding
 * resolution, chat accounting.  For C code elsewhere in pg_finetune.
 */
#ifndef FT_TOKENIZER_SQL_H
#define FT_TOKENIZER_SQL_H

#include "postgres.h"

#include "tokenizer.h"
#include "utils/jsonb.h"

extern char *ft_tokenizer_dir;

/* Defines ft.tokenizer_dir; called from _PG_init */
extern void FtTokenizerDefineGUCs(void);

/*
 * Encoding of a model (ft_models row, else tiktoken's model-name prefixes) or of an encoding
 * name; loaded on first use and kept for the backend's life.  Raises an error when unknown
 * or when the rank file is missing.
 */
extern const FtEncoding *FtEncodingForModel(const char *model);

/* Tokens of a text; CHECK_FOR_INTERRUPTS-aware */
extern int64 FtCountTokens(const FtEncoding *enc, const char *text, size_t len);

/*
 * Cookbook token count of a chat example: a bare messages array or an object with
 * "messages" (and optionally "tools"/"functions").  When assistant_tokens is not NULL it
 * receives the tokens of assistant message contents alone.
 */
extern int	FtChatTokenCount(Jsonb *messages, const FtEncoding *enc, int *assistant_tokens);

#endif
