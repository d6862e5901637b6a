#ifndef FT_PROVIDER_H
#define FT_PROVIDER_H

/*
 * One adapter per provider kind behind one interface: each builds the HTTP calls of a step and
 * reads the answers into provider-neutral structs. No PostgreSQL here; the worker does I/O.
 */
#include <stdbool.h>
#include <stddef.h>

/* Ids are short, but Replicate files are referenced by URL */
#define FT_ID_LEN 512

/* One HTTP request to make */
typedef struct FtHttpCall
{
	const char *method;			/* "GET", "POST" or "DELETE" */
	char		url[2048];
	char	   *body;			/* malloc'd JSON body, or NULL */
	const char *upload_path;	/* multipart upload of this file, or NULL */
	char		upload_name[128];
	/* Multipart shape; upload_field "" means OpenAI's: purpose=fine-tune, then the file as "file" */
	char		upload_field[32];
	int			nform;
	struct
	{
		char		name[32];
		char		value[256];
	}			form[4];			/* text fields sent before the file */
	bool		fresh_connection;	/* never reuse a connection (job creation) */
	long long	upload_offset;	/* with upload_length > 0: send only this byte range of the file */
	long long	upload_length;
} FtHttpCall;

/* Where and how to reach a provider */
typedef struct FtProviderConfig
{
	char		kind[32];
	char		base_url[1024];
	char		settings_json[2048];	/* ft_providers.settings, kind-specific */
	const char *api_key;
} FtProviderConfig;

/* What the worker knows of a job when it creates one */
typedef struct FtJobSpec
{
	const char *our_id;
	const char *model;
	const char *method;			/* supervised | dpo */
	const char *hyperparameters_json;	/* {"n_epochs":3,...} */
	const char *suffix;
	long long	seed;			/* -1 when unset */
	const char *training_file;
	const char *validation_file;	/* NULL when none */
} FtJobSpec;

/* A provider job, read leniently */
typedef struct FtProviderJob
{
	char		id[FT_ID_LEN];
	char		status[32];		/* ours: validating_files, queued, running, succeeded, failed, cancelled, or "" if unknown */
	char		raw_status[64];
	char		fine_tuned_model[256];
	long long	trained_tokens; /* -1 when unknown */
	long long	estimated_finish;	/* unix seconds, -1 when unknown */
	long long	finished_at;
	char		error_code[128];
	char		error_message[1024];
	char		result_file[FT_ID_LEN];
	char		metadata_job[64];	/* our job id found in metadata */
	char		training_file[FT_ID_LEN];	/* file (or dataset, or URL) the job trains on */
} FtProviderJob;

/* A provider event */
typedef struct FtProviderEvent
{
	char		id[FT_ID_LEN];
	char		level[16];
	char		type[64];
	char	   *message;		/* malloc'd */
	char	   *data_json;		/* malloc'd or NULL */
	long long	created_at;
} FtProviderEvent;

/* A provider checkpoint */
typedef struct FtProviderCheckpoint
{
	char		id[FT_ID_LEN];
	long long	step;
	char		model[256];
	char	   *metrics_json;	/* malloc'd or NULL */
	long long	created_at;
} FtProviderCheckpoint;

