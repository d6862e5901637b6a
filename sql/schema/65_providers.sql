-- Providers beyond OpenAI (settings checks, models), quotas per owner, scheduled retraining.

-- Kind-specific settings are checked when a provider row is written, not when a job fails later.
CREATE FUNCTION ft_internal.check_provider_settings() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s jsonb := NEW.settings;
  missing text;
BEGIN
  IF NEW.kind = 'fireworks' AND coalesce(s ->> 'account_id', '') !~ '^[a-z0-9-]+$' THEN
    RAISE EXCEPTION 'provider "%" of kind fireworks needs settings.account_id', NEW.name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Give the Fireworks account id (lower case letters, digits, "-"), for example {"account_id": "my-team"}.';
  END IF;
  IF NEW.kind = 'replicate' THEN
    SELECT k INTO missing FROM unnest(ARRAY['trainer_owner', 'trainer_name', 'trainer_version', 'destination']) k
     WHERE coalesce(s ->> k, '') = '' LIMIT 1;
    IF missing IS NOT NULL THEN
      RAISE EXCEPTION 'provider "%" of kind replicate needs settings.%', NEW.name, missing
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Replicate needs trainer_owner, trainer_name, trainer_version (the trainer model version) and destination (owner/model receiving the new version).';
    END IF;
    IF s ? 'input' AND jsonb_typeof(s -> 'input') <> 'object' THEN
      RAISE EXCEPTION 'settings.input of provider "%" must be a JSON object', NEW.name USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END IF;
  IF NEW.kind = 'mistral' AND s ? 'auto_start' AND jsonb_typeof(s -> 'auto_start') <> 'boolean' THEN
    RAISE EXCEPTION 'settings.auto_start of provider "%" must be true or false', NEW.name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF NEW.kind = 'azure_openai' AND s ? 'api_version' AND coalesce(s ->> 'api_version', '') !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$' THEN
    RAISE EXCEPTION 'settings.api_version of provider "%" must look like 2024-10-21 or 2025-04-01-preview', NEW.name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Leave api_version out to use the v1 API (base URL https://<resource>.openai.azure.com/openai/v1).';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ft_providers_check_settings BEFORE INSERT OR UPDATE ON ft_providers
  FOR EACH ROW EXECUTE FUNCTION ft_internal.check_provider_settings();
COMMENT ON COLUMN ft_providers.settings IS
  'Kind-specific settings. azure_openai: api_version (legacy API; omit for the v1 API), training_type. '
  'fireworks: account_id (required). mistral: auto_start (default true; false makes the worker start the job once VALIDATED). '
  'replicate: trainer_owner, trainer_name, trainer_version, destination (required), input_file_field (default train_data), '
  'input (extra trainer input), epochs_field (default num_train_epochs), validation_file_field, dataset_format (default prompt_completion).';

-- Shipped rows for providers that need no account-specific settings; the others are added by ft_admin.
INSERT INTO ft_providers (name, kind, base_url, default_model, seeded)
VALUES ('together', 'together', 'https://api.together.xyz/v1', 'meta-llama/Meta-Llama-3.1-8B-Instruct-Reference', true),
       ('mistral', 'mistral', 'https://api.mistral.ai/v1', 'open-mistral-7b', true);

-- Fine-tunable models of other providers. Their tokenizers are not shipped: token counts use
-- cl100k_base as an approximation, and prices are NULL where no verified figure was found, so
-- cost estimates say "unknown" instead of inventing one.
INSERT INTO ft_models (model, provider, encoding, context_window, training_token_limit, training_price_per_million,
                       supports_dpo, note, seeded)
VALUES
  ('meta-llama/Meta-Llama-3.1-8B-Instruct-Reference', 'together', 'cl100k_base', 131072, NULL, NULL, true,
   'Together AI LoRA/full fine-tuning. Token counts approximate (Llama 3 tokenizer not shipped). Price: see docs.together.ai/docs/fine-tuning/pricing.', true),
  ('meta-llama/Meta-Llama-3.1-70B-Instruct-Reference', 'together', 'cl100k_base', 131072, NULL, NULL, true,
   'Together AI. Token counts approximate. Price not verified.', true),
  ('Qwen/Qwen2.5-7B-Instruct', 'together', 'cl100k_base', 32768, NULL, NULL, true,
   'Together AI. Token counts approximate. Price not verified.', true),
  ('accounts/fireworks/models/llama-v3p1-8b-instruct', 'fireworks', 'cl100k_base', 131072, NULL, NULL, false,
   'Fireworks supervised fine-tuning (LoRA). Token counts approximate. Price not verified.', true),
  ('open-mistral-7b', 'mistral', 'cl100k_base', 32768, NULL, NULL, false,
   'Mistral fine-tuning (marked deprecated by Mistral). Minimum fee 4 USD per job plus 2 USD per model per month; per-token price not verified.', true),
  ('mistral-small-latest', 'mistral', 'cl100k_base', 32768, NULL, NULL, false,
   'Mistral fine-tuning (deprecated service). Per-token price not verified.', true),
  ('open-mistral-nemo', 'mistral', 'cl100k_base', 131072, NULL, NULL, false,
   'Mistral fine-tuning (deprecated service). Per-token price not verified.', true),
  ('codestral-latest', 'mistral', 'cl100k_base', 32768, NULL, NULL, false,
   'Mistral fine-tuning (deprecated service). Per-token price not verified.', true)
ON CONFLICT (model) DO NOTHING;

CREATE TABLE ft_quotas (
  owner_id             text    UNIQUE,
  jobs_per_month       integer CHECK (jobs_per_month >= 0),
  spend_per_month      numeric CHECK (spend_per_month >= 0),
  max_examples_per_job integer CHECK (max_examples_per_job >= 1),
  note                 text
);
CREATE UNIQUE INDEX ft_quotas_one_default ON ft_quotas ((owner_id IS NULL)) WHERE owner_id IS NULL;
COMMENT ON TABLE ft_quotas IS
  'Limits per owner (a row with owner_id NULL is the default for owners without their own row). NULL limits are unlimited. '
  'Set by ft_admin; each owner can read its own row and the default.';
COMMENT ON COLUMN ft_quotas.owner_id IS 'Tenant the limits apply to; NULL for the default row.';
COMMENT ON COLUMN ft_quotas.jobs_per_month IS 'Jobs an owner may create per calendar month (UTC of the server''s time zone); jobs that never reached the provider and did not run are not counted.';
COMMENT ON COLUMN ft_quotas.spend_per_month IS 'Estimated training spend in USD per calendar month (sum of ft_jobs.estimated_cost).';
COMMENT ON COLUMN ft_quotas.max_examples_per_job IS 'Most training examples one job may use.';
COMMENT ON COLUMN ft_quotas.note IS 'Free text, for example the plan the limits come from.';
ALTER TABLE ft_quotas ENABLE ROW LEVEL SECURITY;
ALTER TABLE ft_quotas FORCE ROW LEVEL SECURITY;
CREATE POLICY quota_visibility ON ft_quotas
  USING (owner_id IS NULL OR owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()))
  WITH CHECK ((SELECT ft_is_admin()));
