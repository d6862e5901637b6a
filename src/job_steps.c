/*
 * One small function per job transition. Begin* functions decide the next provider call of a
 * claimed job; On* functions record an answer in a short transaction and pick what follows.
 * Every UPDATE names the status it expects, so a cancel committed meanwhile is never overwritten.
 */
#include "postgres.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "dataset.h"
#include "executor/spi.h"
#include "job_steps.h"
#include "pg_compat.h"
#include "http_policy.h"
#include "miscadmin.h"
#include "settings.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/uuid.h"
#include "worker_db.h"

#define LIVE_STATES "('pending', 'preparing', 'uploading', 'submitting', 'validating_files', 'queued', 'running', 'cancelling')"

static bool StartCall(void *multi, JobRun *run, FtStep step, FtHttpCall *call);
static bool HandleFailureTx(JobRun *run);
static bool RecordFileTx(JobRun *run);
static bool StartPoll(void *multi, JobRun *run);

/* Copy a string into a fixed buffer */
static inline void
SetStr(char *dst, size_t len, const char *src)
{
	strlcpy(dst, src ? src : "", len);
}

/* Read one claimed row into a new run */
JobRun *
FtRunFromRow(int row)
{
	JobRun	   *run = calloc(1, sizeof(JobRun));

	if (run == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	SetStr(run->id, sizeof(run->id), FtValue(row, 1));
	SetStr(run->avatar_id, sizeof(run->avatar_id), FtValue(row, 2));
	SetStr(run->status, sizeof(run->status), FtValue(row, 3));
	SetStr(run->provider, sizeof(run->provider), FtValue(row, 4));
	SetStr(run->provider_status, sizeof(run->provider_status), FtValue(row, 5));
	SetStr(run->model, sizeof(run->model), FtValue(row, 6));
	SetStr(run->method, sizeof(run->method), FtValue(row, 7));
	SetStr(run->hyperparameters, sizeof(run->hyperparameters), FtValue(row, 8));
	SetStr(run->suffix, sizeof(run->suffix), FtValue(row, 9));
	run->seed = strtoll(FtValue(row, 10), NULL, 10);
	SetStr(run->provider_job_id, sizeof(run->provider_job_id), FtValue(row, 11));
	SetStr(run->training_file_id, sizeof(run->training_file_id), FtValue(row, 12));
	SetStr(run->validation_file_id, sizeof(run->validation_file_id), FtValue(row, 13));
	SetStr(run->newest_event_id, sizeof(run->newest_event_id), FtValue(row, 14));
	run->create_attempted = strcmp(FtValue(row, 15), "t") == 0;
	run->cancel_sent = strcmp(FtValue(row, 16), "t") == 0;
	run->step_attempts = atoi(FtValue(row, 17));
	run->dataset_options = strdup(FtValue(row, 18));
	SetStr(run->owner_id, sizeof(run->owner_id), FtValue(row, 19));
	snprintf(run->train_path, sizeof(run->train_path), "%s/pg_finetune/%s.train.jsonl", DataDir, run->id);
	snprintf(run->validation_path, sizeof(run->validation_path), "%s/pg_finetune/%s.validation.jsonl", DataDir, run->id);
	return run;
}

/* Free a run and whatever transfer it still holds */
void
FtFreeRun(void *multi, JobRun *run)
{
	if (run->http_active)
		ft_http_cleanup(multi, &run->http);
	ft_free_events(run->events, run->nevents);
	free(run->dataset_options);
	free(run->part_ids);
	explicit_bzero(run->api_key, sizeof(run->api_key));
	free(run);
}

/* How long until the next job is due (capped at a minute); called inside the claim transaction */
long
FtMillisUntilNextDue(const char *in_flight)
{
	const char *args[1] = {in_flight};
	char	   *ms;

	FtExec("SELECT greatest(0, least(60000, floor(extract(epoch FROM min(next_poll_at) - clock_timestamp()) * 1000)))::bigint"
		   "  FROM ft_jobs WHERE status IN " LIVE_STATES " AND id <> ALL ($1::uuid[])", 1, args);
	ms = FtValue(0, 1);
	return ms ? atol(ms) : 60000;
}

/* Deadlines: no live state lasts for ever, whatever the provider does */
void
FtFailOverdueJobs(void)
{
	FtExec("UPDATE ft_jobs SET status = 'failed', finished_at = now(), error_code = 'deadline_exceeded',"
		   "       error_message = CASE WHEN now() > deadline THEN 'The job did not finish within ft.job_deadline.'"
		   "                            ELSE format('The job stayed in %s longer than ft.phase_deadline.', status) END"
		   " WHERE status IN " LIVE_STATES
		   "   AND (now() > deadline OR (status IN ('preparing', 'uploading', 'submitting', 'cancelling') AND now() > phase_deadline))",
		   0, NULL);
}

/* Add an event written by the worker (retries, failures, oddities) */
static void
WorkerEvent(JobRun *run, const char *level, const char *type, const char *message, const char *data)
{
	const char *args[6] = {run->id, run->avatar_id, level, type, message, data};

	FtExec("INSERT INTO ft_job_events (job_id, avatar_id, owner_id, level, type, message, data)"
		   " SELECT $1::uuid, $2::uuid, j.owner_id, $3, $4, $5, $6::jsonb FROM ft_jobs j WHERE j.id = $1::uuid",
		   6, args);
}

/* Provider text may quote the key back (OpenAI masks it, others may not): never store it */
static char *
Scrub(const JobRun *run, const char *text)
{
	StringInfoData buf;
	const char *p = text;
	size_t		klen = strlen(run->api_key);

	initStringInfo(&buf);
	while (*p)
	{
		if (klen >= 8 && strncmp(p, run->api_key, klen) == 0)
		{
			appendStringInfoString(&buf, "[REDACTED]");
			p += klen;
		}
		else
			appendStringInfoChar(&buf, *p++);
	}
	return buf.data;
}

/* Fail a job for good, keeping the provider's code, message and request id */
static void
FailJob(JobRun *run, const char *code, const char *message)
{
	const char *args[4] = {run->id, code, Scrub(run, message), run->http.response.request_id[0] ? run->http.response.request_id : NULL};
	StringInfoData data;

	FtExec("UPDATE ft_jobs SET status = 'failed', finished_at = now(), error_code = $2, error_message = $3,"
		   "       provider_request_id = coalesce($4, provider_request_id), attempts = attempts + 1"
		   " WHERE id = $1::uuid AND status IN " LIVE_STATES, 4, args);
	initStringInfo(&data);
	appendStringInfoString(&data, "{\"code\": ");
	escape_json(&data, code);
	appendStringInfoChar(&data, '}');
	WorkerEvent(run, "error", "worker_failed", args[2], data.data);
	unlink(run->train_path);
	unlink(run->validation_path);
}

/* Run a job's database step; an error fails that job, not the worker */
static bool
GuardedTx(JobRun *run, FtWorkerSlot *slot, const char *activity, bool (*fn) (JobRun *run))
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool result = false;

	PG_TRY();
	{
		FtTxBegin(activity);
		result = fn(run);
		FtTxCommit();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		FtTxAbort();
		FtSetLastError(slot, edata->message);
		FtTxBegin("pg_finetune: recording a failed job");
		FailJob(run, "internal_error", edata->message);
		FtTxCommit();
		result = false;
	}
	PG_END_TRY();
	return result;
}

