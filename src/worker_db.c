/*
 * Database access of the worker: short transactions and SPI with text parameters.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "worker_db.h"

/*
 * Share-lock the extension for the transaction. DROP EXTENSION locks the extension before its
 * tables, so taking this lock first means the worker never holds a table lock that a DROP is
 * waiting for (a deadlock otherwise). Once a DROP has gone through, the worker leaves.
 */
static void
LockExtension(void)
{
	Oid			ext = get_extension_oid("pg_finetune", true);

	if (OidIsValid(ext))
	{
		LockDatabaseObject(ExtensionRelationId, ext, 0, AccessShareLock);
		/* the DROP may have committed while we waited */
		if (OidIsValid(get_extension_oid("pg_finetune", true)))
			return;
	}
	AbortCurrentTransaction();
	FtExitNotInstalled();
}

/* The context the caller worked in; a transaction's end would leave us in TopMemoryContext */
static MemoryContext caller_context = NULL;

/* Open a transaction with SPI connected and a snapshot pushed */
void
FtTxBegin(const char *activity)
{
	caller_context = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	LockExtension();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Commit, report statistics so autovacuum sees the worker's writes, and go idle */
void
FtTxCommit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	/* Back to the caller's (per-loop) context: anything allocated next must not pile up in Top */
	MemoryContextSwitchTo(caller_context);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Abort after an error and return to the caller's context, as FtTxCommit does */
void
FtTxAbort(void)
{
	AbortCurrentTransaction();
	MemoryContextSwitchTo(caller_context);
}

/* Run one statement; NULL arguments are SQL NULLs. Returns the number of rows processed. */
int
FtExec(const char *sql, int nargs, const char *const *args)
{
	Oid			types[16];
	Datum		values[16];
	char		nulls[16];
	int			rc;

	Assert(nargs <= 16);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	rc = nargs == 0 ? SPI_execute(sql, false, 0)
		: SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "pg_finetune worker statement failed (%s): %s", SPI_result_code_string(rc), sql);
	return (int) SPI_processed;
}

/* A value of the last result as a palloc'd string, or NULL */
char *
FtValue(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}