REVOKE ALL ON ft_quotas FROM PUBLIC;
GRANT SELECT ON ft_quotas TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON ft_quotas TO ft_admin;
SELECT pg_catalog.pg_extension_config_dump('ft_quotas', '');

-- Jobs that count against a quota: those that reached the provider or may still do so.
CREATE FUNCTION ft_internal.job_counts(status text, provider_job_id text) RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
  SELECT provider_job_id IS NOT NULL OR status NOT IN ('failed', 'cancelled')
$$;

CREATE VIEW ft_owner_usage WITH (security_invoker = true) AS
  SELECT j.owner_id,
         date_trunc('month', j.created_at)::date AS month,
         count(*) AS jobs,
         sum(j.estimated_cost) AS estimated_spend,
         count(*) FILTER (WHERE j.estimated_cost IS NULL) AS jobs_without_estimate,
         sum(d.train_count) AS examples,
         count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded
    FROM ft_jobs j
    LEFT JOIN ft_datasets d ON d.id = j.dataset_id
   WHERE ft_internal.job_counts(j.status, j.provider_job_id)
   GROUP BY 1, 2;
COMMENT ON VIEW ft_owner_usage IS
  'Usage per owner and month, as ft_quotas counts it (jobs that reached the provider or may still do so). '
  'Each tenant sees its own rows (row-level security of ft_jobs applies).';