/* Find the key for this job's owner and provider: tenant key, system key, then environment */
static bool
ResolveProviderTx(JobRun *run)
{
	const char *args[2] = {run->provider, run->owner_id};
	char		env_name[128];
	const char *env;
	char		host[256];
	char		why[512];
	long		port;

	if (FtExec("SELECT kind, base_url, settings::text FROM ft_providers WHERE name = $1", 1, args) != 1)
	{
		FailJob(run, "unknown_provider", psprintf("Provider \"%s\" is not in ft_providers.", run->provider));
		return false;
	}
	SetStr(run->cfg.kind, sizeof(run->cfg.kind), FtValue(0, 1));
	SetStr(run->cfg.base_url, sizeof(run->cfg.base_url), FtValue(0, 2));
	SetStr(run->cfg.settings_json, sizeof(run->cfg.settings_json), FtValue(0, 3));
	if ((run->adapter = ft_provider_adapter(run->cfg.kind)) == NULL)
	{
		FailJob(run, "unsupported_provider", psprintf("pg_finetune cannot drive providers of kind \"%s\" yet.", run->cfg.kind));
		return false;
	}
	if (strcmp(run->method, "dpo") == 0 && !run->adapter->supports_dpo)
	{
		FailJob(run, "unsupported_method",
				psprintf("Providers of kind \"%s\" cannot run preference (dpo) training through pg_finetune.", run->cfg.kind));
		return false;
	}
	if (!ft_url_host(run->cfg.base_url, host, sizeof(host), &port) ||
		!ft_host_allowed(ft_allowed_provider_hosts, host, port, why, sizeof(why)))
	{
		FailJob(run, "provider_host_not_allowed", psprintf("Provider \"%s\" cannot be used: %s.", run->provider, why));
		return false;
	}
	if (FtExec("SELECT api_key FROM ft_internal.api_keys WHERE provider = $1 AND owner_id IN ($2, '')"
			   " ORDER BY owner_id DESC LIMIT 1", 2, args) == 1)
		SetStr(run->api_key, sizeof(run->api_key), FtValue(0, 1));
	else
	{
		snprintf(env_name, sizeof(env_name), "PG_FINETUNE_%s_API_KEY", run->provider);
		for (char *c = env_name; *c; c++)
			*c = (*c == '-') ? '_' : pg_toupper((unsigned char) *c);
		env = getenv(env_name);
		if (env == NULL && strcmp(run->cfg.kind, "openai") == 0)
			env = getenv("OPENAI_API_KEY");
		if (env == NULL)
		{
			FailJob(run, "missing_api_key",
					psprintf("No API key for provider \"%s\": set one with ft_set_api_key or the server environment variable %s.",
							 run->provider, env_name));
			return false;
		}
		SetStr(run->api_key, sizeof(run->api_key), env);
	}
	run->cfg.api_key = run->api_key;
	return true;
}

/* The dataset line format the provider reads: the adapter's choice, else OpenAI's chat or dpo */
static const char *
DatasetFormat(JobRun *run)
{
	if (run->adapter->dataset_format)
		return run->adapter->dataset_format(&run->cfg, run->method);
	return strcmp(run->method, "dpo") == 0 ? "dpo" : "chat";
}

/* Build the dataset files (database work only) and move the job to uploading */
static bool
PrepareDatasetTx(JobRun *run)
{
	const char *args[2] = {run->id, NULL};
	FtDatasetFiles files;
	FtDatasetSummary summary;
	pg_uuid_t	avatar,
				job,
				dataset;
	char		dir[MAXPGPATH];

	if (FtExec("UPDATE ft_jobs SET status = 'preparing',"
			   "       phase_deadline = coalesce(phase_deadline, now() + make_interval(mins => $2::integer))"
			   " WHERE id = $1::uuid AND status IN ('pending', 'preparing', 'uploading')", 2,
			   (const char *[]) {run->id, psprintf("%d", ft_phase_deadline_min)}) != 1)
		return false;
	snprintf(dir, sizeof(dir), "%s/pg_finetune", DataDir);
	(void) MakePGDirectory(dir);
	memcpy(avatar.data, DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(run->avatar_id)))->data, UUID_LEN);
	memcpy(job.data, DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(run->id)))->data, UUID_LEN);
	files.train_path = run->train_path;
	files.validation_path = run->validation_path;
	dataset = FtBuildDatasetToFiles(avatar, DatasetFormat(run),
									DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(run->dataset_options))),
									&job, &files, &summary);
	if (summary.validation_count == 0)
		unlink(run->validation_path);
	/* The provider counts the training file alone; better to say so now than after an upload */
	if (FtExec("SELECT min_examples FROM ft_providers WHERE name = $1 AND min_examples > $2::bigint", 2,
			   (const char *[]) {run->provider, psprintf(INT64_FORMAT, summary.train_count)}) == 1)
	{
		FailJob(run, "too_few_training_examples",
				psprintf("The training file has %lld examples, but provider \"%s\" needs at least %s; the validation share took the rest.",
						 (long long) summary.train_count, run->provider, FtValue(0, 1)));
		return false;
	}
	args[1] = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&dataset)));
	FtExec("UPDATE ft_jobs SET status = 'uploading', dataset_id = $2::uuid WHERE id = $1::uuid AND status = 'preparing'",
		   2, args);
	SetStr(run->status, sizeof(run->status), "uploading");
	return true;
}

