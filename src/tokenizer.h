/*
 * Exact token counting for OpenAI's BPE encodings o200k_base and cl100k_base, identical to
 * tiktoken's encode_ordinary.  Free of PostgreSQL: plain libc, so it is unit-tested, fuzzed
 * and benchmarked on its own.
 */
#ifndef FT_TOKENIZER_H
#define FT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

/* The pre-tokeniser patterns this code reproduces */
typedef enum FtEncodingKind
{
	FT_ENCODING_O200K_BASE,
	FT_ENCODING_CL100K_BASE
} FtEncodingKind;

typedef struct FtEncoding FtEncoding;

/*
 * Called every FT_INTERRUPT_INTERVAL pieces or merges while encoding.  Returning nonzero
 * stops the encoding, which then returns FT_ENCODE_ABORTED after freeing its memory: the
 * callback must not longjmp out (PostgreSQL: test InterruptPending, then run
 * CHECK_FOR_INTERRUPTS after the call returned).
 */
typedef int (*FtInterruptCallback) (void *arg);

#define FT_INTERRUPT_INTERVAL 8192

/* Results of ft_encode / ft_count_tokens that are not counts */
#define FT_ENCODE_ABORTED ((size_t) -1)
#define FT_ENCODE_NOMEM ((size_t) -2)
#define FT_ENCODE_FAILED(n) ((n) >= FT_ENCODE_NOMEM)

/* Names accepted by ft_encoding_load, for messages */
#define FT_ENCODING_NAMES "o200k_base, cl100k_base"

extern int	ft_encoding_kind_from_name(const char *name, FtEncodingKind *kind);
extern FtEncoding *ft_encoding_load(const char *path, const char *name,
									char *errbuf, size_t errlen);
extern void ft_encoding_free(FtEncoding *enc);

extern FtEncodingKind ft_encoding_kind(const FtEncoding *enc);
extern int	ft_encoding_is_o200k(const FtEncoding *enc);
extern const char *ft_encoding_name(const FtEncoding *enc);
extern size_t ft_encoding_n_tokens(const FtEncoding *enc);
extern size_t ft_encoding_memory(const FtEncoding *enc);
extern int	ft_token_bytes(const FtEncoding *enc, uint32_t token,
						   const unsigned char **bytes, size_t *len);
extern uint32_t ft_token_rank(const FtEncoding *enc, const void *bytes, size_t len);

extern void ft_set_interrupt_callback(FtInterruptCallback callback, void *arg);

extern size_t ft_pretokenize_next(FtEncodingKind kind, const char *utf8, size_t len,
								  size_t pos);
extern size_t ft_encode(const FtEncoding *enc, const char *utf8, size_t len,
						uint32_t *out, size_t outcap);
extern size_t ft_count_tokens(const FtEncoding *enc, const char *utf8, size_t len);

#endif
