-- Provider settings checks, quotas (ft_internal.check_quota), ft_owner_usage, ft_retrain_if_due decisions.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never
-- How a statement ended: "ok", or the SQLSTATE with message, detail and hint. Unlike
-- VERBOSITY verbose this leaves out the C source location, which moves with every edit.
-- The messages shown here name only fixed ids, so nothing is masked.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg
         || coalesce(nullif(' | DETAIL: ' || det, ' | DETAIL: '), '')
         || coalesce(nullif(' | HINT: ' || hnt, ' | HINT: '), '');
END $$;

-- Kind-specific settings are checked when the row is written.
SELECT pg_temp.try($$INSERT INTO ft_providers (name, kind, base_url) VALUES ('prov-fw-bad', 'fireworks', 'https://api.fireworks.ai/v1')$$);
SELECT pg_temp.try($$INSERT INTO ft_providers (name, kind, base_url, settings)
VALUES ('prov-rep-bad', 'replicate', 'https://api.replicate.com/v1', '{"trainer_owner": "meta", "trainer_name": "llama"}')$$);
SELECT pg_temp.try($$INSERT INTO ft_providers (name, kind, base_url, settings)
VALUES ('prov-mis-bad', 'mistral', 'https://api.mistral.ai/v1', '{"auto_start": "yes"}')$$);
SELECT pg_temp.try($$INSERT INTO ft_providers (name, kind, base_url, settings)
VALUES ('prov-az-bad', 'azure_openai', 'https://r.openai.azure.com/openai', '{"api_version": "latest"}')$$);
INSERT INTO ft_providers (name, kind, base_url, settings) VALUES
  ('prov-fw', 'fireworks', 'https://api.fireworks.ai/v1', '{"account_id": "acme"}'),
  ('prov-az', 'azure_openai', 'https://r.openai.azure.com/openai', '{"api_version": "2024-10-21"}');
SELECT name, kind FROM ft_providers WHERE name LIKE 'prov-%' OR seeded ORDER BY name;

-- Models of other providers: prices unknown rather than invented.
SELECT provider, count(*), count(training_price_per_million) AS priced
  FROM ft_models WHERE provider <> 'openai' GROUP BY provider ORDER BY provider;

-- Quotas: an owner row wins over the default row; NULL limits are unlimited.
SELECT ft_create_avatar('providers quota bot') AS qa \gset
INSERT INTO ft_quotas (owner_id, jobs_per_month, spend_per_month, max_examples_per_job)
VALUES (NULL, 100, NULL, 1000), (current_user, 2, 10, 50);
SELECT ft_internal.check_quota('someone_else', :'qa', 5, 1000);
SELECT pg_temp.try(format($$SELECT ft_internal.check_quota('someone_else', %L, 5, 1001)$$, :'qa'));
SELECT ft_internal.check_quota(current_user, :'qa', 9.5, 50);
SELECT pg_temp.try(format('SELECT ft_internal.check_quota(current_user, %L, 10.5, 50)', :'qa'));
SELECT ft_internal.check_quota(current_user, :'qa', NULL, 10);
-- Jobs this month count against the limits; a job cancelled before it reached the provider does not.
INSERT INTO ft_jobs (avatar_id, provider, model, status, estimated_cost, provider_job_id, options)
VALUES (:'qa', 'openai', 'gpt-4o-mini-2024-07-18', 'succeeded', 4, 'ftjob-1', '{}'),
       (:'qa', 'openai', 'gpt-4o-mini-2024-07-18', 'cancelled', 3, NULL, '{}');
SELECT pg_temp.try(format('SELECT ft_internal.check_quota(owner_id, %L, 7, 10) FROM ft_avatars WHERE id = %L', :'qa', :'qa'));
SELECT ft_internal.check_quota(owner_id, :'qa', 6, 10) FROM ft_avatars WHERE id = :'qa';
INSERT INTO ft_jobs (avatar_id, provider, model, status, estimated_cost, provider_job_id, options, next_poll_at)
VALUES (:'qa', 'openai', 'gpt-4o-mini-2024-07-18', 'running', 1, 'ftjob-2', '{}', 'infinity');
SELECT pg_temp.try(format('SELECT ft_internal.check_quota(owner_id, %L, 1, 10) FROM ft_avatars WHERE id = %L', :'qa', :'qa'));
SELECT jobs, estimated_spend, jobs_without_estimate, succeeded
  FROM ft_owner_usage WHERE month = date_trunc('month', now())::date AND owner_id = current_user;

-- Retraining decisions.
SELECT ft_create_avatar('providers retrain bot', settings => '{"min_examples": 12, "quality_threshold": 0}') AS ra \gset
SELECT count(ft_add_example(:'ra', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Where is parcel ' || i || '?'),
         jsonb_build_object('role', 'assistant', 'content', 'Parcel ' || i || ' arrives tomorrow.'))))
  FROM generate_series(1, 15) i;
SELECT r - 'avatar' FROM ft_retrain_if_due(:'ra') r;
-- A quota refusal is reported, not raised (ft_create_job applies ft_internal.check_quota).
SELECT r ->> 'action', r ->> 'reason', r ->> 'sqlstate', r ->> 'message' FROM ft_retrain_if_due(:'ra', min_new_examples => 10) r;
DELETE FROM ft_quotas WHERE owner_id = current_user;
-- One transaction: the worker of this instance sees the job only at commit, so it cannot end it
-- (it has no key for this provider) before the second call looks for a job in progress.
BEGIN;
SELECT r ->> 'action' AS action, r ->> 'reason' AS reason, r ->> 'new_examples' AS new_examples, r ->> 'job_id' AS job_id
  FROM ft_retrain_if_due(:'ra', min_new_examples => 10) r \gset
SELECT :'action', :'reason', :'new_examples', (SELECT id FROM ft_jobs WHERE avatar_id = :'ra') = :'job_id' AS job_recorded;
SELECT r ->> 'action', r ->> 'reason' FROM ft_retrain_if_due(:'ra', min_new_examples => 10) r;
COMMIT;
SELECT pg_temp.try($$SELECT ft_retrain_if_due('00000000-0000-0000-0000-000000000000')$$);
