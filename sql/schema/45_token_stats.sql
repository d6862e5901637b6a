-- Stored token counts of examples (kept current on write and on a change of base model),
-- dataset statistics and cost estimates.

CREATE FUNCTION ft_model_encoding(model text) RETURNS text
AS 'MODULE_PATHNAME', 'ft_model_encoding'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION ft_model_encoding(text) IS
  'Encoding (o200k_base or cl100k_base) of a model, resolved as ft_token_count does (an encoding name, '
  'a model in ft_models, then tiktoken''s model-name prefixes); NULL when the model is unknown, instead '
  'of an error.';

CREATE FUNCTION ft_examples_tokens() RETURNS trigger
AS 'MODULE_PATHNAME', 'ft_examples_tokens'
LANGUAGE C;
COMMENT ON FUNCTION ft_examples_tokens() IS
  'Trigger on ft_examples: stores token_count (ft_chat_token_count) and assistant_token_count '
  '(ft_assistant_token_count) for the avatar''s base model. The base model is looked up once per '
  'statement and avatar. When the base model is unknown (ft_model_encoding gives NULL) both counts are '
  'left NULL and the row is written anyway; add the model to ft_models and run ft_recount_tokens.';

-- Fires after ft_examples_check, ft_examples_owner and ft_examples_score (triggers run in name
-- order), so it counts the normalised messages. Writing a count column by hand asks for a recount:
-- the stored counts cannot be set to anything but the truth.
CREATE TRIGGER ft_examples_tokens
  BEFORE INSERT OR UPDATE OF messages, avatar_id, token_count, assistant_token_count ON ft_examples
  FOR EACH ROW EXECUTE FUNCTION ft_examples_tokens();
COMMENT ON TRIGGER ft_examples_tokens ON ft_examples IS
  'Keeps token_count and assistant_token_count current; an UPDATE that sets either column recounts the row.';

CREATE FUNCTION ft_recount_tokens(avatar uuid) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  n integer;
BEGIN
  PERFORM @extschema@.ft_get_avatar(avatar);
  -- Setting the counts fires ft_examples_tokens, not the scoring trigger (UPDATE OF messages, verified).
  UPDATE @extschema@.ft_examples e SET token_count = NULL, assistant_token_count = NULL
   WHERE e.avatar_id = avatar;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION ft_recount_tokens(uuid) IS
  'Recounts the stored tokens of every example of an avatar (after an ft_models change, for example) '
  'and returns how many examples were recounted. A change of the avatar''s base_model does this by itself.';

CREATE FUNCTION ft_avatars_recount_tokens() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  -- Another model with the same encoding gives the same counts: nothing to do.
  IF @extschema@.ft_model_encoding(OLD.base_model) IS DISTINCT FROM @extschema@.ft_model_encoding(NEW.base_model) THEN
    UPDATE @extschema@.ft_examples e SET token_count = NULL, assistant_token_count = NULL
     WHERE e.avatar_id = NEW.id;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION ft_avatars_recount_tokens() IS
  'Trigger on ft_avatars: after a change of base_model to a model of another encoding, recounts the '
  'avatar''s examples in one UPDATE (which does not rescore them).';

CREATE TRIGGER ft_avatars_tokens AFTER UPDATE OF base_model ON ft_avatars
  FOR EACH ROW WHEN (OLD.base_model IS DISTINCT FROM NEW.base_model)
  EXECUTE FUNCTION ft_avatars_recount_tokens();
COMMENT ON TRIGGER ft_avatars_tokens ON ft_avatars IS
  'Recounts the stored token counts of the avatar''s examples when its base model changes encoding.';

