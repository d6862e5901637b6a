-- Analyst views (ft_avatar_metrics, ft_job_summary, ft_training_curve, ft_pattern_stats,
-- ft_eligibility, ft_retraining) and the SVG charts ft_loss_chart and ft_quality_histogram.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE FUNCTION pg_temp.err(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  msg text;
  hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN SQLSTATE || ': ' || msg || CASE WHEN hint <> '' THEN E'\nHINT: ' || hint ELSE '' END;
END
$$;

-- Two avatars of one tenant with fixed ids (chart titles show the job id), one with enough data.
INSERT INTO ft_avatars (id, owner_id, name, settings) VALUES
  ('a0a0a0a0-0000-4000-8000-000000000001', 'analytics-owner', 'analytics <shop> & co', '{"min_examples": 4, "quality_threshold": 0.5}'),
  ('a0a0a0a0-0000-4000-8000-000000000002', 'analytics-owner', 'analytics empty', '{}');
\set av 'a0a0a0a0-0000-4000-8000-000000000001'
\set empty 'a0a0a0a0-0000-4000-8000-000000000002'
SELECT count(ft_add_example(:'av', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Do you have size ' || i || ' in stock?'),
         jsonb_build_object('role', 'assistant', 'content',
           CASE WHEN i % 3 = 0 THEN 'No.'
                ELSE 'Yes, size ' || i || ' is in stock. I am happy to help: would you like me to reserve a pair for you?' END)),
         verified => i <= 2))
  FROM generate_series(1, 14) i;

SELECT name, examples, verified_examples, included_examples, round(mean_quality::numeric, 3) AS mean_quality,
       tokens, min_examples, eligible, eligibility_reason, estimated_cost, served_model, last_job_status
  FROM ft_avatar_metrics WHERE owner_id = 'analytics-owner' ORDER BY name;
-- The cost is tokens x 3 epochs x the model's price per million tokens.
SELECT estimated_cost = round(tokens * 3 * 3.00 / 1000000, 4) AS cost_formula
  FROM ft_avatar_metrics WHERE avatar_id = :'av';

-- Jobs with fixed ids and times: one succeeded with 20 steps of metrics, one failed, one cancelled.
INSERT INTO ft_jobs (id, avatar_id, provider, model, status, trained_tokens, estimated_cost,
                     created_at, started_at, finished_at, fine_tuned_model) VALUES
  ('10b00000-0000-4000-8000-000000000001', :'av', 'openai', 'gpt-4o-mini-2024-07-18', 'succeeded', 1000000, 2.5,
   '2025-01-01 10:00+00', '2025-01-01 10:05+00', '2025-01-01 11:05+00', 'ft:gpt-4o-mini-2024-07-18:shop::one'),
  ('10b00000-0000-4000-8000-000000000002', :'av', 'openai', 'gpt-4o-mini-2024-07-18', 'failed', NULL, 2.5,
   '2025-01-10 10:00+00', NULL, '2025-01-10 10:02+00', NULL),
  ('10b00000-0000-4000-8000-000000000003', :'av', 'openai', 'gpt-4o-mini-2024-07-18', 'cancelled', NULL, 2.5,
   '2025-01-20 10:00+00', NULL, '2025-01-20 10:01+00', NULL),
  ('10b00000-0000-4000-8000-000000000004', :'av', 'openai', 'gpt-4o-mini-2024-07-18', 'succeeded', 500000, 1.0,
   '2025-01-31 10:00+00', '2025-01-31 10:10+00', '2025-01-31 10:40+00', 'ft:gpt-4o-mini-2024-07-18:shop::two');
\set job1 '10b00000-0000-4000-8000-000000000001'
\set job4 '10b00000-0000-4000-8000-000000000004'
INSERT INTO ft_job_metrics (job_id, avatar_id, step, train_loss, train_accuracy, valid_loss, valid_accuracy,
                            full_valid_loss, source)
SELECT :'job1', :'av', s, round((2.5 * exp(-s / 6.0) + 0.3)::numeric, 4), round((0.5 + s / 50.0)::numeric, 3),
       CASE WHEN s % 5 = 0 THEN round((2.4 * exp(-s / 7.0) + 0.45)::numeric, 4) END,
       CASE WHEN s % 5 = 0 THEN round((0.45 + s / 50.0)::numeric, 3) END,
       CASE WHEN s = 20 THEN 0.52 END, 'result_file'
  FROM generate_series(1, 20) s;
INSERT INTO ft_job_metrics (job_id, avatar_id, step, train_loss, valid_loss, source) VALUES
  (:'job4', :'av', 1, 1.2, 1.3, 'event'), (:'job4', :'av', 2, 0.9, NULL, 'event'), (:'job4', :'av', 3, 0.7, 0.8, 'event');

SELECT job_id, status, duration, training_duration, trained_tokens, cost, steps, final_train_loss, final_valid_loss,
       final_full_valid_loss, min_valid_loss, final_train_accuracy, avatar_jobs, avatar_succeeded, avatar_failed,
       avatar_cancelled, avatar_live, round(avatar_success_rate::numeric, 3) AS avatar_success_rate
  FROM ft_job_summary WHERE avatar_id = :'av' ORDER BY created_at;

SELECT step, train_loss, round(train_loss_smoothed::numeric, 4) AS smoothed, valid_loss, full_valid_loss, train_accuracy
  FROM ft_training_curve WHERE job_id = :'job1' AND (step <= 3 OR step % 5 = 0) ORDER BY step;

