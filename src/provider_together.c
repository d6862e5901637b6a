/*
 * Together AI fine-tuning (https://api.together.xyz/v1): multipart upload to /files/upload with
 * file_name, flat hyperparameters, ISO-8601 times, model_output_name for the model, events
 * without ids (we derive stable ones). Together keeps no metadata we could tag a job with, so
 * after a crash a job is found by its training file, which only our job uploaded.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Together's statuses onto ours; a cancel requested elsewhere keeps the job live */
static const char *
TogetherStatus(const char *raw)
{
	static const char *const map[][2] = {
		{"pending", "queued"}, {"queued", "queued"}, {"validating", "validating_files"}, {"running", "running"},
		{"compressing", "running"}, {"uploading", "running"}, {"cancel_requested", "running"},
		{"cancelled", "cancelled"}, {"error", "failed"}, {"user_error", "failed"}, {"completed", "succeeded"},
		{NULL, NULL}};

	for (int i = 0; map[i][0]; i++)
		if (strcmp(raw, map[i][0]) == 0)
			return map[i][1];
	return "";
}

static void
TogetherAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "Authorization: Bearer %s", cfg->api_key ? cfg->api_key : "");
}

/* POST /files/upload: purpose, file_name, file_type, then the file */
static void
TogetherUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/files/upload", NULL, NULL);
	call->upload_path = path;
	snprintf(call->upload_name, sizeof(call->upload_name), "pgft-%s-%s", our_id, name);
	snprintf(call->upload_field, sizeof(call->upload_field), "file");
	call->nform = 3;
	snprintf(call->form[0].name, sizeof(call->form[0].name), "purpose");
	snprintf(call->form[0].value, sizeof(call->form[0].value), "fine-tune");
	snprintf(call->form[1].name, sizeof(call->form[1].name), "file_name");
	snprintf(call->form[1].value, sizeof(call->form[1].value), "%s", call->upload_name);
	snprintf(call->form[2].name, sizeof(call->form[2].name), "file_type");
	snprintf(call->form[2].value, sizeof(call->form[2].value), "jsonl");
}

static bool
TogetherParseFileId(const char *body, char *id, size_t idlen)
{
	json_t	   *root = json_loads(body, 0, NULL);

	id[0] = '\0';
	if (json_is_object(root))
		ft_json_copy(root, "id", id, idlen);
	json_decref(root);
	return id[0] != '\0';
}

/*
 * POST /fine-tunes with flat fields. Our learning_rate_multiplier scales Together's default
 * learning rate (1e-5); "auto" values are left out so Together's defaults apply.
 */
static void
TogetherCreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	json_t	   *body = json_object();
	json_t	   *hp = spec->hyperparameters_json ? json_loads(spec->hyperparameters_json, 0, NULL) : NULL;
	json_t	   *method = json_object();
	double		lrm = ft_json_number(hp, "learning_rate_multiplier");
	double		beta = ft_json_number(hp, "beta");

	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/fine-tunes", NULL, NULL);
	call->fresh_connection = true;
	json_object_set_new(body, "training_file", json_string(spec->training_file));
	if (spec->validation_file)
	{
		json_object_set_new(body, "validation_file", json_string(spec->validation_file));
		json_object_set_new(body, "n_evals", json_integer(1));
	}
	json_object_set_new(body, "model", json_string(spec->model));
	if (ft_json_integer(hp, "n_epochs") > 0)
		json_object_set_new(body, "n_epochs", json_integer(ft_json_integer(hp, "n_epochs")));
	if (ft_json_integer(hp, "batch_size") > 0)
		json_object_set_new(body, "batch_size", json_integer(ft_json_integer(hp, "batch_size")));
	if (!isnan(lrm))
		json_object_set_new(body, "learning_rate", json_real(1e-5 * lrm));
	if (spec->suffix)
		json_object_set_new(body, "suffix", json_string(spec->suffix));
	if (spec->seed >= 0)
		json_object_set_new(body, "random_seed", json_integer(spec->seed));
	json_object_set_new(method, "method", json_string(strcmp(spec->method, "dpo") == 0 ? "dpo" : "sft"));
	if (strcmp(spec->method, "dpo") == 0 && !isnan(beta))
		json_object_set_new(method, "dpo_beta", json_real(beta));
	json_object_set_new(body, "training_method", method);
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(hp);
	json_decref(body);
}

static void
TogetherFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine-tunes", NULL, NULL);
}

