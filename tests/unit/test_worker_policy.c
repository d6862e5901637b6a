/*
 * Unit tests of the worker's pure parts: host allow-list, retry rules, Retry-After, the OpenAI
 * adapter's requests and lenient parsing, and the result CSV.
 */
#include <math.h>

#include "http_policy.h"
#include "provider.h"
#include "unit.h"

static int	rows_seen;
static double last_valid_loss;
static long long last_step;

/* Collects result CSV rows */
static void
CountRow(void *arg, const FtMetricsRow *r)
{
	rows_seen++;
	last_step = r->step;
	last_valid_loss = r->valid_loss;
}

/* Which hosts the allow-list admits */
static void
TestAllowList(void)
{
	char		why[256];
	const char *list = "api.openai.com, *.openai.azure.com,127.0.0.1:8080";

	OK(ft_host_allowed(list, "api.openai.com", 443, why, sizeof(why)), "exact host allowed");
	OK(ft_host_allowed(list, "shop.openai.azure.com", 443, why, sizeof(why)), "wildcard suffix allowed");
	OK(!ft_host_allowed(list, "openai.azure.com.evil.com", 443, why, sizeof(why)), "suffix must end the host");
	OK(!ft_host_allowed(list, "evil.com", 443, why, sizeof(why)), "unlisted host refused");
	OK(strstr(why, "evil.com") != NULL, "refusal names the host");
	OK(ft_host_allowed(list, "127.0.0.1", 8080, why, sizeof(why)), "listed loopback host:port allowed");
	OK(!ft_host_allowed(list, "127.0.0.1", 8081, why, sizeof(why)), "other loopback port refused");
	OK(!ft_host_allowed("*", "127.0.0.1", 80, why, sizeof(why)), "a bare * never admits loopback");
	OK(!ft_host_allowed("*", "localhost", 80, why, sizeof(why)), "nor localhost");
	OK(ft_host_allowed("*", "api.together.xyz", 443, why, sizeof(why)), "a bare * admits public hosts");
	OK(!ft_host_allowed("", "api.openai.com", 443, why, sizeof(why)), "empty list admits nothing");
}

/* Which answers are retried */
static void
TestClassify(void)
{
	IS_INT(ft_classify_response(true, 0, NULL), FT_OUTCOME_RETRY, "transport error retried");
	IS_INT(ft_classify_response(false, 200, NULL), FT_OUTCOME_OK, "200 ok");
	IS_INT(ft_classify_response(false, 429, "rate_limit_exceeded"), FT_OUTCOME_RETRY, "rate 429 retried");
	IS_INT(ft_classify_response(false, 429, "insufficient_quota"), FT_OUTCOME_FAIL, "quota 429 fails");
	IS_INT(ft_classify_response(false, 408, NULL), FT_OUTCOME_RETRY, "408 retried");
	IS_INT(ft_classify_response(false, 409, NULL), FT_OUTCOME_RETRY, "409 retried");
	IS_INT(ft_classify_response(false, 503, NULL), FT_OUTCOME_RETRY, "503 retried");
	IS_INT(ft_classify_response(false, 400, NULL), FT_OUTCOME_FAIL, "400 fails");
	IS_INT(ft_classify_response(false, 401, "invalid_api_key"), FT_OUTCOME_FAIL, "401 fails");
	IS_INT(ft_classify_response(false, 404, NULL), FT_OUTCOME_FAIL, "404 fails");
}

/* Backoff grows, is capped, and jitter only shortens it */
static void
TestBackoff(void)
{
	IS_INT(ft_backoff_ms(1, 0.0, 300000), 1000, "first retry after 1 s");
	IS_INT(ft_backoff_ms(4, 0.0, 300000), 8000, "doubles each time");
	IS_INT(ft_backoff_ms(30, 0.0, 300000), 300000, "capped");
	IS_INT(ft_backoff_ms(2, 1.0, 300000), 1500, "jitter takes off at most a quarter");
	IS_INT(ft_parse_retry_after("7", 0), 7000, "Retry-After in seconds");
	IS_INT(ft_parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 40), 60000, "Retry-After as an HTTP date");
	IS_INT(ft_parse_retry_after("soon", 0), -1, "unreadable Retry-After ignored");
}

/* The create request carries our id in metadata and the method's hyperparameters */
static void
TestOpenAICreate(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("openai");
	FtProviderConfig cfg = {"openai", "https://api.openai.com/v1/", "{}", "sk-x"};
	FtJobSpec	spec = {"0b7e7c1e-0000-4000-8000-000000000001", "gpt-4o-mini-2024-07-18", "dpo",
	"{\"beta\":0.1}", "shop", 42, "file-train", NULL};
	FtHttpCall	call;

	OK(a != NULL && ft_provider_adapter("mock") == a, "openai and mock share the adapter");
	OK(ft_provider_adapter("nonesuch") == NULL, "unknown kind has no adapter");
	a->create(&cfg, &spec, &call);
	IS_STR(call.url, "https://api.openai.com/v1/fine_tuning/jobs", "trailing slash of base URL handled");
	OK(call.fresh_connection, "create never reuses a connection");
	OK(strstr(call.body, "\"metadata\":{\"pg_finetune_job\":\"0b7e7c1e-0000-4000-8000-000000000001\"}") != NULL,
	   "our id in metadata");
	OK(strstr(call.body, "\"method\":{\"type\":\"dpo\",\"dpo\":{\"hyperparameters\":{\"beta\":0.1}}}") != NULL,
	   "dpo method with hyperparameters");
	OK(strstr(call.body, "validation_file") == NULL, "no validation file when none");
	free(call.body);
	a->find_by_our_id(&cfg, spec.our_id, &call);
	OK(strstr(call.url, "metadata[pg_finetune_job]=0b7e7c1e") != NULL, "lookup by metadata");
}

