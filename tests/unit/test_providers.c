/*
 * Request building and response parsing of the Azure, Together, Fireworks, Mistral and
 * Replicate adapters, without a network.
 */
#include "ft_jansson.h"
#include "provider.h"
#include "unit.h"

/* A configuration for one kind */
static FtProviderConfig
Config(const char *kind, const char *base, const char *settings)
{
	FtProviderConfig cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.kind, sizeof(cfg.kind), "%s", kind);
	snprintf(cfg.base_url, sizeof(cfg.base_url), "%s", base);
	snprintf(cfg.settings_json, sizeof(cfg.settings_json), "%s", settings);
	cfg.api_key = "sk-unit-0123456789";
	return cfg;
}

/* A member of a JSON body as compact text ("" when missing) */
static const char *
Member(const char *body, const char *path)
{
	static char out[1024];
	json_t	   *root = json_loads(body, 0, NULL);
	json_t	   *v = root;
	char		key[128];
	const char *p = path;

	while (v && *p)
	{
		size_t		n = strcspn(p, ".");

		snprintf(key, sizeof(key), "%.*s", (int) n, p);
		v = json_is_array(v) ? json_array_get(v, atoi(key)) : json_object_get(v, key);
		p += n + (p[n] == '.');
	}
	if (v)
	{
		char	   *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		snprintf(out, sizeof(out), "%s", t);
		free(t);
	}
	else
		out[0] = '\0';
	json_decref(root);
	return out;
}

static FtJobSpec
Spec(const char *method, const char *hp)
{
	FtJobSpec	s;

	memset(&s, 0, sizeof(s));
	s.our_id = "0b7e2a4c-1111-4222-8333-944455556666";
	s.model = "base-model";
	s.method = method;
	s.hyperparameters_json = hp;
	s.suffix = "Shop_Bot";
	s.seed = 7;
	s.training_file = "file-train";
	s.validation_file = NULL;
	return s;
}

static void
TestRegistry(void)
{
	const char *kinds[] = {"openai", "mock", "azure_openai", "together", "fireworks", "mistral", "replicate"};

	for (int i = 0; i < 7; i++)
		OK(ft_provider_adapter(kinds[i]) != NULL, "adapter for %s", kinds[i]);
	OK(ft_provider_adapter("xai") == NULL, "no adapter for an unknown kind");
	IS_INT(ft_parse_iso_time("2024-05-01T10:20:30.123456Z"), 1714558830, "ISO time with fraction and Z");
	IS_INT(ft_parse_iso_time("2024-05-01T12:20:30+02:00"), 1714558830, "RFC 3339 offset");
	IS_INT(ft_parse_iso_time("2024-05-01 10:20:30"), 1714558830, "space separator");
	IS_INT(ft_parse_iso_time("yesterday"), -1, "unreadable time");
}

