/*
 * Shared state of pg_finetune's workers, the launcher that starts one worker per database, and
 * the wake-up that backends send at commit.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "nodes/parsenodes.h"
#include <signal.h>
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "worker_shmem.h"
#include "pg_compat.h"

PG_FUNCTION_INFO_V1(ft_wake_worker);
PG_FUNCTION_INFO_V1(ft_worker_info);

PGDLLEXPORT void FtLauncherMain(Datum main_arg);

FtShared   *ft_shared = NULL;

static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif
static bool wake_registered = false;
static ProcessUtility_hook_type prev_process_utility = NULL;

/* Launcher-local: handles of the workers it started, by slot */
static BackgroundWorkerHandle *worker_handles[FT_MAX_DATABASES];
static TimestampTz restart_after[FT_MAX_DATABASES];

/* Attach to (or create) the shared state */
static void
FtShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ft_shared = ShmemInitStruct("pg_finetune", sizeof(FtShared), &found);
	if (!found)
	{
		memset(ft_shared, 0, sizeof(FtShared));
		SpinLockInit(&ft_shared->mutex);
		ft_shared->launcher_procno = -1;
	}
	LWLockRelease(AddinShmemInitLock);
}

#if PG_VERSION_NUM >= 150000
/* Ask for our shared memory (PostgreSQL 15 moved this into a hook) */
static void
FtShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(FtShared)));
}
#endif

/* Install the shared-memory hooks; only meaningful from shared_preload_libraries */
void
FtShmemRegister(void)
{
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = FtShmemRequest;
#else
	RequestAddinShmemSpace(MAXALIGN(sizeof(FtShared)));
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = FtShmemStartup;
}

/* Register the launcher, which starts the per-database workers */
void
FtRegisterLauncher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_finetune");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "FtLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_finetune launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_finetune launcher");
	RegisterBackgroundWorker(&worker);
}

/* The slot of a database; with create, claim a free one. Caller holds the mutex. */
FtWorkerSlot *
FtSlotFor(Oid dboid, bool create)
{
	FtWorkerSlot *free_slot = NULL;

	for (int i = 0; i < FT_MAX_DATABASES; i++)
	{
		FtWorkerSlot *slot = &ft_shared->slots[i];

		if (slot->state != FT_SLOT_FREE && slot->dboid == dboid)
			return slot;
		if (slot->state == FT_SLOT_FREE && free_slot == NULL)
			free_slot = slot;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(FtWorkerSlot));
	free_slot->dboid = dboid;
	free_slot->state = FT_SLOT_STARTING;
	free_slot->procno = -1;
	return free_slot;
}

/* Remember the last error of a worker for ft_worker_status */
void
FtSetLastError(FtWorkerSlot *slot, const char *message)
{
	SpinLockAcquire(&ft_shared->mutex);
	strlcpy(slot->last_error, message, sizeof(slot->last_error));
	slot->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&ft_shared->mutex);
}

/* At commit: wake this database's worker, or ask the launcher to start one */
static void
WakeAtCommit(XactEvent event, void *arg)
{
	int			procno = -1;
	FtWorkerSlot *slot;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	UnregisterXactCallback(WakeAtCommit, NULL);
	wake_registered = false;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT)
		return;
	SpinLockAcquire(&ft_shared->mutex);
	slot = FtSlotFor(MyDatabaseId, true);
	if (slot != NULL && slot->state == FT_SLOT_SERVING)
		procno = slot->procno;
	else if (slot != NULL)
	{
		slot->start_requested = true;
		procno = ft_shared->launcher_procno;
	}
	SpinLockRelease(&ft_shared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Wake the worker when the current transaction commits
 */
Datum
ft_wake_worker(PG_FUNCTION_ARGS)
{
	bool		required = PG_GETARG_BOOL(0);

	if (ft_shared == NULL)
	{
		ereport(required ? ERROR : WARNING,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the pg_finetune background worker is not running"),
				 errdetail("pg_finetune was not loaded through shared_preload_libraries, so no worker submits or polls jobs."),
				 errhint("Add pg_finetune to shared_preload_libraries in postgresql.conf and restart the server.")));
		PG_RETURN_VOID();
	}
	if (!wake_registered)
	{
		RegisterXactCallback(WakeAtCommit, NULL);
		wake_registered = true;
	}
	PG_RETURN_VOID();
}

