/*
 * The OpenAI fine-tuning protocol (also spoken by the local mock provider). Parsing is lenient:
 * unknown fields, "error": {} or all-null, numbers written as reals and unknown statuses are read
 * without failing, as the real API sends all of them.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METADATA_KEY "pg_finetune_job"

/* Copy a string member into a fixed buffer; empty when missing or not a string */
static void
CopyString(json_t *obj, const char *key, char *out, size_t outlen)
{
	json_t	   *v = json_object_get(obj, key);

	out[0] = '\0';
	if (json_is_string(v))
		snprintf(out, outlen, "%s", json_string_value(v));
}

/* A number member as an integer (reals like 3.0 accepted); -1 when missing */
static long long
GetInteger(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long) llround(json_real_value(v));
	return -1;
}

/* Shared with the other adapters: a string member into a fixed buffer */
void
ft_json_copy(json_t *obj, const char *key, char *out, size_t outlen)
{
	CopyString(obj, key, out, outlen);
}

/* Shared: an integer member (reals accepted), -1 when missing */
long long
ft_json_integer(json_t *obj, const char *key)
{
	return GetInteger(obj, key);
}

/* Shared: a number member, NaN when missing or not a number */
double
ft_json_number(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

/*
 * An ISO-8601 / RFC 3339 time ("2024-05-01T10:20:30.123Z", "+02:00" offsets, a space instead
 * of T) as unix seconds; -1 when unreadable
 */
long long
ft_parse_iso_time(const char *text)
{
	struct tm	tm;
	int			y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	const char *p;
	long long	t;

	if (text == NULL || sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	p = text + n;
	if ((*p == 'T' || *p == 't' || *p == ' ') && sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) == 3)
		p += 1 + n;
	else if (*p != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (long long) timegm(&tm);
	if (*p == '.')
		while (isdigit((unsigned char) *++p))
			;
	if ((*p == '+' || *p == '-') && isdigit((unsigned char) p[1]))
	{
		int			oh = 0, om = 0;

		if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1 && sscanf(p + 1, "%2d%2d", &oh, &om) < 1)
			return -1;
		t -= (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
	}
	return t;
}

/* Shared: the settings object of a provider (never NULL; decref it) */
json_t *
ft_settings(const FtProviderConfig *cfg)
{
	json_t	   *s = cfg->settings_json[0] ? json_loads(cfg->settings_json, 0, NULL) : NULL;

	if (!json_is_object(s))
	{
		json_decref(s);
		s = json_object();
	}
	return s;
}

/* Shared: a string setting, or the default when missing or empty */
const char *
ft_setting(json_t *settings, const char *key, const char *dflt)
{
	json_t	   *v = json_object_get(settings, key);

	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : dflt;
}

/*
 * Shared: an id for an event the provider sends without one, stable across polls (so each is
 * stored once): FNV-1a of its time, type, message and the salt
 */
void
ft_event_id(FtProviderEvent *e, const char *salt)
{
	unsigned long long h = 1469598103934665603ULL;
	char		buf[64];
	const char *parts[4] = {buf, e->type, e->message ? e->message : "", salt ? salt : ""};

	snprintf(buf, sizeof(buf), "%lld", e->created_at);
	for (int i = 0; i < 4; i++)
	{
		for (const unsigned char *c = (const unsigned char *) parts[i]; *c; c++)
			h = (h ^ *c) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	snprintf(e->id, sizeof(e->id), "ev-%016llx", h);
}

/* Join base URL and path */
static void
BuildUrl(const FtProviderConfig *cfg, FtHttpCall *call, const char *fmt, const char *a, const char *b)
{
	char		path[1024];
	size_t		n = strlen(cfg->base_url);

	snprintf(path, sizeof(path), fmt, a ? a : "", b ? b : "");
	snprintf(call->url, sizeof(call->url), "%.*s%s", (int) (n > 0 && cfg->base_url[n - 1] == '/' ? n - 1 : n),
			 cfg->base_url, path);
}

/* Start a call with defaults */
static void
InitCall(FtHttpCall *call, const char *method)
{
	memset(call, 0, sizeof(*call));
	call->method = method;
}

/* Shared: InitCall */
void
ft_call_init(FtHttpCall *call, const char *method)
{
	InitCall(call, method);
}

/* Shared: BuildUrl */
void
ft_call_url(const FtProviderConfig *cfg, FtHttpCall *call, const char *fmt, const char *a, const char *b)
{
	BuildUrl(cfg, call, fmt, a, b);
}

/* OpenAI status names onto ours; unknown ones (paused, pausing, ...) map to "" */
static const char *
MapStatus(const char *raw)
{
	static const char *const known[] = {"validating_files", "queued", "running", "succeeded", "failed", "cancelled", NULL};

	for (int i = 0; known[i]; i++)
		if (strcmp(raw, known[i]) == 0)
			return known[i];
	return "";
}

static void
OpenAIAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "Authorization: Bearer %s", cfg->api_key ? cfg->api_key : "");
}

static void
OpenAIUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	InitCall(call, "POST");
	BuildUrl(cfg, call, "/files", NULL, NULL);
	call->upload_path = path;
	snprintf(call->upload_name, sizeof(call->upload_name), "%s", name);
}

