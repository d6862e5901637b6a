-- Providers, API keys, fine-tuning jobs and what the worker learns about them.

CREATE TABLE ft_providers (
  name          text  NOT NULL PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]+$'),
  kind          text  NOT NULL CHECK (kind IN ('openai', 'azure_openai', 'together', 'fireworks', 'mistral', 'replicate', 'mock')),
  base_url      text  NOT NULL CHECK (base_url ~ '^https?://'),
  settings      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
  default_model text,
  min_examples  integer NOT NULL DEFAULT 10 CHECK (min_examples >= 1),
  seeded        boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE ft_providers IS
  'Fine-tuning providers jobs can be sent to. Reference data: readable by everyone, changed by ft_admin. '
  'Base URLs must also match the ft.allowed_provider_hosts setting.';
COMMENT ON COLUMN ft_providers.name IS 'Name used by ft_avatars.provider and the provider option of ft_create_job.';
COMMENT ON COLUMN ft_providers.kind IS 'Protocol spoken: openai, azure_openai, together, fireworks, mistral, replicate, or mock (the OpenAI protocol from a local test server).';
COMMENT ON COLUMN ft_providers.base_url IS 'API root, for example https://api.openai.com/v1.';
COMMENT ON COLUMN ft_providers.settings IS 'Kind-specific settings (for example Azure api_version).';
COMMENT ON COLUMN ft_providers.default_model IS 'Model used when neither the job nor the avatar names one.';
COMMENT ON COLUMN ft_providers.min_examples IS 'Fewest training examples the provider accepts.';
COMMENT ON COLUMN ft_providers.seeded IS 'True for rows shipped with pg_finetune; other rows are kept by pg_dump.';
INSERT INTO ft_providers (name, kind, base_url, default_model, seeded)
VALUES ('openai', 'openai', 'https://api.openai.com/v1', 'gpt-4o-mini-2024-07-18', true);
SELECT pg_catalog.pg_extension_config_dump('ft_providers', 'WHERE NOT seeded');
REVOKE ALL ON ft_providers FROM PUBLIC;
GRANT SELECT ON ft_providers TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON ft_providers TO ft_admin;

-- API keys: readable by nobody but the extension owner (and so the worker).
CREATE TABLE ft_internal.api_keys (
  provider text        NOT NULL,
  owner_id text        NOT NULL DEFAULT '',
  api_key  text        NOT NULL,
  set_at   timestamptz NOT NULL DEFAULT now(),
  set_by   text        NOT NULL,
  PRIMARY KEY (provider, owner_id)
);
SELECT pg_catalog.pg_extension_config_dump('ft_internal.api_keys', '');

CREATE TABLE ft_jobs (
  id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id           uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id            text        NOT NULL DEFAULT ft_current_owner(),
  provider            text        NOT NULL,
  model               text        NOT NULL,
  method              text        NOT NULL DEFAULT 'supervised' CHECK (method IN ('supervised', 'dpo')),
  hyperparameters     jsonb       NOT NULL DEFAULT '{}',
  options             jsonb       NOT NULL DEFAULT '{}',
  status              text        NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'preparing', 'uploading', 'submitting', 'validating_files',
                                        'queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')),
  provider_status     text,
  dataset_id          uuid,
  training_file_id    text,
  validation_file_id  text,
  provider_job_id     text,
  fine_tuned_model    text,
  trained_tokens      bigint,
  estimated_cost      numeric,
  activate_on_success boolean     NOT NULL DEFAULT true,
  cancel_requested    boolean     NOT NULL DEFAULT false,
  create_attempted    boolean     NOT NULL DEFAULT false,
  cancel_sent         boolean     NOT NULL DEFAULT false,
  create_sent_at      timestamptz,
  attempts            integer     NOT NULL DEFAULT 0,
  step_attempts       integer     NOT NULL DEFAULT 0,
  next_poll_at        timestamptz NOT NULL DEFAULT now(),
  phase_deadline      timestamptz,
  deadline            timestamptz NOT NULL DEFAULT now() + interval '72 hours',
  error_code          text,
  error_message       text,
  provider_request_id text,
  newest_event_id     text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  finished_at         timestamptz,
  estimated_finish    timestamptz,
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, id)
);
CREATE UNIQUE INDEX ft_jobs_id_idx ON ft_jobs (id);
-- Retention finds finished jobs by age.
CREATE INDEX ft_jobs_finished_idx ON ft_jobs (finished_at) WHERE finished_at IS NOT NULL;
-- The worker's claim query reads only live jobs, ordered by when they are due.
CREATE INDEX ft_jobs_due_idx ON ft_jobs (next_poll_at)
  WHERE status NOT IN ('succeeded', 'failed', 'cancelled');
