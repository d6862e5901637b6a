#ifndef FT_HTTP_H
#define FT_HTTP_H

/*
 * libcurl transfers for provider calls: limits, TLS, size cap and the headers we need
 * (x-request-id, Retry-After). No PostgreSQL here; memory is malloc'd as libcurl requires.
 */
#include <curl/curl.h>
#include <stdbool.h>

#include "provider.h"

typedef struct FtHttpLimits
{
	long		connect_timeout_ms;
	long		timeout_ms;
	long		upload_timeout_ms;
	size_t		max_response_bytes;
	const char *ca_bundle;		/* NULL or "" = system store */
} FtHttpLimits;

typedef struct FtHttpResponse
{
	CURLcode	result;
	long		status;
	char	   *body;			/* NUL-terminated, malloc'd */
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	char		request_id[128];
	long		retry_after_ms; /* -1 when the server gave none */
	char		error[CURL_ERROR_SIZE];
} FtHttpResponse;

typedef struct FtHttpTransfer
{
	CURL	   *easy;
	struct curl_slist *headers;
	curl_mime  *mime;
	char	   *body;
	FtHttpResponse response;
} FtHttpTransfer;

extern bool ft_http_start(CURLM *multi, FtHttpTransfer *t, const FtHttpCall *call, const char *auth_header,
						  const FtHttpLimits *limits, void *owner, char *err, size_t errlen);
extern void ft_http_done(CURLM *multi, FtHttpTransfer *t, CURLcode result);
extern void ft_http_cleanup(CURLM *multi, FtHttpTransfer *t);
extern bool ft_url_host(const char *url, char *host, size_t hostlen, long *port);

#endif