SELECT name, jobs, succeeded_jobs, first_job_at, last_job_at, last_success_at, models_activated,
       mean_days_between_trainings, days_since_last_success > 0 AS has_days, examples_since_last_success
  FROM ft_retraining WHERE owner_id = 'analytics-owner' ORDER BY name;
SELECT name, last_job_status FROM ft_avatar_metrics WHERE avatar_id = :'av';

-- Eligibility: per tenant and over everything visible (the row with owner_id NULL).
SELECT owner_id, avatars, eligible_avatars, share_eligible, median_included_examples, examples_missing
  FROM ft_eligibility WHERE owner_id = 'analytics-owner';
SELECT e.avatars = (SELECT count(*) FROM ft_avatars) AS total_counts_all,
       e.eligible_avatars = (SELECT count(*) FROM ft_avatar_metrics WHERE eligible) AS total_eligible
  FROM ft_eligibility e WHERE e.owner_id IS NULL;

-- Pattern statistics.
INSERT INTO ft_patterns (owner_id, name, category, successes, failures, usage_count) VALUES
  ('analytics-owner', 'analytics a', 'checkout', 85, 15, 120),
  ('analytics-owner', 'analytics b', 'checkout', 2, 0, 2),
  ('analytics-owner', 'analytics c', 'search', 0, 0, 0);
SELECT name, category, shared, usage_count, outcomes, round(success_rate::numeric, 3) AS rate,
       round(wilson_lower::numeric, 4) AS lower, round(wilson_upper::numeric, 4) AS upper, rank_in_category
  FROM ft_pattern_stats WHERE owner_id = 'analytics-owner' ORDER BY category, rank_in_category;

-- Every view is security_invoker, registered for ft_grant_app_role, and documented column by column.
SELECT c.relname, c.reloptions, g.privileges
  FROM pg_class c LEFT JOIN ft_internal.app_grants g ON g.relation = c.oid
 WHERE c.relname IN ('ft_avatar_metrics', 'ft_job_summary', 'ft_training_curve', 'ft_pattern_stats', 'ft_eligibility',
                     'ft_retraining', 'ft_model_comparison')
 ORDER BY 1;
SELECT c.relname, a.attname
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relname IN ('ft_avatar_metrics', 'ft_job_summary', 'ft_training_curve', 'ft_pattern_stats', 'ft_eligibility',
                     'ft_retraining')
   AND col_description(c.oid, a.attnum) IS NULL;
SELECT obj_description('ft_job_summary'::regclass, 'pg_class') LIKE '%"ft_job_metrics summary"%' AS summary_named;

---------------------------------------------------------------------------------------------------
-- Charts
---------------------------------------------------------------------------------------------------
-- The small job's chart in full: frame, grid, ticks, axis labels, two lines and a legend.
SELECT ft_loss_chart(:'job4');
-- Well-formed standalone SVG, for the bigger job too.
SELECT ft_loss_chart(:'job1')::xml IS DOCUMENT AS well_formed,
       ft_loss_chart(:'job1') LIKE '<svg xmlns="http://www.w3.org/2000/svg" %' AS has_namespace,
       (SELECT count(*) FROM regexp_matches(ft_loss_chart(:'job1'), '<polyline', 'g')) AS lines,
       (SELECT count(*) FROM regexp_matches(ft_loss_chart(:'job1'), '<circle', 'g')) AS dots,
       (SELECT count(*) FROM regexp_matches(ft_loss_chart(:'job1'), '[0-9.]+,[0-9.]+', 'g')) AS points,
       ft_loss_chart(:'job1') ~ 'training loss.*validation loss.*full validation loss' AS legend;
-- Points stay inside the plot area.
SELECT min(split_part(p[1], ',', 1)::numeric) >= 70 AND max(split_part(p[1], ',', 1)::numeric) <= 780
   AND min(split_part(p[1], ',', 2)::numeric) >= 50 AND max(split_part(p[1], ',', 2)::numeric) <= 390 AS inside
  FROM regexp_matches(substring(ft_loss_chart(:'job1') FROM '<polyline.*'), '([0-9.]+,[0-9.]+)', 'g') p;
-- No metrics: a readable "no data" picture, not an error.
SELECT ft_loss_chart('10b00000-0000-4000-8000-000000000002');
SELECT pg_temp.err('SELECT ft_loss_chart(''00000000-0000-0000-0000-000000000000'')');

-- Quality histogram: title escaped, bars for included and excluded examples, threshold line.
SELECT ft_quality_histogram(:'av')::xml IS DOCUMENT AS well_formed,
       ft_quality_histogram(:'av') LIKE '%Quality scores of analytics &lt;shop&gt; &amp; co%' AS escaped_title,
       (SELECT count(*) FROM regexp_matches(ft_quality_histogram(:'av'), 'fill="#4e79a7"', 'g')) AS included_bars_and_key,
       (SELECT count(*) FROM regexp_matches(ft_quality_histogram(:'av'), 'stroke-dasharray="6 4"', 'g')) AS threshold_lines;
SELECT count(*) FILTER (WHERE NOT excluded) AS included, count(*) FILTER (WHERE excluded) AS excluded
  FROM ft_examples WHERE avatar_id = :'av';
SELECT ft_quality_histogram(:'empty');
SELECT ft_quality_histogram(:'av', 4)::xml IS DOCUMENT AS four_bins;
SELECT pg_temp.err(format('SELECT ft_quality_histogram(%L, 0)', :'av'));

DELETE FROM ft_patterns WHERE owner_id = 'analytics-owner';
DELETE FROM ft_avatars WHERE owner_id = 'analytics-owner';