/* Is a file there? */
static inline bool
FileExists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Mark that a create may reach the provider; committed before the request is sent */
static bool
MarkSubmittingTx(JobRun *run)
{
	const char *args[2] = {run->id, psprintf("%d", ft_phase_deadline_min)};

	if (FtExec("UPDATE ft_jobs SET status = 'submitting', create_attempted = true,"
			   "       create_sent_at = coalesce(create_sent_at, now()),"
			   "       phase_deadline = CASE WHEN status = 'submitting' THEN phase_deadline"
			   "                             ELSE now() + make_interval(mins => $2::integer) END"
			   " WHERE id = $1::uuid AND status IN ('uploading', 'submitting')", 2, args) != 1)
		return false;
	SetStr(run->status, sizeof(run->status), "submitting");
	run->create_attempted = true;
	return true;
}

/*
 * A create sent before a crash may still be travelling or queued at the provider, and a lookup
 * that runs too early would miss it and create a second job: look only once the original
 * request must have ended (its timeout, plus a margin). Returns true when the job must wait.
 */
static bool
DeferLookupTx(JobRun *run)
{
	const char *args[2] = {run->id, psprintf("%d", ft_request_timeout_ms + 2000)};

	if (FtExec("UPDATE ft_jobs SET next_poll_at = create_sent_at + make_interval(secs => $2::integer / 1000.0)"
			   " WHERE id = $1::uuid AND create_sent_at + make_interval(secs => $2::integer / 1000.0) > now()",
			   2, args) != 1)
		return false;
	WorkerEvent(run, "info", "worker_lookup_deferred",
				"An earlier create request may still be in flight; the job is looked up by metadata once it must have ended.", NULL);
	return true;
}

/* The create call, or a lookup first when an earlier create may already have landed */
static bool
StartSubmit(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpCall	call;
	FtJobSpec	spec;
	bool		lookup_first = run->create_attempted;

	if (lookup_first && GuardedTx(run, slot, "pg_finetune: deferring a lookup", DeferLookupTx))
		return false;
	if (!GuardedTx(run, slot, "pg_finetune: submitting a job", MarkSubmittingTx))
		return false;
	if (lookup_first)
	{
		run->adapter->find_by_our_id(&run->cfg, run->id, &call);
		return StartCall(multi, run, STEP_FIND, &call);
	}
	memset(&spec, 0, sizeof(spec));
	spec.our_id = run->id;
	spec.model = run->model;
	spec.method = run->method;
	spec.hyperparameters_json = run->hyperparameters;
	spec.suffix = run->suffix[0] ? run->suffix : NULL;
	spec.seed = run->seed;
	spec.training_file = run->training_file_id;
	spec.validation_file = run->validation_file_id[0] ? run->validation_file_id : NULL;
	run->adapter->create(&run->cfg, &spec, &call);
	return StartCall(multi, run, STEP_CREATE, &call);
}

/*
 * Providers that need a call before an upload (Fireworks: create the dataset) get it first;
 * true when that call was started (or failed to start)
 */
static bool
StartPrepareUpload(void *multi, JobRun *run, const char *name)
{
	FtHttpCall	call;

	if (run->adapter->prepare_upload == NULL || run->upload_prepared ||
		!run->adapter->prepare_upload(&run->cfg, run->id, name, &call))
		return false;
	StartCall(multi, run, STEP_PREPARE_UPLOAD, &call);
	return true;
}

/* Size of a file in bytes, -1 when it cannot be read */
static long long
DatasetFileSize(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long) st.st_size : -1;
}

/* Send the next part of a multi-part upload, or assemble the parts when all are sent */
static bool
StartNextPart(void *multi, JobRun *run)
{
	FtHttpCall	call;
	long long	part = (long long) ft_upload_part_kb * 1024;
	long long	left = run->large_upload_size - run->large_upload_offset;

	if (left <= 0)
	{
		run->adapter->upload_complete(&run->cfg, run->large_upload_id,
									  psprintf("%s]", run->part_ids ? run->part_ids : "["), &call);
		return StartCall(multi, run, STEP_UPLOAD_COMPLETE, &call);
	}
	run->adapter->upload_part(&run->cfg, run->large_upload_id,
							  run->uploading_validation ? run->validation_path : run->train_path,
							  run->large_upload_offset, Min(part, left), &call);
	return StartCall(multi, run, STEP_UPLOAD_PART, &call);
}

