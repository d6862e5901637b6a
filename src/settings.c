/*
 * GUCs of pg_finetune. All live under the ft. prefix, which _PG_init reserves.
 */
#include "postgres.h"

#include "settings.h"
#include "utils/guc.h"

char	   *ft_allowed_provider_hosts = NULL;
char	   *ft_ca_bundle = NULL;
char	   *ft_jwt_session_roles = NULL;
int			ft_connect_timeout_ms = 10000;
int			ft_request_timeout_ms = 120000;
int			ft_upload_timeout_ms = 1800000;
int			ft_max_single_upload_kb = 512 * 1024;
int			ft_upload_part_kb = 64 * 1024;
int			ft_max_response_kb = 16384;
int			ft_poll_interval_s = 30;
int			ft_poll_interval_validating_s = 5;
int			ft_max_attempts = 8;
int			ft_job_deadline_min = 72 * 60;
int			ft_phase_deadline_min = 60;
int			ft_event_retention_days = 90;
bool		ft_worker_enabled = true;

/* Define every setting; superuser-only ones guard where data may be sent */
void
FtDefineSettings(void)
{
	DefineCustomStringVariable("ft.allowed_provider_hosts",
							   "Host names (or *.suffix patterns, or host:port) that provider base URLs may use.",
							   "Loopback addresses are allowed only when listed explicitly.",
							   &ft_allowed_provider_hosts,
							   "api.openai.com,*.openai.azure.com,api.together.xyz,api.fireworks.ai,api.mistral.ai,api.replicate.com",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("ft.jwt_session_roles",
							   "Login roles whose sessions may name the tenant through request.jwt.claims.",
							   "PostgREST and Supabase log in as authenticator; other sessions could set the claims themselves.",
							   &ft_jwt_session_roles, "authenticator", PGC_SIGHUP, GUC_LIST_INPUT, NULL, NULL, NULL);
	DefineCustomStringVariable("ft.ca_bundle",
							   "Path of a CA bundle for TLS verification; empty uses the system store.",
							   NULL, &ft_ca_bundle, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.connect_timeout",
							"Time allowed to connect to a provider.", NULL,
							&ft_connect_timeout_ms, 10000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.request_timeout",
							"Time allowed for one provider request other than an upload.", NULL,
							&ft_request_timeout_ms, 120000, 100, 3600000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.upload_timeout",
							"Time allowed for one file upload request.", NULL,
							&ft_upload_timeout_ms, 1800000, 1000, 86400000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.max_single_upload",
							"Largest dataset file sent in one request; larger ones use the provider's multi-part upload.",
							"OpenAI accepts 512 MB in one request and up to 8 GB in parts.",
							&ft_max_single_upload_kb, 512 * 1024, 1, 8 * 1024 * 1024, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.upload_part_size",
							"Size of each part of a multi-part upload.", "OpenAI allows at most 64 MB per part.",
							&ft_upload_part_kb, 64 * 1024, 1, 64 * 1024, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.max_response_size",
							"Largest provider response body accepted.", NULL,
							&ft_max_response_kb, 16384, 64, 1048576, PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.poll_interval",
							"Time between polls of a queued or running job.", NULL,
							&ft_poll_interval_s, 30, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.poll_interval_validating",
							"Time between polls while the provider validates files.", NULL,
							&ft_poll_interval_validating_s, 5, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.max_attempts",
							"Retries of one job step after transient failures before the job fails.", NULL,
							&ft_max_attempts, 8, 1, 100, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.job_deadline",
							"Longest a job may take from creation to a terminal state.", NULL,
							&ft_job_deadline_min, 72 * 60, 1, 60 * 24 * 365, PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.phase_deadline",
							"Longest a job may stay in preparing, uploading or cancelling.", NULL,
							&ft_phase_deadline_min, 60, 1, 24 * 60 * 7, PGC_SIGHUP, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("ft.event_retention",
							"Days job events are kept after their job finished.", NULL,
							&ft_event_retention_days, 90, 1, 36500, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("ft.worker_enabled",
							 "Whether the background worker submits and polls jobs.", NULL,
							 &ft_worker_enabled, true, PGC_SIGHUP, 0, NULL, NULL, NULL);
}
