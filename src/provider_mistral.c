/*
 * Mistral fine-tuning (https://api.mistral.ai/v1): OpenAI-shaped file upload, jobs with
 * training_files [{file_id, weight}], nested hyperparameters, unix times, and the job detail
 * carrying its events and checkpoints (with metrics) inline. settings.auto_start (default true)
 * is sent as auto_start; when false the worker starts the job with POST .../start once it is
 * VALIDATED. Jobs carry no metadata of ours, so they are found again by their training file.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mistral's statuses onto ours; a requested cancel keeps the job live until CANCELLED */
static const char *
MistralStatus(const char *raw)
{
	static const char *const map[][2] = {
		{"QUEUED", "queued"}, {"STARTED", "validating_files"}, {"VALIDATING", "validating_files"},
		{"VALIDATED", "queued"}, {"RUNNING", "running"}, {"FAILED_VALIDATION", "failed"}, {"FAILED", "failed"},
		{"SUCCESS", "succeeded"}, {"CANCELLED", "cancelled"}, {"CANCELLATION_REQUESTED", "running"}, {NULL, NULL}};

	for (int i = 0; map[i][0]; i++)
		if (strcmp(raw, map[i][0]) == 0)
			return map[i][1];
	return "";
}

/* settings.auto_start, true unless it is false */
static bool
AutoStart(const FtProviderConfig *cfg)
{
	json_t	   *settings = ft_settings(cfg);
	bool		result = !json_is_false(json_object_get(settings, "auto_start"));

	json_decref(settings);
	return result;
}

static void
MistralAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "Authorization: Bearer %s", cfg->api_key ? cfg->api_key : "");
}

/* POST /files with purpose=fine-tune and file: OpenAI's shape */
static void
MistralUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	ft_openai_adapter.upload(cfg, our_id, path, name, call);
}

static bool
MistralParseFileId(const char *body, char *id, size_t idlen)
{
	return ft_openai_adapter.parse_file_id(body, id, idlen);
}

/*
 * POST /fine_tuning/jobs. Our learning_rate_multiplier scales Mistral's default learning rate
 * (1e-4); batch_size has no Mistral equivalent and is not sent; suffix is cut to Mistral's 18.
 */
static void
MistralCreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	json_t	   *body = json_object();
	json_t	   *hp = spec->hyperparameters_json ? json_loads(spec->hyperparameters_json, 0, NULL) : NULL;
	json_t	   *params = json_object();
	double		lrm = ft_json_number(hp, "learning_rate_multiplier");
	char		suffix[19];

	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/fine_tuning/jobs", NULL, NULL);
	call->fresh_connection = true;
	json_object_set_new(body, "model", json_string(spec->model));
	json_object_set_new(body, "training_files", json_pack("[{s:s, s:f}]", "file_id", spec->training_file, "weight", 1.0));
	if (spec->validation_file)
		json_object_set_new(body, "validation_files", json_pack("[s]", spec->validation_file));
	if (ft_json_integer(hp, "n_epochs") > 0)
		json_object_set_new(params, "epochs", json_real((double) ft_json_integer(hp, "n_epochs")));
	if (!isnan(lrm))
		json_object_set_new(params, "learning_rate", json_real(1e-4 * lrm));
	json_object_set_new(body, "hyperparameters", params);
	if (spec->suffix)
	{
		snprintf(suffix, sizeof(suffix), "%s", spec->suffix);
		json_object_set_new(body, "suffix", json_string(suffix));
	}
	json_object_set_new(body, "auto_start", json_boolean(AutoStart(cfg)));
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(hp);
	json_decref(body);
}

static void
MistralFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine_tuning/jobs?page=0&page_size=100", NULL, NULL);
}

/* The "data" of the newest status-change event that carries an error, if any */
static void
ErrorFromEvents(json_t *events, FtProviderJob *job)
{
	for (size_t i = 0; json_is_array(events) && i < json_array_size(events); i++)
	{
		json_t	   *d = json_object_get(json_array_get(events, i), "data");
		json_t	   *err = json_object_get(d, "error");

		if (json_is_string(err))
			snprintf(job->error_message, sizeof(job->error_message), "%s", json_string_value(err));
		else if (json_is_object(err))
			ft_json_copy(err, "message", job->error_message, sizeof(job->error_message));
	}
}