-- One live job per avatar unless a job asks to run alongside (options.allow_concurrent).
CREATE UNIQUE INDEX ft_jobs_one_live_per_avatar ON ft_jobs (avatar_id)
  WHERE status NOT IN ('succeeded', 'failed', 'cancelled') AND NOT (options ? 'allow_concurrent');

COMMENT ON TABLE ft_jobs IS
  'Fine-tuning jobs. Created by ft_create_job, driven by the background worker through the states '
  'pending -> preparing -> uploading -> submitting -> validating_files -> queued -> running -> succeeded | failed | cancelled '
  '(and cancelling). Every live state has a deadline.';
COMMENT ON COLUMN ft_jobs.id IS 'Job id; also sent to the provider as metadata so the job can be found again after a crash.';
COMMENT ON COLUMN ft_jobs.avatar_id IS 'Avatar being fine-tuned.';
COMMENT ON COLUMN ft_jobs.owner_id IS 'Tenant owning the job; always the avatar''s owner.';
COMMENT ON COLUMN ft_jobs.provider IS 'Provider (ft_providers.name) the job runs on.';
COMMENT ON COLUMN ft_jobs.model IS 'Base model being fine-tuned.';
COMMENT ON COLUMN ft_jobs.method IS 'supervised or dpo (preference) training.';
COMMENT ON COLUMN ft_jobs.hyperparameters IS 'n_epochs, batch_size, learning_rate_multiplier (number or "auto"), beta for dpo.';
COMMENT ON COLUMN ft_jobs.options IS 'Job options as given (suffix, seed, dataset selection, activate, allow_concurrent).';
COMMENT ON COLUMN ft_jobs.status IS 'Our state (see the table comment); terminal states are succeeded, failed, cancelled.';
COMMENT ON COLUMN ft_jobs.provider_status IS 'Status exactly as the provider last reported it.';
COMMENT ON COLUMN ft_jobs.dataset_id IS 'Dataset build (ft_datasets) uploaded for this job.';
COMMENT ON COLUMN ft_jobs.training_file_id IS 'Provider id of the uploaded training file.';
COMMENT ON COLUMN ft_jobs.validation_file_id IS 'Provider id of the uploaded validation file, if any.';
COMMENT ON COLUMN ft_jobs.provider_job_id IS 'Provider id of the fine-tuning job, stored the moment it is known.';
COMMENT ON COLUMN ft_jobs.fine_tuned_model IS 'Model produced by a successful job.';
COMMENT ON COLUMN ft_jobs.trained_tokens IS 'Billable tokens the provider reports.';
COMMENT ON COLUMN ft_jobs.estimated_cost IS 'Cost estimated when the job was created (USD), NULL when the price is unknown.';
COMMENT ON COLUMN ft_jobs.activate_on_success IS 'Whether a successful job sets the avatar''s active_model.';
COMMENT ON COLUMN ft_jobs.cancel_requested IS 'True once ft_cancel_job was called.';
COMMENT ON COLUMN ft_jobs.create_attempted IS 'True once a create request may have reached the provider; before creating again the worker looks the job up by metadata.';
COMMENT ON COLUMN ft_jobs.create_sent_at IS 'When the first create request was sent; a lookup by metadata waits until a create still in flight must have landed.';
COMMENT ON COLUMN ft_jobs.cancel_sent IS 'True once the provider accepted our cancel request; the worker then polls until it is cancelled.';
COMMENT ON COLUMN ft_jobs.attempts IS 'Provider requests made for this job, retries included.';
COMMENT ON COLUMN ft_jobs.step_attempts IS 'Consecutive failed tries of the current step; reset when a step succeeds.';
COMMENT ON COLUMN ft_jobs.next_poll_at IS 'When the worker next works on the job.';
COMMENT ON COLUMN ft_jobs.phase_deadline IS 'When the current local phase (preparing, uploading, submitting, cancelling) times out.';
COMMENT ON COLUMN ft_jobs.deadline IS 'When the whole job times out (ft.job_deadline after creation).';
COMMENT ON COLUMN ft_jobs.error_code IS 'Machine-readable failure code (the provider''s code, or ours such as deadline_exceeded).';
COMMENT ON COLUMN ft_jobs.error_message IS 'Failure message (the provider''s own message when it gave one).';
COMMENT ON COLUMN ft_jobs.provider_request_id IS 'Provider request id (x-request-id) of the last failed request, for support tickets.';
COMMENT ON COLUMN ft_jobs.newest_event_id IS 'Newest provider event stored; event polling stops there.';
COMMENT ON COLUMN ft_jobs.created_at IS 'When the job was created.';
COMMENT ON COLUMN ft_jobs.started_at IS 'When the provider accepted the job.';
COMMENT ON COLUMN ft_jobs.finished_at IS 'When the job reached a terminal state.';
COMMENT ON COLUMN ft_jobs.estimated_finish IS 'Provider''s estimate of when a running job finishes.';
COMMENT ON COLUMN ft_jobs.updated_at IS 'When the row last changed.';