-- OpenAI's rule for the default number of epochs, as the cookbook's data-preparation notebook states it.
CREATE FUNCTION ft_default_epochs(examples bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT (CASE
            WHEN examples <= 0 THEN NULL
            WHEN examples * 3 < 100 THEN least(25, 100 / examples)
            WHEN examples * 3 > 25000 THEN greatest(1, 25000 / examples)
            ELSE 3
          END)::integer
$$;
COMMENT ON FUNCTION ft_default_epochs(bigint) IS
  'Default number of epochs for a training file of this many examples (OpenAI cookbook rule): 3, raised '
  'to min(25, 100 / n) when n * 3 < 100 and lowered to max(1, 25000 / n) when n * 3 > 25000 (integer '
  'division); NULL for no examples.';

CREATE FUNCTION ft_dataset_stats(avatar uuid, model text DEFAULT NULL, max_tokens integer DEFAULT NULL,
                                 epochs integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  av @extschema@.ft_avatars;
  m text;
  enc text;
  use_stored boolean;
  lim integer;
  lim_source text;
  price numeric;
  prompt text;
  inject integer := 0;
  s record;
  n_epochs integer;
  charged bigint;
  trained bigint;
BEGIN
  IF max_tokens IS NOT NULL AND max_tokens <= 0 THEN
    RAISE EXCEPTION 'max_tokens must be positive'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('max_tokens was %s.', max_tokens),
            HINT = 'Leave max_tokens NULL to use the training_token_limit of the model in ft_models.';
  END IF;
  IF ft_dataset_stats.epochs IS NOT NULL AND ft_dataset_stats.epochs < 1 THEN
    RAISE EXCEPTION 'epochs must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('epochs was %s.', ft_dataset_stats.epochs),
            HINT = 'Leave epochs NULL for the default number of epochs.';
  END IF;
  av := @extschema@.ft_get_avatar(avatar);
  m := coalesce(ft_dataset_stats.model, av.base_model);
  enc := @extschema@.ft_model_encoding(m);
  IF enc IS NULL THEN
    RAISE EXCEPTION 'unknown model "%"', m
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = CASE WHEN ft_dataset_stats.model IS NULL
                          THEN format('It is the base model of avatar %s; its tokenizer is not known.', avatar)
                          ELSE 'Its tokenizer is not known.' END,
            HINT = 'Pass model => a model listed in ft_models or an OpenAI model name such as '
                   'gpt-4o-mini-2024-07-18, or add the model to ft_models with its encoding.';
  END IF;
  -- The stored counts are valid for every model of the base model's encoding.
  use_stored := enc = @extschema@.ft_model_encoding(av.base_model);

  SELECT fm.training_token_limit, fm.training_price_per_million INTO lim, price
    FROM @extschema@.ft_models fm WHERE fm.model = m;
  lim_source := CASE WHEN lim IS NOT NULL THEN 'ft_models' END;
  IF max_tokens IS NOT NULL THEN
    lim := max_tokens;
    lim_source := 'argument';
  END IF;

  -- Datasets inject the active prompt into examples without a system message (inject_system_prompt).
  prompt := @extschema@.ft_active_prompt(avatar);
  IF prompt IS NOT NULL THEN
    inject := @extschema@.ft_chat_token_count(jsonb_build_array(jsonb_build_object('role', 'system', 'content', prompt)), m)
            - @extschema@.ft_chat_token_count('[]'::jsonb, m);
  END IF;

  WITH ex AS (
    SELECT jsonb_array_length(e.messages -> 'messages') AS n_messages,
           NOT (e.messages -> 'messages' @> '[{"role": "system"}]') AS no_system,
           NOT (e.messages -> 'messages' @> '[{"role": "user"}]') AS no_user,
           coalesce(CASE WHEN use_stored THEN e.token_count END,
                    @extschema@.ft_chat_token_count(e.messages, m)) AS tokens,
           coalesce(CASE WHEN use_stored THEN e.assistant_token_count END,
                    @extschema@.ft_assistant_token_count(e.messages, m)) AS assistant_tokens
      FROM @extschema@.ft_examples e
     WHERE e.avatar_id = avatar AND NOT e.excluded),
  line AS (
    -- each example as the dataset writes it: with the injected system message
    SELECT x.n_messages + CASE WHEN x.no_system AND prompt IS NOT NULL THEN 1 ELSE 0 END AS n_messages,
           x.no_system, x.no_user,
           x.tokens + CASE WHEN x.no_system THEN inject ELSE 0 END AS tokens,
           x.assistant_tokens
      FROM ex x)
  SELECT count(*) AS n,
         count(*) FILTER (WHERE l.no_system) AS no_system,
         count(*) FILTER (WHERE l.no_user) AS no_user,
         min(l.n_messages) AS m_min, max(l.n_messages) AS m_max, avg(l.n_messages) AS m_avg,
         percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY l.n_messages) AS m_pct,
         min(l.tokens) AS t_min, max(l.tokens) AS t_max, avg(l.tokens) AS t_avg,
         percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY l.tokens) AS t_pct,
         min(l.assistant_tokens) AS a_min, max(l.assistant_tokens) AS a_max, avg(l.assistant_tokens) AS a_avg,
         percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP (ORDER BY l.assistant_tokens) AS a_pct,
         count(*) FILTER (WHERE l.tokens > lim) AS over_limit,
         coalesce(sum(least(l.tokens, coalesce(lim, l.tokens))), 0) AS billing
    INTO s
    FROM line l;

  n_epochs := coalesce(ft_dataset_stats.epochs, @extschema@.ft_default_epochs(s.n));
  charged := coalesce(n_epochs, 0) * s.billing;
  -- The trained_tokens OpenAI reports for finished jobs come out 2 per example per epoch under
  -- the cookbook count (seen on published jobs; not documented by OpenAI), so both are given.
  trained := coalesce(n_epochs, 0) * (s.billing - 2 * s.n);

  RETURN jsonb_build_object(
    'model', m,
    'encoding', enc,
    'counted_from', CASE WHEN use_stored THEN 'stored' ELSE 'recounted' END,
    'examples', s.n,
    'missing_system', s.no_system,
    'missing_system_after_injection', CASE WHEN prompt IS NULL THEN s.no_system ELSE 0 END,
    'system_prompt_injected', prompt IS NOT NULL,
    'injected_system_tokens', CASE WHEN prompt IS NOT NULL THEN inject END,
    'missing_user', s.no_user,
    'messages_per_example', jsonb_build_object(
       'min', s.m_min, 'max', s.m_max, 'mean', trim_scale(round(s.m_avg, 2)),
       'median', s.m_pct[2], 'p10', s.m_pct[1], 'p90', s.m_pct[3]),
    'tokens_per_example', jsonb_build_object(
       'min', s.t_min, 'max', s.t_max, 'mean', trim_scale(round(s.t_avg, 2)),
       'median', s.t_pct[2], 'p10', s.t_pct[1], 'p90', s.t_pct[3]),
    'assistant_tokens_per_example', jsonb_build_object(
       'min', s.a_min, 'max', s.a_max, 'mean', trim_scale(round(s.a_avg, 2)),
       'median', s.a_pct[2], 'p10', s.a_pct[1], 'p90', s.a_pct[3]),
    'token_limit', lim,
    'token_limit_source', lim_source,
    'over_limit', CASE WHEN lim IS NOT NULL THEN s.over_limit END,
    'billing_tokens', s.billing,
    'epochs', n_epochs,
    'epochs_source', CASE WHEN ft_dataset_stats.epochs IS NOT NULL THEN 'argument' ELSE 'default' END,
    'charged_tokens', charged,
    'trained_tokens_estimate', trained,
    'price_per_million', price,
    'price_known', price IS NOT NULL,
    'estimated_cost', trim_scale(round(charged * price / 1000000, 6)),
    'estimated_cost_trained', trim_scale(round(trained * price / 1000000, 6)));