/* Upload one dataset file: in one request, or in parts when it is over the single-request limit */
static bool
StartFileUpload(void *multi, JobRun *run, bool validation)
{
	const char *path = validation ? run->validation_path : run->train_path;
	const char *name = validation ? "validation.jsonl" : "train.jsonl";
	long long	size = DatasetFileSize(path);
	FtHttpCall	call;

	run->uploading_validation = validation;
	run->uploaded_file_id[0] = '\0';
	if (StartPrepareUpload(multi, run, name))
		return run->http_active;
	if (run->adapter->upload_begin && size > (long long) ft_max_single_upload_kb * 1024)
	{
		free(run->part_ids);
		run->part_ids = NULL;
		run->large_upload_offset = 0;
		run->large_upload_size = size;
		run->adapter->upload_begin(&run->cfg, name, size, &call);
		return StartCall(multi, run, STEP_UPLOAD_BEGIN, &call);
	}
	run->adapter->upload(&run->cfg, run->id, path, name, &call);
	return StartCall(multi, run, validation ? STEP_UPLOAD_VALIDATION : STEP_UPLOAD_TRAIN, &call);
}

/* Upload whichever file is still missing, else submit */
static bool
StartUploadOrSubmit(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	if (run->training_file_id[0] == '\0')
		return StartFileUpload(multi, run, false);
	if (run->validation_file_id[0] == '\0' && FileExists(run->validation_path))
		return StartFileUpload(multi, run, true);
	return StartSubmit(multi, run, slot);
}

/* Add a part id to the JSON array of part ids, kept open ("[\"a\",\"b\"") until complete */
static bool
AppendPartId(JobRun *run, const char *id)
{
	size_t		len = run->part_ids ? strlen(run->part_ids) : 0;
	char	   *grown = realloc(run->part_ids, len + strlen(id) + 5);

	if (grown == NULL)
		return false;
	sprintf(grown + len, "%s\"%s\"", len == 0 ? "[" : ",", id);
	run->part_ids = grown;
	return true;
}

/* A multi-part upload answered: keep the id, then send the next part or finish */
static bool
OnLargeUploadStep(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	char		id[FT_ID_LEN];
	char		file_id[FT_ID_LEN];

	if (!run->adapter->parse_upload(run->http.response.body, id, sizeof(id), file_id, sizeof(file_id)))
	{
		run->http.response.result = CURLE_WEIRD_SERVER_REPLY;
		snprintf(run->http.response.error, sizeof(run->http.response.error), "unreadable upload object");
		return GuardedTx(run, slot, "pg_finetune: recording a failure", HandleFailureTx);
	}
	if (run->step == STEP_UPLOAD_BEGIN)
		SetStr(run->large_upload_id, sizeof(run->large_upload_id), id);
	else if (run->step == STEP_UPLOAD_PART)
	{
		if (!AppendPartId(run, id))
			return false;
		run->large_upload_offset += Min((long long) ft_upload_part_kb * 1024, run->large_upload_size - run->large_upload_offset);
	}
	else
	{
		SetStr(run->uploaded_file_id, sizeof(run->uploaded_file_id), file_id);
		return GuardedTx(run, slot, "pg_finetune: recording an upload", RecordFileTx) &&
			StartUploadOrSubmit(multi, run, slot);
	}
	return StartNextPart(multi, run);
}

/* A job with nothing at the provider is cancelled on the spot */
static bool
CancelLocallyTx(JobRun *run)
{
	const char *args[1] = {run->id};

	FtExec("UPDATE ft_jobs SET status = 'cancelled', finished_at = now() WHERE id = $1::uuid AND status = 'cancelling'",
		   1, args);
	unlink(run->train_path);
	unlink(run->validation_path);
	return false;
}

/* Cancelling: tell the provider once, then poll until it says cancelled */
static bool
StartCancel(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpCall	call;

	if (run->provider_job_id[0] == '\0' && run->create_attempted)
	{
		run->adapter->find_by_our_id(&run->cfg, run->id, &call);
		return StartCall(multi, run, STEP_FIND, &call);
	}
	if (run->provider_job_id[0] == '\0')
		return GuardedTx(run, slot, "pg_finetune: cancelling a job", CancelLocallyTx);
	if (run->cancel_sent)
		return StartPoll(multi, run);
	run->adapter->cancel(&run->cfg, run->provider_job_id, &call);
	return StartCall(multi, run, STEP_CANCEL, &call);
}

/*
 * Start work on a claimed job; false when the job needs nothing more from this process now
 */
bool
FtBeginJob(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	if (!GuardedTx(run, slot, "pg_finetune: resolving provider", ResolveProviderTx))
		return false;
	if (strcmp(run->status, "cancelling") == 0)
		return StartCancel(multi, run, slot);
	if (strcmp(run->status, "pending") == 0 || strcmp(run->status, "preparing") == 0 ||
		(strcmp(run->status, "uploading") == 0 && !FileExists(run->train_path)))
	{
		if (!GuardedTx(run, slot, "pg_finetune: building a dataset", PrepareDatasetTx))
			return false;
	}
	if (strcmp(run->status, "uploading") == 0)
		return StartUploadOrSubmit(multi, run, slot);
	if (strcmp(run->status, "submitting") == 0)
		return run->provider_job_id[0] ? StartPoll(multi, run) : StartSubmit(multi, run, slot);
	return StartPoll(multi, run);
}

/* Send one provider call for a job */
static bool
StartCall(void *multi, JobRun *run, FtStep step, FtHttpCall *call)
{
	FtHttpLimits limits;
	char		auth[640];
	char		err[256];

	if (run->http_active)
		ft_http_cleanup(multi, &run->http);
	limits.connect_timeout_ms = ft_connect_timeout_ms;
	limits.timeout_ms = ft_request_timeout_ms;
	limits.upload_timeout_ms = ft_upload_timeout_ms;
	limits.max_response_bytes = (size_t) ft_max_response_kb * 1024;
	limits.ca_bundle = ft_ca_bundle;
	run->adapter->auth_header(&run->cfg, auth, sizeof(auth));
	run->step = step;
	run->http_active = ft_http_start(multi, &run->http, call, auth, &limits, run, err, sizeof(err));
	explicit_bzero(auth, sizeof(auth));
	if (!run->http_active)
		elog(WARNING, "pg_finetune job %s: %s", run->id, err);
	return run->http_active;
}

