/*
 * Replicate trainings (https://api.replicate.com/v1). The dataset is uploaded with POST /files
 * (multipart field "content") and passed to the trainer by URL (urls.get) in the input field
 * settings.input_file_field (default train_data). The trainer is the model version
 * settings.trainer_owner/trainer_name:trainer_version; the new version lands in
 * settings.destination and output.version names it. settings.input is merged into the input,
 * settings.epochs_field (default num_train_epochs, "" for none) receives n_epochs. Progress comes
 * only from the logs: lines giving a step and a loss become metrics events.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Replicate's statuses onto ours */
static const char *
ReplicateStatus(const char *raw)
{
	static const char *const map[][2] = {
		{"starting", "queued"}, {"processing", "running"}, {"succeeded", "succeeded"}, {"failed", "failed"},
		{"canceled", "cancelled"}, {"cancelled", "cancelled"}, {"canceling", "running"}, {NULL, NULL}};

	for (int i = 0; map[i][0]; i++)
		if (strcmp(raw, map[i][0]) == 0)
			return map[i][1];
	return "";
}

static void
ReplicateAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "Authorization: Bearer %s", cfg->api_key ? cfg->api_key : "");
}

/* POST /files: metadata (our job id, as JSON text), then the file as "content" */
static void
ReplicateUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/files", NULL, NULL);
	call->upload_path = path;
	snprintf(call->upload_name, sizeof(call->upload_name), "%s", name);
	snprintf(call->upload_field, sizeof(call->upload_field), "content");
	call->nform = 1;
	snprintf(call->form[0].name, sizeof(call->form[0].name), "metadata");
	snprintf(call->form[0].value, sizeof(call->form[0].value), "{\"pg_finetune_job\":\"%s\"}", our_id);
}

/* The file is referenced by its URL */
static bool
ReplicateParseFileId(const char *body, char *id, size_t idlen)
{
	json_t	   *root = json_loads(body, 0, NULL);

	id[0] = '\0';
	if (json_is_object(root))
		ft_json_copy(json_object_get(root, "urls"), "get", id, idlen);
	json_decref(root);
	return id[0] != '\0';
}

/* POST /models/{owner}/{name}/versions/{version}/trainings with destination and input */
static void
ReplicateCreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	json_t	   *settings = ft_settings(cfg);
	json_t	   *hp = spec->hyperparameters_json ? json_loads(spec->hyperparameters_json, 0, NULL) : NULL;
	json_t	   *extra = json_object_get(settings, "input");
	json_t	   *input = json_is_object(extra) ? json_deep_copy(extra) : json_object();
	json_t	   *body = json_object();
	const char *epochs_field = ft_setting(settings, "epochs_field", "num_train_epochs");
	const char *validation_field = ft_setting(settings, "validation_file_field", NULL);
	char		path[768];

	ft_call_init(call, "POST");
	snprintf(path, sizeof(path), "/models/%s/%s/versions/%s/trainings", ft_setting(settings, "trainer_owner", "-"),
			 ft_setting(settings, "trainer_name", "-"), ft_setting(settings, "trainer_version", "-"));
	/* the path holds settings, so it is an argument, never a format ("%" in a setting) */
	ft_call_url(cfg, call, "%s", path, NULL);
	call->fresh_connection = true;
	json_object_set_new(input, ft_setting(settings, "input_file_field", "train_data"), json_string(spec->training_file));
	if (spec->validation_file && validation_field)
		json_object_set_new(input, validation_field, json_string(spec->validation_file));
	if (json_is_string(json_object_get(settings, "epochs_field")) && json_string_length(json_object_get(settings, "epochs_field")) == 0)
		epochs_field = NULL;
	if (epochs_field && ft_json_integer(hp, "n_epochs") > 0)
		json_object_set_new(input, epochs_field, json_integer(ft_json_integer(hp, "n_epochs")));
	if (spec->seed >= 0 && !json_object_get(input, "seed"))
		json_object_set_new(input, "seed", json_integer(spec->seed));
	json_object_set_new(body, "destination", json_string(ft_setting(settings, "destination", "")));
	json_object_set_new(body, "input", input);
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_decref(hp);
	json_decref(settings);
}

