/*
 * The OpenAI fine-tuning protocol (also spoken by the local mock provider). Parsing is lenient:
 * unknown fields, "error": {} or all-null, numbers written as reals and unknown statuses are read
 * without failing, as the real API sends all of them.
 */
#include "provider.h"

#include "ft_jansson.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
OpenAIUpload(const FtProviderConfig *cfg, const char *path, const char *name, FtHttpCall *call)
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
	call->body = json_dumps(body, JSON_COMPACT);
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

static bool
OpenAIParseJob(const char *body, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	bool		ok = json_is_object(root) && json_is_string(json_object_get(root, "id"));

	if (ok)
		ReadJob(root, job);
	json_decref(root);
	return ok;
}

/* A listing filtered by our metadata; the filter is checked again in case a server ignores it */
static bool
OpenAIParseFind(const char *body, const char *our_id, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "data");
	bool		found = false;

	for (size_t i = 0; json_is_array(data) && i < json_array_size(data) && !found; i++)
	{
		ReadJob(json_array_get(data, i), job);
		found = strcmp(job->metadata_job, our_id) == 0;
	}
	json_decref(root);
	return found;
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

static const FtProviderAdapter OpenAIAdapter = {
	"openai", OpenAIAuthHeader, OpenAIUpload, OpenAIParseFileId, OpenAICreate, OpenAIFindByOurId,
	OpenAIParseFind, OpenAIGet, OpenAIParseJob, OpenAIEvents, OpenAIParseEvents, OpenAICheckpoints,
	OpenAIParseCheckpoints, OpenAICancel, OpenAIFileContent, OpenAIParseError
};

/* The adapter of a provider kind; NULL when pg_finetune does not speak it yet */
const FtProviderAdapter *
ft_provider_adapter(const char *kind)
{
	if (strcmp(kind, "openai") == 0 || strcmp(kind, "mock") == 0)
		return &OpenAIAdapter;
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