/* Poll the job itself; events follow */
static bool
StartPoll(void *multi, JobRun *run)
{
	FtHttpCall	call;

	run->adapter->get(&run->cfg, run->provider_job_id, &call);
	return StartCall(multi, run, STEP_GET, &call);
}

/* ---- recording answers ---- */

static bool
RecordFileTx(JobRun *run)
{
	bool		train = !run->uploading_validation;
	char		id[FT_ID_LEN];
	const char *args[2] = {run->id, id};

	run->upload_prepared = false;
	if (run->uploaded_file_id[0])
		SetStr(id, sizeof(id), run->uploaded_file_id);
	else if (run->adapter->uploaded_ref
		? !run->adapter->uploaded_ref(&run->cfg, run->id, train ? "train.jsonl" : "validation.jsonl", id, sizeof(id))
		: !run->adapter->parse_file_id(run->http.response.body, id, sizeof(id)))
	{
		FailJob(run, "bad_provider_response", "The provider accepted the upload but returned no file id.");
		return false;
	}
	if (FtExec(train ? "UPDATE ft_jobs SET training_file_id = $2, step_attempts = 0, attempts = attempts + 1"
			   "  WHERE id = $1::uuid AND status = 'uploading'"
			   : "UPDATE ft_jobs SET validation_file_id = $2, step_attempts = 0, attempts = attempts + 1"
			   "  WHERE id = $1::uuid AND status = 'uploading'", 2, args) != 1)
		return false;
	SetStr(train ? run->training_file_id : run->validation_file_id, FT_ID_LEN, id);
	return true;
}

/* Seconds until the next poll in a provider state */
static int
PollDelay(const char *status)
{
	return strcmp(status, "validating_files") == 0 || strcmp(status, "submitting") == 0 ||
		strcmp(status, "cancelling") == 0 ? ft_poll_interval_validating_s : ft_poll_interval_s;
}

/* The provider job exists: keep its id the moment we know it */
static bool
RecordProviderJobTx(JobRun *run)
{
	const char *ours = run->job.status[0] && strcmp(run->status, "cancelling") != 0 ? run->job.status : run->status;
	const char *args[5] = {run->id, run->job.id, ours, run->job.raw_status, NULL};

	args[4] = psprintf("%d", PollDelay(ours));
	if (FtExec("UPDATE ft_jobs SET provider_job_id = $2, status = CASE WHEN $3 IN ('succeeded', 'failed', 'cancelled')"
			   "       THEN 'running' ELSE $3 END, provider_status = $4, started_at = coalesce(started_at, now()),"
			   "       step_attempts = 0, attempts = attempts + 1, phase_deadline = NULL,"
			   "       next_poll_at = now() + make_interval(secs => $5::integer)"
			   " WHERE id = $1::uuid AND status IN ('submitting', 'cancelling')", 5, args) != 1)
		return false;
	SetStr(run->provider_job_id, sizeof(run->provider_job_id), run->job.id);
	if (strcmp(run->status, "cancelling") != 0)
		SetStr(run->status, sizeof(run->status), ours);
	WorkerEvent(run, "info", "worker_submitted", psprintf("Provider job %s created.", run->job.id), NULL);
	return true;
}

/* Store new events oldest first, metrics events also as metric rows */
static void
StoreEvents(JobRun *run)
{
	for (int i = run->nevents - 1; i >= 0; i--)
	{
		FtProviderEvent *e = &run->events[i];
		const char *args[8] = {run->id, run->avatar_id, e->id, e->level[0] ? e->level : "info",
			e->type[0] ? e->type : "message", e->message, e->data_json, psprintf("%lld", e->created_at)};

		FtExec("INSERT INTO ft_job_events (job_id, avatar_id, owner_id, provider_event_id, level, type, message, data, created_at)"
			   " SELECT $1::uuid, $2::uuid, j.owner_id, $3, $4, $5, $6, $7::jsonb,"
			   "        CASE WHEN $8::bigint > 0 THEN to_timestamp($8::bigint) ELSE now() END"
			   "   FROM ft_jobs j WHERE j.id = $1::uuid"
			   " ON CONFLICT (job_id, provider_event_id) DO NOTHING", 8, args);
		if (strcmp(e->type, "metrics") == 0 && e->data_json)
			FtExec("INSERT INTO ft_job_metrics (job_id, avatar_id, owner_id, step, train_loss, train_accuracy, valid_loss,"
				   "                            valid_accuracy, full_valid_loss, full_valid_accuracy, source)"
				   " SELECT $1::uuid, $2::uuid, j.owner_id, (d->>'step')::numeric::integer, (d->>'train_loss')::float8,"
				   "        (d->>'train_mean_token_accuracy')::float8, (d->>'valid_loss')::float8,"
				   "        (d->>'valid_mean_token_accuracy')::float8, (d->>'full_valid_loss')::float8,"
				   "        (d->>'full_valid_mean_token_accuracy')::float8, 'event'"
				   "   FROM ft_jobs j, (SELECT $7::jsonb AS d) x"
				   "  WHERE j.id = $1::uuid AND jsonb_typeof(d->'step') = 'number'"
				   " ON CONFLICT (avatar_id, job_id, step) DO NOTHING", 7, args);
	}
	if (run->nevents > 0)
		FtExec("UPDATE ft_jobs SET newest_event_id = $3 WHERE id = $1::uuid", 3,
			   (const char *[]) {run->id, NULL, run->events[0].id});
	if (run->nevents > 0)
		SetStr(run->newest_event_id, sizeof(run->newest_event_id), run->events[0].id);
}

