#ifndef FT_PG_COMPAT_H
#define FT_PG_COMPAT_H

/*
 * Shims so the extension builds on PostgreSQL 13 to 17 while the code reads like PostgreSQL 15.
 */
#include "postgres.h"

#include "funcapi.h"
#include "storage/proc.h"

#if PG_VERSION_NUM < 150000
#include "miscadmin.h"
#include "utils/tuplestore.h"

/* PostgreSQL 15 added this helper for materialising set-returning functions */
static inline void
InitMaterializedSRF(FunctionCallInfo fcinfo, int flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext old;
	TupleDesc	desc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || !(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("set-valued function called in context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	rsinfo->setDesc = desc;
	MemoryContextSwitchTo(old);
}
#endif

/* A uniform double in [0, 1) for jitter */
#if PG_VERSION_NUM >= 150000
#include "common/pg_prng.h"
#define FtRandom() pg_prng_double(&pg_global_prng_state)
#else
#define FtRandom() ((double) random() / ((double) MAX_RANDOM_VALUE + 1))
#endif

/* PostgreSQL 17 replaced PGPROC.pgprocno with GetNumberFromPGProc() */
#if PG_VERSION_NUM >= 170000
#define FtProcNumber(proc) GetNumberFromPGProc(proc)
#else
#define FtProcNumber(proc) ((proc)->pgprocno)
#endif

#endif