static bool
OpenAIParseFileId(const char *body, char *id, size_t idlen)
{
	json_t	   *root = json_loads(body, 0, NULL);

	id[0] = '\0';
	if (root)
		CopyString(root, "id", id, idlen);
	json_decref(root);
	return id[0] != '\0';
}

/* The body of POST /fine_tuning/jobs */
static void
OpenAICreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	json_t	   *body = json_object();
	json_t	   *hp = spec->hyperparameters_json ? json_loads(spec->hyperparameters_json, 0, NULL) : NULL;
	json_t	   *method = json_object();
	json_t	   *inner = json_object();

	InitCall(call, "POST");
	BuildUrl(cfg, call, "/fine_tuning/jobs", NULL, NULL);
	call->fresh_connection = true;
	json_object_set_new(body, "model", json_string(spec->model));
	json_object_set_new(body, "training_file", json_string(spec->training_file));
	if (spec->validation_file)
		json_object_set_new(body, "validation_file", json_string(spec->validation_file));
	if (spec->suffix)
		json_object_set_new(body, "suffix", json_string(spec->suffix));
	if (spec->seed >= 0)
		json_object_set_new(body, "seed", json_integer(spec->seed));
	json_object_set_new(inner, "hyperparameters", hp && json_is_object(hp) ? json_incref(hp) : json_object());
	json_object_set_new(method, "type", json_string(spec->method));
	json_object_set_new(method, spec->method, inner);
	json_object_set_new(body, "method", method);
	json_object_set_new(body, "metadata", json_pack("{ss}", METADATA_KEY, spec->our_id));
	/* 15 significant digits: 0.1 stays 0.1 instead of 0.10000000000000001 */
	call->body = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(hp);
	json_decref(body);
}

static void
OpenAIFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	InitCall(call, "GET");
	BuildUrl(cfg, call, "/fine_tuning/jobs?limit=10&metadata[" METADATA_KEY "]=%s", our_id, NULL);
}

/* Read a job object into the neutral struct */
static void
ReadJob(json_t *obj, FtProviderJob *job)
{
	json_t	   *error = json_object_get(obj, "error");
	json_t	   *results = json_object_get(obj, "result_files");
	json_t	   *metadata = json_object_get(obj, "metadata");

	memset(job, 0, sizeof(*job));
	CopyString(obj, "id", job->id, sizeof(job->id));
	CopyString(obj, "status", job->raw_status, sizeof(job->raw_status));
	snprintf(job->status, sizeof(job->status), "%s", MapStatus(job->raw_status));
	CopyString(obj, "fine_tuned_model", job->fine_tuned_model, sizeof(job->fine_tuned_model));
	CopyString(obj, "training_file", job->training_file, sizeof(job->training_file));
	job->trained_tokens = GetInteger(obj, "trained_tokens");
	job->estimated_finish = GetInteger(obj, "estimated_finish");
	job->finished_at = GetInteger(obj, "finished_at");
	if (json_is_object(error))
	{
		CopyString(error, "code", job->error_code, sizeof(job->error_code));
		CopyString(error, "message", job->error_message, sizeof(job->error_message));
	}
	if (json_is_array(results) && json_array_size(results) > 0 && json_is_string(json_array_get(results, 0)))
		snprintf(job->result_file, sizeof(job->result_file), "%s", json_string_value(json_array_get(results, 0)));
	if (json_is_object(metadata))
		CopyString(metadata, METADATA_KEY, job->metadata_job, sizeof(job->metadata_job));
}

/* Shared: a job object read by the adapter's reader; false unless it is an object carrying id_key */
bool
ft_parse_job_object(const char *body, const char *id_key, FtJobReader read, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	bool		ok = json_is_object(root) && json_is_string(json_object_get(root, id_key));

	if (ok)
		read(root, job);
	json_decref(root);
	return ok;
}

