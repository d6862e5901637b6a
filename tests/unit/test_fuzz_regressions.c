/*
 * Regression cases for what fuzzing tests/fuzz/fuzz_providers.c, fuzz_results_csv.c and
 * fuzz_jsonl_write.c found: each input below once crashed or hit undefined behaviour, and must
 * now give the documented result.
 */
#include <limits.h>
#include <time.h>

#include "ft_jansson.h"
#include "http_policy.h"
#include "jsonl_write.h"
#include "provider.h"
#include "unit.h"

/* A configuration for one kind */
static FtProviderConfig
Config(const char *kind, const char *settings)
{
	FtProviderConfig cfg;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.kind, sizeof(cfg.kind), "%s", kind);
	snprintf(cfg.base_url, sizeof(cfg.base_url), "https://api.example.com/v1");
	snprintf(cfg.settings_json, sizeof(cfg.settings_json), "%s", settings);
	cfg.api_key = "sk-unit";
	return cfg;
}

/* "%" in settings was used as a printf format when building URLs (segfault on %s%n) */
static void
TestPercentInSettings(void)
{
	FtProviderConfig fw = Config("fireworks", "{\"account_id\":\"%s%s%s%n\"}");
	FtProviderConfig rep = Config("replicate", "{\"trainer_owner\":\"%n%s\",\"trainer_name\":\"t\",\"trainer_version\":\"v%d\"}");
	FtJobSpec	spec;
	FtHttpCall	call;
	char		ref[FT_ID_LEN];

	ft_fireworks_adapter.get(&fw, "job-1", &call);
	IS_STR(call.url, "https://api.example.com/v1/accounts/%s%s%s%n/supervisedFineTuningJobs/job-1",
		   "fireworks: a %% in account_id is kept literally in the URL");
	ft_fireworks_adapter.upload(&fw, "j1", "/tmp/x", "train.jsonl", &call);
	IS_STR(call.url, "https://api.example.com/v1/accounts/%s%s%s%n/datasets/pgft-j1-train:upload",
		   "fireworks: upload URL with a %% account and the dataset argument");
	ft_fireworks_adapter.uploaded_ref(&fw, "j1", "train.jsonl", ref, sizeof(ref));
	IS_STR(ref, "accounts/%s%s%s%n/datasets/pgft-j1-train", "fireworks: dataset reference unchanged");

	memset(&spec, 0, sizeof(spec));
	spec.our_id = "j1";
	spec.model = "m";
	spec.method = "supervised";
	spec.training_file = "https://api.replicate.com/v1/files/abc";
	spec.seed = -1;
	ft_replicate_adapter.create(&rep, &spec, &call);
	IS_STR(call.url, "https://api.example.com/v1/models/%n%s/t/versions/v%d/trainings",
		   "replicate: a %% in the trainer settings is kept literally in the URL");
	OK(call.body != NULL, "replicate: the create body is still built");
	free(call.body);
}

/* Retry-After of more seconds than a long holds in milliseconds overflowed */
static void
TestRetryAfterOverflow(void)
{
	IS_INT(ft_parse_retry_after("120", 0), 120000, "Retry-After 120 is 120000 ms");
	IS_INT(ft_parse_retry_after("9223372036854775807", 0), LONG_MAX / 1000 * 1000,
		   "Retry-After beyond a long's milliseconds saturates");
	IS_INT(ft_parse_retry_after("99999999999999999999999", 0), LONG_MAX / 1000 * 1000,
		   "Retry-After beyond a long saturates");
	IS_INT(ft_parse_retry_after("-5", 0), -1, "negative Retry-After is unreadable");
}

typedef struct Rows
{
	int			n;
	long long	steps[8];
} Rows;

static void
CollectRow(void *arg, const FtMetricsRow *r)
{
	Rows	   *rows = arg;

	if (rows->n < 8)
		rows->steps[rows->n] = r->step;
	rows->n++;
}

/* A result CSV step of 1e300 or inf was converted to long long (undefined) */
static void
TestCsvHugeStep(void)
{
	const char *csv = "step,train_loss\n1e300,1\ninf,2\n-1e19,3\n2,0.5\n";
	Rows		rows = {0};

	IS_INT(ft_parse_results_csv(csv, strlen(csv), CollectRow, &rows), 1, "rows with unrepresentable steps are skipped");
	IS_INT(rows.steps[0], 2, "the representable row is kept");
}