/* Record a poll of a job that is still live */
static bool
RecordPollTx(JobRun *run)
{
	const char *ours = run->job.status;
	const char *args[7] = {run->id, ours[0] ? ours : NULL, run->job.raw_status,
		run->job.estimated_finish > 0 ? psprintf("%lld", run->job.estimated_finish) : NULL,
		run->job.trained_tokens >= 0 ? psprintf("%lld", run->job.trained_tokens) : NULL,
		psprintf("%d", PollDelay(ours[0] ? ours : run->status)), NULL};

	StoreEvents(run);
	if (ours[0] == '\0' && strcmp(run->provider_status, run->job.raw_status) != 0)
		WorkerEvent(run, "warn", "worker_unknown_status",
					psprintf("The provider reports status \"%s\", which pg_finetune does not know; the job stays %s until it changes.",
							 run->job.raw_status, run->status), NULL);
	FtExec("UPDATE ft_jobs SET status = CASE WHEN status = 'cancelling' OR $2 IS NULL"
				  "         OR $2 IN ('succeeded', 'failed', 'cancelled') THEN status ELSE $2 END,"
				  "       provider_status = $3, estimated_finish = coalesce(to_timestamp($4::bigint), estimated_finish),"
				  "       trained_tokens = coalesce($5::bigint, trained_tokens), step_attempts = 0, attempts = attempts + 1,"
				  "       next_poll_at = now() + make_interval(secs => $6::integer)"
				  " WHERE id = $1::uuid AND status IN " LIVE_STATES, 6, args);
	/* The job waits for its next poll outside this process */
	return false;
}

/* Terminal at the provider: finish our row, and activate the model after a success */
static bool
FinishTx(JobRun *run)
{
	FtProviderJob *j = &run->job;
	bool		ok = strcmp(j->status, "succeeded") == 0;
	const char *args[8] = {run->id, j->status, j->raw_status, j->fine_tuned_model[0] ? j->fine_tuned_model : NULL,
		j->trained_tokens >= 0 ? psprintf("%lld", j->trained_tokens) : NULL,
		j->finished_at > 0 ? psprintf("%lld", j->finished_at) : NULL,
		j->error_code[0] ? j->error_code : (strcmp(j->status, "failed") == 0 ? "provider_failed" : NULL),
		j->error_message[0] ? Scrub(run, j->error_message) : NULL};

	StoreEvents(run);
	if (FtExec("UPDATE ft_jobs SET status = $2, provider_status = $3, fine_tuned_model = $4,"
			   "       trained_tokens = coalesce($5::bigint, trained_tokens),"
			   "       finished_at = coalesce(to_timestamp($6::bigint), now()), error_code = $7, error_message = $8,"
			   "       attempts = attempts + 1"
			   " WHERE id = $1::uuid AND status IN " LIVE_STATES
			   " RETURNING activate_on_success, avatar_id", 8, args) == 1 &&
		ok && args[3] != NULL && strcmp(FtValue(0, 1), "t") == 0)
		FtExec("SELECT ft_internal.set_active_model($1::uuid, $2, $3::uuid)", 3,
			   (const char *[]) {run->avatar_id, args[3], run->id});
	unlink(run->train_path);
	unlink(run->validation_path);
	return false;
}

static bool
RecordCheckpointsTx(JobRun *run)
{
	FtProviderCheckpoint *c;
	int			n = run->adapter->parse_checkpoints(run->http.response.body, &c);

	for (int i = 0; i < n; i++)
		FtExec("INSERT INTO ft_job_checkpoints (job_id, avatar_id, owner_id, provider_checkpoint_id, step, model, metrics, created_at)"
			   " SELECT $1::uuid, $2::uuid, j.owner_id, $3, $4::bigint, $5, $6::jsonb, to_timestamp($7::bigint)"
			   "   FROM ft_jobs j WHERE j.id = $1::uuid ON CONFLICT DO NOTHING", 7,
			   (const char *[]) {run->id, run->avatar_id, c[i].id, psprintf("%lld", c[i].step), c[i].model,
				   c[i].metrics_json, psprintf("%lld", c[i].created_at > 0 ? c[i].created_at : 0)});
	ft_free_checkpoints(c, n);
	return true;
}

/* One row of the result CSV: it replaces what live events said about that step */
static void
StoreMetricsRow(void *arg, const FtMetricsRow *r)
{
	JobRun	   *run = arg;
	double		v[6] = {r->train_loss, r->train_accuracy, r->valid_loss, r->valid_accuracy, r->full_valid_loss, r->full_valid_accuracy};
	const char *args[9] = {run->id, run->avatar_id, psprintf("%lld", r->step)};

	for (int i = 0; i < 6; i++)
		args[3 + i] = isnan(v[i]) ? NULL : psprintf("%.17g", v[i]);
	FtExec("INSERT INTO ft_job_metrics AS m (job_id, avatar_id, owner_id, step, train_loss, train_accuracy, valid_loss,"
		   "                                 valid_accuracy, full_valid_loss, full_valid_accuracy, source)"
		   " SELECT $1::uuid, $2::uuid, j.owner_id, $3::integer, $4::float8, $5::float8, $6::float8, $7::float8,"
		   "        $8::float8, $9::float8, 'result_file' FROM ft_jobs j WHERE j.id = $1::uuid"
		   " ON CONFLICT (avatar_id, job_id, step) DO UPDATE SET train_loss = EXCLUDED.train_loss,"
		   "   train_accuracy = EXCLUDED.train_accuracy, valid_loss = EXCLUDED.valid_loss,"
		   "   valid_accuracy = EXCLUDED.valid_accuracy, full_valid_loss = EXCLUDED.full_valid_loss,"
		   "   full_valid_accuracy = EXCLUDED.full_valid_accuracy, source = 'result_file'", 9, args);
}

static bool
RecordResultsTx(JobRun *run)
{
	if (ft_parse_results_csv(run->http.response.body, run->http.response.len, StoreMetricsRow, run) < 0)
		WorkerEvent(run, "warn", "worker_results_unreadable", "The result file has no step column; metrics come from events only.", NULL);
	return true;
}