/* Lenient reading of job objects, listings, events and errors */
static void
TestOpenAIParse(void)
{
	const FtProviderAdapter *a = ft_provider_adapter("openai");
	FtProviderJob job;
	FtProviderEvent *events;
	bool		more;
	char		code[64],
				msg[256];
	int			n;

	OK(a->parse_job("{\"id\":\"ftjob-1\",\"status\":\"succeeded\",\"fine_tuned_model\":\"ft:m\",\"trained_tokens\":12.0,"
					"\"error\":{},\"result_files\":[\"file-r\"],\"extra\":[1,2]}", &job), "job parsed");
	IS_STR(job.status, "succeeded", "status mapped");
	IS_INT(job.trained_tokens, 12, "number written as a real");
	IS_STR(job.error_code, "", "error {} is no error");
	IS_STR(job.result_file, "file-r", "result file");
	OK(a->parse_job("{\"id\":\"ftjob-2\",\"status\":\"pausing\",\"error\":null}", &job), "unknown status parsed");
	IS_STR(job.status, "", "unknown status maps to nothing");
	IS_STR(job.raw_status, "pausing", "raw status kept");
	OK(!a->parse_job("{\"id\": tru", &job), "truncated JSON refused");
	OK(!a->parse_job("[]", &job), "not an object refused");
	OK(a->parse_find("{\"data\":[{\"id\":\"ftjob-9\",\"metadata\":{\"pg_finetune_job\":\"other\"}},"
					 "{\"id\":\"ftjob-3\",\"metadata\":{\"pg_finetune_job\":\"ours\"}}]}", "ours", &job), "found by metadata");
	IS_STR(job.id, "ftjob-3", "the job carrying our id");
	OK(!a->parse_find("{\"data\":[{\"id\":\"ftjob-9\",\"metadata\":null}]}", "ours", &job), "filter re-checked");
	n = a->parse_events("{\"data\":[{\"id\":\"e2\",\"type\":\"metrics\",\"message\":\"Step 2\",\"data\":{\"step\":2}},"
						"{\"id\":\"e1\",\"type\":\"surprise\",\"message\":null,\"created_at\":5}],\"has_more\":true}", &events, &more);
	IS_INT(n, 2, "two events");
	OK(more, "has_more read");
	IS_STR(events[0].data_json, "{\"step\":2}", "event data kept as JSON");
	IS_STR(events[1].message, "", "null message read as empty");
	ft_free_events(events, n);
	a->parse_error("{\"error\":{\"message\":\"Bad\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}",
				   code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "invalid_request_error", "type stands in for a null code");
	IS_STR(msg, "Bad", "provider message");
	a->parse_error("<html>502</html>", code, sizeof(code), msg, sizeof(msg));
	IS_STR(code, "", "HTML error page yields no code");
}

/* Result CSV by header name, raw or base64 */
static void
TestResultsCsv(void)
{
	const char *csv = "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,1.5,0.1,,\n2,0.5,0.8,0.7,0.6\n";
	const char *azure = "train_loss,step,validation_mean_token_accuracy,valid_loss\n0.9,7,0.5,0.25\n";
	const char *b64 = "c3RlcCx2YWxpZF9sb3NzCjMsMC4yNQo=";	/* "step,valid_loss\n3,0.25\n" */

	rows_seen = 0;
	IS_INT(ft_parse_results_csv(csv, strlen(csv), CountRow, NULL), 2, "two rows");
	IS_INT(last_step, 2, "step read");
	OK(fabs(last_valid_loss - 0.7) < 1e-9, "valid loss read");
	IS_INT(ft_parse_results_csv(azure, strlen(azure), CountRow, NULL), 1, "other column order");
	IS_INT(last_step, 7, "step found by name");
	IS_INT(ft_parse_results_csv(b64, strlen(b64), CountRow, NULL), 1, "base64 content decoded");
	OK(fabs(last_valid_loss - 0.25) < 1e-9, "decoded value");
	IS_INT(ft_parse_results_csv("a,b\n1,2\n", 8, CountRow, NULL), -1, "no step column");
}

int
main(void)
{
	TestAllowList();
	TestClassify();
	TestBackoff();
	TestOpenAICreate();
	TestOpenAIParse();
	TestResultsCsv();
	return unit_done();
}