/* Names of the databases that accept connections, from the shared catalog */
static List *
ListDatabases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			result = lappend_oid(result, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return result;
}

/* Start the worker of one slot */
static void
StartWorker(int index)
{
	BackgroundWorker worker;
	FtWorkerSlot *slot = &ft_shared->slots[index];

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = ObjectIdGetDatum(slot->dboid);
	worker.bgw_notify_pid = MyProcPid;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_finetune");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "FtWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_finetune worker for database %u", slot->dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pg_finetune worker");
	if (!RegisterDynamicBackgroundWorker(&worker, &worker_handles[index]))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("pg_finetune could not start a worker for database %u", slot->dboid),
				 errhint("Raise max_worker_processes; pg_finetune needs one worker per database that has the extension, plus its launcher.")));
		worker_handles[index] = NULL;
		restart_after[index] = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
		return;
	}
	SpinLockAcquire(&ft_shared->mutex);
	slot->state = FT_SLOT_STARTING;
	slot->start_requested = false;
	SpinLockRelease(&ft_shared->mutex);
}

/* Decide for one slot whether its worker must be (re)started */
static void
TendSlot(int index, TimestampTz now)
{
	FtWorkerSlot *slot = &ft_shared->slots[index];
	bool		running = false;
	bool		wanted;
	pid_t		pid;

	if (worker_handles[index] != NULL)
	{
		running = GetBackgroundWorkerPid(worker_handles[index], &pid) != BGWH_STOPPED;
		if (!running)
		{
			pfree(worker_handles[index]);
			worker_handles[index] = NULL;
			/* A worker that stopped without saying "not installed" failed: retry after a pause */
			if (slot->state != FT_SLOT_NOT_INSTALLED)
				restart_after[index] = TimestampTzPlusMilliseconds(now, 5000);
		}
	}
	if (running || now < restart_after[index])
		return;
	SpinLockAcquire(&ft_shared->mutex);
	if (slot->start_requested)
		slot->dropping = false;
	wanted = slot->state != FT_SLOT_FREE && !slot->dropping &&
		(slot->state != FT_SLOT_NOT_INSTALLED || slot->start_requested);
	SpinLockRelease(&ft_shared->mutex);
	if (wanted)
		StartWorker(index);
}

/*
 * Give every database we have not seen yet a slot, so its worker looks for the extension once,
 * and free the slots of databases that are gone
 */
static void
ProbeNewDatabases(void)
{
	ListCell   *lc;
	List	   *databases = ListDatabases();

	SpinLockAcquire(&ft_shared->mutex);
	foreach(lc, databases)
		(void) FtSlotFor(lfirst_oid(lc), true);
	for (int i = 0; i < FT_MAX_DATABASES; i++)
		if (ft_shared->slots[i].state != FT_SLOT_FREE && worker_handles[i] == NULL &&
			!list_member_oid(databases, ft_shared->slots[i].dboid))
			ft_shared->slots[i].state = FT_SLOT_FREE;
	SpinLockRelease(&ft_shared->mutex);
	list_free(databases);
}

/* DROP DATABASE waits for other sessions to leave: ask our worker there to go and stay away */
static void
StopWorkerOfDroppedDatabase(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	FtWorkerSlot *slot;
	pid_t		pid = 0;

	if (!OidIsValid(dboid) || ft_shared == NULL)
		return;
	SpinLockAcquire(&ft_shared->mutex);
	slot = FtSlotFor(dboid, false);
	if (slot != NULL)
	{
		slot->dropping = true;
		slot->start_requested = false;
		pid = slot->pid;
	}
	SpinLockRelease(&ft_shared->mutex);
	if (pid > 0)
		kill(pid, SIGTERM);
}

