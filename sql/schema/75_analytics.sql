-- Views for analysts (every one applies the caller's row-level security) and SVG charts.

-- ===== Views

CREATE VIEW ft_avatar_metrics WITH (security_invoker = true) AS
WITH ex AS (
  SELECT e.avatar_id,
         count(*) AS examples,
         count(*) FILTER (WHERE e.verified) AS verified,
         count(*) FILTER (WHERE NOT e.excluded) AS included,
         avg(e.quality) FILTER (WHERE NOT e.excluded) AS mean_quality,
         sum(e.token_count) FILTER (WHERE NOT e.excluded) AS tokens
    FROM ft_examples e
   GROUP BY e.avatar_id)
SELECT a.id AS avatar_id,
       a.owner_id,
       a.name,
       coalesce(x.examples, 0) AS examples,
       coalesce(x.verified, 0) AS verified_examples,
       coalesce(x.included, 0) AS included_examples,
       x.mean_quality::real AS mean_quality,
       coalesce(x.tokens, 0)::bigint AS tokens,
       n.needed AS min_examples,
       coalesce(x.included, 0) >= n.needed AS eligible,
       CASE WHEN coalesce(x.included, 0) >= n.needed
            THEN format('eligible: %s usable examples, %s needed', coalesce(x.included, 0), n.needed)
            ELSE format('needs %s more usable examples (%s of %s)', n.needed - coalesce(x.included, 0),
                        coalesce(x.included, 0), n.needed) END AS eligibility_reason,
       round(coalesce(x.tokens, 0) * n.epochs * m.training_price_per_million / 1000000, 4) AS estimated_cost,
       a.active_model,
       coalesce(a.active_model, a.base_model) AS served_model,
       j.id AS last_job_id,
       j.status AS last_job_status,
       j.created_at AS last_job_at
  FROM ft_avatars a
  LEFT JOIN ex x ON x.avatar_id = a.id
  LEFT JOIN ft_models m ON m.model = a.base_model
  LEFT JOIN ft_providers p ON p.name = a.provider
  CROSS JOIN LATERAL (
    SELECT greatest(coalesce((a.settings ->> 'min_examples')::integer, 50), coalesce(p.min_examples, 10)) AS needed,
           coalesce((a.settings ->> 'n_epochs')::integer, 3) AS epochs) n
  LEFT JOIN LATERAL (
    SELECT j.id, j.status, j.created_at FROM ft_jobs j
     WHERE j.avatar_id = a.id ORDER BY j.created_at DESC, j.id DESC LIMIT 1) j ON true;
COMMENT ON VIEW ft_avatar_metrics IS
  'One row per avatar: its examples, how many are usable, tokens, whether it can be fine-tuned and why, what training '
  'would cost, the model it serves and its last job.';
COMMENT ON COLUMN ft_avatar_metrics.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_avatar_metrics.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_avatar_metrics.name IS 'Avatar name.';
COMMENT ON COLUMN ft_avatar_metrics.examples IS 'All examples.';
COMMENT ON COLUMN ft_avatar_metrics.verified_examples IS 'Examples a human has verified.';
COMMENT ON COLUMN ft_avatar_metrics.included_examples IS 'Examples not excluded: those a dataset would use.';
COMMENT ON COLUMN ft_avatar_metrics.mean_quality IS 'Mean quality score of the included examples.';
COMMENT ON COLUMN ft_avatar_metrics.tokens IS 'Tokens of the included examples (ft_examples.token_count, base model).';
COMMENT ON COLUMN ft_avatar_metrics.min_examples IS
  'Usable examples needed to fine-tune: avatar setting min_examples (default 50), never below the provider''s minimum.';
COMMENT ON COLUMN ft_avatar_metrics.eligible IS 'included_examples >= min_examples, the check ft_create_job makes.';
COMMENT ON COLUMN ft_avatar_metrics.eligibility_reason IS 'Why the avatar is eligible or not, in words.';
COMMENT ON COLUMN ft_avatar_metrics.estimated_cost IS
  'USD to train on the included examples: tokens x epochs (avatar setting n_epochs, default 3) x the base model''s '
  'training price in ft_models; NULL when the price is unknown.';
COMMENT ON COLUMN ft_avatar_metrics.active_model IS 'Fine-tuned model in use, NULL if none.';
COMMENT ON COLUMN ft_avatar_metrics.served_model IS 'Model chat code calls (ft_chat_model): the active model, else the base model.';
COMMENT ON COLUMN ft_avatar_metrics.last_job_id IS 'Newest job of the avatar.';
COMMENT ON COLUMN ft_avatar_metrics.last_job_status IS 'Status of that job.';
COMMENT ON COLUMN ft_avatar_metrics.last_job_at IS 'When that job was created.';
INSERT INTO ft_internal.app_grants VALUES ('ft_avatar_metrics', 'SELECT');

CREATE VIEW ft_job_summary WITH (security_invoker = true) AS
SELECT j.id AS job_id,
       j.avatar_id,
       j.owner_id,
       j.provider,
       j.model,
       j.method,
       j.status,
       j.fine_tuned_model,
       j.created_at,
       j.started_at,
       j.finished_at,
       coalesce(j.finished_at, now()) - j.created_at AS duration,
       j.finished_at - j.started_at AS training_duration,
       j.trained_tokens,
       j.estimated_cost,
       round(j.trained_tokens * m.training_price_per_million / 1000000, 4) AS cost,
       s.steps,
       s.final_train_loss,
       s.final_valid_loss,
       s.final_full_valid_loss,
       s.min_valid_loss,
       s.final_train_accuracy,
       count(*) OVER w AS avatar_jobs,
       count(*) FILTER (WHERE j.status = 'succeeded') OVER w AS avatar_succeeded,
       count(*) FILTER (WHERE j.status = 'failed') OVER w AS avatar_failed,
       count(*) FILTER (WHERE j.status = 'cancelled') OVER w AS avatar_cancelled,
       count(*) FILTER (WHERE j.status NOT IN ('succeeded', 'failed', 'cancelled')) OVER w AS avatar_live,
       (count(*) FILTER (WHERE j.status = 'succeeded') OVER w)::float8
         / nullif(count(*) FILTER (WHERE j.status IN ('succeeded', 'failed')) OVER w, 0) AS avatar_success_rate
  FROM ft_jobs j
  LEFT JOIN ft_models m ON m.model = j.model
  LEFT JOIN LATERAL (
    SELECT count(*) AS steps,
           (SELECT x.train_loss FROM ft_job_metrics x WHERE x.avatar_id = j.avatar_id AND x.job_id = j.id
               AND x.train_loss IS NOT NULL ORDER BY x.step DESC LIMIT 1) AS final_train_loss,
           (SELECT x.valid_loss FROM ft_job_metrics x WHERE x.avatar_id = j.avatar_id AND x.job_id = j.id
               AND x.valid_loss IS NOT NULL ORDER BY x.step DESC LIMIT 1) AS final_valid_loss,
           (SELECT x.full_valid_loss FROM ft_job_metrics x WHERE x.avatar_id = j.avatar_id AND x.job_id = j.id
               AND x.full_valid_loss IS NOT NULL ORDER BY x.step DESC LIMIT 1) AS final_full_valid_loss,
           min(mt.valid_loss) AS min_valid_loss,
           (SELECT x.train_accuracy FROM ft_job_metrics x WHERE x.avatar_id = j.avatar_id AND x.job_id = j.id
               AND x.train_accuracy IS NOT NULL ORDER BY x.step DESC LIMIT 1) AS final_train_accuracy
      FROM ft_job_metrics mt WHERE mt.avatar_id = j.avatar_id AND mt.job_id = j.id) s ON true
WINDOW w AS (PARTITION BY j.avatar_id);
COMMENT ON VIEW ft_job_summary IS
  'The per-job summary the issue calls the "ft_job_metrics summary" (ft_job_metrics is the per-step table): for each '
  'job its duration, trained tokens, cost and final losses, and for its avatar the counts of jobs by status and the '
  'success rate. Per-step values are in ft_training_curve.';
COMMENT ON COLUMN ft_job_summary.job_id IS 'Job.';
COMMENT ON COLUMN ft_job_summary.avatar_id IS 'Avatar of the job.';
COMMENT ON COLUMN ft_job_summary.owner_id IS 'Tenant owning the job.';
COMMENT ON COLUMN ft_job_summary.provider IS 'Provider the job ran on.';
COMMENT ON COLUMN ft_job_summary.model IS 'Base model fine-tuned.';
COMMENT ON COLUMN ft_job_summary.method IS 'supervised or dpo.';
COMMENT ON COLUMN ft_job_summary.status IS 'Job status.';
COMMENT ON COLUMN ft_job_summary.fine_tuned_model IS 'Model produced, if any.';
COMMENT ON COLUMN ft_job_summary.created_at IS 'When the job was created.';
COMMENT ON COLUMN ft_job_summary.started_at IS 'When the provider accepted it.';
COMMENT ON COLUMN ft_job_summary.finished_at IS 'When it reached a terminal state.';
COMMENT ON COLUMN ft_job_summary.duration IS 'From creation to the end (to now for a live job).';
COMMENT ON COLUMN ft_job_summary.training_duration IS 'From acceptance by the provider to the end; NULL until both are known.';
COMMENT ON COLUMN ft_job_summary.trained_tokens IS 'Billable tokens the provider reported.';
COMMENT ON COLUMN ft_job_summary.estimated_cost IS 'Cost estimated when the job was created (USD).';
COMMENT ON COLUMN ft_job_summary.cost IS 'trained_tokens x the model''s training price in ft_models (USD); NULL when either is unknown.';
COMMENT ON COLUMN ft_job_summary.steps IS 'Steps with metrics.';
COMMENT ON COLUMN ft_job_summary.final_train_loss IS 'Training loss at the last step that has one.';
COMMENT ON COLUMN ft_job_summary.final_valid_loss IS 'Validation loss at the last step that has one.';
COMMENT ON COLUMN ft_job_summary.final_full_valid_loss IS 'Loss over the whole validation file, last measured.';
COMMENT ON COLUMN ft_job_summary.min_valid_loss IS 'Lowest validation loss of any step (a later rise hints at over-fitting).';
COMMENT ON COLUMN ft_job_summary.final_train_accuracy IS 'Training mean token accuracy at the last step that has one.';
COMMENT ON COLUMN ft_job_summary.avatar_jobs IS 'Jobs of the same avatar (visible to the caller).';
COMMENT ON COLUMN ft_job_summary.avatar_succeeded IS 'Of those, succeeded.';
COMMENT ON COLUMN ft_job_summary.avatar_failed IS 'Of those, failed.';
COMMENT ON COLUMN ft_job_summary.avatar_cancelled IS 'Of those, cancelled.';
COMMENT ON COLUMN ft_job_summary.avatar_live IS 'Of those, not finished.';
COMMENT ON COLUMN ft_job_summary.avatar_success_rate IS 'succeeded / (succeeded + failed) for the avatar; cancelled jobs do not count.';
INSERT INTO ft_internal.app_grants VALUES ('ft_job_summary', 'SELECT');

CREATE VIEW ft_training_curve WITH (security_invoker = true) AS
SELECT m.job_id,
       m.avatar_id,
       m.owner_id,
       m.step,
       m.train_loss,
       avg(m.train_loss) OVER (PARTITION BY m.avatar_id, m.job_id ORDER BY m.step ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
         AS train_loss_smoothed,
       m.valid_loss,
       m.full_valid_loss,
       m.train_accuracy,
       m.valid_accuracy,
       m.full_valid_accuracy,
       m.source
  FROM ft_job_metrics m;
COMMENT ON VIEW ft_training_curve IS 'Training and validation metrics of each job step by step (ORDER BY job_id, step), with a smoothed training loss.';
COMMENT ON COLUMN ft_training_curve.job_id IS 'Job.';
COMMENT ON COLUMN ft_training_curve.avatar_id IS 'Avatar of the job.';
COMMENT ON COLUMN ft_training_curve.owner_id IS 'Tenant owning the job.';
COMMENT ON COLUMN ft_training_curve.step IS 'Training step.';
COMMENT ON COLUMN ft_training_curve.train_loss IS 'Training loss at the step.';
COMMENT ON COLUMN ft_training_curve.train_loss_smoothed IS 'Mean training loss of this step and the 9 before it.';
COMMENT ON COLUMN ft_training_curve.valid_loss IS 'Validation loss at the step, when evaluated.';
COMMENT ON COLUMN ft_training_curve.full_valid_loss IS 'Loss over the whole validation file, when measured.';
COMMENT ON COLUMN ft_training_curve.train_accuracy IS 'Training mean token accuracy.';
COMMENT ON COLUMN ft_training_curve.valid_accuracy IS 'Validation mean token accuracy.';
COMMENT ON COLUMN ft_training_curve.full_valid_accuracy IS 'Mean token accuracy over the whole validation file.';
COMMENT ON COLUMN ft_training_curve.source IS 'event (live) or result_file (final CSV).';
INSERT INTO ft_internal.app_grants VALUES ('ft_training_curve', 'SELECT');

CREATE VIEW ft_pattern_stats WITH (security_invoker = true) AS
SELECT p.id AS pattern_id,
       p.owner_id,
       p.owner_id IS NULL AS shared,
       p.name,
       p.category,
       p.store_type,
       p.usage_count,
       p.successes,
       p.failures,
       p.successes + p.failures AS outcomes,
       p.successes::float8 / nullif(p.successes + p.failures, 0) AS success_rate,
       w.lower AS wilson_lower,
       w.upper AS wilson_upper,
       rank() OVER (PARTITION BY p.category ORDER BY w.lower DESC) AS rank_in_category,
       p.last_used_at,
       p.created_at
  FROM ft_patterns p
  CROSS JOIN LATERAL ft_wilson_interval(p.successes, p.successes + p.failures) w;
COMMENT ON VIEW ft_pattern_stats IS
  'Track record of every visible pattern (own and shared): uses, outcomes, success rate with its 95% Wilson interval, '
  'and its rank within its category by the interval''s lower bound.';
COMMENT ON COLUMN ft_pattern_stats.pattern_id IS 'Pattern.';
COMMENT ON COLUMN ft_pattern_stats.owner_id IS 'Tenant owning it; NULL when shared.';
COMMENT ON COLUMN ft_pattern_stats.shared IS 'True for patterns shared with every tenant.';
COMMENT ON COLUMN ft_pattern_stats.name IS 'Pattern name.';
COMMENT ON COLUMN ft_pattern_stats.category IS 'Category (NULL: any).';
COMMENT ON COLUMN ft_pattern_stats.store_type IS 'Store type (NULL: any).';
COMMENT ON COLUMN ft_pattern_stats.usage_count IS 'Times used.';
COMMENT ON COLUMN ft_pattern_stats.successes IS 'Recorded successes.';
COMMENT ON COLUMN ft_pattern_stats.failures IS 'Recorded failures.';
COMMENT ON COLUMN ft_pattern_stats.outcomes IS 'successes + failures.';
COMMENT ON COLUMN ft_pattern_stats.success_rate IS 'successes / outcomes; NULL without outcomes.';
COMMENT ON COLUMN ft_pattern_stats.wilson_lower IS 'Lower bound of the 95% Wilson interval (0 without outcomes).';
COMMENT ON COLUMN ft_pattern_stats.wilson_upper IS 'Upper bound of the 95% Wilson interval (1 without outcomes).';
COMMENT ON COLUMN ft_pattern_stats.rank_in_category IS 'Rank within the category by wilson_lower, 1 = best.';
COMMENT ON COLUMN ft_pattern_stats.last_used_at IS 'When it was last used.';
COMMENT ON COLUMN ft_pattern_stats.created_at IS 'When it was created.';
INSERT INTO ft_internal.app_grants VALUES ('ft_pattern_stats', 'SELECT');

CREATE VIEW ft_eligibility WITH (security_invoker = true) AS
SELECT m.owner_id,
       count(*) AS avatars,
       count(*) FILTER (WHERE m.eligible) AS eligible_avatars,
       round(count(*) FILTER (WHERE m.eligible)::numeric / count(*), 4) AS share_eligible,
       percentile_disc(0.5) WITHIN GROUP (ORDER BY m.included_examples) AS median_included_examples,
       coalesce(sum(m.min_examples - m.included_examples) FILTER (WHERE NOT m.eligible), 0) AS examples_missing
  FROM ft_avatar_metrics m
 GROUP BY GROUPING SETS ((m.owner_id), ());
COMMENT ON VIEW ft_eligibility IS
  'Share of avatars with enough usable examples to be fine-tuned, per tenant, plus one row with owner_id NULL over '
  'every avatar the caller can see.';
COMMENT ON COLUMN ft_eligibility.owner_id IS 'Tenant; NULL on the total row.';
COMMENT ON COLUMN ft_eligibility.avatars IS 'Avatars.';
COMMENT ON COLUMN ft_eligibility.eligible_avatars IS 'Avatars with enough usable examples (ft_avatar_metrics.eligible).';
COMMENT ON COLUMN ft_eligibility.share_eligible IS 'eligible_avatars / avatars.';
COMMENT ON COLUMN ft_eligibility.median_included_examples IS 'Median number of usable examples per avatar.';
COMMENT ON COLUMN ft_eligibility.examples_missing IS 'Usable examples still needed, summed over the avatars that are not eligible.';
INSERT INTO ft_internal.app_grants VALUES ('ft_eligibility', 'SELECT');

CREATE VIEW ft_retraining WITH (security_invoker = true) AS
SELECT a.id AS avatar_id,
       a.owner_id,
       a.name,
       coalesce(j.jobs, 0) AS jobs,
       coalesce(j.succeeded, 0) AS succeeded_jobs,
       j.first_job_at,
       j.last_job_at,
       j.last_success_at,
       coalesce(v.models, 0) AS models_activated,
       CASE WHEN j.succeeded > 1
            THEN round((extract(epoch FROM j.last_success_at - j.first_success_at) / 86400 / (j.succeeded - 1))::numeric, 2)
       END AS mean_days_between_trainings,
       round((extract(epoch FROM now() - j.last_success_at) / 86400)::numeric, 2) AS days_since_last_success,
       (SELECT count(*) FROM ft_examples e
         WHERE e.avatar_id = a.id AND NOT e.excluded
           AND (j.last_success_created_at IS NULL OR e.created_at > j.last_success_created_at)) AS examples_since_last_success
  FROM ft_avatars a
  LEFT JOIN LATERAL (
    SELECT count(*) AS jobs,
           count(*) FILTER (WHERE x.status = 'succeeded') AS succeeded,
           min(x.created_at) AS first_job_at,
           max(x.created_at) AS last_job_at,
           min(coalesce(x.finished_at, x.created_at)) FILTER (WHERE x.status = 'succeeded') AS first_success_at,
           max(coalesce(x.finished_at, x.created_at)) FILTER (WHERE x.status = 'succeeded') AS last_success_at,
           max(x.created_at) FILTER (WHERE x.status = 'succeeded') AS last_success_created_at
      FROM ft_jobs x WHERE x.avatar_id = a.id) j ON true
  LEFT JOIN LATERAL (
    SELECT count(*) AS models FROM ft_model_versions mv WHERE mv.avatar_id = a.id) v ON true;
COMMENT ON VIEW ft_retraining IS
  'How often each avatar is retrained: jobs, successful trainings, the mean time between them, the time since the '
  'last one and how many usable examples arrived since (a sign that retraining is due).';
COMMENT ON COLUMN ft_retraining.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_retraining.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_retraining.name IS 'Avatar name.';
COMMENT ON COLUMN ft_retraining.jobs IS 'Jobs ever created.';
COMMENT ON COLUMN ft_retraining.succeeded_jobs IS 'Jobs that produced a model.';
COMMENT ON COLUMN ft_retraining.first_job_at IS 'When the first job was created.';
COMMENT ON COLUMN ft_retraining.last_job_at IS 'When the newest job was created.';
COMMENT ON COLUMN ft_retraining.last_success_at IS 'When the newest successful job finished.';
COMMENT ON COLUMN ft_retraining.models_activated IS 'Models activated (ft_model_versions rows), rollbacks included.';
COMMENT ON COLUMN ft_retraining.mean_days_between_trainings IS
  'Mean days between successful trainings: (last - first finish) / (successes - 1); NULL with fewer than two.';
COMMENT ON COLUMN ft_retraining.days_since_last_success IS 'Days since the newest successful job finished.';
COMMENT ON COLUMN ft_retraining.examples_since_last_success IS
  'Usable examples added after the newest successful job was created (all of them when there is none).';
INSERT INTO ft_internal.app_grants VALUES ('ft_retraining', 'SELECT');

-- ===== Charts (SVG)

-- Escapes text for SVG character data and attribute values.
CREATE FUNCTION ft_internal.xml_escape(input text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT replace(replace(replace(replace(replace(coalesce(input, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                         '"', '&quot;'), '''', '&#39;')
$$;

-- "Nice" axis ticks (1, 2 or 5 times a power of ten) covering [lo, hi] with about n ticks.
CREATE FUNCTION ft_internal.nice_ticks(lo double precision, hi double precision, n integer DEFAULT 6)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  raw double precision;
  mag double precision;
  f double precision;
  step double precision;
  t double precision;
  result double precision[] := '{}';
BEGIN
  IF hi <= lo THEN
    hi := lo + 1;
  END IF;
  raw := (hi - lo) / greatest(n - 1, 1);
  mag := power(10, floor(log(raw)));
  f := raw / mag;
  step := mag * CASE WHEN f <= 1 THEN 1 WHEN f <= 2 THEN 2 WHEN f <= 5 THEN 5 ELSE 10 END;
  t := floor(lo / step) * step;
  LOOP
    result := result || round(t::numeric, 10)::float8;
    EXIT WHEN t >= hi - step * 1e-9;
    t := t + step;
  END LOOP;
  RETURN result;
END
$$;

-- A tick label with as many decimals as the tick spacing needs.
CREATE FUNCTION ft_internal.tick_label(v double precision, spacing double precision) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT round(v::numeric, greatest(0, -floor(log(spacing))::integer))::text
$$;

-- The frame shared by every chart: document, background, title.
CREATE FUNCTION ft_internal.svg_open(title text, width integer DEFAULT 800, height integer DEFAULT 450) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" '
                'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">', width, height, width, height)
      || E'\n' || format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', width, height)
      || E'\n' || format('<text x="%s" y="26" text-anchor="middle" font-size="16" fill="#222222">%s</text>',
                         width / 2, ft_internal.xml_escape(title))
$$;

-- A readable chart for empty data instead of an error.
CREATE FUNCTION ft_internal.svg_no_data(title text, message text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT ft_internal.svg_open(title)
      || E'\n<rect x="70" y="50" width="710" height="340" fill="none" stroke="#999999" stroke-dasharray="6 4"/>'
      || E'\n' || format('<text x="425" y="225" text-anchor="middle" font-size="18" fill="#555555">%s</text>',
                         ft_internal.xml_escape(message))
      || E'\n</svg>\n'
$$;

-- Axes, grid lines and tick labels of a plot area; x and y map data to pixels through the same bounds.
CREATE FUNCTION ft_internal.svg_axes(xticks double precision[], yticks double precision[], xlabel text, ylabel text)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  WITH b AS (
    SELECT xticks[1] AS x0, xticks[cardinality(xticks)] AS x1, yticks[1] AS y0, yticks[cardinality(yticks)] AS y1,
           CASE WHEN cardinality(xticks) > 1 THEN xticks[2] - xticks[1] ELSE 1 END AS dx,
           CASE WHEN cardinality(yticks) > 1 THEN yticks[2] - yticks[1] ELSE 1 END AS dy)
  SELECT string_agg(line, E'\n' ORDER BY ord)
    FROM (
      SELECT 1 AS ord, format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e0e0e0"/>',
                              70, round((390 - (t - b.y0) / nullif(b.y1 - b.y0, 0) * 340)::numeric, 1),
                              780, round((390 - (t - b.y0) / nullif(b.y1 - b.y0, 0) * 340)::numeric, 1))
               || format('<text x="64" y="%s" text-anchor="end" fill="#333333">%s</text>',
                         round((394 - (t - b.y0) / nullif(b.y1 - b.y0, 0) * 340)::numeric, 1),
                         ft_internal.tick_label(t, b.dy)) AS line
        FROM b, unnest(yticks) t
      UNION ALL
      SELECT 2, format('<line x1="%s" y1="390" x2="%s" y2="395" stroke="#333333"/>',
                       round((70 + (t - b.x0) / nullif(b.x1 - b.x0, 0) * 710)::numeric, 1),
                       round((70 + (t - b.x0) / nullif(b.x1 - b.x0, 0) * 710)::numeric, 1))
             || format('<text x="%s" y="410" text-anchor="middle" fill="#333333">%s</text>',
                       round((70 + (t - b.x0) / nullif(b.x1 - b.x0, 0) * 710)::numeric, 1), ft_internal.tick_label(t, b.dx))
        FROM b, unnest(xticks) t
      UNION ALL
      SELECT 3, '<line x1="70" y1="390" x2="780" y2="390" stroke="#333333" stroke-width="1.5"/>'
             || '<line x1="70" y1="50" x2="70" y2="390" stroke="#333333" stroke-width="1.5"/>'
             || format('<text x="425" y="436" text-anchor="middle" fill="#222222">%s</text>', ft_internal.xml_escape(xlabel))
             || format('<text x="18" y="220" text-anchor="middle" fill="#222222" transform="rotate(-90 18 220)">%s</text>',
                       ft_internal.xml_escape(ylabel))) s
$$;

CREATE FUNCTION ft_loss_chart(job uuid) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  j ft_jobs;
  title text;
  xt double precision[];
  yt double precision[];
  x0 double precision;
  x1 double precision;
  y0 double precision;
  y1 double precision;
  svg text;
  series record;
  legend_y integer := 64;
BEGIN
  SELECT * INTO j FROM ft_jobs x WHERE x.id = job;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job % does not exist', job
      USING ERRCODE = 'no_data_found', HINT = 'List your jobs with SELECT id, status FROM ft_jobs.';
  END IF;
  title := format('Loss of job %s (%s, %s)', left(job::text, 8), j.model, j.status);
  SELECT min(m.step), max(m.step),
         least(min(m.train_loss), min(m.valid_loss), min(m.full_valid_loss)),
         greatest(max(m.train_loss), max(m.valid_loss), max(m.full_valid_loss))
    INTO x0, x1, y0, y1
    FROM ft_job_metrics m
   WHERE m.avatar_id = j.avatar_id AND m.job_id = job
     AND (m.train_loss IS NOT NULL OR m.valid_loss IS NOT NULL OR m.full_valid_loss IS NOT NULL);
  IF x0 IS NULL THEN
    RETURN ft_internal.svg_no_data(title, 'No loss values recorded for this job yet');
  END IF;
  xt := ft_internal.nice_ticks(x0, x1, 8);
  yt := ft_internal.nice_ticks(least(y0, 0), y1, 6);
  x0 := xt[1]; x1 := xt[cardinality(xt)]; y0 := yt[1]; y1 := yt[cardinality(yt)];
  svg := ft_internal.svg_open(title) || E'\n' || ft_internal.svg_axes(xt, yt, 'step', 'loss');
  FOR series IN
    SELECT s.label, s.colour, s.dots,
           string_agg(round((70 + (m.step - x0) / (x1 - x0) * 710)::numeric, 1) || ','
                      || round((390 - (v.val - y0) / (y1 - y0) * 340)::numeric, 1), ' ' ORDER BY m.step) AS points,
           count(*) AS n
      FROM (VALUES (1, 'training loss', '#1f77b4', false), (2, 'validation loss', '#ff7f0e', false),
                   (3, 'full validation loss', '#2ca02c', true)) s(ord, label, colour, dots)
      JOIN ft_job_metrics m ON m.avatar_id = j.avatar_id AND m.job_id = job
      CROSS JOIN LATERAL (SELECT CASE s.ord WHEN 1 THEN m.train_loss WHEN 2 THEN m.valid_loss ELSE m.full_valid_loss END AS val) v
     WHERE v.val IS NOT NULL
     GROUP BY s.ord, s.label, s.colour, s.dots
     ORDER BY s.ord
  LOOP
    IF series.dots OR series.n = 1 THEN
      svg := svg || E'\n' || (SELECT string_agg(format('<circle cx="%s" cy="%s" r="4" fill="%s"/>', split_part(p, ',', 1),
                                                       split_part(p, ',', 2), series.colour), '')
                                FROM unnest(string_to_array(series.points, ' ')) p);
    ELSE
      svg := svg || E'\n' || format('<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" points="%s"/>',
                                    series.colour, series.points);
    END IF;
    svg := svg || E'\n' || format('<rect x="610" y="%s" width="16" height="4" fill="%s"/><text x="632" y="%s" fill="#222222">%s</text>',
                                  legend_y - 4, series.colour, legend_y, series.label);
    legend_y := legend_y + 18;
  END LOOP;
  RETURN svg || E'\n</svg>\n';
END
$$;
COMMENT ON FUNCTION ft_loss_chart(uuid) IS
  'An SVG picture (800x450, standalone, any browser) of a job''s training loss and validation loss by step, with '
  'full-validation losses as dots, axes, ticks, labels and a legend. A job without metrics gives a "no data" picture. '
  'Save it with: psql -XAt -c "SELECT ft_loss_chart(''<job id>'')" > loss.svg';

CREATE FUNCTION ft_quality_histogram(avatar uuid, bins integer DEFAULT 10) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  a ft_avatars := ft_get_avatar(avatar);
  title text := format('Quality scores of %s', a.name);
  threshold double precision := coalesce((a.settings ->> 'quality_threshold')::float8, 0.8);
  top bigint;
  yt double precision[];
  xt double precision[];
  y1 double precision;
  svg text;
  bar_width double precision;
BEGIN
  IF bins IS NULL OR bins NOT BETWEEN 1 AND 100 THEN
    RAISE EXCEPTION 'bins must be between 1 and 100' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT max(c) INTO top FROM (
    SELECT count(*) AS c FROM ft_examples e
     WHERE e.avatar_id = avatar AND e.quality IS NOT NULL
     GROUP BY least(floor(e.quality * bins), bins - 1)) s;
  IF top IS NULL THEN
    RETURN ft_internal.svg_no_data(title, 'No scored examples yet');
  END IF;
  yt := ft_internal.nice_ticks(0, top, 6);
  y1 := yt[cardinality(yt)];
  xt := ARRAY(SELECT round(g::numeric / 10, 1)::float8 FROM generate_series(0, 10) g);
  bar_width := 710.0 / bins;
  svg := ft_internal.svg_open(title) || E'\n' || ft_internal.svg_axes(xt, yt, 'quality score', 'examples');
  -- one bar per bin: included examples at the bottom, excluded ones stacked above
  svg := svg || coalesce((
    SELECT string_agg(
             format(E'\n<rect x="%s" y="%s" width="%s" height="%s" fill="#4e79a7"/>',
                    round((70 + b * bar_width + 1)::numeric, 1), round((390 - inc / y1 * 340)::numeric, 1),
                    round((bar_width - 2)::numeric, 1), round((inc / y1 * 340)::numeric, 1))
             || CASE WHEN exc > 0 THEN format(E'\n<rect x="%s" y="%s" width="%s" height="%s" fill="#e15759"/>',
                    round((70 + b * bar_width + 1)::numeric, 1), round((390 - (inc + exc) / y1 * 340)::numeric, 1),
                    round((bar_width - 2)::numeric, 1), round((exc / y1 * 340)::numeric, 1)) ELSE '' END, '' ORDER BY b)
      FROM (SELECT least(floor(e.quality * bins), bins - 1) AS b,
                   count(*) FILTER (WHERE NOT e.excluded)::float8 AS inc,
                   count(*) FILTER (WHERE e.excluded)::float8 AS exc
              FROM ft_examples e
             WHERE e.avatar_id = avatar AND e.quality IS NOT NULL
             GROUP BY 1) s), '');
  svg := svg || E'\n' || format('<line x1="%s" y1="50" x2="%s" y2="390" stroke="#333333" stroke-width="1.5" stroke-dasharray="6 4"/>',
                                round((70 + least(greatest(threshold, 0), 1) * 710)::numeric, 1),
                                round((70 + least(greatest(threshold, 0), 1) * 710)::numeric, 1))
      || E'\n<rect x="90" y="60" width="12" height="12" fill="#4e79a7"/><text x="108" y="70" fill="#222222">included</text>'
      || E'\n<rect x="90" y="78" width="12" height="12" fill="#e15759"/><text x="108" y="88" fill="#222222">excluded</text>'
      || E'\n' || format('<text x="108" y="106" fill="#222222">- - quality threshold %s</text>', round(threshold::numeric, 2));
  RETURN svg || E'\n</svg>\n';
END
$$;
COMMENT ON FUNCTION ft_quality_histogram(uuid, integer) IS
  'An SVG histogram (800x450, standalone) of the quality scores of an avatar''s examples in bins over [0, 1] '
  '(default 10), included and excluded examples stacked, with the avatar''s quality threshold as a dashed line. '
  'No scored examples gives a "no data" picture. Save it with: psql -XAt -c "SELECT ft_quality_histogram(''<avatar id>'')" > quality.svg';