static void
ReplicateFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/trainings", NULL, NULL);
}

/* Read a training; the training file is whichever input value is a Replicate file URL */
static void
ReadJob(json_t *obj, FtProviderJob *job, const char *want_file)
{
	json_t	   *output = json_object_get(obj, "output");
	json_t	   *error = json_object_get(obj, "error");
	json_t	   *completed = json_object_get(obj, "completed_at");
	json_t	   *input = json_object_get(obj, "input");
	const char *key;
	json_t	   *value;

	memset(job, 0, sizeof(*job));
	ft_json_copy(obj, "id", job->id, sizeof(job->id));
	ft_json_copy(obj, "status", job->raw_status, sizeof(job->raw_status));
	snprintf(job->status, sizeof(job->status), "%s", ReplicateStatus(job->raw_status));
	if (json_is_object(output))
		ft_json_copy(output, "version", job->fine_tuned_model, sizeof(job->fine_tuned_model));
	job->trained_tokens = -1;
	job->estimated_finish = -1;
	job->finished_at = json_is_string(completed) ? ft_parse_iso_time(json_string_value(completed)) : -1;
	if (json_is_string(error))
		snprintf(job->error_message, sizeof(job->error_message), "%s", json_string_value(error));
	else if (json_is_object(error))
	{
		ft_json_copy(error, "code", job->error_code, sizeof(job->error_code));
		ft_json_copy(error, "detail", job->error_message, sizeof(job->error_message));
	}
	if (strcmp(job->status, "failed") == 0 && job->error_code[0] == '\0')
		snprintf(job->error_code, sizeof(job->error_code), "training_failed");
	json_object_foreach(input, key, value)
	{
		if (json_is_string(value) && (want_file ? strcmp(json_string_value(value), want_file) == 0
									  : strstr(json_string_value(value), "/files/") != NULL))
		{
			snprintf(job->training_file, sizeof(job->training_file), "%s", json_string_value(value));
			break;
		}
	}
}

static bool
ReplicateParseJob(const char *body, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	bool		ok = json_is_object(root) && json_is_string(json_object_get(root, "id"));

	if (ok)
		ReadJob(root, job, NULL);
	json_decref(root);
	return ok;
}

/* {"results": [...], "next"}: the training whose input holds our file URL */
static bool
ReplicateParseFind(const char *body, const char *training_file, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "results");
	bool		found = false;

	for (size_t i = 0; json_is_array(data) && i < json_array_size(data) && !found; i++)
	{
		ReadJob(json_array_get(data, i), job, training_file);
		found = training_file[0] && strcmp(job->training_file, training_file) == 0;
	}
	json_decref(root);
	return found;
}

static void
ReplicateGet(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "GET");
	ft_call_url(cfg, call, "/trainings/%s", job_id, NULL);
}

/* A number after the word (e.g. "loss=0.53", "step: 12", "'loss': 1.2"); NaN when none */
static double
NumberAfter(const char *line, size_t len, const char *word)
{
	size_t		wl = strlen(word);

	for (size_t i = 0; i + wl <= len; i++)
	{
		if (strncasecmp(line + i, word, wl) != 0 || (i > 0 && isalpha((unsigned char) line[i - 1])))
			continue;
		i += wl;
		while (i < len && (line[i] == ' ' || line[i] == '=' || line[i] == ':' || line[i] == '\'' || line[i] == '"'))
			i++;
		if (i < len && (isdigit((unsigned char) line[i]) || line[i] == '.'))
			return strtod(line + i, NULL);
	}
	return NAN;
}