/* Read a job; the training file is the first of training_files (plain id or {file_id}) */
static void
ReadJob(json_t *obj, FtProviderJob *job)
{
	json_t	   *files = json_object_get(obj, "training_files");
	json_t	   *first = json_is_array(files) ? json_array_get(files, 0) : NULL;

	memset(job, 0, sizeof(*job));
	ft_json_copy(obj, "id", job->id, sizeof(job->id));
	ft_json_copy(obj, "status", job->raw_status, sizeof(job->raw_status));
	snprintf(job->status, sizeof(job->status), "%s", MistralStatus(job->raw_status));
	ft_json_copy(obj, "fine_tuned_model", job->fine_tuned_model, sizeof(job->fine_tuned_model));
	if (json_is_string(first))
		snprintf(job->training_file, sizeof(job->training_file), "%s", json_string_value(first));
	else if (json_is_object(first))
		ft_json_copy(first, "file_id", job->training_file, sizeof(job->training_file));
	job->trained_tokens = ft_json_integer(obj, "trained_tokens");
	job->estimated_finish = -1;
	job->finished_at = job->status[0] && (strcmp(job->status, "succeeded") == 0 || strcmp(job->status, "failed") == 0 ||
										   strcmp(job->status, "cancelled") == 0)
		? ft_json_integer(obj, "modified_at") : -1;
	if (strcmp(job->status, "failed") == 0)
	{
		/* FAILED_VALIDATION and FAILED are the codes; the message comes from the events */
		for (size_t i = 0; job->raw_status[i] && i + 1 < sizeof(job->error_code); i++)
			job->error_code[i] = (char) (job->raw_status[i] >= 'A' && job->raw_status[i] <= 'Z' ? job->raw_status[i] + 32 : job->raw_status[i]);
		ft_json_copy(obj, "message", job->error_message, sizeof(job->error_message));
		if (job->error_message[0] == '\0')
			ErrorFromEvents(json_object_get(obj, "events"), job);
	}
}

static bool
MistralParseJob(const char *body, FtProviderJob *job)
{
	return ft_parse_job_object(body, "id", ReadJob, job);
}

/* {"data": [...], "object": "list", "total"}: the job training on our file */
static bool
MistralParseFind(const char *body, const char *training_file, FtProviderJob *job)
{
	return ft_find_in_listing(body, "data", ReadJob, false, training_file, job);
}

static void
MistralGet(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/fine_tuning/jobs/%s", job_id, NULL);
}

/* Newest first by time; stable for equal times (later array position first) */
static int
ByTimeDesc(const void *a, const void *b)
{
	const FtProviderEvent *x = a,
			   *y = b;

	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? 1 : -1;
	return strcmp(y->id, x->id);
}

/*
 * The job detail's inline events ({name, data, created_at}) plus one "metrics" event per
 * checkpoint, which the worker stores as metric rows; newest first
 */
static int
MistralParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *list = json_object_get(root, "events");
	json_t	   *ckpts = json_object_get(root, "checkpoints");
	size_t		ne = json_is_array(list) ? json_array_size(list) : 0;
	size_t		nc = json_is_array(ckpts) ? json_array_size(ckpts) : 0;
	int			n = 0;

	*events = NULL;
	*has_more = false;
	if (!json_is_object(root))
	{
		json_decref(root);
		return -1;
	}
	*events = calloc(ne + nc + 1, sizeof(FtProviderEvent));
	for (size_t i = 0; i < ne; i++)
	{
		json_t	   *e = json_array_get(list, i);
		json_t	   *d = json_object_get(e, "data");
		json_t	   *st = json_object_get(d, "status");
		FtProviderEvent *out = &(*events)[n++];
		char		msg[256];

		ft_json_copy(e, "name", out->type, sizeof(out->type));
		snprintf(out->level, sizeof(out->level), "%s", json_object_get(d, "error") ? "error" : "info");
		if (json_is_string(st))
			snprintf(msg, sizeof(msg), "Status changed to %s.", json_string_value(st));
		else
			snprintf(msg, sizeof(msg), "%s", out->type);
		out->message = strdup(msg);
		out->data_json = json_is_object(d) ? json_dumps(d, JSON_COMPACT) : NULL;
		out->created_at = ft_json_integer(e, "created_at");
		ft_event_id(out, out->data_json);
	}
	for (size_t i = 0; i < nc; i++)
	{
		json_t	   *c = json_array_get(ckpts, i);
		json_t	   *m = json_object_get(c, "metrics");
		long long	step = ft_json_integer(c, "step_number");
		FtProviderEvent *out = &(*events)[n++];
		json_t	   *d = json_pack("{sI}", "step", (json_int_t) step);
		static const char *const keys[] = {"train_loss", "valid_loss", "valid_mean_token_accuracy", NULL};

		for (int k = 0; keys[k]; k++)
			if (json_is_number(json_object_get(m, keys[k])))
				json_object_set(d, keys[k], json_object_get(m, keys[k]));
		snprintf(out->id, sizeof(out->id), "checkpoint-step-%lld", step);
		snprintf(out->level, sizeof(out->level), "info");
		snprintf(out->type, sizeof(out->type), "metrics");
		out->message = strdup("Checkpoint metrics.");
		out->data_json = json_dumps(d, JSON_COMPACT);
		out->created_at = ft_json_integer(c, "created_at");
		json_decref(d);
	}
	qsort(*events, n, sizeof(FtProviderEvent), ByTimeDesc);
	json_decref(root);
	return n;
}

