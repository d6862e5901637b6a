#ifndef FT_HTTP_POLICY_H
#define FT_HTTP_POLICY_H

/*
 * Rules for talking to providers that need no PostgreSQL and no network: which hosts may be
 * reached, which failures are retried, and how long to wait.
 */
#include <stdbool.h>
#include <stddef.h>

typedef enum FtOutcome
{
	FT_OUTCOME_OK,				/* 2xx */
	FT_OUTCOME_RETRY,			/* transport error, 408, 409, 429 (rate), 5xx */
	FT_OUTCOME_FAIL				/* any other 4xx, quota 429, unusable answer */
} FtOutcome;

extern bool ft_host_allowed(const char *allow_list, const char *host, long port, char *why, size_t whylen);
extern bool ft_host_is_loopback(const char *host);
extern FtOutcome ft_classify_response(bool transport_error, long status, const char *error_code);
extern long ft_backoff_ms(int attempt, double jitter01, long cap_ms);
extern long ft_parse_retry_after(const char *value, long now_s);

#endif