/* Utility hook: only DROP DATABASE concerns us */
#if PG_VERSION_NUM >= 140000
#define FT_UTILITY_ARGS pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
static void
FtProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
#else
#define FT_UTILITY_ARGS pstmt, queryString, context, params, queryEnv, dest, qc
static void
FtProcessUtility(PlannedStmt *pstmt, const char *queryString,
				 ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
				 DestReceiver *dest, QueryCompletion *qc)
#endif
{
	if (IsA(pstmt->utilityStmt, DropdbStmt))
		StopWorkerOfDroppedDatabase(((DropdbStmt *) pstmt->utilityStmt)->dbname);
	if (prev_process_utility)
		prev_process_utility(FT_UTILITY_ARGS);
	else
		standard_ProcessUtility(FT_UTILITY_ARGS);
}

/* Install the utility hook (from shared_preload_libraries, so every backend has it) */
void
FtInstallUtilityHook(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = FtProcessUtility;
}

/*
 * Launcher main: keep one worker per database that has pg_finetune
 */
void
FtLauncherMain(Datum main_arg)
{
	TimestampTz next_probe = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("pg_finetune launcher");

	SpinLockAcquire(&ft_shared->mutex);
	ft_shared->launcher_procno = FtProcNumber(MyProc);
	/* After a crash restart, workers of the previous life are gone: start over */
	memset(ft_shared->slots, 0, sizeof(ft_shared->slots));
	SpinLockRelease(&ft_shared->mutex);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (now >= next_probe)
		{
			ProbeNewDatabases();
			next_probe = TimestampTzPlusMilliseconds(now, 60000);
		}
		for (int i = 0; i < FT_MAX_DATABASES; i++)
			TendSlot(i, now);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * State of every pg_finetune worker
 */
Datum
ft_worker_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	FtWorkerSlot copy[FT_MAX_DATABASES];
	static const char *const names[] = {"free", "starting", "serving", "not installed"};

	if (ft_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the pg_finetune background worker is not running"),
				 errhint("Add pg_finetune to shared_preload_libraries in postgresql.conf and restart the server.")));
	InitMaterializedSRF(fcinfo, 0);
	SpinLockAcquire(&ft_shared->mutex);
	memcpy(copy, ft_shared->slots, sizeof(copy));
	SpinLockRelease(&ft_shared->mutex);
	for (int i = 0; i < FT_MAX_DATABASES; i++)
	{
		FtWorkerSlot *s = &copy[i];
		Datum		values[9];
		bool		nulls[9] = {false};
		char	   *dbname;

		if (s->state == FT_SLOT_FREE || s->state == FT_SLOT_NOT_INSTALLED)
			continue;
		dbname = get_database_name(s->dboid);
		if (dbname == NULL)
			continue;
		values[0] = CStringGetDatum(dbname);
		values[0] = DirectFunctionCall1(namein, values[0]);
		values[1] = Int32GetDatum(s->pid);
		nulls[1] = s->pid == 0;
		values[2] = CStringGetTextDatum(names[s->state]);
		values[3] = TimestampTzGetDatum(s->started_at);
		nulls[3] = s->started_at == 0;
		values[4] = TimestampTzGetDatum(s->last_poll_at);
		nulls[4] = s->last_poll_at == 0;
		values[5] = Int32GetDatum(s->jobs_in_flight);
		values[6] = Int64GetDatum(s->requests_made);
		values[7] = CStringGetTextDatum(s->last_error);
		nulls[7] = s->last_error[0] == '\0';
		values[8] = TimestampTzGetDatum(s->last_error_at);
		nulls[8] = s->last_error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
