/*
 * Fireworks AI (https://api.fireworks.ai/v1): everything lives under /accounts/{account_id}
 * (settings.account_id). Files are datasets: we create dataset "pgft-<job>-train" (and
 * "-validation"), then upload into it with :upload; the job names the dataset. Jobs are
 * supervisedFineTuningJobs with camelCase fields, JOB_STATE_* states and RFC 3339 times.
 * Fireworks has no cancel verb: cancelling DELETEs the job, which stops it; the worker then
 * reads JOB_STATE_DELETING (or a 404 once it is gone) as cancelled.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fireworks job states onto ours */
static const char *
FireworksStatus(const char *raw)
{
	static const char *const map[][2] = {
		{"JOB_STATE_CREATING", "validating_files"}, {"JOB_STATE_VALIDATING", "validating_files"},
		{"JOB_STATE_CREATING_INPUT_DATASET", "validating_files"}, {"JOB_STATE_PENDING", "queued"},
		{"JOB_STATE_RE_QUEUEING", "queued"}, {"JOB_STATE_RUNNING", "running"}, {"JOB_STATE_WRITING_RESULTS", "running"},
		{"JOB_STATE_COMPLETED", "succeeded"}, {"JOB_STATE_FAILED", "failed"}, {"JOB_STATE_FAILED_CLEANING_UP", "failed"},
		{"JOB_STATE_EXPIRED", "failed"}, {"JOB_STATE_CANCELLED", "cancelled"}, {"JOB_STATE_DELETING", "cancelled"},
		{"JOB_STATE_DELETING_CLEANING_UP", "cancelled"}, {NULL, NULL}};

	for (int i = 0; map[i][0]; i++)
		if (strcmp(raw, map[i][0]) == 0)
			return map[i][1];
	return "";
}

/*
 * URL under the account: base + /accounts/{account_id} + the formatted rest. The account id is
 * an argument, never part of a format: a "%" in the setting must not be read as a conversion.
 */
static void
AccountUrl(const FtProviderConfig *cfg, FtHttpCall *call, const char *fmt, const char *a)
{
	json_t	   *settings = ft_settings(cfg);
	char		rest[1024];

	snprintf(rest, sizeof(rest), fmt, a ? a : "");
	ft_call_url(cfg, call, "/accounts/%s%s", ft_setting(settings, "account_id", "-"), rest);
	json_decref(settings);
}

/* Our dataset id for a file: pgft-<job id>-train or -validation */
static void
DatasetId(const char *our_id, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "pgft-%s-%s", our_id, strncmp(name, "validation", 10) == 0 ? "validation" : "train");
}

static void
FireworksAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "Authorization: Bearer %s", cfg->api_key ? cfg->api_key : "");
}

/* POST /accounts/{a}/datasets: the dataset our upload goes into */
static bool
FireworksPrepareUpload(const FtProviderConfig *cfg, const char *our_id, const char *name, FtHttpCall *call)
{
	char		id[128];
	json_t	   *body;

	DatasetId(our_id, name, id, sizeof(id));
	ft_call_init(call, "POST");
	AccountUrl(cfg, call, "/datasets", NULL);
	body = json_pack("{s:s, s:{s:s, s:{}, s:s}}", "datasetId", id, "dataset", "displayName", id,
					 "userUploaded", "format", "CHAT");
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	return true;
}

/* POST /accounts/{a}/datasets/{id}:upload, multipart "file" */
static void
FireworksUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	char		id[128];

	DatasetId(our_id, name, id, sizeof(id));
	ft_call_init(call, "POST");
	AccountUrl(cfg, call, "/datasets/%s:upload", id);
	call->upload_path = path;
	snprintf(call->upload_name, sizeof(call->upload_name), "%s", name);
	snprintf(call->upload_field, sizeof(call->upload_field), "file");
}

/* The dataset's resource name is what a job refers to */
static bool
FireworksUploadedRef(const FtProviderConfig *cfg, const char *our_id, const char *name, char *out, size_t outlen)
{
	json_t	   *settings = ft_settings(cfg);
	char		id[128];

	DatasetId(our_id, name, id, sizeof(id));
	snprintf(out, outlen, "accounts/%s/datasets/%s", ft_setting(settings, "account_id", "-"), id);
	json_decref(settings);
	return true;
}

/* The upload answer is not needed (uploaded_ref names the dataset) but must be JSON */
static bool
FireworksParseFileId(const char *body, char *id, size_t idlen)
{
	json_t	   *root = json_loads(body, 0, NULL);
	bool		ok = json_is_object(root);

	id[0] = '\0';
	if (ok)
		ft_json_copy(root, "name", id, idlen);
	json_decref(root);
	return ok;
}

