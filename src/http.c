/*
 * One libcurl easy handle per provider call, driven by the worker's multi handle.
 */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http_policy.h"

/* Append response bytes, refusing bodies over the cap */
static size_t
WriteBody(char *data, size_t size, size_t nmemb, void *userp)
{
	FtHttpResponse *r = userp;
	size_t		n = size * nmemb;

	if (r->len + n > r->limit)
	{
		r->too_large = true;
		return 0;				/* makes libcurl abort the transfer */
	}
	if (r->len + n + 1 > r->cap)
	{
		size_t		cap = r->cap ? r->cap : 4096;
		char	   *grown;

		while (cap < r->len + n + 1)
			cap *= 2;
		if ((grown = realloc(r->body, cap)) == NULL)
			return 0;
		r->body = grown;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Is this header line "name: value"? Sets *value past the colon and spaces */
static bool
HeaderIs(const char *line, size_t len, const char *name, const char **value)
{
	size_t		n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return false;
	*value = line + n + 1;
	while (**value == ' ')
		(*value)++;
	return true;
}

/* Keep the headers that matter: request id and server-requested delays */
static size_t
ReadHeader(char *line, size_t size, size_t nitems, void *userp)
{
	FtHttpResponse *r = userp;
	size_t		n = size * nitems;
	const char *value;
	char		buf[256];
	size_t		vlen;

	if (HeaderIs(line, n, "x-request-id", &value) || HeaderIs(line, n, "retry-after-ms", &value) ||
		HeaderIs(line, n, "retry-after", &value))
	{
		vlen = n - (size_t) (value - line);
		while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(buf))
			vlen = sizeof(buf) - 1;
		memcpy(buf, value, vlen);
		buf[vlen] = '\0';
		if (strncasecmp(line, "x-request-id", 12) == 0)
			snprintf(r->request_id, sizeof(r->request_id), "%s", buf);
		else if (strncasecmp(line, "retry-after-ms", 14) == 0)
			r->retry_after_ms = strtol(buf, NULL, 10);
		else if (r->retry_after_ms < 0)
			r->retry_after_ms = ft_parse_retry_after(buf, (long) time(NULL));
	}
	return n;
}

/* Host and port of a URL */
bool
ft_url_host(const char *url, char *host, size_t hostlen, long *port)
{
	CURLU	   *u = curl_url();
	char	   *h = NULL,
			   *p = NULL;
	bool		ok;

	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK;
	if (ok)
	{
		snprintf(host, hostlen, "%s", h);
		*port = strtol(p, NULL, 10);
	}
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return ok;
}

/* A byte range of a file, streamed into one part of a multi-part upload */
typedef struct FileRange
{
	FILE	   *file;
	long long	remaining;
} FileRange;

/* libcurl read callback: the next bytes of the range */
static size_t
ReadRange(char *buffer, size_t size, size_t nitems, void *arg)
{
	FileRange  *range = arg;
	size_t		want = size * nitems;

	if ((long long) want > range->remaining)
		want = (size_t) range->remaining;
	want = want > 0 ? fread(buffer, 1, want, range->file) : 0;
	range->remaining -= (long long) want;
	return want;
}

/* libcurl free callback of a range */
static void
FreeRange(void *arg)
{
	FileRange  *range = arg;

	fclose(range->file);
	free(range);
}

/* The file part of a multipart body: the whole file, or only a byte range of it */
static bool
SetFileData(curl_mimepart *part, const FtHttpCall *call)
{
	FileRange  *range;

	if (call->upload_length <= 0)
		return curl_mime_filedata(part, call->upload_path) == CURLE_OK;
	if ((range = malloc(sizeof(FileRange))) == NULL)
		return false;
	range->remaining = call->upload_length;
	if ((range->file = fopen(call->upload_path, "rb")) == NULL || fseeko(range->file, call->upload_offset, SEEK_SET) != 0)
	{
		if (range->file)
			fclose(range->file);
		free(range);
		return false;
	}
	return curl_mime_data_cb(part, call->upload_length, ReadRange, NULL, FreeRange, range) == CURLE_OK;
}

/* Body: a multipart file upload (streamed from disk) or JSON */
static bool
SetBody(FtHttpTransfer *t, const FtHttpCall *call)
{
	if (call->upload_path)
	{
		curl_mimepart *part;

		t->mime = curl_mime_init(t->easy);
		/* The adapter names the fields when the provider's shape is not OpenAI's */
		for (int i = 0; i < (call->upload_field[0] ? call->nform : 1); i++)
		{
			part = curl_mime_addpart(t->mime);
			curl_mime_name(part, call->upload_field[0] ? call->form[i].name : "purpose");
			curl_mime_data(part, call->upload_field[0] ? call->form[i].value : "fine-tune", CURL_ZERO_TERMINATED);
		}
		part = curl_mime_addpart(t->mime);
		curl_mime_name(part, call->upload_field[0] ? call->upload_field : "file");
		if (!SetFileData(part, call))
			return false;
		curl_mime_filename(part, call->upload_name);
		curl_mime_type(part, "application/jsonl");
		curl_easy_setopt(t->easy, CURLOPT_MIMEPOST, t->mime);
		return true;
	}
	if (strcmp(call->method, "POST") == 0)
	{
		t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, call->body ? call->body : "");
	}
	return true;
}

