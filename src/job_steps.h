#ifndef FT_JOB_STEPS_H
#define FT_JOB_STEPS_H

#include "postgres.h"

#include "http.h"
#include "provider.h"
#include "worker_shmem.h"

#define FT_MAX_RUNS 2048

/* The provider call a job is waiting for */
typedef enum FtStep
{
	STEP_UPLOAD_TRAIN,
	STEP_UPLOAD_VALIDATION,
	STEP_FIND,
	STEP_CREATE,
	STEP_GET,
	STEP_EVENTS,
	STEP_CHECKPOINTS,
	STEP_RESULTS,
	STEP_CANCEL,
	STEP_PREPARE_UPLOAD,		/* a call before an upload (Fireworks creates the dataset) */
	STEP_START,					/* starting a job the provider holds ready (Mistral) */
	STEP_UPLOAD_BEGIN,			/* multi-part upload of a large file: announce it */
	STEP_UPLOAD_PART,			/* ... send one part */
	STEP_UPLOAD_COMPLETE		/* ... assemble the parts into a file */
} FtStep;

/* What the worker holds of one job while it works on it (malloc'd: it outlives transactions) */
typedef struct JobRun
{
	char		id[37];
	char		avatar_id[37];
	char		status[32];
	char		provider[64];
	char		owner_id[256];
	char		provider_status[64];
	char		model[256];
	char		method[16];
	char		hyperparameters[1024];
	char		suffix[64];
	long long	seed;
	char		provider_job_id[FT_ID_LEN];
	char		training_file_id[FT_ID_LEN];
	char		validation_file_id[FT_ID_LEN];
	char		newest_event_id[FT_ID_LEN];
	char		events_after[FT_ID_LEN];
	bool		create_attempted;
	bool		cancel_sent;
	bool		has_validation;
	bool		upload_prepared;	/* prepare_upload answered for the file being uploaded */
	bool		uploading_validation;	/* the file being uploaded is the validation file */
	char		large_upload_id[FT_ID_LEN];	/* multi-part upload in progress */
	long long	large_upload_offset;
	long long	large_upload_size;
	char	   *part_ids;		/* JSON array of the parts sent so far, malloc'd */
	char		uploaded_file_id[FT_ID_LEN];	/* file id a completed multi-part upload became */
	int			step_attempts;
	int			event_pages;
	char		train_path[MAXPGPATH];
	char		validation_path[MAXPGPATH];
	char	   *dataset_options;	/* JSON text, malloc'd */
	char		api_key[512];
	FtProviderConfig cfg;
	const FtProviderAdapter *adapter;
	FtStep		step;
	FtProviderJob job;
	FtProviderEvent *events;	/* new events gathered over pages, newest first */
	int			nevents;
	FtHttpTransfer http;
	bool		http_active;
} JobRun;

/* Columns the claim returns, in the order FtRunFromRow reads them */
#define FT_JOB_COLUMNS \
	"j.id, j.avatar_id, j.status, j.provider, coalesce(j.provider_status, ''), j.model, j.method, " \
	"j.hyperparameters::text, coalesce(j.options->>'suffix', ''), coalesce(j.options->>'seed', '-1'), " \
	"coalesce(j.provider_job_id, ''), coalesce(j.training_file_id, ''), coalesce(j.validation_file_id, ''), " \
	"coalesce(j.newest_event_id, ''), j.create_attempted, j.cancel_sent, j.step_attempts, " \
	"coalesce(j.options->'dataset', '{}')::text, j.owner_id"

extern JobRun *FtRunFromRow(int row);
extern long FtMillisUntilNextDue(const char *in_flight);
extern void FtFailOverdueJobs(void);
extern bool FtBeginJob(void *multi, JobRun *run, FtWorkerSlot *slot);
extern bool FtContinueJob(void *multi, JobRun *run, FtWorkerSlot *slot);
extern void FtFreeRun(void *multi, JobRun *run);
extern void FtWorkerShutdown(int code, Datum arg);

#endif