/*
 * Shared: the job of a listing (the array under list_key, or a bare array) that carries our id in
 * its metadata, or for providers without metadata, that trains on our file. The filter is
 * checked here even when the request asked the server for it, in case a server ignores it.
 */
bool
ft_find_in_listing(const char *body, const char *list_key, FtJobReader read, bool by_metadata,
				   const char *want, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_is_array(root) ? root : json_object_get(root, list_key);
	bool		found = false;

	for (size_t i = 0; want[0] && json_is_array(data) && i < json_array_size(data) && !found; i++)
	{
		read(json_array_get(data, i), job);
		found = strcmp(by_metadata ? job->metadata_job : job->training_file, want) == 0;
	}
	json_decref(root);
	return found;
}

static bool
OpenAIParseJob(const char *body, FtProviderJob *job)
{
	return ft_parse_job_object(body, "id", ReadJob, job);
}

static bool
OpenAIParseFind(const char *body, const char *our_id, FtProviderJob *job)
{
	return ft_find_in_listing(body, "data", ReadJob, true, our_id, job);
}

static void
OpenAIGet(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	InitCall(call, "GET");
	BuildUrl(cfg, call, "/fine_tuning/jobs/%s", job_id, NULL);
}

static void
OpenAIEvents(const FtProviderConfig *cfg, const char *job_id, const char *after, FtHttpCall *call)
{
	InitCall(call, "GET");
	if (after && after[0])
		BuildUrl(cfg, call, "/fine_tuning/jobs/%s/events?limit=50&after=%s", job_id, after);
	else
		BuildUrl(cfg, call, "/fine_tuning/jobs/%s/events?limit=50", job_id, NULL);
}

/* Events newest first, as the provider sends them; returns how many, -1 on an unusable body */
static int
OpenAIParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "data");
	int			n;

	*events = NULL;
	*has_more = false;
	if (!json_is_array(data))
	{
		json_decref(root);
		return -1;
	}
	n = (int) json_array_size(data);
	*has_more = json_is_true(json_object_get(root, "has_more"));
	*events = calloc(n > 0 ? n : 1, sizeof(FtProviderEvent));
	for (int i = 0; i < n; i++)
	{
		json_t	   *e = json_array_get(data, i);
		json_t	   *d = json_object_get(e, "data");
		json_t	   *msg = json_object_get(e, "message");
		FtProviderEvent *out = &(*events)[i];

		CopyString(e, "id", out->id, sizeof(out->id));
		CopyString(e, "level", out->level, sizeof(out->level));
		CopyString(e, "type", out->type, sizeof(out->type));
		out->message = strdup(json_is_string(msg) ? json_string_value(msg) : "");
		out->data_json = (d && !json_is_null(d)) ? json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		out->created_at = GetInteger(e, "created_at");
	}
	json_decref(root);
	return n;
}

static void
OpenAICheckpoints(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	InitCall(call, "GET");
	BuildUrl(cfg, call, "/fine_tuning/jobs/%s/checkpoints?limit=100", job_id, NULL);
}

static int
OpenAIParseCheckpoints(const char *body, FtProviderCheckpoint **checkpoints)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "data");
	int			n;

	*checkpoints = NULL;
	if (!json_is_array(data))
	{
		json_decref(root);
		return -1;
	}
	n = (int) json_array_size(data);
	*checkpoints = calloc(n > 0 ? n : 1, sizeof(FtProviderCheckpoint));
	for (int i = 0; i < n; i++)
	{
		json_t	   *c = json_array_get(data, i);
		json_t	   *m = json_object_get(c, "metrics");
		FtProviderCheckpoint *out = &(*checkpoints)[i];

		CopyString(c, "id", out->id, sizeof(out->id));
		CopyString(c, "fine_tuned_model_checkpoint", out->model, sizeof(out->model));
		out->step = GetInteger(c, "step_number");
		out->created_at = GetInteger(c, "created_at");
		out->metrics_json = json_is_object(m) ? json_dumps(m, JSON_COMPACT) : NULL;
	}
	json_decref(root);
	return n;
}

static void
OpenAICancel(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	InitCall(call, "POST");
	BuildUrl(cfg, call, "/fine_tuning/jobs/%s/cancel", job_id, NULL);
}

static void
OpenAIFileContent(const FtProviderConfig *cfg, const char *file_id, FtHttpCall *call)
{
	InitCall(call, "GET");
	BuildUrl(cfg, call, "/files/%s/content", file_id, NULL);
}