/* After a transient failure: wait (as the provider asked, or with backoff) and try the step again */
static bool
ScheduleRetryTx(JobRun *run)
{
	FtHttpResponse *r = &run->http.response;
	long		delay = ft_backoff_ms(run->step_attempts + 1, FtRandom(), 300000);
	const char *args[3] = {run->id, NULL, r->request_id[0] ? r->request_id : NULL};
	char	   *what = r->result != CURLE_OK ? pstrdup(r->error) : psprintf("HTTP %ld", r->status);

	if (r->retry_after_ms > delay)
		delay = Min(r->retry_after_ms, 3600 * 1000L);
	/* 408, 429 and 503 say the create was not processed, so no lookup is needed before the next */
	if (run->step == STEP_CREATE && r->result == CURLE_OK && (r->status == 408 || r->status == 429 || r->status == 503))
		FtExec("UPDATE ft_jobs SET create_attempted = false, create_sent_at = NULL WHERE id = $1::uuid", 1, args);
	args[1] = psprintf("%ld", delay);
	FtExec("UPDATE ft_jobs SET step_attempts = step_attempts + 1, attempts = attempts + 1,"
		   "       next_poll_at = now() + make_interval(secs => $2::bigint / 1000.0),"
		   "       provider_request_id = coalesce($3, provider_request_id)"
		   " WHERE id = $1::uuid AND status IN " LIVE_STATES, 3, args);
	WorkerEvent(run, "warn", "worker_retry",
				psprintf("Provider call failed (%s); retrying in %.1f s.", Scrub(run, what), delay / 1000.0),
				psprintf("{\"step\": %d, \"status\": %ld, \"delay_ms\": %ld, \"attempt\": %d}",
						 (int) run->step, r->status, delay, run->step_attempts + 1));
	return false;
}

/* A failed call: retry what may pass next time, fail the job on anything else */
static bool
HandleFailureTx(JobRun *run)
{
	FtHttpResponse *r = &run->http.response;
	char		code[128],
				message[1024];
	FtOutcome	outcome;

	run->adapter->parse_error(r->body, code, sizeof(code), message, sizeof(message));
	outcome = ft_classify_response(r->result != CURLE_OK || r->too_large, r->status, code);
	if (outcome == FT_OUTCOME_RETRY && run->step_attempts + 1 < ft_max_attempts)
		return ScheduleRetryTx(run);
	if (outcome == FT_OUTCOME_RETRY)
		FailJob(run, "provider_unavailable",
				psprintf("The provider kept failing (%s) after %d attempts.",
						 r->result != CURLE_OK ? r->error : psprintf("HTTP %ld", r->status), run->step_attempts + 1));
	else
		FailJob(run, code[0] ? code : psprintf("http_%ld", r->status),
				message[0] ? message : psprintf("The provider answered HTTP %ld.", r->status));
	return false;
}

/* Collect an events page; true when an older page must still be fetched */
static bool
GatherEvents(JobRun *run)
{
	FtProviderEvent *page;
	bool		has_more;
	int			n = run->adapter->parse_events(run->http.response.body, &page, &has_more);
	int			keep = 0;

	if (n < 0)
		return false;
	while (keep < n && strcmp(page[keep].id, run->newest_event_id) != 0)
		keep++;
	run->events = realloc(run->events, sizeof(FtProviderEvent) * (run->nevents + keep + 1));
	memcpy(run->events + run->nevents, page, sizeof(FtProviderEvent) * keep);
	run->nevents += keep;
	for (int i = keep; i < n; i++)
	{
		free(page[i].message);
		free(page[i].data_json);
	}
	free(page);
	if (keep > 0)
		SetStr(run->events_after, sizeof(run->events_after), run->events[run->nevents - 1].id);
	/* Stop at the newest stored event, at the end, or after a bounded number of pages */
	return keep == n && has_more && ++run->event_pages < 20;
}

/* After the checkpoints: the result file when the provider has one, then the end */
static bool
AfterCheckpoints(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpCall	call;

	if (run->job.result_file[0] && run->adapter->file_content)
	{
		run->adapter->file_content(&run->cfg, run->job.result_file, &call);
		return StartCall(multi, run, STEP_RESULTS, &call);
	}
	return GuardedTx(run, slot, "pg_finetune: finishing a job", FinishTx);
}

/* What follows a job poll: events, then the end-of-job calls */
static bool
AfterEvents(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpCall	call;

	if (strcmp(run->job.status, "succeeded") == 0 && run->adapter->checkpoints)
	{
		run->adapter->checkpoints(&run->cfg, run->provider_job_id, &call);
		return StartCall(multi, run, STEP_CHECKPOINTS, &call);
	}
	if (strcmp(run->job.status, "succeeded") == 0)
	{
		/* Checkpoints inline in the job object, which is the body at hand when events are inline too */
		if (run->adapter->parse_checkpoints && run->adapter->events == NULL &&
			!GuardedTx(run, slot, "pg_finetune: recording checkpoints", RecordCheckpointsTx))
			return false;
		return AfterCheckpoints(multi, run, slot);
	}
	if (strcmp(run->job.status, "failed") == 0 || strcmp(run->job.status, "cancelled") == 0)
		return GuardedTx(run, slot, "pg_finetune: finishing a job", FinishTx);
	return GuardedTx(run, slot, "pg_finetune: recording a poll", RecordPollTx);
}

/* Events of a polled job: fetched, or read from the job object when the provider inlines them */
static bool
StartEvents(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpCall	call;

	run->event_pages = 0;
	run->events_after[0] = '\0';
	if (run->adapter->events == NULL)
	{
		(void) GatherEvents(run);
		return AfterEvents(multi, run, slot);
	}
	run->adapter->events(&run->cfg, run->provider_job_id, NULL, &call);
	return StartCall(multi, run, STEP_EVENTS, &call);
}

