/*
 * libFuzzer target for the provider adapters (src/provider_*.c): whatever a provider answers
 * must be read without a crash, a leak or a read out of bounds, because a crash kills the
 * background worker and with it the whole cluster.
 *
 * Input: NUL-separated parts, all optional after the first:
 *   body \0 id \0 settings_json \0 hyperparameters_json \0 base_url \0 model \0 flags
 * The body goes to every parse_* function of every adapter (parse_upload too, where there is
 * one); the id (our job id, provider job
 * id, file id, upload id, training file reference), the settings and the hyperparameters go to
 * every request builder (the multipart upload calls too), so odd settings are covered too. Checks, besides the sanitizers: parsed
 * fixed-size fields and built URLs are NUL-terminated inside their buffers, event and
 * checkpoint counts are sane, and every built body is valid JSON.
 *
 * Build and run from the repository root (or use tests/fuzz/run.sh):
 *   mkdir -p tests/fuzz/bin
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(pkg-config --cflags jansson) \
 *     -o tests/fuzz/bin/fuzz_providers tests/fuzz/fuzz_providers.c src/provider_*.c \
 *     src/results_csv.c $(pkg-config --libs jansson) -lm
 *   tests/fuzz/bin/fuzz_providers -max_total_time=300 -detect_leaks=1 tests/fuzz/corpus/providers
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ft_jansson.h"
#include "provider.h"

#define NPARTS 7

static const char *const Kinds[] = {"openai", "azure_openai", "together", "fireworks", "mistral", "replicate", NULL};

/* Abort unless buf holds a NUL within its size */
static void
CheckTerminated(const char *buf, size_t size)
{
	if (memchr(buf, '\0', size) == NULL)
		abort();
}

/* Every fixed-size field of a parsed job must be a C string inside its buffer */
static void
CheckJob(const FtProviderJob *job)
{
	CheckTerminated(job->id, sizeof(job->id));
	CheckTerminated(job->status, sizeof(job->status));
	CheckTerminated(job->raw_status, sizeof(job->raw_status));
	CheckTerminated(job->fine_tuned_model, sizeof(job->fine_tuned_model));
	CheckTerminated(job->error_code, sizeof(job->error_code));
	CheckTerminated(job->error_message, sizeof(job->error_message));
	CheckTerminated(job->result_file, sizeof(job->result_file));
	CheckTerminated(job->metadata_job, sizeof(job->metadata_job));
	CheckTerminated(job->training_file, sizeof(job->training_file));
}

/* A built call: URL terminated, body (if any) valid JSON; then free the body */
static void
CheckCall(FtHttpCall *call)
{
	CheckTerminated(call->url, sizeof(call->url));
	CheckTerminated(call->upload_name, sizeof(call->upload_name));
	CheckTerminated(call->upload_field, sizeof(call->upload_field));
	if (call->nform < 0 || call->nform > 4)
		abort();
	for (int i = 0; i < call->nform; i++)
	{
		CheckTerminated(call->form[i].name, sizeof(call->form[i].name));
		CheckTerminated(call->form[i].value, sizeof(call->form[i].value));
	}
	if (call->method == NULL)
		abort();
	if (call->body)
	{
		json_t	   *parsed = json_loads(call->body, JSON_DECODE_ANY, NULL);

		if (parsed == NULL)
			abort();
		json_decref(parsed);
	}
	free(call->body);
	call->body = NULL;
}