/* The message of the job's last error event, when it failed */
static void
LastErrorEvent(json_t *events, FtProviderJob *job)
{
	for (size_t i = 0; json_is_array(events) && i < json_array_size(events); i++)
	{
		json_t	   *e = json_array_get(events, i);
		json_t	   *level = json_object_get(e, "level");
		json_t	   *type = json_object_get(e, "type");

		if ((json_is_string(level) && strcmp(json_string_value(level), "error") == 0) ||
			(json_is_string(type) && strcmp(json_string_value(type), "job_error") == 0))
			ft_json_copy(e, "message", job->error_message, sizeof(job->error_message));
	}
}

/* Read a job object into the neutral struct */
static void
ReadJob(json_t *obj, FtProviderJob *job)
{
	json_t	   *error = json_object_get(obj, "error");
	json_t	   *progress = json_object_get(obj, "progress");
	json_t	   *updated = json_object_get(obj, "updated_at");
	long long	tokens = ft_json_integer(obj, "token_count");
	long long	epochs = ft_json_integer(obj, "n_epochs");

	memset(job, 0, sizeof(*job));
	ft_json_copy(obj, "id", job->id, sizeof(job->id));
	ft_json_copy(obj, "status", job->raw_status, sizeof(job->raw_status));
	snprintf(job->status, sizeof(job->status), "%s", TogetherStatus(job->raw_status));
	ft_json_copy(obj, "model_output_name", job->fine_tuned_model, sizeof(job->fine_tuned_model));
	ft_json_copy(obj, "training_file", job->training_file, sizeof(job->training_file));
	/* Together bills the dataset's tokens once per epoch; a product that overflows is unknown */
	if (epochs < 1)
		epochs = 1;
	job->trained_tokens = tokens > 0 && tokens <= LLONG_MAX / epochs ? tokens * epochs : -1;
	job->estimated_finish = -1;
	if (json_is_true(json_object_get(progress, "estimate_available")) &&
		ft_json_integer(progress, "seconds_remaining") >= 0 &&
		ft_json_integer(progress, "seconds_remaining") <= LLONG_MAX - (long long) time(NULL))
		job->estimated_finish = (long long) time(NULL) + ft_json_integer(progress, "seconds_remaining");
	job->finished_at = -1;
	if (strcmp(job->status, "succeeded") == 0 || strcmp(job->status, "failed") == 0 || strcmp(job->status, "cancelled") == 0)
		job->finished_at = json_is_string(updated) ? ft_parse_iso_time(json_string_value(updated)) : -1;
	if (json_is_string(error))
		snprintf(job->error_message, sizeof(job->error_message), "%s", json_string_value(error));
	else if (json_is_object(error))
	{
		ft_json_copy(error, "code", job->error_code, sizeof(job->error_code));
		ft_json_copy(error, "message", job->error_message, sizeof(job->error_message));
	}
	if (strcmp(job->status, "failed") == 0)
	{
		if (job->error_message[0] == '\0')
			LastErrorEvent(json_object_get(obj, "events"), job);
		if (job->error_code[0] == '\0')
			snprintf(job->error_code, sizeof(job->error_code), "%s", job->raw_status);
	}
}

static bool
TogetherParseJob(const char *body, FtProviderJob *job)
{
	return ft_parse_job_object(body, "id", ReadJob, job);
}

/* The job training on our file, from GET /fine-tunes ({"data": [...]}) */
static bool
TogetherParseFind(const char *body, const char *training_file, FtProviderJob *job)
{
	return ft_find_in_listing(body, "data", ReadJob, false, training_file, job);
}

static void
TogetherGet(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine-tunes/%s", job_id, NULL);
}

/* All events at once: Together pages nothing */
static void
TogetherEvents(const FtProviderConfig *cfg, const char *job_id, const char *after, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine-tunes/%s/events", job_id, NULL);
}

/* Newest first, as the worker expects: Together lists events oldest first */
static void
NewestFirst(FtProviderEvent *events, int n)
{
	if (n < 2 || events[0].created_at > events[n - 1].created_at)
		return;
	for (int i = 0, j = n - 1; i < j; i++, j--)
	{
		FtProviderEvent t = events[i];

		events[i] = events[j];
		events[j] = t;
	}
}