/* A job our cancel deleted (providers without a cancel verb) is gone: it is cancelled */
static bool
GoneAfterCancelTx(JobRun *run)
{
	memset(&run->job, 0, sizeof(run->job));
	snprintf(run->job.status, sizeof(run->job.status), "cancelled");
	snprintf(run->job.raw_status, sizeof(run->job.raw_status), "deleted");
	run->job.trained_tokens = -1;
	return FinishTx(run);
}

/* The provider accepted our cancel */
static bool
RecordCancelSentTx(JobRun *run)
{
	FtExec("UPDATE ft_jobs SET cancel_sent = true, attempts = attempts + 1, next_poll_at = now()"
		   " WHERE id = $1::uuid AND status = 'cancelling'", 1, (const char *[]) {run->id});
	run->cancel_sent = true;
	return true;
}

/* A successful answer: record it and start what comes next */
static bool
OnSuccess(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpResponse *r = &run->http.response;
	FtHttpCall	call;

	switch (run->step)
	{
		case STEP_UPLOAD_TRAIN:
		case STEP_UPLOAD_VALIDATION:
			return GuardedTx(run, slot, "pg_finetune: recording an upload", RecordFileTx) &&
				StartUploadOrSubmit(multi, run, slot);
		case STEP_UPLOAD_BEGIN:
		case STEP_UPLOAD_PART:
		case STEP_UPLOAD_COMPLETE:
			return OnLargeUploadStep(multi, run, slot);
		case STEP_FIND:
			if (!run->adapter->parse_find(r->body, run->adapter->find_by_training_file ? run->training_file_id : run->id,
										  &run->job))
			{
				/* No job carries our id: the earlier create never landed */
				run->create_attempted = false;
				return strcmp(run->status, "cancelling") == 0
					? GuardedTx(run, slot, "pg_finetune: cancelling a job", CancelLocallyTx)
					: StartSubmit(multi, run, slot);
			}
			/* The job carrying our id is adopted exactly like a fresh create */
			/* FALLTHROUGH */
		case STEP_CREATE:
			if (run->step == STEP_CREATE && !run->adapter->parse_job(r->body, &run->job))
			{
				run->http.response.result = CURLE_WEIRD_SERVER_REPLY;
				return GuardedTx(run, slot, "pg_finetune: recording a failure", HandleFailureTx);
			}
			if (!GuardedTx(run, slot, "pg_finetune: recording a submitted job", RecordProviderJobTx))
				return false;
			return strcmp(run->status, "cancelling") == 0 ? StartCancel(multi, run, slot) : false;
		case STEP_GET:
			if (!run->adapter->parse_job(r->body, &run->job))
			{
				run->http.response.result = CURLE_WEIRD_SERVER_REPLY;
				snprintf(run->http.response.error, sizeof(run->http.response.error), "unreadable job object");
				return GuardedTx(run, slot, "pg_finetune: recording a failure", HandleFailureTx);
			}
			if (run->adapter->start && strcmp(run->status, "cancelling") != 0 &&
				run->adapter->start(&run->cfg, &run->job, &call))
				return StartCall(multi, run, STEP_START, &call);
			return StartEvents(multi, run, slot);
		case STEP_START:
			/* Started: events follow at the next poll */
			return AfterEvents(multi, run, slot);
		case STEP_PREPARE_UPLOAD:
			run->upload_prepared = true;
			return StartUploadOrSubmit(multi, run, slot);
		case STEP_EVENTS:
			if (GatherEvents(run))
			{
				run->adapter->events(&run->cfg, run->provider_job_id, run->events_after, &call);
				return StartCall(multi, run, STEP_EVENTS, &call);
			}
			return AfterEvents(multi, run, slot);
		case STEP_CHECKPOINTS:
			if (!GuardedTx(run, slot, "pg_finetune: recording checkpoints", RecordCheckpointsTx))
				return false;
			return AfterCheckpoints(multi, run, slot);
		case STEP_RESULTS:
			return GuardedTx(run, slot, "pg_finetune: recording results", RecordResultsTx) &&
				GuardedTx(run, slot, "pg_finetune: finishing a job", FinishTx);
		case STEP_CANCEL:
			return GuardedTx(run, slot, "pg_finetune: recording a cancel", RecordCancelSentTx) &&
				StartPoll(multi, run);
	}
	return false;
}

/*
 * A transfer of this job ended; false when the job needs nothing more from this process now
 */
bool
FtContinueJob(void *multi, JobRun *run, FtWorkerSlot *slot)
{
	FtHttpResponse *r = &run->http.response;

	if (r->result == CURLE_OK && !r->too_large && r->status >= 200 && r->status < 300)
		return OnSuccess(multi, run, slot);
	/* A refused cancel usually means the job already ended: look at it instead of failing */
	if (run->step == STEP_CANCEL && r->result == CURLE_OK && r->status >= 400 && r->status < 500)
		return GuardedTx(run, slot, "pg_finetune: recording a cancel", RecordCancelSentTx) && StartPoll(multi, run);
	/* The dataset exists already (created before a crash): upload into it */
	if (run->step == STEP_PREPARE_UPLOAD && r->result == CURLE_OK && r->status == 409)
	{
		run->upload_prepared = true;
		return StartUploadOrSubmit(multi, run, slot);
	}
	/* A refused start usually means the job has started meanwhile: the next poll tells */
	if (run->step == STEP_START && r->result == CURLE_OK && r->status >= 400 && r->status < 500)
		return AfterEvents(multi, run, slot);
	if (run->step == STEP_GET && r->result == CURLE_OK && r->status == 404 && run->cancel_sent &&
		strcmp(run->status, "cancelling") == 0)
		return GuardedTx(run, slot, "pg_finetune: finishing a job", GoneAfterCancelTx);
	/* Result files are a bonus: the job succeeded without them */
	if (run->step == STEP_RESULTS || run->step == STEP_CHECKPOINTS)
		return GuardedTx(run, slot, "pg_finetune: finishing a job", FinishTx);
	return GuardedTx(run, slot, "pg_finetune: recording a failure", HandleFailureTx);
}