/* Metrics events from the logs: one per line naming both a step and a loss, newest first */
static int
ReplicateParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *logs = json_object_get(root, "logs");
	const char *p = json_is_string(logs) ? json_string_value(logs) : "";
	int			n = 0,
				cap = 16;

	*has_more = false;
	*events = NULL;
	if (!json_is_object(root))
	{
		json_decref(root);
		return -1;
	}
	*events = calloc(cap, sizeof(FtProviderEvent));
	while (*p)
	{
		const char *eol = strchr(p, '\n');
		size_t		len = eol ? (size_t) (eol - p) : strlen(p);
		double		step = NumberAfter(p, len, "step");
		double		loss = NumberAfter(p, len, "loss");

		/* the step must fit a long long: converting "step 1e300" would be undefined */
		if (step >= -9223372036854775808.0 && step < 9223372036854775808.0 && !isnan(loss))
		{
			FtProviderEvent *e;
			char		data[128];

			if (n == cap)
			{
				*events = realloc(*events, sizeof(FtProviderEvent) * (cap *= 2));
				memset(*events + n, 0, sizeof(FtProviderEvent) * (cap - n));
			}
			e = &(*events)[n++];
			snprintf(e->id, sizeof(e->id), "log-step-%lld", (long long) step);
			snprintf(e->level, sizeof(e->level), "info");
			snprintf(e->type, sizeof(e->type), "metrics");
			e->message = strndup(p, len > 500 ? 500 : len);
			snprintf(data, sizeof(data), "{\"step\": %lld, \"train_loss\": %.9g}", (long long) step, loss);
			e->data_json = strdup(data);
		}
		p += len + (eol ? 1 : 0);
	}
	for (int i = 0, j = n - 1; i < j; i++, j--)
	{
		FtProviderEvent t = (*events)[i];

		(*events)[i] = (*events)[j];
		(*events)[j] = t;
	}
	json_decref(root);
	return n;
}

static void
ReplicateCancel(const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call)
{
	ft_call_init(call, "POST");
	ft_call_url(cfg, call, "/trainings/%s/cancel", job_id, NULL);
}

/*
 * Problem details: {"title", "detail", "status", "invalid_fields": [{type, field, description}]};
 * the first invalid field's type (else the title) is the code
 */
static void
ReplicateParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root = body ? json_loads(body, 0, NULL) : NULL;
	json_t	   *fields = json_object_get(root, "invalid_fields");

	code[0] = message[0] = '\0';
	if (!json_is_object(root))
	{
		json_decref(root);
		return;
	}
	if (json_is_array(fields) && json_array_size(fields) > 0)
		ft_json_copy(json_array_get(fields, 0), "type", code, codelen);
	if (code[0] == '\0')
	{
		ft_json_copy(root, "title", code, codelen);
		for (char *c = code; *c; c++)
			*c = *c == ' ' ? '_' : (char) tolower((unsigned char) *c);
	}
	ft_json_copy(root, "detail", message, msglen);
	json_decref(root);
}

/* The trainer decides; most of Replicate's language-model trainers read prompt/completion lines */
static const char *
ReplicateDatasetFormat(const FtProviderConfig *cfg, const char *method)
{
	static const char *const formats[] = {"chat", "together_chat", "alpaca", "prompt_completion", NULL};
	json_t	   *settings = ft_settings(cfg);
	const char *want = ft_setting(settings, "dataset_format", "prompt_completion");
	const char *result = "prompt_completion";

	for (int i = 0; formats[i]; i++)
		if (strcmp(want, formats[i]) == 0)
			result = formats[i];
	json_decref(settings);
	return result;
}

const FtProviderAdapter ft_replicate_adapter = {
	.kind = "replicate",
	.auth_header = ReplicateAuthHeader,
	.upload = ReplicateUpload,
	.parse_file_id = ReplicateParseFileId,
	.create = ReplicateCreate,
	.find_by_our_id = ReplicateFindByOurId,
	.parse_find = ReplicateParseFind,
	.get = ReplicateGet,
	.parse_job = ReplicateParseJob,
	.events = NULL,
	.parse_events = ReplicateParseEvents,
	.checkpoints = NULL,
	.parse_checkpoints = NULL,
	.cancel = ReplicateCancel,
	.file_content = NULL,
	.parse_error = ReplicateParseError,
	.supports_dpo = false,
	.find_by_training_file = true,
	.dataset_format = ReplicateDatasetFormat,
};