/* Configure a transfer for one call and add it to the multi handle */
bool
ft_http_start(CURLM *multi, FtHttpTransfer *t, const FtHttpCall *call, const char *auth_header,
			  const FtHttpLimits *limits, void *owner, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->response.retry_after_ms = -1;
	t->response.limit = limits->max_response_bytes;
	t->body = call->body;
	if ((t->easy = curl_easy_init()) == NULL)
	{
		snprintf(err, errlen, "could not create a libcurl handle");
		return false;
	}
	curl_easy_setopt(t->easy, CURLOPT_URL, call->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (limits->ca_bundle && limits->ca_bundle[0])
		curl_easy_setopt(t->easy, CURLOPT_CAINFO, limits->ca_bundle);
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, limits->connect_timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, call->upload_path ? limits->upload_timeout_ms : limits->timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) limits->max_response_bytes);
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "pg_finetune/0.1.0");
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, WriteBody);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, &t->response);
	curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, ReadHeader);
	curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, &t->response);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->response.error);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, owner);

	/*
	 * A create must never be sent twice: libcurl re-sends a request silently when a kept-alive
	 * connection turns out dead, so creates get a connection of their own.
	 */
	if (call->fresh_connection)
	{
		curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
	}
	t->headers = curl_slist_append(t->headers, auth_header);
	t->headers = curl_slist_append(t->headers, "Accept: application/json");
	if (!SetBody(t, call))
	{
		snprintf(err, errlen, "could not read dataset file %s", call->upload_path);
		ft_http_cleanup(NULL, t);
		return false;
	}
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, call->method);
	if (curl_multi_add_handle(multi, t->easy) != CURLM_OK)
	{
		snprintf(err, errlen, "could not start a provider request");
		ft_http_cleanup(NULL, t);
		return false;
	}
	return true;
}

/* Record how a transfer ended */
void
ft_http_done(CURLM *multi, FtHttpTransfer *t, CURLcode result)
{
	t->response.result = result;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->response.status);
	if (t->response.body == NULL)
		t->response.body = calloc(1, 1);
	if (result != CURLE_OK && t->response.error[0] == '\0')
		snprintf(t->response.error, sizeof(t->response.error), "%s", curl_easy_strerror(result));
	if (t->response.too_large)
		snprintf(t->response.error, sizeof(t->response.error), "response larger than ft.max_response_size");
}

/* Release everything a transfer holds */
void
ft_http_cleanup(CURLM *multi, FtHttpTransfer *t)
{
	if (t->easy)
	{
		if (multi)
			curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	curl_mime_free(t->mime);
	curl_slist_free_all(t->headers);
	free(t->body);
	free(t->response.body);
	memset(t, 0, sizeof(*t));
}
