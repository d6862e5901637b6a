-- The SQL surface of jobs: create, cancel, keys, model activation, mirroring, NOTIFY, worker status.

CREATE FUNCTION ft_internal.wake_worker(required boolean DEFAULT true) RETURNS void
AS 'MODULE_PATHNAME', 'ft_wake_worker'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION ft_internal.wake_worker(boolean) IS
  'At commit, wakes this database''s pg_finetune worker, asking the launcher to start one if none runs. '
  'Without shared_preload_libraries: an error when required, else a warning.';

-- The row of a job the caller may act on, locked; hidden and missing jobs give the same error.
CREATE FUNCTION ft_internal.lock_job(job uuid) RETURNS @extschema@.ft_jobs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result @extschema@.ft_jobs;
BEGIN
  SELECT * INTO result FROM @extschema@.ft_jobs j WHERE j.id = job FOR UPDATE;
  IF NOT FOUND OR NOT (result.owner_id = @extschema@.ft_current_owner() OR @extschema@.ft_is_admin()) THEN
    RAISE EXCEPTION 'job % does not exist', job
      USING ERRCODE = 'no_data_found', HINT = 'List your jobs with SELECT id, status FROM ft_jobs.';
  END IF;
  RETURN result;
END
$$;

-- The avatar row the caller may act on, locked (for SECURITY DEFINER code, where RLS does not apply).
CREATE FUNCTION ft_internal.lock_avatar(avatar uuid) RETURNS @extschema@.ft_avatars
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result @extschema@.ft_avatars;
BEGIN
  SELECT * INTO result FROM @extschema@.ft_avatars a WHERE a.id = avatar FOR UPDATE;
  IF NOT FOUND OR NOT (result.owner_id = @extschema@.ft_current_owner() OR @extschema@.ft_is_admin()) THEN
    RAISE EXCEPTION 'avatar % does not exist', avatar
      USING ERRCODE = 'no_data_found', HINT = 'List your avatars with SELECT id, name FROM ft_avatars.';
  END IF;
  RETURN result;
END
$$;

