#ifndef FT_WORKER_SHMEM_H
#define FT_WORKER_SHMEM_H

#include "postgres.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define FT_MAX_DATABASES 64

typedef enum FtSlotState
{
	FT_SLOT_FREE = 0,
	FT_SLOT_STARTING,			/* registered by the launcher, not yet connected */
	FT_SLOT_SERVING,			/* connected to a database that has the extension */
	FT_SLOT_NOT_INSTALLED		/* the database has no pg_finetune; worker exited */
} FtSlotState;

/* What one database's worker shares; only plain values, never process-local pointers */
typedef struct FtWorkerSlot
{
	Oid			dboid;
	FtSlotState state;
	bool		start_requested;	/* a backend asked the launcher to (re)start it */
	bool		dropping;		/* DROP DATABASE asked the worker to leave */
	pid_t		pid;
	int			procno;			/* PGPROC number, to reach the worker's latch */
	TimestampTz started_at;
	TimestampTz last_poll_at;
	int			jobs_in_flight;
	int64		requests_made;
	TimestampTz last_error_at;
	char		last_error[256];
} FtWorkerSlot;

typedef struct FtShared
{
	slock_t		mutex;
	int			launcher_procno;	/* -1 until the launcher runs */
	FtWorkerSlot slots[FT_MAX_DATABASES];
} FtShared;

extern FtShared *ft_shared;

extern void FtShmemRegister(void);
extern void FtRegisterLauncher(void);
extern void FtInstallUtilityHook(void);
extern FtWorkerSlot *FtSlotFor(Oid dboid, bool create);
extern void FtSetLastError(FtWorkerSlot *slot, const char *message);

#endif
