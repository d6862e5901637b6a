#ifndef FT_SETTINGS_H
#define FT_SETTINGS_H

/* Operator settings (GUCs under the reserved ft. prefix) */
extern char *ft_allowed_provider_hosts;
extern char *ft_ca_bundle;
extern char *ft_jwt_session_roles;
extern int	ft_connect_timeout_ms;
extern int	ft_request_timeout_ms;
extern int	ft_upload_timeout_ms;
extern int	ft_max_single_upload_kb;
extern int	ft_upload_part_kb;
extern int	ft_max_response_kb;
extern int	ft_poll_interval_s;
extern int	ft_poll_interval_validating_s;
extern int	ft_max_attempts;
extern int	ft_job_deadline_min;
extern int	ft_phase_deadline_min;
extern int	ft_event_retention_days;
extern bool ft_worker_enabled;

extern void FtDefineSettings(void);

#endif