-- Checks a hyperparameter that is "auto" or a number within bounds; returns it unchanged.
CREATE FUNCTION ft_internal.check_hyperparameter(name text, value jsonb, min numeric, max numeric,
                                                 integral boolean, min_exclusive boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  n numeric;
BEGIN
  IF value = '"auto"' THEN
    RETURN value;
  END IF;
  IF jsonb_typeof(value) <> 'number' THEN
    RAISE EXCEPTION 'option "%" must be a number or "auto"', name USING ERRCODE = 'invalid_parameter_value';
  END IF;
  n := value::text::numeric;
  IF (integral AND n <> trunc(n)) OR n > max OR n < min OR (min_exclusive AND n = min) THEN
    RAISE EXCEPTION 'option "%" is out of range: %', name, n
      USING ERRCODE = 'invalid_parameter_value',
            HINT = format('Use "auto" or %s %s from %s%s to %s.', CASE WHEN integral THEN 'an integer' ELSE 'a number' END,
                          '', CASE WHEN min_exclusive THEN 'above ' ELSE '' END, min, max);
  END IF;
  RETURN CASE WHEN integral THEN to_jsonb(n::bigint) ELSE value END;
END
$$;

-- Validates job options and returns {hyperparameters, method, suffix, seed, activate, dataset, ...}.
CREATE FUNCTION ft_internal.job_settings(options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  valid_keys text[] := ARRAY['provider', 'method', 'n_epochs', 'batch_size', 'learning_rate_multiplier', 'beta',
                             'suffix', 'seed', 'activate', 'allow_concurrent', 'dataset', 'max_cost'];
  bad text;
  method text := coalesce(options ->> 'method', 'supervised');
  hp jsonb := '{}';
BEGIN
  IF jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT k INTO bad FROM jsonb_object_keys(options) k WHERE k <> ALL (valid_keys) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown job option "%"', bad
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Valid options are: ' || array_to_string(valid_keys, ', ') || '.';
  END IF;
  IF method NOT IN ('supervised', 'dpo') THEN
    RAISE EXCEPTION 'unknown method "%"', method
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Valid methods are: supervised, dpo.';
  END IF;
  IF options ? 'n_epochs' THEN
    hp := hp || jsonb_build_object('n_epochs', ft_internal.check_hyperparameter('n_epochs', options -> 'n_epochs', 1, 50, true));
  END IF;
  IF options ? 'batch_size' THEN
    hp := hp || jsonb_build_object('batch_size', ft_internal.check_hyperparameter('batch_size', options -> 'batch_size', 1, 256, true));
  END IF;
  IF options ? 'learning_rate_multiplier' THEN
    hp := hp || jsonb_build_object('learning_rate_multiplier',
          ft_internal.check_hyperparameter('learning_rate_multiplier', options -> 'learning_rate_multiplier', 0, 100, false, true));
  END IF;
  IF options ? 'beta' THEN
    IF method <> 'dpo' THEN
      RAISE EXCEPTION 'option "beta" applies only to method dpo' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    hp := hp || jsonb_build_object('beta', ft_internal.check_hyperparameter('beta', options -> 'beta', 0, 2, false, true));
  END IF;
  IF options ? 'suffix' AND (jsonb_typeof(options -> 'suffix') <> 'string'
                             OR (options ->> 'suffix') !~ '^[A-Za-z0-9_-]{1,40}$') THEN
    RAISE EXCEPTION 'option "suffix" must be 1 to 40 letters, digits, "-" or "_"'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'The suffix becomes part of the model name; Azure allows only these characters and at most 40 of them.';
  END IF;
  IF options ? 'seed' THEN
    PERFORM ft_internal.check_hyperparameter('seed', options -> 'seed', 0, 2147483647, true);
  END IF;
  IF options ? 'activate' AND jsonb_typeof(options -> 'activate') <> 'boolean' THEN
    RAISE EXCEPTION 'option "activate" must be a boolean' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF options ? 'allow_concurrent' AND options -> 'allow_concurrent' <> 'true' THEN
    RAISE EXCEPTION 'option "allow_concurrent" can only be true' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF options ? 'max_cost' AND (jsonb_typeof(options -> 'max_cost') <> 'number' OR (options ->> 'max_cost')::numeric < 0) THEN
    RAISE EXCEPTION 'option "max_cost" must be a non-negative number of US dollars' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF options ? 'dataset' AND jsonb_typeof(options -> 'dataset') <> 'object' THEN
    RAISE EXCEPTION 'option "dataset" must be a JSON object of dataset options (as for ft_jsonl)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN jsonb_build_object('method', method, 'hyperparameters', hp);
END
$$;

CREATE FUNCTION ft_create_job(avatar uuid, model text DEFAULT NULL, options jsonb DEFAULT '{}')
RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER
-- pg_catalog first so built-ins cannot be shadowed; the extension schema for the checks it calls
SET search_path = pg_catalog, @extschema@, pg_temp
AS $$
DECLARE
  a @extschema@.ft_avatars;
  p @extschema@.ft_providers;
  settings jsonb := ft_internal.job_settings(coalesce(options, '{}'));
  provider_name text;
  chosen_model text;
  needed integer;
  available bigint;
  live uuid;
  problems bigint;
  first_problem text;
  cost numeric;
  budget numeric;
  new_id uuid;
BEGIN
  a := ft_internal.lock_avatar(avatar);
  provider_name := coalesce(options ->> 'provider', a.provider);
  SELECT * INTO p FROM @extschema@.ft_providers WHERE name = provider_name;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'provider "%" does not exist', provider_name
      USING ERRCODE = 'undefined_object', HINT = 'Known providers are listed in ft_providers.';
  END IF;
  chosen_model := coalesce(model, a.base_model, p.default_model);

  -- Eligibility: enough examples that datasets would include.
  needed := greatest(coalesce((a.settings ->> 'min_examples')::integer, 50), p.min_examples);
  IF settings ->> 'method' = 'dpo' THEN
    SELECT count(*) INTO available FROM @extschema@.ft_preferences WHERE avatar_id = avatar;
  ELSE
    SELECT count(*) INTO available FROM @extschema@.ft_examples e WHERE e.avatar_id = avatar AND NOT e.excluded;
  END IF;
  IF available < needed THEN
    RAISE EXCEPTION 'avatar % has % usable examples; % are needed to fine-tune', avatar, available, needed
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('The minimum is the avatar setting min_examples (default 50), and never below provider %s''s own minimum of %s.',
                            provider_name, p.min_examples),
            HINT = 'Add or import more examples, or lower settings.min_examples on the avatar (not below the provider minimum).';
  END IF;

  -- Validation: problems that would make the provider reject the file (examples over the token
  -- limit are dropped by the dataset, and trailing turns are merely not trained).
  IF settings ->> 'method' = 'supervised' THEN
    SELECT count(*), min(v.code || ' in example ' || v.example_id || ': ' || v.detail) INTO problems, first_problem
      FROM @extschema@.ft_validate(avatar) v
      JOIN @extschema@.ft_examples e ON e.avatar_id = avatar AND e.id = v.example_id AND NOT e.excluded
     WHERE v.code NOT IN ('too_many_tokens', 'trailing_messages');
    IF problems > 0 THEN
      RAISE EXCEPTION 'the training data of avatar % has % problem(s) the provider would reject', avatar, problems
        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = first_problem,
              HINT = 'See SELECT * FROM ft_validate(avatar); fix the examples or set excluded = true on them.';
    END IF;
  END IF;

  -- Cost against the budget (options.max_cost, else the avatar setting max_cost_usd).
  SELECT c.estimated_cost INTO cost
    FROM @extschema@.ft_estimate_cost(avatar, chosen_model,
           CASE WHEN jsonb_typeof(settings -> 'hyperparameters' -> 'n_epochs') = 'number'
                THEN (settings -> 'hyperparameters' ->> 'n_epochs')::integer END) c;
  budget := coalesce((options ->> 'max_cost')::numeric, (a.settings ->> 'max_cost_usd')::numeric);
  IF budget IS NOT NULL AND cost > budget THEN
    RAISE EXCEPTION 'the estimated cost of this job, $%, exceeds the budget of $%', round(cost, 2), budget
      USING ERRCODE = 'program_limit_exceeded',
            HINT = 'Lower n_epochs, select fewer examples, or raise options.max_cost / settings.max_cost_usd.';
  END IF;
  PERFORM ft_internal.check_quota(a.owner_id, avatar, cost, available);

  SELECT j.id INTO live FROM @extschema@.ft_jobs j
   WHERE j.avatar_id = avatar AND j.status NOT IN ('succeeded', 'failed', 'cancelled') LIMIT 1;
  IF live IS NOT NULL AND NOT coalesce((options ->> 'allow_concurrent')::boolean, false) THEN
    RAISE EXCEPTION 'the avatar already has a job in progress'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('Avatar %s has job %s, which has not finished.', avatar, live),
            HINT = 'Wait for it, cancel it with ft_cancel_job, or pass options => ''{"allow_concurrent": true}''.';
  END IF;

  INSERT INTO @extschema@.ft_jobs (avatar_id, provider, model, method, hyperparameters, options,
                                   activate_on_success, estimated_cost, deadline)
  VALUES (avatar, provider_name, chosen_model, settings ->> 'method', settings -> 'hyperparameters',
          coalesce(options, '{}'), coalesce((options ->> 'activate')::boolean, true), cost,
          now() + current_setting('ft.job_deadline')::interval)
  RETURNING id INTO new_id;
  PERFORM ft_internal.wake_worker();
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION ft_create_job(uuid, text, jsonb) IS
  'Queues a fine-tuning job for an avatar and returns its id at once; the background worker builds the dataset, '
  'uploads it, creates the provider job and follows it after commit. Options: provider, method (supervised|dpo), '
  'n_epochs, batch_size, learning_rate_multiplier ("auto" or a number), beta (dpo), suffix, seed, activate, '
  'allow_concurrent, dataset (dataset selection options as for ft_jsonl), max_cost. Refuses, with the reason: too few '
  'examples, training data the provider would reject, an estimated cost over the budget or a quota, and a job already in progress.';

CREATE FUNCTION ft_cancel_job(job uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  j @extschema@.ft_jobs := ft_internal.lock_job(job);
BEGIN
  IF j.status IN ('succeeded', 'failed', 'cancelled') THEN
    RAISE EXCEPTION 'job % has already finished (%)', job, j.status
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  IF j.status = 'pending' THEN
    -- Nothing has left the database yet, so there is nothing to cancel remotely.
    UPDATE @extschema@.ft_jobs SET status = 'cancelled', cancel_requested = true, finished_at = now()
     WHERE id = job;
    RETURN 'cancelled';
  END IF;
  UPDATE @extschema@.ft_jobs
     SET status = 'cancelling', cancel_requested = true, next_poll_at = now(), step_attempts = 0,
         phase_deadline = now() + current_setting('ft.phase_deadline')::interval
   WHERE id = job;
  PERFORM ft_internal.wake_worker();
  RETURN 'cancelling';
END
$$;
COMMENT ON FUNCTION ft_cancel_job(uuid) IS
  'Cancels a job: at once when it has not started, otherwise the worker cancels it at the provider '
  '(status cancelling, then cancelled). Returns the new status.';

-- Makes a model the avatar's active one and keeps the history; used by the worker and the SQL API.
CREATE FUNCTION ft_internal.set_active_model(avatar uuid, new_model text, job uuid, replaced uuid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  current_id uuid;
  m record;
BEGIN
  UPDATE @extschema@.ft_model_versions SET deactivated_at = now()
   WHERE avatar_id = avatar AND deactivated_at IS NULL
  RETURNING id INTO current_id;
  IF new_model IS NOT NULL THEN
    INSERT INTO @extschema@.ft_model_versions (avatar_id, model, job_id, replaced_id)
    VALUES (avatar, new_model, job, coalesce(replaced, current_id));
  END IF;
  UPDATE @extschema@.ft_avatars SET active_model = new_model WHERE id = avatar;
  FOR m IN SELECT mm.avatar_table, mm.id_column, mm.model_column, format_type(att.atttypid, att.atttypmod) AS id_type
             FROM ft_internal.model_mirrors mm
             JOIN pg_catalog.pg_attribute att ON att.attrelid = mm.avatar_table AND att.attname = mm.id_column
  LOOP
    EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = $2::%s', m.avatar_table, m.model_column, m.id_column, m.id_type)
      USING new_model, avatar::text;
  END LOOP;
END
$$;

CREATE FUNCTION ft_activate_model(avatar uuid, model_or_job text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  a @extschema@.ft_avatars := ft_internal.lock_avatar(avatar);
  chosen text;
  source_job uuid;
BEGIN
  IF model_or_job ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    SELECT j.fine_tuned_model, j.id INTO chosen, source_job FROM @extschema@.ft_jobs j
     WHERE j.id = model_or_job::uuid AND j.avatar_id = avatar AND j.status = 'succeeded';
    IF chosen IS NULL THEN
      RAISE EXCEPTION 'job % of avatar % has not produced a model', model_or_job, avatar
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'Only succeeded jobs of this avatar can be activated.';
    END IF;
  ELSE
    SELECT x.model, x.job INTO chosen, source_job FROM (
      SELECT j.fine_tuned_model AS model, j.id AS job, 1 AS pref FROM @extschema@.ft_jobs j
       WHERE j.avatar_id = avatar AND j.fine_tuned_model = model_or_job
      UNION ALL
      SELECT c.model, c.job_id, 2 FROM @extschema@.ft_job_checkpoints c
       WHERE c.avatar_id = avatar AND c.model = model_or_job
      UNION ALL
      SELECT v.model, v.job_id, 3 FROM @extschema@.ft_model_versions v
       WHERE v.avatar_id = avatar AND v.model = model_or_job) x
    ORDER BY x.pref LIMIT 1;
    IF chosen IS NULL THEN
      RAISE EXCEPTION 'model "%" was never produced for avatar %', model_or_job, avatar
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Give a fine-tuned model, checkpoint model or succeeded job id of this avatar.';
    END IF;
  END IF;
  IF a.active_model IS DISTINCT FROM chosen THEN
    PERFORM ft_internal.set_active_model(avatar, chosen, source_job);
  END IF;
  RETURN chosen;
END
$$;
COMMENT ON FUNCTION ft_activate_model(uuid, text) IS
  'Makes a model of this avatar (a fine-tuned model, a checkpoint model, or the model of a succeeded job given by id) '
  'the active one, recording the change in ft_model_versions. Returns the model.';

CREATE FUNCTION ft_rollback_model(avatar uuid) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  a @extschema@.ft_avatars := ft_internal.lock_avatar(avatar);
  current_version @extschema@.ft_model_versions;
  previous_version @extschema@.ft_model_versions;
BEGIN
  SELECT * INTO current_version FROM @extschema@.ft_model_versions v
   WHERE v.avatar_id = avatar AND v.deactivated_at IS NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'avatar % has no active fine-tuned model to roll back', avatar
      USING ERRCODE = 'object_not_in_prerequisite_state';
  END IF;
  SELECT * INTO previous_version FROM @extschema@.ft_model_versions v
   WHERE v.avatar_id = avatar AND v.id = current_version.replaced_id;
  -- With no earlier fine-tuned model the avatar goes back to its base model.
  PERFORM ft_internal.set_active_model(avatar, previous_version.model, previous_version.job_id,
                                       previous_version.replaced_id);
  RETURN coalesce(previous_version.model, a.base_model);
END
$$;
COMMENT ON FUNCTION ft_rollback_model(uuid) IS
  'Returns the avatar to the model it served before the current one (its base model when there was none). '
  'Repeated rollbacks walk further back. Returns the model now served.';

CREATE FUNCTION ft_mirror_model_to(avatar_table regclass, id_column name, model_column name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF NOT pg_catalog.pg_has_role(ft_internal.acting_role(),
                                (SELECT relowner FROM pg_catalog.pg_class WHERE oid = avatar_table), 'USAGE') THEN
    RAISE EXCEPTION 'must be owner of table %', avatar_table
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Only the owner of the application table can have pg_finetune write into it.';
  END IF;
  PERFORM 1 FROM pg_catalog.pg_attribute
    WHERE attrelid = avatar_table AND attname = id_column AND attnum > 0 AND NOT attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'column "%" of % does not exist', id_column, avatar_table USING ERRCODE = 'undefined_column';
  END IF;
  PERFORM 1 FROM pg_catalog.pg_attribute
    WHERE attrelid = avatar_table AND attname = model_column AND attnum > 0 AND NOT attisdropped
      AND atttypid IN ('text'::regtype, 'varchar'::regtype);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'column "%" of % does not exist or is not text', model_column, avatar_table
      USING ERRCODE = 'undefined_column';
  END IF;
  INSERT INTO ft_internal.model_mirrors VALUES (avatar_table, id_column, model_column) ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION ft_mirror_model_to(regclass, name, name) IS
  'Also writes each avatar''s active model into an application table: UPDATE avatar_table SET model_column = model '
  'WHERE id_column = avatar id, whenever the active model changes. Identifiers are quoted safely. Only the table''s owner may ask.';

CREATE FUNCTION ft_set_api_key(provider text, api_key text, owner text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  key_owner text := coalesce(owner, '');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM @extschema@.ft_providers p WHERE p.name = provider) THEN
    RAISE EXCEPTION 'provider "%" does not exist', provider
      USING ERRCODE = 'undefined_object', HINT = 'Known providers are listed in ft_providers.';
  END IF;
  IF api_key IS NULL OR length(api_key) < 8 OR api_key ~ '\s' THEN
    RAISE EXCEPTION 'API key is empty, too short or contains white space' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- The system key (no owner) and other tenants' keys are for administrators only.
  IF key_owner IS DISTINCT FROM @extschema@.ft_current_owner() AND NOT @extschema@.ft_is_admin() THEN
    RAISE EXCEPTION 'only ft_admin members may set the system key or another tenant''s key'
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Pass owner => ft_current_owner() to set your own key.';
  END IF;
  INSERT INTO ft_internal.api_keys (provider, owner_id, api_key, set_by)
  VALUES (provider, key_owner, api_key, @extschema@.ft_current_owner())
  ON CONFLICT ON CONSTRAINT api_keys_pkey DO UPDATE SET api_key = EXCLUDED.api_key, set_at = now(), set_by = EXCLUDED.set_by;
  PERFORM ft_internal.write_audit(coalesce(owner, @extschema@.ft_current_owner()), NULL, 'key_set', 'api_key', provider,
                                  jsonb_build_object('system_key', owner IS NULL));
END
$$;
COMMENT ON FUNCTION ft_set_api_key(text, text, text) IS
  'Stores a provider API key that no SQL user can read back. owner NULL sets the system key used for tenants '
  'without their own (ft_admin only). A key can also come from the server environment variable '
  'PG_FINETUNE_<PROVIDER>_API_KEY (or OPENAI_API_KEY for the openai provider).';

CREATE FUNCTION ft_api_key_status()
RETURNS TABLE (provider text, owner_id text, source text, set_at timestamptz)
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT k.provider, nullif(k.owner_id, ''), CASE WHEN k.owner_id = '' THEN 'system' ELSE 'tenant' END, k.set_at
    FROM ft_internal.api_keys k
   WHERE k.owner_id IN ('', @extschema@.ft_current_owner()) OR @extschema@.ft_is_admin()
   ORDER BY 1, 2 NULLS FIRST
$$;
COMMENT ON FUNCTION ft_api_key_status() IS
  'Which API keys exist (the system keys and your own), never their values.';

-- Every status change is announced, so an app can push progress to its UI.
CREATE FUNCTION ft_internal.notify_job_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM pg_notify('ft_jobs', json_build_object('job_id', NEW.id, 'avatar_id', NEW.avatar_id,
                                                 'status', NEW.status)::text);
  IF TG_OP = 'INSERT' THEN
    PERFORM ft_internal.write_audit(NEW.owner_id, NEW.avatar_id, 'job_created', 'job', NEW.id::text,
                                    jsonb_build_object('provider', NEW.provider, 'model', NEW.model));
  ELSIF NEW.status = 'cancelling' OR (NEW.status = 'cancelled' AND OLD.status = 'pending') THEN
    PERFORM ft_internal.write_audit(NEW.owner_id, NEW.avatar_id, 'job_cancelled', 'job', NEW.id::text, '{}');
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ft_jobs_notify AFTER INSERT ON ft_jobs
  FOR EACH ROW EXECUTE FUNCTION ft_internal.notify_job_status();
CREATE TRIGGER ft_jobs_notify_update AFTER UPDATE OF status ON ft_jobs
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
  EXECUTE FUNCTION ft_internal.notify_job_status();

CREATE FUNCTION ft_internal.audit_model_activated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM ft_internal.write_audit(NEW.owner_id, NEW.avatar_id, 'model_activated', 'model', NEW.model,
                                  jsonb_build_object('job_id', NEW.job_id));
  RETURN NULL;
END
$$;
CREATE TRIGGER ft_model_versions_audit AFTER INSERT ON ft_model_versions
  FOR EACH ROW EXECUTE FUNCTION ft_internal.audit_model_activated();

CREATE FUNCTION ft_worker_info()
RETURNS TABLE (database name, pid integer, state text, started_at timestamptz, last_poll_at timestamptz,
               jobs_in_flight integer, requests_made bigint, last_error text, last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'ft_worker_info'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION ft_worker_info() IS
  'State of the pg_finetune background workers (one per database that has the extension). '
  'Raises an error with a hint when pg_finetune is not in shared_preload_libraries.';

CREATE VIEW ft_worker_status AS
  SELECT * FROM ft_worker_info() WHERE database = current_database();
COMMENT ON VIEW ft_worker_status IS 'The background worker serving this database: alive or not, jobs in flight, last poll, last error.';
COMMENT ON COLUMN ft_worker_status.database IS 'Database the worker serves.';
COMMENT ON COLUMN ft_worker_status.pid IS 'Process id of the worker.';
COMMENT ON COLUMN ft_worker_status.state IS 'starting or serving.';
COMMENT ON COLUMN ft_worker_status.started_at IS 'When the worker started.';
COMMENT ON COLUMN ft_worker_status.last_poll_at IS 'When the worker last looked for due jobs.';
COMMENT ON COLUMN ft_worker_status.jobs_in_flight IS 'Jobs the worker is talking to a provider about right now.';
COMMENT ON COLUMN ft_worker_status.requests_made IS 'Provider requests made since the worker started.';
COMMENT ON COLUMN ft_worker_status.last_error IS 'Last internal error the worker met (never contains keys).';
COMMENT ON COLUMN ft_worker_status.last_error_at IS 'When that error happened.';
INSERT INTO ft_internal.app_grants VALUES ('ft_worker_status', 'SELECT');

CREATE FUNCTION ft_internal.provider_host_check(url text) RETURNS text
AS 'MODULE_PATHNAME', 'ft_provider_host_check'
LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION ft_internal.provider_host_check(text) FROM PUBLIC;

CREATE FUNCTION ft_internal.env_key_present(provider text, kind text) RETURNS boolean
AS 'MODULE_PATHNAME', 'ft_env_key_present'
LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION ft_internal.env_key_present(text, text) FROM PUBLIC;

-- One row per check; ok NULL means "informational".
CREATE FUNCTION ft_doctor()
RETURNS TABLE (check_name text, ok boolean, detail text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  w record;
  p record;
  live bigint;
  problem text;
BEGIN
  SELECT count(*) INTO live FROM @extschema@.ft_jobs j
   WHERE j.status NOT IN ('succeeded', 'failed', 'cancelled')
     AND (j.owner_id = @extschema@.ft_current_owner() OR @extschema@.ft_is_admin());
  BEGIN
    SELECT * INTO w FROM @extschema@.ft_worker_info() i WHERE i.database = current_database();
    check_name := 'worker'; ok := w.pid IS NOT NULL AND w.state = 'serving';
    detail := CASE WHEN ok THEN format('serving %s (pid %s) since %s; %s request(s) made', w.database, w.pid, w.started_at, w.requests_made)
                   ELSE 'no worker serves this database yet; it starts within seconds of CREATE EXTENSION or ft_create_job' END;
    RETURN NEXT;
    check_name := 'databases served'; ok := NULL;
    detail := (SELECT string_agg(format('%s (%s)', i.database, i.state), ', ') FROM @extschema@.ft_worker_info() i);
    RETURN NEXT;
    check_name := 'polling'; ok := live = 0 OR w.last_poll_at > now() - interval '2 minutes';
    detail := format('%s live job(s), %s in flight, last poll %s', live, coalesce(w.jobs_in_flight, 0), coalesce(w.last_poll_at::text, 'never'));
    RETURN NEXT;
    check_name := 'last worker error'; ok := w.last_error IS NULL OR w.last_error_at < now() - interval '1 hour';
    detail := coalesce(format('%s at %s', w.last_error, w.last_error_at), 'none');
    RETURN NEXT;
  EXCEPTION WHEN object_not_in_prerequisite_state THEN
    check_name := 'worker'; ok := false;
    detail := 'pg_finetune is not in shared_preload_libraries: add it in postgresql.conf and restart the server';
    RETURN NEXT;
  END;
  FOR p IN SELECT * FROM @extschema@.ft_providers ORDER BY name LOOP
    problem := ft_internal.provider_host_check(p.base_url);
    check_name := format('provider %s host', p.name); ok := problem IS NULL;
    detail := coalesce(problem, format('%s is allowed by ft.allowed_provider_hosts', p.base_url));
    RETURN NEXT;
    check_name := format('provider %s key', p.name);
    ok := EXISTS (SELECT 1 FROM ft_internal.api_keys k WHERE k.provider = p.name
                   AND k.owner_id IN ('', @extschema@.ft_current_owner()))
          OR ft_internal.env_key_present(p.name, p.kind);
    detail := CASE WHEN ok THEN 'a key is available (values are never shown)'
                   ELSE format('no key: SELECT ft_set_api_key(%L, ...) or set PG_FINETUNE_%s_API_KEY for the server', p.name, upper(replace(p.name, '-', '_'))) END;
    RETURN NEXT;
  END LOOP;
  check_name := 'allowed provider hosts'; ok := NULL;
  detail := current_setting('ft.allowed_provider_hosts');
  RETURN NEXT;
  FOREACH problem IN ARRAY ARRAY['o200k_base', 'cl100k_base'] LOOP
    check_name := format('tokenizer %s', problem);
    BEGIN
      PERFORM @extschema@.ft_token_count('pg_finetune', problem);
      ok := true; detail := 'rank file loads';
    EXCEPTION WHEN OTHERS THEN
      ok := false; detail := SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION ft_doctor() IS
  'Health checks for operators: worker alive and polling, databases served, last error, provider hosts allowed, '
  'keys present (never their values), tokenizer files loadable.';

SELECT ft_internal.wake_worker(required => false);
