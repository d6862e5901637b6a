/*
 * pg_finetune: module entry point.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "settings.h"
#include "tokenizer_sql.h"
#include "worker_shmem.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* Reserve the ft. prefix so that misspelt settings are reported, not silently kept */
static void
ReserveSettingsPrefix(void)
{
#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("ft");
#else
	EmitWarningsOnPlaceholders("ft");
#endif
}

/*
 * Module load: define settings everywhere; the worker is registered only when preloaded
 */
void
_PG_init(void)
{
	FtDefineSettings();
	FtTokenizerDefineGUCs();
	ReserveSettingsPrefix();
	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	FtShmemRegister();
	FtRegisterLauncher();
	FtInstallUtilityHook();
}
