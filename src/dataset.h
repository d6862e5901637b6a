/*
 * Datasets: an avatar's examples (or preferences) streamed as JSONL lines, split into train and
 * validation deterministically, into a callback or into files.
 */
#ifndef FT_DATASET_H
#define FT_DATASET_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

typedef struct FtDatasetFiles
{
	char	   *train_path;
	char	   *validation_path;	/* NULL = no validation file */
} FtDatasetFiles;

typedef struct FtDatasetSummary
{
	int64		train_count,
				validation_count,
				train_bytes,
				validation_bytes,
				train_tokens,
				validation_tokens;
	char		train_sha256[65],
				validation_sha256[65];
} FtDatasetSummary;

/* Receives one line (no newline); the bytes are only valid during the call */
typedef void (*FtEmitLine) (void *arg, const char *line, size_t len);

/* Receives one line of either split and its example's token_count; return false to stop early */
typedef bool (*FtEmitSplitLine) (void *arg, bool validation, const char *line, size_t len, int64 tokens);

/*
 * Stream the wanted splits of the avatar's dataset into emit, in example id order; returns the
 * fully resolved options (defaults and avatar settings filled in). fast_start: the caller will
 * stop early, so rows are read through the primary key instead of being sorted after a scan.
 */
extern Jsonb *FtStreamDatasetSplits(pg_uuid_t avatar, const char *format, Jsonb *options, bool want_train,
									bool want_validation, bool fast_start, FtEmitSplitLine emit, void *arg);

/* Parse a split name ("train", "validation", "all"), else error 22023 */
extern void FtParseSplit(const char *split, bool *want_train, bool *want_validation);

/*
 * Stream the avatar's dataset into files through a cursor, with memory reset per row and lines
 * put in id order within work_mem (temporary files beyond); records an ft_datasets row (job_id
 * may be NULL) and returns its id. Files are written with stdio and fsync'd; a failed build
 * removes them. Works with or without SPI already connected, and selects rows by avatar_id
 * explicitly, so it is correct both under row-level security and as a superuser worker. files
 * (or either path) may be NULL: the lines are then only counted and hashed.
 */
extern pg_uuid_t FtBuildDatasetToFiles(pg_uuid_t avatar, const char *format, Jsonb *options,
									   const pg_uuid_t *job_id, const FtDatasetFiles *files,
									   FtDatasetSummary *summary);

/* Stream one split ("train", "validation" or "all") of the avatar's dataset into a callback */
extern void FtStreamDataset(pg_uuid_t avatar, const char *split, const char *format, Jsonb *options,
							FtEmitLine emit, void *arg);

#endif
