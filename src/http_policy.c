#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/*
 * Provider traffic rules, free of PostgreSQL so they can be unit-tested alone.
 */
#include "http_policy.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Loopback names and addresses: reachable only when listed explicitly */
bool
ft_host_is_loopback(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
		strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "0.0.0.0") == 0;
}

/* Does one allow-list entry (host, host:port, *.suffix, or *) admit host:port? */
static bool
EntryAllows(const char *entry, size_t len, const char *host, long port)
{
	char		pattern[256];
	char	   *colon;
	long		want_port = -1;

	if (len == 0 || len >= sizeof(pattern))
		return false;
	memcpy(pattern, entry, len);
	pattern[len] = '\0';
	colon = strrchr(pattern, ':');
	if (colon != NULL && strchr(pattern, ']') == NULL && strchr(colon + 1, '.') == NULL)
	{
		*colon = '\0';
		want_port = strcmp(colon + 1, "*") == 0 ? -1 : strtol(colon + 1, NULL, 10);
	}
	if (want_port >= 0 && want_port != port)
		return false;
	if (strcmp(pattern, "*") == 0)
		return !ft_host_is_loopback(host);
	if (strncmp(pattern, "*.", 2) == 0)
	{
		size_t		hl = strlen(host),
					sl = strlen(pattern + 1);

		return !ft_host_is_loopback(host) && hl > sl && strcasecmp(host + hl - sl, pattern + 1) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

/* Is host:port admitted by the comma-separated allow-list? */
bool
ft_host_allowed(const char *allow_list, const char *host, long port, char *why, size_t whylen)
{
	const char *p = allow_list ? allow_list : "";

	while (*p)
	{
		const char *start,
				   *end;

		while (*p == ',' || isspace((unsigned char) *p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && isspace((unsigned char) end[-1]))
			end--;
		if (EntryAllows(start, end - start, host, port))
			return true;
	}
	snprintf(why, whylen, "host \"%s\" (port %ld) is not in ft.allowed_provider_hosts%s",
			 host, port, ft_host_is_loopback(host) ? "; loopback hosts must be listed explicitly" : "");
	return false;
}

/* Which responses are worth another try */
FtOutcome
ft_classify_response(bool transport_error, long status, const char *error_code)
{
	if (transport_error)
		return FT_OUTCOME_RETRY;
	if (status >= 200 && status < 300)
		return FT_OUTCOME_OK;
	/* Out of credit is not going to fix itself in a minute */
	if (status == 429 && error_code != NULL && strcmp(error_code, "insufficient_quota") == 0)
		return FT_OUTCOME_FAIL;
	if (status == 408 || status == 409 || status == 429 || status >= 500)
		return FT_OUTCOME_RETRY;
	return FT_OUTCOME_FAIL;
}

/* Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to cap, minus up to a quarter */
long
ft_backoff_ms(int attempt, double jitter01, long cap_ms)
{
	double		delay = 1000.0;

	for (int i = 1; i < attempt && delay < cap_ms; i++)
		delay *= 2;
	if (delay > cap_ms)
		delay = cap_ms;
	return (long) (delay * (1.0 - 0.25 * jitter01));
}

/* Seconds as milliseconds, saturating instead of overflowing on absurd values */
static long
SecondsToMs(long seconds)
{
	return seconds > LONG_MAX / 1000 ? LONG_MAX / 1000 * 1000 : seconds * 1000;
}

/* Retry-After: delta seconds or an HTTP date; -1 when unreadable */
long
ft_parse_retry_after(const char *value, long now_s)
{
	char	   *end;
	long		seconds;
	struct tm	tm;

	while (value && isspace((unsigned char) *value))
		value++;
	if (value == NULL || *value == '\0')
		return -1;
	seconds = strtol(value, &end, 10);
	if (end != value && (*end == '\0' || isspace((unsigned char) *end)))
		return seconds < 0 ? -1 : SecondsToMs(seconds);
	memset(&tm, 0, sizeof(tm));
	if (strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm) == NULL)
		return -1;
	seconds = (long) timegm(&tm) - now_s;
	return seconds < 0 ? 0 : SecondsToMs(seconds);
}
