/*
 * Azure OpenAI: the OpenAI fine-tuning protocol with an "api-key" header. With no api_version
 * setting it speaks the v1 API (base URL https://{resource}.openai.azure.com/openai/v1, no
 * api-version); with settings.api_version it speaks the legacy paths under .../openai with
 * ?api-version=... appended. Job metadata is not documented for Azure, so jobs are found again
 * after a crash by their training file, which only our job uploaded.
 */
#include "ft_jansson.h"
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The configuration the OpenAI builders see: legacy mode drops a trailing /v1 from the base URL */
static void
OpenAIView(const FtProviderConfig *cfg, FtProviderConfig *view, char *api_version, size_t len)
{
	json_t	   *settings = ft_settings(cfg);
	size_t		n;

	*view = *cfg;
	snprintf(api_version, len, "%s", ft_setting(settings, "api_version", ""));
	json_decref(settings);
	n = strlen(view->base_url);
	while (n > 0 && view->base_url[n - 1] == '/')
		view->base_url[--n] = '\0';
	if (api_version[0] && n >= 3 && strcmp(view->base_url + n - 3, "/v1") == 0)
		view->base_url[n - 3] = '\0';
}

/* Append ?api-version= (or &api-version= when the URL has a query already) in legacy mode */
static void
AddApiVersion(FtHttpCall *call, const char *api_version)
{
	size_t		n = strlen(call->url);

	if (api_version[0])
		snprintf(call->url + n, sizeof(call->url) - n, "%capi-version=%s", strchr(call->url, '?') ? '&' : '?', api_version);
}

static void
AzureAuthHeader(const FtProviderConfig *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "api-key: %s", cfg->api_key ? cfg->api_key : "");
}

static void
AzureUpload(const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call)
{
	FtProviderConfig view;
	char		v[64];

	OpenAIView(cfg, &view, v, sizeof(v));
	ft_openai_adapter.upload(&view, our_id, path, name, call);
	AddApiVersion(call, v);
}

/* OpenAI's body without metadata (not in Azure's schema), plus trainingType when configured */
static void
AzureCreate(const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call)
{
	FtProviderConfig view;
	char		v[64];
	json_t	   *settings = ft_settings(cfg);
	json_t	   *body;

	OpenAIView(cfg, &view, v, sizeof(v));
	ft_openai_adapter.create(&view, spec, call);
	AddApiVersion(call, v);
	body = json_loads(call->body, 0, NULL);
	free(call->body);
	json_object_del(body, "metadata");
	if (ft_setting(settings, "training_type", NULL))
		json_object_set_new(body, "trainingType", json_string(ft_setting(settings, "training_type", NULL)));
	call->body = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	json_decref(settings);
}

/* The newest jobs; parse_find looks for the one training on our file */
static void
AzureFindByOurId(const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call)
{
	FtProviderConfig view;
	char		v[64];

	OpenAIView(cfg, &view, v, sizeof(v));
	ft_call_init(call, "GET");
	ft_call_url(&view, call, "/fine_tuning/jobs?limit=100", NULL, NULL);
	AddApiVersion(call, v);
}

static bool AzureParseJob(const char *body, FtProviderJob *job);

/* Matches a listed job on its training file (our_id is the training file reference here) */
static bool
AzureParseFind(const char *body, const char *training_file, FtProviderJob *job)
{
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *data = json_object_get(root, "data");
	bool		found = false;

	for (size_t i = 0; json_is_array(data) && i < json_array_size(data) && !found; i++)
	{
		char	   *one = json_dumps(json_array_get(data, i), JSON_COMPACT);

		found = one && AzureParseJob(one, job) && training_file[0] &&
			strcmp(job->training_file, training_file) == 0;
		free(one);
	}
	json_decref(root);
	return found;
}

/* OpenAI statuses, plus the legacy API's pending and notRunning (waiting to run) */
static bool
AzureParseJob(const char *body, FtProviderJob *job)
{
	if (!ft_openai_adapter.parse_job(body, job))
		return false;
	if (job->status[0] == '\0' && (strcmp(job->raw_status, "pending") == 0 || strcmp(job->raw_status, "notRunning") == 0))
		snprintf(job->status, sizeof(job->status), "queued");
	return true;
}

/* One builder per OpenAI call that takes a job id: build it on the view, add the version */
#define AZURE_JOB_CALL(name, field) \
static void \
name(const FtProviderConfig *cfg, const char *id, FtHttpCall *call) \
{ \
	FtProviderConfig view; \
	char		v[64]; \
	OpenAIView(cfg, &view, v, sizeof(v)); \
	ft_openai_adapter.field(&view, id, call); \
	AddApiVersion(call, v); \
}

AZURE_JOB_CALL(AzureGet, get)
AZURE_JOB_CALL(AzureCheckpoints, checkpoints)
AZURE_JOB_CALL(AzureCancel, cancel)
AZURE_JOB_CALL(AzureFileContent, file_content)

static void
AzureEvents(const FtProviderConfig *cfg, const char *job_id, const char *after, FtHttpCall *call)
{
	FtProviderConfig view;
	char		v[64];

	OpenAIView(cfg, &view, v, sizeof(v));
	ft_openai_adapter.events(&view, job_id, after, call);
	AddApiVersion(call, v);
}

/*
 * {"error": {"code", "message"}} as OpenAI; the API gateway in front of Azure answers auth and
 * quota failures with {"statusCode": 401, "message": "..."} instead
 */
static void
AzureParseError(const char *body, char *code, size_t codelen, char *message, size_t msglen)
{
	json_t	   *root;

	ft_openai_adapter.parse_error(body, code, codelen, message, msglen);
	if (code[0] || message[0] || body == NULL || (root = json_loads(body, 0, NULL)) == NULL)
		return;
	ft_json_copy(root, "code", code, codelen);
	if (code[0] == '\0' && json_is_integer(json_object_get(root, "statusCode")))
		snprintf(code, codelen, "http_%lld", (long long) json_integer_value(json_object_get(root, "statusCode")));
	ft_json_copy(root, "message", message, msglen);
	json_decref(root);
}

/* The parsers of OpenAI's bodies, unchanged */
static bool
AzureParseFileId(const char *body, char *id, size_t idlen)
{
	return ft_openai_adapter.parse_file_id(body, id, idlen);
}

static int
AzureParseEvents(const char *body, FtProviderEvent **events, bool *has_more)
{
	return ft_openai_adapter.parse_events(body, events, has_more);
}

static int
AzureParseCheckpoints(const char *body, FtProviderCheckpoint **checkpoints)
{
	return ft_openai_adapter.parse_checkpoints(body, checkpoints);
}

const FtProviderAdapter ft_azure_adapter = {
	.kind = "azure_openai",
	.auth_header = AzureAuthHeader,
	.upload = AzureUpload,
	.parse_file_id = AzureParseFileId,
	.create = AzureCreate,
	.find_by_our_id = AzureFindByOurId,
	.parse_find = AzureParseFind,
	.get = AzureGet,
	.parse_job = AzureParseJob,
	.events = AzureEvents,
	.parse_events = AzureParseEvents,
	.checkpoints = AzureCheckpoints,
	.parse_checkpoints = AzureParseCheckpoints,
	.cancel = AzureCancel,
	.file_content = AzureFileContent,
	.parse_error = AzureParseError,
	.supports_dpo = true,
	.find_by_training_file = true,
};