COMMENT ON COLUMN ft_owner_usage.owner_id IS 'Tenant.';
COMMENT ON COLUMN ft_owner_usage.month IS 'First day of the month.';
COMMENT ON COLUMN ft_owner_usage.jobs IS 'Jobs created in the month.';
COMMENT ON COLUMN ft_owner_usage.estimated_spend IS 'Sum of the jobs'' estimated cost in USD (jobs with an unknown price add nothing).';
COMMENT ON COLUMN ft_owner_usage.jobs_without_estimate IS 'Jobs whose cost is unknown (provider price not known).';
COMMENT ON COLUMN ft_owner_usage.examples IS 'Training examples uploaded by the month''s jobs (NULL until datasets were built).';
COMMENT ON COLUMN ft_owner_usage.succeeded IS 'Jobs of the month that succeeded.';
INSERT INTO ft_internal.app_grants VALUES ('ft_owner_usage', 'SELECT');
GRANT SELECT ON ft_owner_usage TO PUBLIC;

CREATE FUNCTION ft_internal.check_quota(owner text, avatar uuid, estimated_cost numeric, n_examples bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  q @extschema@.ft_quotas;
  used_jobs bigint;
  used_spend numeric;
BEGIN
  SELECT * INTO q FROM @extschema@.ft_quotas x WHERE x.owner_id = owner OR x.owner_id IS NULL
   ORDER BY x.owner_id NULLS LAST LIMIT 1;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF q.max_examples_per_job IS NOT NULL AND n_examples > q.max_examples_per_job THEN
    RAISE EXCEPTION 'the job would use % examples; the quota allows % per job', n_examples, q.max_examples_per_job
      USING ERRCODE = 'program_limit_exceeded',
            DETAIL = format('Owner %s: %s examples requested, max_examples_per_job is %s.', owner, n_examples, q.max_examples_per_job),
            HINT = 'Pass dataset options that select fewer examples (for example {"dataset": {"max_examples": N}}), or ask an administrator to raise the limit.';
  END IF;
  SELECT count(*), coalesce(sum(j.estimated_cost), 0) INTO used_jobs, used_spend
    FROM @extschema@.ft_jobs j
   WHERE j.owner_id = owner AND j.created_at >= date_trunc('month', now())
     AND ft_internal.job_counts(j.status, j.provider_job_id);
  IF q.jobs_per_month IS NOT NULL AND used_jobs + 1 > q.jobs_per_month THEN
    RAISE EXCEPTION 'monthly job quota exceeded: % jobs this month, the limit is %', used_jobs, q.jobs_per_month
      USING ERRCODE = 'program_limit_exceeded',
            DETAIL = format('Owner %s has created %s jobs since the start of the month; jobs_per_month is %s.',
                            owner, used_jobs, q.jobs_per_month),
            HINT = 'Wait for next month or ask an administrator to raise ft_quotas.jobs_per_month.';
  END IF;
  IF q.spend_per_month IS NOT NULL AND estimated_cost IS NULL THEN
    RAISE NOTICE 'the cost of this job is unknown, so the monthly spend quota cannot count it'
      USING DETAIL = 'The model has no training price in ft_models.';
  ELSIF q.spend_per_month IS NOT NULL AND used_spend + estimated_cost > q.spend_per_month THEN
    RAISE EXCEPTION 'monthly spend quota exceeded: % USD spent, this job % USD, the limit is % USD',
                    round(used_spend, 2), round(estimated_cost, 2), q.spend_per_month
      USING ERRCODE = 'program_limit_exceeded',
            DETAIL = format('Owner %s: estimated spend this month %s USD plus this job %s USD exceeds spend_per_month %s USD.',
                            owner, round(used_spend, 4), round(estimated_cost, 4), q.spend_per_month),
            HINT = 'Use fewer examples or epochs, a cheaper model, or ask an administrator to raise ft_quotas.spend_per_month.';
  END IF;
END
$$;
COMMENT ON FUNCTION ft_internal.check_quota(text, uuid, numeric, bigint) IS
  'Raises program_limit_exceeded (54000), with the figure and the limit, when a new job of this owner would exceed '
  'its ft_quotas row (or the default row): examples per job, jobs per month, estimated spend per month. '
  'A job of unknown cost passes the spend check with a notice. Called by ft_create_job.';

CREATE FUNCTION ft_retrain_if_due(avatar uuid, min_new_examples integer DEFAULT 100,
                                  min_interval interval DEFAULT '7 days', model text DEFAULT NULL,
                                  options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
  a @extschema@.ft_avatars := @extschema@.ft_get_avatar(avatar);
  last_job @extschema@.ft_jobs;
  live uuid;
  since timestamptz;
  new_examples bigint;
  job uuid;
  result jsonb;
  err_state text;
  err_message text;
BEGIN
  SELECT * INTO last_job FROM @extschema@.ft_jobs j
   WHERE j.avatar_id = avatar AND j.status = 'succeeded' ORDER BY j.created_at DESC LIMIT 1;
  since := coalesce(last_job.created_at, '-infinity');
  SELECT count(*) INTO new_examples FROM @extschema@.ft_examples e
   WHERE e.avatar_id = avatar AND NOT e.excluded AND e.created_at > since;
  result := jsonb_build_object('avatar', avatar, 'new_examples', new_examples, 'min_new_examples', min_new_examples,
                               'last_succeeded_job', last_job.id, 'last_trained_at', last_job.created_at);
  SELECT j.id INTO live FROM @extschema@.ft_jobs j
   WHERE j.avatar_id = avatar AND j.status NOT IN ('succeeded', 'failed', 'cancelled') LIMIT 1;
  IF live IS NOT NULL THEN
    RETURN result || jsonb_build_object('action', 'skipped', 'reason', 'job_in_progress', 'job_id', live);
  END IF;
  IF last_job.id IS NOT NULL AND now() - last_job.created_at < min_interval THEN
    RETURN result || jsonb_build_object('action', 'skipped', 'reason', 'too_soon',
                                        'next_due_at', last_job.created_at + min_interval);
  END IF;
  IF new_examples < min_new_examples THEN
    RETURN result || jsonb_build_object('action', 'skipped', 'reason', 'not_enough_new_examples');
  END IF;
  BEGIN
    job := @extschema@.ft_create_job(avatar, model, coalesce(options, '{}'));
  EXCEPTION WHEN program_limit_exceeded OR object_not_in_prerequisite_state THEN
    -- A quota or an eligibility rule said no: a scheduled call reports it instead of failing.
    GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
    RETURN result || jsonb_build_object('action', 'skipped', 'reason', 'refused', 'sqlstate', err_state,
                                        'message', err_message);
  END;
  RETURN result || jsonb_build_object('action', 'created', 'reason', 'due', 'job_id', job);
END
$$;
COMMENT ON FUNCTION ft_retrain_if_due(uuid, integer, interval, text, jsonb) IS
  'Creates a fine-tuning job (ft_create_job with model and options) only when at least min_new_examples usable '
  '(not excluded) examples arrived since the last succeeded job was created and min_interval has passed since then. '
  'Returns {action: created|skipped, reason: due|job_in_progress|too_soon|not_enough_new_examples|refused, job_id, '
  'new_examples, ...}; quota and eligibility refusals are reported, not raised. Meant for pg_cron: '
  'SELECT cron.schedule(''retrain-shop-bot'', ''0 3 * * 1'', $$SELECT ft_retrain_if_due(''<avatar>'')$$);';