/* {"data": [FineTuneEvent]}; events have no ids, so each gets one derived from its content */
static int
TogetherParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_is_array(root) ? root : json_object_get(root, "data");
	int			n;

	*events = NULL;
	*has_more = false;
	if (!json_is_array(data))
	{
		json_decref(root);
		return -1;
	}
	n = (int) json_array_size(data);
	*events = calloc(n > 0 ? n : 1, sizeof(FtProviderEvent));
	for (int i = 0; i < n; i++)
	{
		json_t	   *e = json_array_get(data, i);
		json_t	   *created = json_object_get(e, "created_at");
		json_t	   *msg = json_object_get(e, "message");
		FtProviderEvent *out = &(*events)[i];
		json_t	   *d = json_object();
		char		salt[32];

		ft_json_copy(e, "level", out->level, sizeof(out->level));
		if (strcmp(out->level, "warning") == 0)
			snprintf(out->level, sizeof(out->level), "warn");
		else if (out->level[0] && strcmp(out->level, "error") != 0)
			snprintf(out->level, sizeof(out->level), "info");
		ft_json_copy(e, "type", out->type, sizeof(out->type));
		out->message = strdup(json_is_string(msg) ? json_string_value(msg) : "");
		out->created_at = json_is_string(created) ? ft_parse_iso_time(json_string_value(created)) : ft_json_integer(e, "created_at");
		if (ft_json_integer(e, "step") >= 0)
			json_object_set_new(d, "step", json_integer(ft_json_integer(e, "step")));
		if (ft_json_integer(e, "total_steps") >= 0)
			json_object_set_new(d, "total_steps", json_integer(ft_json_integer(e, "total_steps")));
		if (json_is_string(json_object_get(e, "checkpoint_path")))
			json_object_set(d, "checkpoint_path", json_object_get(e, "checkpoint_path"));
		out->data_json = json_object_size(d) ? json_dumps(d, JSON_COMPACT) : NULL;
		json_decref(d);
		/* the index keeps two identical events in one second apart */
		snprintf(salt, sizeof(salt), "%d", i);
		if (json_is_string(json_object_get(e, "hash")) && json_string_length(json_object_get(e, "hash")) > 0)
			snprintf(out->id, sizeof(out->id), "%s", json_string_value(json_object_get(e, "hash")));
		else
			ft_event_id(out, salt);
	}
	NewestFirst(*events, n);
	json_decref(root);
	return n;
}

static void
TogetherCheckpoints(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine-tunes/%s/checkpoints", job_id, NULL);
}

/* [{step, path, created_at, checkpoint_type}] (bare or under "data") */
static int
TogetherParseCheckpoints(const char *body, FtProviderCheckpoint **checkpoints)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_is_array(root) ? root : json_object_get(root, "data");
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
		json_t	   *created = json_object_get(c, "created_at");
		FtProviderCheckpoint *out = &(*checkpoints)[i];

		out->step = ft_json_integer(c, "step");
		ft_json_copy(c, "path", out->id, sizeof(out->id));
		if (out->id[0] == '\0')
			snprintf(out->id, sizeof(out->id), "step-%lld", out->step);
		out->created_at = json_is_string(created) ? ft_parse_iso_time(json_string_value(created)) : -1;
		if (json_is_string(json_object_get(c, "checkpoint_type")))
		{
			json_t	   *m = json_pack("{sO}", "checkpoint_type", json_object_get(c, "checkpoint_type"));

			out->metrics_json = json_dumps(m, JSON_COMPACT);
			json_decref(m);
		}
	}
	json_decref(root);
	return n;
}

static void
TogetherCancel(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/fine-tunes/%s/cancel", job_id, NULL);
}

/* {"error": {"message", "type", "param", "code"}} like OpenAI, or a bare {"message": ...} */
static void
TogetherParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root;

	ft_openai_adapter.parse_error(body, code, codelen, message, msglen);
	if (message[0] || body == NULL || (root = json_loads(body, 0, NULL)) == NULL)
		return;
	if (json_is_string(json_object_get(root, "error")))
		ft_json_copy(root, "error", message, msglen);
	else
		ft_json_copy(root, "message", message, msglen);
	if (code[0] == '\0')
		ft_json_copy(root, "code", code, codelen);
	if (code[0] == '\0')
		ft_json_copy(root, "type", code, codelen);
	json_decref(root);
}

/* Together's conversational format for SFT; preference data has OpenAI's shape */
static const char *
TogetherDatasetFormat(const FtProviderConfig *cfg, const char *method)
{
	return strcmp(method, "dpo") == 0 ? "dpo" : "together_chat";
}

const FtProviderAdapter ft_together_adapter = {
	.kind = "together",
	.auth_header = TogetherAuthHeader,
	.upload = TogetherUpload,
	.parse_file_id = TogetherParseFileId,
	.create = TogetherCreate,
	.find_by_our_id = TogetherFindByOurId,
	.parse_find = TogetherParseFind,
	.get = TogetherGet,
	.parse_job = TogetherParseJob,
	.events = TogetherEvents,
	.parse_events = TogetherParseEvents,
	.checkpoints = TogetherCheckpoints,
	.parse_checkpoints = TogetherParseCheckpoints,
	.cancel = TogetherCancel,
	.file_content = NULL,
	.parse_error = TogetherParseError,
	.supports_dpo = true,
	.find_by_training_file = true,
	.dataset_format = TogetherDatasetFormat,
};