/* Feed the body to every parser of one adapter */
static void
ParseAll(const FtProviderAdapter *a, const FtProviderConfig *cfg, const char *body, const char *id)
{
	FtProviderJob job;
	FtHttpCall	call;
	char		small_id[8],
				file_id[FT_ID_LEN];
	char		code[128],
				message[1024],
				tiny_code[2],
				tiny_message[3];
	FtProviderEvent *events = NULL;
	FtProviderCheckpoint *checkpoints = NULL;
	bool		has_more = true;
	int			n;

	memset(&job, 0x5a, sizeof(job));
	if (a->parse_job(body, &job))
	{
		CheckJob(&job);
		if (a->start && a->start(cfg, &job, &call))
			CheckCall(&call);
	}
	memset(&job, 0x5a, sizeof(job));
	if (a->parse_find(body, id, &job))
		CheckJob(&job);
	/* "" as the reference: nothing may match on an empty training file or metadata */
	memset(&job, 0x5a, sizeof(job));
	a->parse_find(body, "", &job);

	a->parse_file_id(body, file_id, sizeof(file_id));
	CheckTerminated(file_id, sizeof(file_id));
	a->parse_file_id(body, small_id, sizeof(small_id));
	CheckTerminated(small_id, sizeof(small_id));

	n = a->parse_events(body, &events, &has_more);
	if (n < -1 || (n == -1 && events != NULL) || (n >= 0 && events == NULL))
		abort();
	for (int i = 0; i < n; i++)
	{
		CheckTerminated(events[i].id, sizeof(events[i].id));
		CheckTerminated(events[i].level, sizeof(events[i].level));
		CheckTerminated(events[i].type, sizeof(events[i].type));
		if (events[i].message == NULL)
			abort();
		(void) strlen(events[i].message);
		if (events[i].data_json)
			(void) strlen(events[i].data_json);
	}
	ft_free_events(events, n > 0 ? n : 0);

	if (a->parse_checkpoints)
	{
		n = a->parse_checkpoints(body, &checkpoints);
		if (n < -1 || (n == -1 && checkpoints != NULL) || (n >= 0 && checkpoints == NULL))
			abort();
		for (int i = 0; i < n; i++)
		{
			CheckTerminated(checkpoints[i].id, sizeof(checkpoints[i].id));
			CheckTerminated(checkpoints[i].model, sizeof(checkpoints[i].model));
			if (checkpoints[i].metrics_json)
				(void) strlen(checkpoints[i].metrics_json);
		}
		ft_free_checkpoints(checkpoints, n > 0 ? n : 0);
	}

	if (a->parse_upload)
	{
		a->parse_upload(body, file_id, sizeof(file_id), code, sizeof(code));
		CheckTerminated(file_id, sizeof(file_id));
		CheckTerminated(code, sizeof(code));
		a->parse_upload(body, small_id, sizeof(small_id), tiny_code, sizeof(tiny_code));
		CheckTerminated(small_id, sizeof(small_id));
		CheckTerminated(tiny_code, sizeof(tiny_code));
	}

	a->parse_error(body, code, sizeof(code), message, sizeof(message));
	CheckTerminated(code, sizeof(code));
	CheckTerminated(message, sizeof(message));
	a->parse_error(body, tiny_code, sizeof(tiny_code), tiny_message, sizeof(tiny_message));
	CheckTerminated(tiny_code, sizeof(tiny_code));
	CheckTerminated(tiny_message, sizeof(tiny_message));
	a->parse_error(NULL, code, sizeof(code), message, sizeof(message));
}

