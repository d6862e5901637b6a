/*
 * Redaction of personal data and secrets in free text (no PostgreSQL headers).
 *
 * One left-to-right pass over the bytes; matchers are only tried where a token starts and
 * never look further than a fixed distance, so the cost is linear in the input. Only ASCII
 * bytes are ever replaced, so valid UTF-8 stays valid UTF-8.
 */
#ifndef FT_REDACT_H
#define FT_REDACT_H

#include <stddef.h>

typedef enum FtRedactKind
{
	FT_REDACT_EMAIL = 0,
	FT_REDACT_PHONE,
	FT_REDACT_CARD,
	FT_REDACT_IBAN,
	FT_REDACT_SSN,
	FT_REDACT_IP,
	FT_REDACT_URL,
	FT_REDACT_SECRET,
	FT_REDACT_NKINDS
} FtRedactKind;

/* How many of each kind were replaced */
typedef struct FtRedactCounts
{
	int			n[FT_REDACT_NKINDS];
} FtRedactCounts;

/* JSON key of a kind: "email", "phone", "card", "iban", "ssn", "ip", "url", "secret" */
extern const char *ft_redact_kind_name(FtRedactKind kind);

/* Replacement token of a kind: "[EMAIL]", "[PHONE]", ... */
extern const char *ft_redact_kind_token(FtRedactKind kind);

/*
 * Redact len bytes of in. Returns a malloc'd NUL-terminated copy with every finding replaced by
 * its token and stores its length in *outlen; counts (when not NULL) is incremented, not reset.
 * Returns NULL only when memory runs out.
 */
extern char *ft_redact_text(const char *in, size_t len, size_t *outlen, FtRedactCounts *counts);

/* Total of all kinds */
extern int	ft_redact_total(const FtRedactCounts *counts);

/* Add b into a */
extern void ft_redact_add(FtRedactCounts *a, const FtRedactCounts *b);

/*
 * Write counts as a JSON object of the non-zero kinds, e.g. {"email":1,"card":2}, into buf
 * (always NUL-terminated; 160 bytes are always enough).
 */
extern void ft_redact_counts_json(const FtRedactCounts *counts, char *buf, size_t buflen);

#endif