/* POST /uploads: announce a large file */
static void
OpenAIUploadBegin(const FtProviderConfig *cfg, const char *name, long long bytes, FtHttpCall *call)
{
	json_t	   *body = json_pack("{sssssIss}", "filename", name, "purpose", "fine-tune", "bytes", (json_int_t) bytes,
								 "mime_type", "application/jsonl");

	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/uploads", NULL, NULL);
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
}

/* POST /uploads/{id}/parts: one byte range of the file as the multipart field "data" */
static void
OpenAIUploadPart(const FtProviderConfig *cfg, const char *upload_id, const char *path, long long offset,
				 long long length, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/uploads/%s/parts", upload_id, NULL);
	call->upload_path = path;
	call->upload_offset = offset;
	call->upload_length = length;
	snprintf(call->upload_name, sizeof(call->upload_name), "part");
	snprintf(call->upload_field, sizeof(call->upload_field), "data");
	call->nform = 0;
}

/* POST /uploads/{id}/complete with the part ids in order */
static void
OpenAIUploadComplete(const FtProviderConfig *cfg, const char *upload_id, const char *part_ids_json, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/uploads/%s/complete", upload_id, NULL);
	call->body = malloc(strlen(part_ids_json) + 16);
	if (call->body)
		sprintf(call->body, "{\"part_ids\":%s}", part_ids_json);
}

/* The id of an upload or part; once completed, also the id of the file it became */
static bool
OpenAIParseUpload(const char *body, char *id, size_t idlen, char *file_id, size_t filelen)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *file = json_object_get(root, "file");

	id[0] = file_id[0] = '\0';
	if (json_is_object(root))
		ft_json_copy(root, "id", id, idlen);
	if (json_is_object(file))
		ft_json_copy(file, "id", file_id, filelen);
	json_decref(root);
	return id[0] != '\0';
}

/* {"error": {"message", "type", "param", "code"}}; code falls back to type */
static void
OpenAIParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root = body ? json_loads(body, 0, NULL) : NULL;
	json_t	   *error = json_object_get(root, "error");

	code[0] = message[0] = '\0';
	if (json_is_object(error))
	{
		CopyString(error, "code", code, codelen);
		if (code[0] == '\0')
			CopyString(error, "type", code, codelen);
		CopyString(error, "message", message, msglen);
	}
	json_decref(root);
}

const FtProviderAdapter ft_openai_adapter = {
	.kind = "openai",
	.auth_header = OpenAIAuthHeader,
	.upload = OpenAIUpload,
	.parse_file_id = OpenAIParseFileId,
	.create = OpenAICreate,
	.find_by_our_id = OpenAIFindByOurId,
	.parse_find = OpenAIParseFind,
	.get = OpenAIGet,
	.parse_job = OpenAIParseJob,
	.events = OpenAIEvents,
	.parse_events = OpenAIParseEvents,
	.checkpoints = OpenAICheckpoints,
	.parse_checkpoints = OpenAIParseCheckpoints,
	.cancel = OpenAICancel,
	.file_content = OpenAIFileContent,
	.parse_error = OpenAIParseError,
	.supports_dpo = true,
	.upload_begin = OpenAIUploadBegin,
	.upload_part = OpenAIUploadPart,
	.upload_complete = OpenAIUploadComplete,
	.parse_upload = OpenAIParseUpload,
};

/* The adapter of a provider kind; NULL when pg_finetune does not speak it yet */
const FtProviderAdapter *
ft_provider_adapter(const char *kind)
{
	static const FtProviderAdapter *const others[] = {&ft_azure_adapter, &ft_together_adapter, &ft_fireworks_adapter,
	&ft_mistral_adapter, &ft_replicate_adapter, NULL};

	if (strcmp(kind, "openai") == 0 || strcmp(kind, "mock") == 0)
		return &ft_openai_adapter;
	for (int i = 0; others[i]; i++)
		if (strcmp(kind, others[i]->kind) == 0)
			return others[i];
	return NULL;
}

/* Free what parse_events returned */
void
ft_free_events(FtProviderEvent *events, int n)
{
	for (int i = 0; i < n; i++)
	{
		free(events[i].message);
		free(events[i].data_json);
	}
	free(events);
}

/* Free what parse_checkpoints returned */
void
ft_free_checkpoints(FtProviderCheckpoint *checkpoints, int n)
{
	for (int i = 0; i < n; i++)
		free(checkpoints[i].metrics_json);
	free(checkpoints);
}