/* Build every request of one adapter with the fuzzed id, settings and hyperparameters */
static void
BuildAll(const FtProviderAdapter *a, const FtProviderConfig *cfg, const char *id, const char *hp,
		 const char *model, unsigned flags)
{
	FtHttpCall	call;
	FtJobSpec	spec;
	FtProviderJob job;
	char		auth[256];
	char		ref[FT_ID_LEN],
				small_ref[6];
	const char *name = (flags & 1) ? "validation.jsonl" : "train.jsonl";

	a->auth_header(cfg, auth, sizeof(auth));
	CheckTerminated(auth, sizeof(auth));

	a->upload(cfg, id, "/tmp/none.jsonl", name, &call);
	CheckCall(&call);
	if (a->prepare_upload && a->prepare_upload(cfg, id, name, &call))
		CheckCall(&call);
	if (a->uploaded_ref)
	{
		a->uploaded_ref(cfg, id, name, ref, sizeof(ref));
		CheckTerminated(ref, sizeof(ref));
		a->uploaded_ref(cfg, id, name, small_ref, sizeof(small_ref));
		CheckTerminated(small_ref, sizeof(small_ref));
	}

	memset(&spec, 0, sizeof(spec));
	spec.our_id = id;
	spec.model = model;
	spec.method = (flags & 2) ? "dpo" : "supervised";
	spec.hyperparameters_json = (flags & 4) ? NULL : hp;
	spec.suffix = (flags & 8) ? NULL : id;
	spec.seed = (flags & 16) ? -1 : (long long) flags * 7919;
	spec.training_file = id;
	spec.validation_file = (flags & 32) ? id : NULL;
	a->create(cfg, &spec, &call);
	CheckCall(&call);

	a->find_by_our_id(cfg, id, &call);
	CheckCall(&call);
	a->get(cfg, id, &call);
	CheckCall(&call);
	if (a->events)
	{
		a->events(cfg, id, (flags & 64) ? id : NULL, &call);
		CheckCall(&call);
	}
	if (a->checkpoints)
	{
		a->checkpoints(cfg, id, &call);
		CheckCall(&call);
	}
	a->cancel(cfg, id, &call);
	CheckCall(&call);
	if (a->file_content)
	{
		a->file_content(cfg, id, &call);
		CheckCall(&call);
	}
	if (a->dataset_format)
	{
		(void) strlen(a->dataset_format(cfg, "supervised"));
		(void) strlen(a->dataset_format(cfg, "dpo"));
	}
	if (a->upload_begin)
	{
		a->upload_begin(cfg, id, (long long) flags * 1048576, &call);
		CheckCall(&call);
	}
	if (a->upload_part)
	{
		a->upload_part(cfg, id, "/tmp/none.jsonl", (long long) flags, 65536, &call);
		CheckCall(&call);
	}
	if (a->upload_complete)
	{
		/* the worker writes the part ids as a JSON array; here of the fuzzed id */
		json_t	   *parts = json_pack("[s]", id);
		char	   *text = parts ? json_dumps(parts, JSON_COMPACT) : NULL;

		a->upload_complete(cfg, id, text ? text : "[]", &call);
		CheckCall(&call);
		free(text);
		json_decref(parts);
	}
	if (a->start)
	{
		memset(&job, 0, sizeof(job));
		snprintf(job.id, sizeof(job.id), "%s", id);
		snprintf(job.raw_status, sizeof(job.raw_status), "VALIDATED");
		if (a->start(cfg, &job, &call))
			CheckCall(&call);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 1);
	const char *parts[NPARTS] = {"", "ftjob-0123456789abcdef", "", "{\"n_epochs\":3}", "https://api.example.com/v1",
	"gpt-4o-mini", ""};
	size_t		start = 0;
	int			np = 0;
	FtProviderConfig cfg;
	unsigned	flags;

	memcpy(copy, data, size);
	copy[size] = '\0';
	/* split on NUL: the first part ends at the first NUL, and so on */
	for (size_t i = 0; i <= size && np < NPARTS; i++)
	{
		if (i == size || copy[i] == '\0')
		{
			if (np == 0 || i > start || np == 2)
				parts[np] = copy + start;
			np++;
			start = i + 1;
		}
	}
	flags = (unsigned) (unsigned char) parts[6][0] | ((unsigned) (unsigned char) (parts[6][0] ? parts[6][1] : 0) << 8);

	for (int k = 0; Kinds[k]; k++)
	{
		const FtProviderAdapter *a = ft_provider_adapter(Kinds[k]);

		if (a == NULL)
			abort();
		memset(&cfg, 0, sizeof(cfg));
		snprintf(cfg.kind, sizeof(cfg.kind), "%s", Kinds[k]);
		snprintf(cfg.base_url, sizeof(cfg.base_url), "%s", parts[4]);
		snprintf(cfg.settings_json, sizeof(cfg.settings_json), "%s", parts[2]);
		cfg.api_key = (flags & 128) ? NULL : parts[1];
		ParseAll(a, &cfg, parts[0], parts[1]);
		BuildAll(a, &cfg, parts[1], parts[3], parts[5], flags);
	}
	free(copy);
	return 0;
}