/* Inline checkpoints ({metrics, step_number, created_at}) */
static int
MistralParseCheckpoints(const char *body, FtProviderCheckpoint **checkpoints)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "checkpoints");
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

		out->step = ft_json_integer(c, "step_number");
		snprintf(out->id, sizeof(out->id), "step-%lld", out->step);
		out->created_at = ft_json_integer(c, "created_at");
		out->metrics_json = json_is_object(m) ? json_dumps(m, JSON_COMPACT) : NULL;
	}
	json_decref(root);
	return n;
}

static void
MistralCancel(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/fine_tuning/jobs/%s/cancel", job_id, NULL);
}

/* Without auto_start a VALIDATED job waits for POST .../start */
static bool
MistralStart(const FtProviderConfig *cfg, const FtProviderJob *job, FtHttpCall *call)
{
	if (AutoStart(cfg) || strcmp(job->raw_status, "VALIDATED") != 0)
		return false;
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/fine_tuning/jobs/%s/start", job->id, NULL);
	return true;
}

/*
 * 422 {"detail": [{type, loc, msg}]}: the first type is the code, every "loc: msg" the message.
 * Other errors: {"message", "type", "code"} (message sometimes an object), or {"detail": "..."}
 */
static void
MistralParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root = body ? json_loads(body, 0, NULL) : NULL;
	json_t	   *detail = json_object_get(root, "detail");
	json_t	   *msg = json_object_get(root, "message");

	code[0] = message[0] = '\0';
	if (json_is_array(detail))
	{
		size_t		used = 0;

		for (size_t i = 0; i < json_array_size(detail) && used + 1 < msglen; i++)
		{
			json_t	   *d = json_array_get(detail, i);
			json_t	   *loc = json_object_get(d, "loc");
			char	   *where = json_is_array(loc) ? json_dumps(loc, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
			json_t	   *m = json_object_get(d, "msg");

			if (i == 0)
				ft_json_copy(d, "type", code, codelen);
			used += snprintf(message + used, msglen - used, "%s%s: %s", i ? "; " : "", where ? where : "body",
							 json_is_string(m) ? json_string_value(m) : "invalid");
			free(where);
		}
		if (code[0] == '\0')
			snprintf(code, codelen, "validation_error");
	}
	else if (json_is_string(detail))
		ft_json_copy(root, "detail", message, msglen);
	else if (json_is_object(root))
	{
		if (json_is_string(msg))
			ft_json_copy(root, "message", message, msglen);
		else if (json_is_object(msg) || json_is_array(msg))
		{
			char	   *text = json_dumps(msg, JSON_COMPACT);

			snprintf(message, msglen, "%s", text ? text : "");
			free(text);
		}
		ft_json_copy(root, "code", code, codelen);
		if (code[0] == '\0')
			ft_json_copy(root, "type", code, codelen);
		if (message[0] == '\0' && code[0] == '\0')
			ft_openai_adapter.parse_error(body, code, codelen, message, msglen);
	}
	json_decref(root);
}

const FtProviderAdapter ft_mistral_adapter = {
	.kind = "mistral",
	.auth_header = MistralAuthHeader,
	.upload = MistralUpload,
	.parse_file_id = MistralParseFileId,
	.create = MistralCreate,
	.find_by_our_id = MistralFindByOurId,
	.parse_find = MistralParseFind,
	.get = MistralGet,
	.parse_job = MistralParseJob,
	.events = NULL,
	.parse_events = MistralParseEvents,
	.checkpoints = NULL,
	.parse_checkpoints = MistralParseCheckpoints,
	.cancel = MistralCancel,
	.file_content = NULL,
	.parse_error = MistralParseError,
	.supports_dpo = false,
	.find_by_training_file = true,
	.start = MistralStart,
};
