/*
 * The per-database worker: claims due jobs in short transactions, drives their provider calls
 * concurrently through one libcurl multi handle with no transaction open, and records each
 * answer in another short transaction. What happens after each answer is in job_steps.c.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "job_steps.h"
#include "pg_compat.h"
#include "settings.h"
#include "worker_db.h"
#include "worker_shmem.h"

PGDLLEXPORT void FtWorkerMain(Datum main_arg);

#define MAX_CLAIM 64

static FtWorkerSlot *my_slot = NULL;
static CURLM *multi = NULL;
static JobRun *runs[FT_MAX_RUNS];
static int	nruns = 0;

/* Publish worker facts for ft_worker_status */
static void
PublishState(FtSlotState state, bool polled)
{
	SpinLockAcquire(&ft_shared->mutex);
	my_slot->state = state;
	my_slot->jobs_in_flight = nruns;
	if (polled)
		my_slot->last_poll_at = GetCurrentTimestamp();
	SpinLockRelease(&ft_shared->mutex);
}

/* Leave quietly, telling the launcher not to restart us until the extension is created again */
void
FtExitNotInstalled(void)
{
	PublishState(FT_SLOT_NOT_INSTALLED, false);
	proc_exit(0);
}

/* Leave quietly when the extension is not (or no longer) in this database */
static void
ExitIfNotInstalled(void)
{
	bool		installed;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	installed = OidIsValid(get_extension_oid("pg_finetune", true));
	CommitTransactionCommand();
	/* the commit leaves us in TopMemoryContext, where the loop's allocations would pile up */
	MemoryContextSwitchTo(caller);
	if (!installed)
		FtExitNotInstalled();
}

/* Run the worker's queries in the extension's schema, whatever it is */
static void
UseExtensionSchema(void)
{
	char	   *path;

	FtTxBegin("pg_finetune: finding the extension schema");
	FtExec("SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension WHERE extname = 'pg_finetune'", 0, NULL);
	path = MemoryContextStrdup(TopMemoryContext, psprintf("%s, pg_catalog", FtValue(0, 1)));
	FtTxCommit();
	SetConfigOption("search_path", path, PGC_SUSET, PGC_S_OVERRIDE);
}

/* Is a job already being worked on by this process? */
static bool
InFlight(const char *id)
{
	for (int i = 0; i < nruns; i++)
		if (strcmp(runs[i]->id, id) == 0)
			return true;
	return false;
}

/* The ids in flight as a SQL array literal, so the claim skips them */
static char *
InFlightArray(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int i = 0; i < nruns; i++)
		appendStringInfo(&buf, "%s%s", i ? "," : "", runs[i]->id);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* Forget a job this process no longer works on */
static void
ReleaseRun(JobRun *run)
{
	for (int i = 0; i < nruns; i++)
		if (runs[i] == run)
		{
			runs[i] = runs[--nruns];
			break;
		}
	FtFreeRun(multi, run);
}

/*
 * Claim due jobs: rows locked with SKIP LOCKED, leased by pushing next_poll_at forward, all in
 * one short transaction; returns the runs to start.
 */
static int
ClaimDueJobs(JobRun **claimed, long *sleep_ms)
{
	const char *args[2];
	char		limit[16];
	int			n;

	snprintf(limit, sizeof(limit), "%d", Min(MAX_CLAIM, FT_MAX_RUNS - nruns));
	args[0] = InFlightArray();
	args[1] = limit;
	FtTxBegin("pg_finetune: claiming due jobs");
	FtFailOverdueJobs();
	n = FtExec("WITH due AS ("
			   "  SELECT j.id FROM ft_jobs j"
			   "   WHERE j.status NOT IN ('succeeded', 'failed', 'cancelled') AND j.next_poll_at <= now()"
			   "     AND j.id <> ALL ($1::uuid[])"
			   "   ORDER BY j.next_poll_at LIMIT $2::integer FOR UPDATE SKIP LOCKED)"
			   " UPDATE ft_jobs j SET next_poll_at = now() + interval '10 minutes'"
			   "  FROM due WHERE j.id = due.id"
			   " RETURNING " FT_JOB_COLUMNS, 2, args);
	for (int i = 0; i < n; i++)
		claimed[i] = FtRunFromRow(i);
	*sleep_ms = FtMillisUntilNextDue(args[0]);
	FtTxCommit();
	return n;
}

/* Start what each claimed job needs next; true when some job was rescheduled at once */
static bool
StartClaimed(JobRun **claimed, int n)
{
	bool		released = false;

	for (int i = 0; i < n; i++)
	{
		if (InFlight(claimed[i]->id))
		{
			FtFreeRun(multi, claimed[i]);
			continue;
		}
		runs[nruns++] = claimed[i];
		if (!FtBeginJob(multi, claimed[i], my_slot))
		{
			ReleaseRun(claimed[i]);
			released = true;
		}
	}
	return released;
}

/* Hand every finished transfer to its job; true when some job left this process */
static bool
CollectFinished(void)
{
	CURLMsg    *msg;
	int			left;
	bool		released = false;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL)
	{
		JobRun	   *run;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &run);
		ft_http_done(multi, &run->http, msg->data.result);
		SpinLockAcquire(&ft_shared->mutex);
		my_slot->requests_made++;
		SpinLockRelease(&ft_shared->mutex);
		if (!FtContinueJob(multi, run, my_slot))
		{
			ReleaseRun(run);
			released = true;
		}
	}
	return released;
}

