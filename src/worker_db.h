#ifndef FT_WORKER_DB_H
#define FT_WORKER_DB_H

#include "postgres.h"

/*
 * Short transactions of the worker (the pg_cron pattern): each opens, runs SPI statements with
 * text parameters, and commits; no transaction is ever open while the network is in use.
 */
extern void FtTxBegin(const char *activity);
extern void FtTxCommit(void);
extern void FtTxAbort(void);
extern int	FtExec(const char *sql, int nargs, const char *const *args);
extern char *FtValue(int row, int col);
extern void FtExitNotInstalled(void) pg_attribute_noreturn();

#endif