/* A model id as Fireworks wants it: lower case letters, digits and "-" */
static void
ModelId(const char *in, char *out, size_t outlen)
{
	size_t		n = 0;

	for (; *in && n + 1 < outlen; in++)
		out[n++] = isalnum((unsigned char) *in) ? (char) tolower((unsigned char) *in) : '-';
	out[n] = '\0';
}

/*
 * POST /accounts/{a}/supervisedFineTuningJobs. Bare base models get Fireworks' own prefix; our
 * learning_rate_multiplier scales Fireworks' default LoRA learning rate (1e-4); batch_size is in
 * examples (batchSizeSamples), as Fireworks' batchSize counts tokens.
 */
static void
FireworksCreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	json_t	   *settings = ft_settings(cfg);
	json_t	   *body = json_object();
	json_t	   *hp = spec->hyperparameters_json ? json_loads(spec->hyperparameters_json, 0, NULL) : NULL;
	double		lrm = ft_json_number(hp, "learning_rate_multiplier");
	char		buf[512];

	ft_call_init(call, "POST");
	AccountUrl(cfg, call, "/supervisedFineTuningJobs", NULL);
	call->fresh_connection = true;
	json_object_set_new(body, "dataset", json_string(spec->training_file));
	if (strchr(spec->model, '/'))
		json_object_set_new(body, "baseModel", json_string(spec->model));
	else
	{
		snprintf(buf, sizeof(buf), "accounts/fireworks/models/%s", spec->model);
		json_object_set_new(body, "baseModel", json_string(buf));
	}
	if (spec->validation_file)
		json_object_set_new(body, "evaluationDataset", json_string(spec->validation_file));
	snprintf(buf, sizeof(buf), "pg_finetune %s", spec->our_id);
	json_object_set_new(body, "displayName", json_string(buf));
	if (spec->suffix)
	{
		char		id[64];

		ModelId(spec->suffix, id, sizeof(id));
		snprintf(buf, sizeof(buf), "accounts/%s/models/%s-%.8s", ft_setting(settings, "account_id", "-"), id, spec->our_id);
		json_object_set_new(body, "outputModel", json_string(buf));
	}
	if (ft_json_integer(hp, "n_epochs") > 0)
		json_object_set_new(body, "epochs", json_integer(ft_json_integer(hp, "n_epochs")));
	if (ft_json_integer(hp, "batch_size") > 0)
		json_object_set_new(body, "batchSizeSamples", json_integer(ft_json_integer(hp, "batch_size")));
	if (!isnan(lrm))
		json_object_set_new(body, "learningRate", json_real(1e-4 * lrm));
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(hp);
	json_decref(body);
	json_decref(settings);
}

static void
FireworksFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	AccountUrl(cfg, call, "/supervisedFineTuningJobs?pageSize=200", NULL);
}

/* Read a job; our id for it is the last segment of its resource name */
static void
ReadJob(json_t *obj, FtProviderJob *job)
{
	json_t	   *status = json_object_get(obj, "status");
	json_t	   *code = json_object_get(status, "code");
	json_t	   *completed = json_object_get(obj, "completedTime");
	json_t	   *progress = json_object_get(obj, "jobProgress");
	char		name[FT_ID_LEN];
	const char *slash;

	memset(job, 0, sizeof(*job));
	ft_json_copy(obj, "name", name, sizeof(name));
	slash = strrchr(name, '/');
	snprintf(job->id, sizeof(job->id), "%s", slash ? slash + 1 : name);
	ft_json_copy(obj, "state", job->raw_status, sizeof(job->raw_status));
	snprintf(job->status, sizeof(job->status), "%s", FireworksStatus(job->raw_status));
	ft_json_copy(obj, "outputModel", job->fine_tuned_model, sizeof(job->fine_tuned_model));
	ft_json_copy(obj, "dataset", job->training_file, sizeof(job->training_file));
	job->trained_tokens = ft_json_integer(progress, "inputTokens");
	job->estimated_finish = -1;
	job->finished_at = json_is_string(completed) ? ft_parse_iso_time(json_string_value(completed)) : -1;
	if (strcmp(job->status, "failed") == 0 && json_is_object(status))
	{
		if (json_is_string(code))
			ft_json_copy(status, "code", job->error_code, sizeof(job->error_code));
		else if (json_is_integer(code))
			snprintf(job->error_code, sizeof(job->error_code), "rpc_%lld", (long long) json_integer_value(code));
		ft_json_copy(status, "message", job->error_message, sizeof(job->error_message));
	}
}