/* Wait for network activity, a wake-up, or the next due job */
static bool
WaitForWork(long sleep_ms)
{
	int			numfds;
	int			rc;

	if (nruns > 0)
	{
		/* Transfers in flight: poll the sockets briefly, then look at the latch */
		curl_multi_poll(multi, NULL, 0, 50, &numfds);
		if (MyLatch->is_set)
		{
			ResetLatch(MyLatch);
			return true;
		}
		return false;
	}
	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   Max(sleep_ms, 1), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	return (rc & WL_LATCH_SET) != 0;
}

/*
 * Retention: events of jobs finished more than ft.event_retention days ago go, in bounded
 * batches so one round never holds locks for long
 */
static void
PruneOldEvents(void)
{
	const char *args[1] = {psprintf("%d", ft_event_retention_days)};

	FtTxBegin("pg_finetune: pruning old job events");
	FtExec("DELETE FROM ft_job_events e USING ("
		   "  SELECT e2.avatar_id, e2.job_id, e2.seq FROM ft_job_events e2 JOIN ft_jobs j ON j.id = e2.job_id"
		   "   WHERE j.finished_at < now() - make_interval(days => $1::integer) LIMIT 10000) old"
		   " WHERE (e.avatar_id, e.job_id, e.seq) = (old.avatar_id, old.job_id, old.seq)", 1, args);
	FtTxCommit();
}

/* Bookkeeping at start-up: anything leased belonged to a dead predecessor */
static void
RecoverAfterRestart(void)
{
	FtTxBegin("pg_finetune: recovering jobs after start");
	FtExec("UPDATE ft_jobs SET next_poll_at = now()"
		   " WHERE status NOT IN ('succeeded', 'failed', 'cancelled') AND next_poll_at > now()", 0, NULL);
	FtTxCommit();
}

/* Set up signals, the slot, the database connection and libcurl */
static void
WorkerStartup(Oid dboid)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("pg_finetune worker");

	SpinLockAcquire(&ft_shared->mutex);
	my_slot = FtSlotFor(dboid, true);
	SpinLockRelease(&ft_shared->mutex);
	if (my_slot == NULL)
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
						errmsg("pg_finetune serves at most %d databases", FT_MAX_DATABASES)));
	ExitIfNotInstalled();
	SpinLockAcquire(&ft_shared->mutex);
	my_slot->pid = MyProcPid;
	my_slot->procno = FtProcNumber(MyProc);
	my_slot->started_at = GetCurrentTimestamp();
	my_slot->state = FT_SLOT_SERVING;
	SpinLockRelease(&ft_shared->mutex);

	UseExtensionSchema();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || (multi = curl_multi_init()) == NULL)
		ereport(ERROR, (errmsg("pg_finetune worker could not initialise libcurl")));
	/*
	 * Keep a bounded pool of idle connections (by default it grows with the number of jobs),
	 * large enough that a thousand jobs polling one provider do not reconnect for every call
	 */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);
	on_proc_exit(FtWorkerShutdown, PointerGetDatum(NULL));
	RecoverAfterRestart();
}

/* At exit: end transfers and free libcurl state of this process only */
void
FtWorkerShutdown(int code, Datum arg)
{
	while (nruns > 0)
		ReleaseRun(runs[nruns - 1]);
	if (multi)
		curl_multi_cleanup(multi);
	multi = NULL;
	if (my_slot)
	{
		SpinLockAcquire(&ft_shared->mutex);
		if (my_slot->pid == MyProcPid)
		{
			my_slot->pid = 0;
			my_slot->procno = -1;
			if (my_slot->state == FT_SLOT_SERVING)
				my_slot->state = FT_SLOT_STARTING;
		}
		SpinLockRelease(&ft_shared->mutex);
	}
}

/*
 * Worker main loop
 */
void
FtWorkerMain(Datum main_arg)
{
	MemoryContext loop_context;
	long		sleep_ms = 0;
	bool		claim_now = true;
	TimestampTz next_claim = 0;
	TimestampTz next_prune = 0;

	WorkerStartup(DatumGetObjectId(main_arg));
	loop_context = AllocSetContextCreate(TopMemoryContext, "pg_finetune worker loop", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		JobRun	   *claimed[MAX_CLAIM];
		int			running;

		MemoryContextSwitchTo(loop_context);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if ((claim_now || GetCurrentTimestamp() >= next_claim) && ft_worker_enabled && nruns < FT_MAX_RUNS)
		{
			int			n;

			ExitIfNotInstalled();
			n = ClaimDueJobs(claimed, &sleep_ms);
			/* A job that left at once set its own next poll: take the table's word for it */
			next_claim = StartClaimed(claimed, n) ? 0 : TimestampTzPlusMilliseconds(GetCurrentTimestamp(), sleep_ms);
			PublishState(FT_SLOT_SERVING, true);
		}
		if (GetCurrentTimestamp() >= next_prune)
		{
			PruneOldEvents();
			next_prune = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 3600 * 1000);
		}
		curl_multi_perform(multi, &running);
		/* A job that finished a step may be due again soon: look at the table next time round */
		claim_now = CollectFinished();
		PublishState(FT_SLOT_SERVING, false);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_context);
		sleep_ms = (long) ((next_claim - GetCurrentTimestamp()) / 1000);
		if (nruns > 0)
			claim_now |= WaitForWork(0);
		else if (!claim_now)
			claim_now = WaitForWork(Max(sleep_ms, 0));
	}
}