CREATE TRIGGER ft_jobs_owner BEFORE INSERT OR UPDATE ON ft_jobs
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
CREATE TRIGGER ft_jobs_touch BEFORE UPDATE ON ft_jobs
  FOR EACH ROW EXECUTE FUNCTION ft_touch_updated_at();

CREATE TABLE ft_job_events (
  job_id            uuid        NOT NULL,
  avatar_id         uuid        NOT NULL,
  owner_id          text        NOT NULL DEFAULT ft_current_owner(),
  seq               bigint      GENERATED ALWAYS AS IDENTITY,
  provider_event_id text,
  level             text        NOT NULL DEFAULT 'info',
  type              text        NOT NULL DEFAULT 'message',
  message           text        NOT NULL DEFAULT '',
  data              jsonb,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, job_id, seq),
  FOREIGN KEY (avatar_id, job_id) REFERENCES ft_jobs (avatar_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX ft_job_events_provider_idx ON ft_job_events (job_id, provider_event_id);
CREATE INDEX ft_job_events_job_created_idx ON ft_job_events (job_id, created_at, seq);
COMMENT ON TABLE ft_job_events IS
  'What happened to each job, from the provider (each event stored once) and from the worker (retries, failures). '
  'ORDER BY created_at, seq for oldest first; DESC for newest first.';
COMMENT ON COLUMN ft_job_events.job_id IS 'Job the event belongs to.';
COMMENT ON COLUMN ft_job_events.avatar_id IS 'Avatar of the job.';
COMMENT ON COLUMN ft_job_events.owner_id IS 'Tenant owning the job.';
COMMENT ON COLUMN ft_job_events.seq IS 'Arrival order, a tie-breaker for events with the same time.';
COMMENT ON COLUMN ft_job_events.provider_event_id IS 'Provider''s event id; NULL for events written by the worker.';
COMMENT ON COLUMN ft_job_events.level IS 'info, warn or error.';
COMMENT ON COLUMN ft_job_events.type IS 'Provider event type (message, metrics, ...) or worker_* for our own.';
COMMENT ON COLUMN ft_job_events.message IS 'Human-readable message.';
COMMENT ON COLUMN ft_job_events.data IS 'Event payload (metrics of a step, retry details, ...).';
COMMENT ON COLUMN ft_job_events.created_at IS 'When the event happened (provider time for provider events).';

CREATE TABLE ft_job_checkpoints (
  job_id                 uuid        NOT NULL,
  avatar_id              uuid        NOT NULL,
  owner_id               text        NOT NULL DEFAULT ft_current_owner(),
  provider_checkpoint_id text        NOT NULL,
  step                   integer,
  model                  text,
  metrics                jsonb,
  created_at             timestamptz,
  PRIMARY KEY (avatar_id, job_id, provider_checkpoint_id),
  FOREIGN KEY (avatar_id, job_id) REFERENCES ft_jobs (avatar_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE ft_job_checkpoints IS 'Checkpoints the provider kept for a job; each is a usable model.';
COMMENT ON COLUMN ft_job_checkpoints.job_id IS 'Job the checkpoint belongs to.';
COMMENT ON COLUMN ft_job_checkpoints.avatar_id IS 'Avatar of the job.';
COMMENT ON COLUMN ft_job_checkpoints.owner_id IS 'Tenant owning the job.';
COMMENT ON COLUMN ft_job_checkpoints.provider_checkpoint_id IS 'Provider''s checkpoint id.';
COMMENT ON COLUMN ft_job_checkpoints.step IS 'Training step of the checkpoint.';
COMMENT ON COLUMN ft_job_checkpoints.model IS 'Model name to call for this checkpoint.';
COMMENT ON COLUMN ft_job_checkpoints.metrics IS 'Metrics at the checkpoint as the provider reported them.';
COMMENT ON COLUMN ft_job_checkpoints.created_at IS 'When the provider made the checkpoint.';

CREATE TABLE ft_job_metrics (
  job_id         uuid    NOT NULL,
  avatar_id      uuid    NOT NULL,
  owner_id       text    NOT NULL DEFAULT ft_current_owner(),
  step           integer NOT NULL,
  train_loss     double precision,
  train_accuracy double precision,
  valid_loss     double precision,
  valid_accuracy double precision,
  full_valid_loss double precision,
  full_valid_accuracy double precision,
  source         text    NOT NULL CHECK (source IN ('event', 'result_file')),
  PRIMARY KEY (avatar_id, job_id, step),
  FOREIGN KEY (avatar_id, job_id) REFERENCES ft_jobs (avatar_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE ft_job_metrics IS
  'Training metrics per step, from metrics events while the job runs and from the result file (CSV read by header name) at the end.';
COMMENT ON COLUMN ft_job_metrics.job_id IS 'Job measured.';
COMMENT ON COLUMN ft_job_metrics.avatar_id IS 'Avatar of the job.';
COMMENT ON COLUMN ft_job_metrics.owner_id IS 'Tenant owning the job.';
COMMENT ON COLUMN ft_job_metrics.step IS 'Training step.';
COMMENT ON COLUMN ft_job_metrics.train_loss IS 'Training loss at the step.';
COMMENT ON COLUMN ft_job_metrics.train_accuracy IS 'Training mean token accuracy at the step.';
COMMENT ON COLUMN ft_job_metrics.valid_loss IS 'Validation loss at the step (NULL when not evaluated).';
COMMENT ON COLUMN ft_job_metrics.valid_accuracy IS 'Validation mean token accuracy at the step.';
COMMENT ON COLUMN ft_job_metrics.full_valid_loss IS 'Loss over the whole validation file (usually at the end of an epoch).';
COMMENT ON COLUMN ft_job_metrics.full_valid_accuracy IS 'Mean token accuracy over the whole validation file.';
COMMENT ON COLUMN ft_job_metrics.source IS 'event (live metrics event) or result_file (the final CSV, which wins).';

CREATE TABLE ft_model_versions (
  id             uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id      uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id       text        NOT NULL DEFAULT ft_current_owner(),
  model          text        NOT NULL,
  job_id         uuid,
  replaced_id    uuid,
  activated_at   timestamptz NOT NULL DEFAULT now(),
  deactivated_at timestamptz,
  PRIMARY KEY (avatar_id, id)
);
CREATE UNIQUE INDEX ft_model_versions_one_active ON ft_model_versions (avatar_id) WHERE deactivated_at IS NULL;
COMMENT ON TABLE ft_model_versions IS 'History of the models an avatar has served; the row without deactivated_at is the active one.';
COMMENT ON COLUMN ft_model_versions.id IS 'Row id.';
COMMENT ON COLUMN ft_model_versions.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_model_versions.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_model_versions.model IS 'Model name set as active_model.';
COMMENT ON COLUMN ft_model_versions.job_id IS 'Job that produced the model, when known.';
COMMENT ON COLUMN ft_model_versions.replaced_id IS 'Version this one replaced; ft_rollback_model returns to it.';
COMMENT ON COLUMN ft_model_versions.activated_at IS 'When the model became active.';
COMMENT ON COLUMN ft_model_versions.deactivated_at IS 'When another model (or a rollback) replaced it.';
CREATE TRIGGER ft_model_versions_owner BEFORE INSERT OR UPDATE ON ft_model_versions
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();

-- Where to mirror each avatar's active model into the application's own table.
CREATE TABLE ft_internal.model_mirrors (
  avatar_table regclass NOT NULL,
  id_column    name     NOT NULL,
  model_column name     NOT NULL,
  PRIMARY KEY (avatar_table, id_column, model_column)
);
SELECT pg_catalog.pg_extension_config_dump('ft_internal.model_mirrors', '');

SELECT ft_internal.enable_tenancy('ft_jobs', 'SELECT');
SELECT ft_internal.enable_tenancy('ft_job_events', 'SELECT');
SELECT ft_internal.enable_tenancy('ft_job_checkpoints', 'SELECT');
SELECT ft_internal.enable_tenancy('ft_job_metrics', 'SELECT');
SELECT ft_internal.enable_tenancy('ft_model_versions', 'SELECT');