static bool
FireworksParseJob(const char *body, FtProviderJob *job)
{
	return ft_parse_job_object(body, "name", ReadJob, job);
}

/* {"supervisedFineTuningJobs": [...], "nextPageToken"}: the job training on our dataset */
static bool
FireworksParseFind(const char *body, const char *training_file, FtProviderJob *job)
{
	return ft_find_in_listing(body, "supervisedFineTuningJobs", ReadJob, false, training_file, job);
}

static void
FireworksGet(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	AccountUrl(cfg, call, "/supervisedFineTuningJobs/%s", job_id);
}

/*
 * No events endpoint: the job object (its state and jobProgress) becomes one event per state,
 * epoch and percentage seen, so progress shows in ft_job_events
 */
static int
FireworksParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *progress = json_object_get(root, "jobProgress");
	json_t	   *updated = json_object_get(root, "updateTime");
	FtProviderEvent *e;
	char		state[64];
	char		msg[256];
	char		salt[64];
	long long	epoch = ft_json_integer(progress, "epoch");
	long long	percent = ft_json_integer(progress, "percent");

	*events = NULL;
	*has_more = false;
	if (!json_is_object(root))
	{
		json_decref(root);
		return -1;
	}
	ft_json_copy(root, "state", state, sizeof(state));
	*events = e = calloc(1, sizeof(FtProviderEvent));
	snprintf(e->level, sizeof(e->level), "info");
	snprintf(e->type, sizeof(e->type), "message");
	if (percent >= 0)
		snprintf(msg, sizeof(msg), "%s: epoch %lld, %lld%% done", state, epoch > 0 ? epoch : 0, percent);
	else
		snprintf(msg, sizeof(msg), "%s", state);
	e->message = strdup(msg);
	if (json_is_object(progress))
		e->data_json = json_dumps(progress, JSON_COMPACT);
	/* the same progress seen twice is the same event, whatever updateTime says (time 0 here) */
	snprintf(salt, sizeof(salt), "%s", msg);
	ft_event_id(e, salt);
	e->created_at = json_is_string(updated) ? ft_parse_iso_time(json_string_value(updated)) : -1;
	json_decref(root);
	return 1;
}

/* No cancel verb: DELETE stops and removes the job */
static void
FireworksCancel(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "DELETE");
	AccountUrl(cfg, call, "/supervisedFineTuningJobs/%s", job_id);
}

/*
 * google.rpc errors: {"error": {"code": 400, "message", "status": "INVALID_ARGUMENT"}} or the
 * bare {"code": 3, "message"}; the status name is the code when there is one
 */
static void
FireworksParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root = body ? json_loads(body, 0, NULL) : NULL;
	json_t	   *error = json_object_get(root, "error");
	json_t	   *obj = json_is_object(error) ? error : root;

	code[0] = message[0] = '\0';
	if (json_is_string(error))
		ft_json_copy(root, "error", message, msglen);
	else if (json_is_object(obj))
	{
		ft_json_copy(obj, "status", code, codelen);
		if (code[0] == '\0' && json_is_string(json_object_get(obj, "code")))
			ft_json_copy(obj, "code", code, codelen);
		else if (code[0] == '\0' && json_is_integer(json_object_get(obj, "code")))
			snprintf(code, codelen, "rpc_%lld", (long long) json_integer_value(json_object_get(obj, "code")));
		ft_json_copy(obj, "message", message, msglen);
	}
	json_decref(root);
}

const FtProviderAdapter ft_fireworks_adapter = {
	.kind = "fireworks",
	.auth_header = FireworksAuthHeader,
	.upload = FireworksUpload,
	.parse_file_id = FireworksParseFileId,
	.create = FireworksCreate,
	.find_by_our_id = FireworksFindByOurId,
	.parse_find = FireworksParseFind,
	.get = FireworksGet,
	.parse_job = FireworksParseJob,
	.events = NULL,
	.parse_events = FireworksParseEvents,
	.checkpoints = NULL,
	.parse_checkpoints = NULL,
	.cancel = FireworksCancel,
	.file_content = NULL,
	.parse_error = FireworksParseError,
	.supports_dpo = false,
	.find_by_training_file = true,
	.prepare_upload = FireworksPrepareUpload,
	.uploaded_ref = FireworksUploadedRef,
};