END
$$;
COMMENT ON FUNCTION ft_dataset_stats(uuid, text, integer, integer) IS
  'Statistics and cost estimate of the examples an avatar''s datasets include by default (those not '
  'excluded), as a JSON object: examples; missing_system (raw) and missing_system_after_injection (0 when '
  'the avatar has an active prompt, which datasets inject; injected_system_tokens is what that adds to each '
  'such example); missing_user; messages_per_example, tokens_per_example and assistant_tokens_per_example, '
  'each {min, max, mean, median, p10, p90} (percentiles interpolated like numpy''s), describing the lines as '
  'written, injected system message included; token_limit (max_tokens, else the model''s '
  'training_token_limit; NULL when unknown) and over_limit (examples longer, which OpenAI truncates); '
  'billing_tokens (each example capped at the limit); epochs (the argument, else ft_default_epochs); '
  'charged_tokens = epochs * billing_tokens (OpenAI cookbook estimate) and trained_tokens_estimate = '
  'epochs * (billing_tokens - 2 * examples) (OpenAI''s reported trained_tokens); estimated_cost and '
  'estimated_cost_trained = tokens / 1e6 * price_per_million, NULL with price_known false when ft_models '
  'has no price. model defaults to the avatar''s base model; for another encoding the tokens are counted '
  'on the fly (counted_from recounted), else the stored counts are used. Upper bound: ft_create_job holds '
  'out validation_share of the examples, drops duplicates and (over_limit drop, the default) examples over '
  'the limit. Errors: 22023 for an unknown model, max_tokens <= 0 or epochs < 1; P0002 for an avatar the '
  'caller cannot see.';

CREATE FUNCTION ft_estimate_cost(avatar uuid, model text DEFAULT NULL, epochs integer DEFAULT NULL)
RETURNS TABLE (model text, examples bigint, epochs integer, billing_tokens bigint, charged_tokens bigint,
               price_per_million numeric, estimated_cost numeric, price_known boolean)
LANGUAGE sql STABLE
AS $$
  SELECT s ->> 'model', (s ->> 'examples')::bigint, (s ->> 'epochs')::integer,
         (s ->> 'billing_tokens')::bigint, (s ->> 'charged_tokens')::bigint,
         (s ->> 'price_per_million')::numeric, (s ->> 'estimated_cost')::numeric,
         (s ->> 'price_known')::boolean
    FROM @extschema@.ft_dataset_stats($1, model => $2, epochs => $3) s
$$;
COMMENT ON FUNCTION ft_estimate_cost(uuid, text, integer) IS
  'Training cost estimate of an avatar''s dataset for a model (default: its base model) and a number of '
  'epochs (default: ft_default_epochs of the example count): the cookbook figures of ft_dataset_stats. '
  'estimated_cost is NULL and price_known false when ft_models has no price for the model.';