static void
TestAzure(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("azure_openai");
	FtProviderConfig v1 = Config("azure_openai", "https://res.openai.azure.com/openai/v1/", "{}");
	FtProviderConfig legacy = Config("azure_openai", "https://res.openai.azure.com/openai/v1", "{\"api_version\":\"2024-10-21\"}");
	FtJobSpec	spec = Spec("supervised", "{\"n_epochs\":2}");
	FtHttpCall	call;
	FtProviderJob job;
	char		buf[256],
				code[64],
				msg[256];

	a->auth_header(&v1, buf, sizeof(buf));
	IS_STR(buf, "api-key: sk-unit-0123456789", "azure authenticates with api-key");
	a->create(&v1, &spec, &call);
	IS_STR(call.url, "https://res.openai.azure.com/openai/v1/fine_tuning/jobs", "azure v1 create URL has no api-version");
	IS_STR(Member(call.body, "metadata"), "", "azure create sends no metadata");
	IS_STR(Member(call.body, "method.supervised.hyperparameters.n_epochs"), "2", "azure create nests hyperparameters");
	free(call.body);
	a->create(&legacy, &spec, &call);
	IS_STR(call.url, "https://res.openai.azure.com/openai/fine_tuning/jobs?api-version=2024-10-21", "legacy create URL");
	free(call.body);
	a->events(&legacy, "ftjob-1", "ev-9", &call);
	IS_STR(call.url, "https://res.openai.azure.com/openai/fine_tuning/jobs/ftjob-1/events?limit=50&after=ev-9&api-version=2024-10-21",
		   "legacy api-version appended after an existing query");
	a->find_by_our_id(&legacy, spec.our_id, &call);
	IS_STR(call.url, "https://res.openai.azure.com/openai/fine_tuning/jobs?limit=100&api-version=2024-10-21", "legacy list URL");
	OK(a->parse_find("{\"data\":[{\"id\":\"ftjob-x\",\"status\":\"running\",\"training_file\":\"file-other\"},"
					 "{\"id\":\"ftjob-y\",\"status\":\"pending\",\"training_file\":\"file-train\"}]}", "file-train", &job),
	   "azure job found by its training file");
	IS_STR(job.id, "ftjob-y", "the right job found");
	IS_STR(job.status, "queued", "legacy pending maps to queued");
	a->parse_error("{\"statusCode\":401,\"message\":\"Access denied due to invalid subscription key.\"}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "http_401", "gateway error code");
	IS_STR(msg, "Access denied due to invalid subscription key.", "gateway error message");
	a->parse_error("{\"error\":{\"code\":\"invalidPayload\",\"message\":\"bad suffix\"}}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "invalidPayload", "azure error code");
}

static void
TestTogether(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("together");
	FtProviderConfig cfg = Config("together", "https://api.together.xyz/v1", "{}");
	FtJobSpec	spec = Spec("dpo", "{\"n_epochs\":3,\"batch_size\":\"auto\",\"learning_rate_multiplier\":2,\"beta\":0.2}");
	FtHttpCall	call;
	FtProviderJob job;
	FtProviderEvent *ev;
	bool		more;
	int			n;
	char		code[64],
				msg[256];
	static const char *const statuses[][2] = {{"pending", "queued"}, {"queued", "queued"}, {"running", "running"},
	{"compressing", "running"}, {"uploading", "running"}, {"cancel_requested", "running"}, {"cancelled", "cancelled"},
	{"error", "failed"}, {"completed", "succeeded"}, {"user_error", "failed"}, {"paused_by_gremlins", ""}};

	a->upload(&cfg, spec.our_id, "/tmp/x.jsonl", "train.jsonl", &call);
	IS_STR(call.url, "https://api.together.xyz/v1/files/upload", "together upload URL");
	IS_STR(call.upload_field, "file", "together file field");
	IS_STR(call.form[1].name, "file_name", "together sends file_name");
	IS_STR(call.form[1].value, "pgft-0b7e2a4c-1111-4222-8333-944455556666-train.jsonl", "file_name carries our job id");
	a->create(&cfg, &spec, &call);
	IS_STR(Member(call.body, "n_epochs"), "3", "flat n_epochs");
	IS_STR(Member(call.body, "batch_size"), "", "auto batch size left out");
	IS_STR(Member(call.body, "learning_rate"), "2.0000000000000002e-5", "learning rate = multiplier x 1e-5");
	IS_STR(Member(call.body, "training_method"), "{\"method\":\"dpo\",\"dpo_beta\":0.20000000000000001}", "dpo training method");
	IS_STR(Member(call.body, "random_seed"), "7", "seed");
	free(call.body);
	for (int i = 0; i < 11; i++)
	{
		char		body[256];

		snprintf(body, sizeof(body), "{\"id\":\"ft-1\",\"status\":\"%s\"}", statuses[i][0]);
		OK(a->parse_job(body, &job), "together job parses (%s)", statuses[i][0]);
		IS_STR(job.status, statuses[i][1], "together status %s mapped", statuses[i][0]);
	}
	OK(a->parse_job("{\"id\":\"ft-1\",\"status\":\"completed\",\"model_output_name\":\"me/llama-shop-1a2b\","
					"\"token_count\":100,\"n_epochs\":3,\"updated_at\":\"2024-05-01T10:20:30.5Z\"}", &job), "completed job");
	IS_STR(job.fine_tuned_model, "me/llama-shop-1a2b", "model_output_name is the model");
	IS_INT(job.trained_tokens, 300, "tokens x epochs");
	IS_INT(job.finished_at, 1714558830, "ISO finished time");
	OK(a->parse_job("{\"id\":\"ft-1\",\"status\":\"error\",\"events\":[{\"level\":\"info\",\"message\":\"ok\"},"
					"{\"level\":\"error\",\"type\":\"job_error\",\"message\":\"Bad line 3\"}]}", &job), "failed job");
	IS_STR(job.error_message, "Bad line 3", "failure message from the error event");
	n = a->parse_events("{\"data\":[{\"created_at\":\"2024-05-01T10:00:00Z\",\"level\":\"info\",\"type\":\"job_start\",\"message\":\"a\"},"
						"{\"created_at\":\"2024-05-01T10:05:00Z\",\"level\":\"warning\",\"type\":\"warning\",\"message\":\"b\",\"step\":4}]}",
						&ev, &more);
	IS_INT(n, 2, "two events");
	IS_STR(ev[0].message, "b", "newest first");
	IS_STR(ev[0].level, "warn", "warning level mapped");
	IS_STR(ev[0].data_json, "{\"step\":4}", "event data kept");
	OK(strncmp(ev[1].id, "ev-", 3) == 0 && strcmp(ev[0].id, ev[1].id) != 0, "derived event ids differ");
	{
		FtProviderEvent *again;
		int			m = a->parse_events("{\"data\":[{\"created_at\":\"2024-05-01T10:00:00Z\",\"level\":\"info\",\"type\":\"job_start\",\"message\":\"a\"}]}",
										&again, &more);

		IS_INT(m, 1, "one event");
		IS_STR(again[0].id, ev[1].id, "an event keeps its id across polls");
		ft_free_events(again, m);
	}
	ft_free_events(ev, n);
	a->parse_error("{\"message\":\"Invalid API key\"}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(msg, "Invalid API key", "bare message error");
	IS_STR(a->dataset_format(&cfg, "supervised"), "together_chat", "Together conversational format");
}

static void
TestFireworks(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("fireworks");
	FtProviderConfig cfg = Config("fireworks", "https://api.fireworks.ai/v1", "{\"account_id\":\"acme\"}");
	FtJobSpec	spec = Spec("supervised", "{\"n_epochs\":2,\"batch_size\":8}");
	FtHttpCall	call;
	FtProviderJob job;
	char		ref[256],
				code[64],
				msg[256];

	OK(a->prepare_upload(&cfg, spec.our_id, "validation.jsonl", &call), "a dataset is created first");
	IS_STR(call.url, "https://api.fireworks.ai/v1/accounts/acme/datasets", "dataset create URL");
	IS_STR(Member(call.body, "datasetId"), "\"pgft-0b7e2a4c-1111-4222-8333-944455556666-validation\"", "deterministic dataset id");
	free(call.body);
	a->upload(&cfg, spec.our_id, "/tmp/x", "train.jsonl", &call);
	IS_STR(call.url, "https://api.fireworks.ai/v1/accounts/acme/datasets/pgft-0b7e2a4c-1111-4222-8333-944455556666-train:upload", "upload URL");
	OK(a->uploaded_ref(&cfg, spec.our_id, "train.jsonl", ref, sizeof(ref)), "dataset reference");
	IS_STR(ref, "accounts/acme/datasets/pgft-0b7e2a4c-1111-4222-8333-944455556666-train", "dataset resource name");
	spec.training_file = ref;
	a->create(&cfg, &spec, &call);
	IS_STR(Member(call.body, "baseModel"), "\"accounts/fireworks/models/base-model\"", "bare model prefixed");
	IS_STR(Member(call.body, "epochs"), "2", "camelCase epochs");
	IS_STR(Member(call.body, "batchSizeSamples"), "8", "batch size in examples");
	IS_STR(Member(call.body, "outputModel"), "\"accounts/acme/models/shop-bot-0b7e2a4c\"", "suffix made a valid model id");
	free(call.body);
	OK(a->parse_job("{\"name\":\"accounts/acme/supervisedFineTuningJobs/abc\",\"state\":\"JOB_STATE_COMPLETED\","
					"\"outputModel\":\"accounts/acme/models/m\",\"completedTime\":\"2024-05-01T10:20:30Z\"}", &job), "job parses");
	IS_STR(job.id, "abc", "job id is the last name segment");
	IS_STR(job.status, "succeeded", "completed");
	IS_INT(job.finished_at, 1714558830, "RFC 3339 completion");
	OK(a->parse_job("{\"name\":\"a/b\",\"state\":\"JOB_STATE_FAILED\",\"status\":{\"code\":\"INVALID_ARGUMENT\",\"message\":\"bad data\"}}", &job), "failed");
	IS_STR(job.error_code, "INVALID_ARGUMENT", "status code kept");
	OK(a->parse_job("{\"name\":\"a/b\",\"state\":\"JOB_STATE_SOMETHING_NEW\"}", &job) && job.status[0] == '\0', "unknown state keeps ours");
	OK(a->parse_job("{\"name\":\"a/b\",\"state\":\"JOB_STATE_DELETING\"}", &job) && strcmp(job.status, "cancelled") == 0,
	   "a deleted job is cancelled");
	a->cancel(&cfg, "abc", &call);
	IS_STR(call.method, "DELETE", "cancel is DELETE");
	a->parse_error("{\"error\":{\"code\":400,\"message\":\"dataset missing\",\"status\":\"INVALID_ARGUMENT\"}}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "INVALID_ARGUMENT", "rpc status as code");
	a->parse_error("{\"code\":5,\"message\":\"not found\"}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "rpc_5", "bare numeric rpc code");
	OK(a->parse_find("{\"supervisedFineTuningJobs\":[{\"name\":\"a/x\",\"dataset\":\"d1\"},{\"name\":\"a/y\",\"dataset\":\"d2\"}]}", "d2", &job)
	   && strcmp(job.id, "y") == 0, "found by dataset");
}

static void
TestMistral(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("mistral");
	FtProviderConfig cfg = Config("mistral", "https://api.mistral.ai/v1", "{}");
	FtProviderConfig manual = Config("mistral", "https://api.mistral.ai/v1", "{\"auto_start\":false}");
	FtJobSpec	spec = Spec("supervised", "{\"n_epochs\":2,\"learning_rate_multiplier\":0.5}");
	FtHttpCall	call;
	FtProviderJob job;
	FtProviderEvent *ev;
	FtProviderCheckpoint *ck;
	bool		more;
	int			n;
	char		code[64],
				msg[512];
	const char *detail = "{\"id\":\"j1\",\"status\":\"RUNNING\",\"training_files\":[\"f1\"],"
		"\"events\":[{\"name\":\"status-updated\",\"data\":{\"status\":\"QUEUED\"},\"created_at\":100},"
		"{\"name\":\"status-updated\",\"data\":{\"status\":\"RUNNING\"},\"created_at\":200}],"
		"\"checkpoints\":[{\"metrics\":{\"train_loss\":0.5,\"valid_loss\":0.6},\"step_number\":10,\"created_at\":150}]}";

	spec.suffix = "a-very-long-suffix-over-18";
	a->create(&cfg, &spec, &call);
	IS_STR(Member(call.body, "training_files"), "[{\"file_id\":\"file-train\",\"weight\":1.0}]", "training_files with weight");
	IS_STR(Member(call.body, "hyperparameters.epochs"), "2.0", "epochs");
	IS_STR(Member(call.body, "hyperparameters.learning_rate"), "5.0000000000000002e-5", "learning rate = multiplier x 1e-4");
	IS_STR(Member(call.body, "suffix"), "\"a-very-long-suffix\"", "suffix cut to 18");
	IS_STR(Member(call.body, "auto_start"), "true", "auto_start by default");
	free(call.body);
	a->create(&manual, &spec, &call);
	IS_STR(Member(call.body, "auto_start"), "false", "auto_start from settings");
	free(call.body);
	OK(a->parse_job("{\"id\":\"j1\",\"status\":\"VALIDATED\"}", &job), "validated job");
	OK(!a->start(&cfg, &job, &call), "no start call with auto_start");
	OK(a->start(&manual, &job, &call), "start call without auto_start");
	IS_STR(call.url, "https://api.mistral.ai/v1/fine_tuning/jobs/j1/start", "start URL");
	OK(a->parse_job("{\"id\":\"j1\",\"status\":\"RUNNING\"}", &job) && !a->start(&manual, &job, &call), "no start once running");
	OK(a->parse_job("{\"id\":\"j1\",\"status\":\"FAILED_VALIDATION\",\"events\":[{\"name\":\"status-updated\",\"data\":{\"status\":\"FAILED_VALIDATION\",\"error\":\"Line 2: bad role\"}}]}", &job),
	   "failed validation");
	IS_STR(job.status, "failed", "FAILED_VALIDATION is failed");
	IS_STR(job.error_code, "failed_validation", "status as code");
	IS_STR(job.error_message, "Line 2: bad role", "message from the events");
	OK(a->parse_job("{\"id\":\"j1\",\"status\":\"CANCELLATION_REQUESTED\"}", &job) && strcmp(job.status, "running") == 0, "cancel requested stays live");
	n = a->parse_events(detail, &ev, &more);
	IS_INT(n, 3, "two status events and one metrics event");
	IS_STR(ev[0].message, "Status changed to RUNNING.", "newest first");
	IS_STR(ev[1].type, "metrics", "checkpoint metrics as a metrics event");
	IS_STR(ev[1].data_json, "{\"step\":10,\"train_loss\":0.5,\"valid_loss\":0.59999999999999998}", "metrics data");
	ft_free_events(ev, n);
	n = a->parse_checkpoints(detail, &ck);
	IS_INT(n, 1, "inline checkpoint");
	IS_INT(ck[0].step, 10, "checkpoint step");
	ft_free_checkpoints(ck, n);
	OK(a->parse_find("{\"data\":[{\"id\":\"j0\",\"training_files\":[\"f0\"]},{\"id\":\"j1\",\"training_files\":[\"f1\"]}]}", "f1", &job)
	   && strcmp(job.id, "j1") == 0, "found by training file");
	a->parse_error("{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"model\"],\"msg\":\"Field required\"},"
				   "{\"type\":\"string_too_long\",\"loc\":[\"body\",\"suffix\"],\"msg\":\"Too long\"}]}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "missing", "422 code from the first detail");
	IS_STR(msg, "[\"body\",\"model\"]: Field required; [\"body\",\"suffix\"]: Too long", "422 messages joined");
	a->parse_error("{\"object\":\"error\",\"message\":\"Unauthorized\",\"type\":\"unauthorized\"}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "unauthorized", "other errors: type");
	OK(!a->supports_dpo, "mistral runs no dpo");
}

static void
TestReplicate(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("replicate");
	FtProviderConfig cfg = Config("replicate", "https://api.replicate.com/v1",
								  "{\"trainer_owner\":\"meta\",\"trainer_name\":\"llama\",\"trainer_version\":\"v1\","
								  "\"destination\":\"me/bot\",\"input\":{\"lora_rank\":8},\"input_file_field\":\"train_jsonl\"}");
	FtJobSpec	spec = Spec("supervised", "{\"n_epochs\":4}");
	FtHttpCall	call;
	FtProviderJob job;
	FtProviderEvent *ev;
	bool		more;
	int			n;
	char		id[256],
				code[64],
				msg[256];

	a->upload(&cfg, spec.our_id, "/tmp/x", "train.jsonl", &call);
	IS_STR(call.upload_field, "content", "file field is content");
	OK(a->parse_file_id("{\"id\":\"f1\",\"urls\":{\"get\":\"https://api.replicate.com/v1/files/f1\"}}", id, sizeof(id)), "file answer");
	IS_STR(id, "https://api.replicate.com/v1/files/f1", "file referenced by URL");
	spec.training_file = id;
	a->create(&cfg, &spec, &call);
	IS_STR(call.url, "https://api.replicate.com/v1/models/meta/llama/versions/v1/trainings", "trainings URL");
	IS_STR(Member(call.body, "destination"), "\"me/bot\"", "destination");
	IS_STR(Member(call.body, "input"), "{\"lora_rank\":8,\"train_jsonl\":\"https://api.replicate.com/v1/files/f1\",\"num_train_epochs\":4,\"seed\":7}",
		   "input: settings, file URL, epochs, seed");
	free(call.body);
	OK(a->parse_job("{\"id\":\"t1\",\"status\":\"succeeded\",\"output\":{\"version\":\"me/bot:abc\"},\"completed_at\":\"2024-05-01T10:20:30Z\"}", &job), "job");
	IS_STR(job.fine_tuned_model, "me/bot:abc", "output.version is the model");
	IS_STR(job.status, "succeeded", "succeeded");
	OK(a->parse_job("{\"id\":\"t1\",\"status\":\"canceled\"}", &job) && strcmp(job.status, "cancelled") == 0, "canceled");
	OK(a->parse_job("{\"id\":\"t1\",\"status\":\"failed\",\"error\":\"OOM\"}", &job) && strcmp(job.error_message, "OOM") == 0, "error string");
	OK(a->parse_job("{\"id\":\"t1\",\"status\":\"booting\"}", &job) && job.status[0] == '\0', "unknown status keeps ours");
	n = a->parse_events("{\"id\":\"t1\",\"logs\":\"loading\\nstep 1 loss=2.5\\n{'step': 2, 'loss': 1.25}\\nstep 3 done\"}", &ev, &more);
	IS_INT(n, 2, "two log lines with step and loss");
	IS_STR(ev[0].data_json, "{\"step\": 2, \"train_loss\": 1.25}", "newest metrics first");
	ft_free_events(ev, n);
	OK(a->parse_find("{\"results\":[{\"id\":\"t0\",\"input\":{\"train_jsonl\":\"u0\"}},{\"id\":\"t1\",\"input\":{\"train_jsonl\":\"u1\"}}]}", "u1", &job)
	   && strcmp(job.id, "t1") == 0, "found by file URL in the input");
	a->parse_error("{\"title\":\"Invalid input\",\"detail\":\"destination does not exist\",\"status\":422}", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "invalid_input", "title as code");
	IS_STR(msg, "destination does not exist", "detail as message");
	IS_STR(a->dataset_format(&cfg, "supervised"), "prompt_completion", "default trainer format");
}

int
main(void)
{
	TestRegistry();
	TestAzure();
	TestTogether();
	TestFireworks();
	TestMistral();
	TestReplicate();
	return unit_done();
}