/* Replicate log lines "step 1e300 loss 1" were converted to long long (undefined) */
static void
TestReplicateHugeStep(void)
{
	const char *body = "{\"id\":\"t\",\"logs\":\"step 1e300 loss 1\\nstep 2 loss 0.5\\n\"}";
	FtProviderEvent *events = NULL;
	bool		has_more;
	int			n = ft_replicate_adapter.parse_events(body, &events, &has_more);

	IS_INT(n, 1, "replicate: the line with an unrepresentable step is skipped");
	if (n == 1)
		IS_STR(events[0].id, "log-step-2", "replicate: the other line is an event");
	ft_free_events(events, n > 0 ? n : 0);
}

/* Together token_count * n_epochs and now + seconds_remaining overflowed */
static void
TestTogetherOverflow(void)
{
	FtProviderJob job;

	OK(ft_together_adapter.parse_job("{\"id\":\"ft-1\",\"status\":\"running\",\"token_count\":9223372036854775807,\"n_epochs\":3,"
									 "\"progress\":{\"estimate_available\":true,\"seconds_remaining\":9223372036854775807}}", &job),
	   "together: a job with absurd counts is read");
	IS_INT(job.trained_tokens, -1, "together: an overflowing token count is unknown");
	IS_INT(job.estimated_finish, -1, "together: an overflowing finish time is unknown");
	OK(ft_together_adapter.parse_job("{\"id\":\"ft-1\",\"status\":\"running\",\"token_count\":500,\"n_epochs\":3,"
									 "\"progress\":{\"estimate_available\":true,\"seconds_remaining\":60}}", &job),
	   "together: a normal job is read");
	IS_INT(job.trained_tokens, 1500, "together: tokens are counted once per epoch");
	OK(job.estimated_finish >= (long long) time(NULL) + 59 && job.estimated_finish <= (long long) time(NULL) + 61,
	   "together: the finish estimate is now plus the seconds remaining");
}

/* Writes into an empty buffer from an absent or empty string passed NULL to memcpy */
static void
TestJsonlEmptyStrings(void)
{
	FtMessage	m[2];
	FtExample	ex;
	FtBuf		out;
	FtStr		empty = {"", 0};

	FtBufInit(&out);
	FtJsonString(&out, NULL, 0);
	IS_INT(out.len, 2, "an absent string is written as \"\"");
	OK(out.len == 2 && memcmp(out.data, "\"\"", 2) == 0, "an absent string is written as two quotes");
	FtBufFree(&out);

	memset(m, 0, sizeof(m));
	m[0].role = (FtStr) {"user", 4};
	m[0].content = empty;
	m[0].weight = -1;
	m[1].role = (FtStr) {"assistant", 9};
	m[1].content = (FtStr) {"ok", 2};
	m[1].weight = -1;
	memset(&ex, 0, sizeof(ex));
	ex.messages = m;
	ex.n_messages = 2;
	ex.parallel_tool_calls = -1;

	FtBufInit(&out);
	OK(FtWriteExample(&out, FT_FORMAT_PROMPT_COMPLETION, &ex, empty), "prompt_completion with an empty system prompt");
	IS_INT(out.len, strlen("{\"prompt\":\"\\n\\nUser: \\nAssistant:\",\"completion\":\" ok\"}"), "prompt_completion length");
	OK(out.len > 0 && memcmp(out.data, "{\"prompt\":\"\\n\\nUser: \\nAssistant:\",\"completion\":\" ok\"}", out.len) == 0,
	   "prompt_completion bytes with an empty system prompt and user turn");
	FtBufFree(&out);

	FtBufInit(&out);
	OK(FtWriteExample(&out, FT_FORMAT_ALPACA, &ex, (FtStr) {"Be brief.", 9}), "alpaca with an empty lone user message");
	OK(out.len > 0 && memcmp(out.data, "{\"instruction\":\"Be brief.\",\"input\":\"\",\"output\":\"ok\"}", out.len) == 0,
	   "alpaca bytes with an empty input");
	FtBufFree(&out);

	m[0].role = (FtStr) {NULL, 0};
	FtBufInit(&out);
	OK(FtWriteExample(&out, FT_FORMAT_CHAT, &ex, (FtStr) {NULL, 0}), "chat with an absent role");
	OK(out.len > 0 && memcmp(out.data, "{\"messages\":[{\"role\":\"\",\"content\":\"\"},{\"role\":\"assistant\",\"content\":\"ok\"}]}", out.len) == 0,
	   "chat bytes with an absent role");
	FtBufFree(&out);
}

int
main(void)
{
	TestPercentInSettings();
	TestRetryAfterOverflow();
	TestCsvHugeStep();
	TestReplicateHugeStep();
	TestTogetherOverflow();
	TestJsonlEmptyStrings();
	return unit_done();
}