typedef struct FtProviderAdapter
{
	const char *kind;
	void		(*auth_header) (const FtProviderConfig *cfg, char *out, size_t outlen);
	void		(*upload) (const FtProviderConfig *cfg, const char *our_id, const char *path, const char *name, FtHttpCall *call);
	bool		(*parse_file_id) (const char *body, char *id, size_t idlen);
	void		(*create) (const FtProviderConfig *cfg, const FtJobSpec *spec, FtHttpCall *call);
	void		(*find_by_our_id) (const FtProviderConfig *cfg, const char *our_id, FtHttpCall *call);
	bool		(*parse_find) (const char *body, const char *our_id, FtProviderJob *job);
	void		(*get) (const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call);
	bool		(*parse_job) (const char *body, FtProviderJob *job);
	void		(*events) (const FtProviderConfig *cfg, const char *job_id, const char *after, FtHttpCall *call);
	int			(*parse_events) (const char *body, FtProviderEvent **events, bool *has_more);
	void		(*checkpoints) (const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call);
	int			(*parse_checkpoints) (const char *body, FtProviderCheckpoint **checkpoints);
	void		(*cancel) (const FtProviderConfig *cfg, const char *job_id, FtHttpCall *call);
	void		(*file_content) (const FtProviderConfig *cfg, const char *file_id, FtHttpCall *call);
	void		(*parse_error) (const char *body, char *code, size_t codelen, char *message, size_t msglen);

	/*
	 * Provider differences; each may be NULL/false, which means the OpenAI behaviour. events NULL:
	 * events come inline in the job object, so parse_events reads the body of get. checkpoints
	 * NULL: parse_checkpoints (if any) reads the job object too. file_content NULL: no result file.
	 */
	bool		supports_dpo;
	/* Find-by-our-id matches the training file reference (providers without job metadata) */
	bool		find_by_training_file;
	/* Dataset line format (jsonl_write names) for a method; NULL: "chat", or "dpo" for dpo */
	const char *(*dataset_format) (const FtProviderConfig *cfg, const char *method);
	/* A call to make before uploading a file (Fireworks creates the dataset); false when none */
	bool		(*prepare_upload) (const FtProviderConfig *cfg, const char *our_id, const char *name, FtHttpCall *call);
	/* The reference of an uploaded file when it is not read from the answer (Fireworks dataset names) */
	bool		(*uploaded_ref) (const FtProviderConfig *cfg, const char *our_id, const char *name, char *id, size_t idlen);
	/* A call to start a job the provider holds ready (Mistral without auto_start); false when none is due */
	bool		(*start) (const FtProviderConfig *cfg, const FtProviderJob *job, FtHttpCall *call);

	/*
	 * Files over the single-request limit go up in parts (OpenAI's Uploads API): begin, parts
	 * in order, complete. NULL when the provider has no such API. parse_upload reads the id of
	 * an upload or a part, and the file id once an upload is complete.
	 */
	void		(*upload_begin) (const FtProviderConfig *cfg, const char *name, long long bytes, FtHttpCall *call);
	void		(*upload_part) (const FtProviderConfig *cfg, const char *upload_id, const char *path,
								long long offset, long long length, FtHttpCall *call);
	void		(*upload_complete) (const FtProviderConfig *cfg, const char *upload_id, const char *part_ids_json,
									FtHttpCall *call);
	bool		(*parse_upload) (const char *body, char *id, size_t idlen, char *file_id, size_t filelen);
} FtProviderAdapter;

extern const FtProviderAdapter *ft_provider_adapter(const char *kind);
extern const FtProviderAdapter ft_openai_adapter,
			ft_azure_adapter,
			ft_together_adapter,
			ft_fireworks_adapter,
			ft_mistral_adapter,
			ft_replicate_adapter;
extern void ft_free_events(FtProviderEvent *events, int n);
extern void ft_free_checkpoints(FtProviderCheckpoint *checkpoints, int n);

/* Result CSV: calls row() once per data row with the values of the known columns (NaN = empty) */
typedef struct FtMetricsRow
{
	long long	step;
	double		train_loss,
				train_accuracy,
				valid_loss,
				valid_accuracy,
				full_valid_loss,
				full_valid_accuracy;
} FtMetricsRow;
extern int	ft_parse_results_csv(const char *text, size_t len, void (*row) (void *arg, const FtMetricsRow *r), void *arg);

/* Helpers shared by the adapters (defined in provider_openai.c); only where jansson is included */
#ifdef JANSSON_H
extern void ft_json_copy(json_t *obj, const char *key, char *out, size_t outlen);
extern long long ft_json_integer(json_t *obj, const char *key);
extern double ft_json_number(json_t *obj, const char *key);
extern long long ft_parse_iso_time(const char *text);
extern void ft_call_init(FtHttpCall *call, const char *method);
extern void ft_call_url(const FtProviderConfig *cfg, FtHttpCall *call, const char *fmt, const char *a, const char *b);
extern json_t *ft_settings(const FtProviderConfig *cfg);
extern const char *ft_setting(json_t *settings, const char *key, const char *dflt);
extern void ft_event_id(FtProviderEvent *e, const char *salt);
typedef void (*FtJobReader) (json_t *obj, FtProviderJob *job);
extern bool ft_parse_job_object(const char *body, const char *id_key, FtJobReader read, FtProviderJob *job);
extern bool ft_find_in_listing(const char *body, const char *list_key, FtJobReader read, bool by_metadata,
							   const char *want, FtProviderJob *job);
#endif

#endif
