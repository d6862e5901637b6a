-- Serving side: chat context within a token budget, context items, conversation turns,
-- optimisation patterns, A/B assignment of models and the feedback that compares them.

-- ===== Statistics helpers

CREATE FUNCTION ft_wilson_interval(successes bigint, trials bigint, z double precision DEFAULT 1.96,
                                   OUT lower double precision, OUT upper double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN trials IS NULL OR trials <= 0 THEN 0::float8
              ELSE greatest(0, (p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)) END,
         CASE WHEN trials IS NULL OR trials <= 0 THEN 1::float8
              ELSE least(1, (p + z * z / (2 * n) + z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)) END
    FROM (SELECT successes::float8 / nullif(trials, 0) AS p, trials::float8 AS n) s
$$;
COMMENT ON FUNCTION ft_wilson_interval(bigint, bigint, double precision) IS
  'Wilson score interval of a success rate (default z = 1.96, 95%): lower and upper bound. With no trials '
  'the interval is [0, 1]. Ranking by the lower bound keeps 2 wins out of 2 (0.34) below 85 out of 100 (0.77).';

-- Two-sided p-value of a standard normal statistic. PostgreSQL 15 has no erf(), so erfc comes from
-- Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), plenty for a 0.05 threshold.
CREATE FUNCTION ft_internal.two_sided_p(z double precision) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
         * exp(-x * x)
    FROM (SELECT abs(z) / sqrt(2.0::float8) AS x) a,
         LATERAL (SELECT 1 / (1 + 0.3275911 * a.x) AS t) b
$$;

-- ===== Conversation turns and context items

CREATE TABLE ft_conversation_turns (
  id              uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id       uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id        text        NOT NULL DEFAULT ft_current_owner(),
  conversation_id text        NOT NULL CHECK (conversation_id <> ''),
  seq             bigint      GENERATED ALWAYS AS IDENTITY,
  role            text        NOT NULL CHECK (role IN ('user', 'assistant')),
  content         text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, id)
);
CREATE INDEX ft_conversation_turns_conv_idx ON ft_conversation_turns (avatar_id, conversation_id, seq);
CREATE INDEX ft_conversation_turns_created_idx ON ft_conversation_turns (avatar_id, created_at);
COMMENT ON TABLE ft_conversation_turns IS
  'Turns of live conversations, written by the app (INSERT or ft_add_turn). ft_chat_context takes the '
  'recent history of a conversation from here; ft_prune_context deletes turns past the retention.';
COMMENT ON COLUMN ft_conversation_turns.id IS 'Turn id.';
COMMENT ON COLUMN ft_conversation_turns.avatar_id IS 'Avatar that took part in the conversation.';
COMMENT ON COLUMN ft_conversation_turns.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_conversation_turns.conversation_id IS 'The app''s conversation id.';
COMMENT ON COLUMN ft_conversation_turns.seq IS 'Arrival order; turns are replayed in this order.';
COMMENT ON COLUMN ft_conversation_turns.role IS 'user or assistant.';
COMMENT ON COLUMN ft_conversation_turns.content IS 'Text of the turn.';
COMMENT ON COLUMN ft_conversation_turns.created_at IS 'When the turn was stored.';
CREATE TRIGGER ft_conversation_turns_owner BEFORE INSERT OR UPDATE ON ft_conversation_turns
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_conversation_turns', 'SELECT, INSERT, UPDATE, DELETE');

CREATE FUNCTION ft_add_turn(avatar uuid, conversation_id text, role text, content text) RETURNS uuid
LANGUAGE sql
AS $$
  INSERT INTO ft_conversation_turns (avatar_id, conversation_id, role, content)
  VALUES (avatar, conversation_id, role, content)
  RETURNING id
$$;
COMMENT ON FUNCTION ft_add_turn(uuid, text, text, text) IS
  'Stores one turn (role user or assistant) of a live conversation and returns its id.';

CREATE TABLE ft_context_items (
  id         uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id  uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id   text        NOT NULL DEFAULT ft_current_owner(),
  subject    text,
  kind       text        NOT NULL CHECK (kind IN ('profile', 'store', 'conversation', 'optimization', 'issue')),
  data       jsonb       NOT NULL,
  outcome    text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, id)
);
CREATE INDEX ft_context_items_kind_idx ON ft_context_items (avatar_id, kind, created_at DESC, id);
COMMENT ON TABLE ft_context_items IS
  'Facts an avatar should know when it answers: profile and store facts, summaries of earlier conversations, '
  'optimisation actions taken (with their outcome) and issues (open while outcome is NULL). ft_chat_context '
  'renders them as a context block; ft_prune_context enforces limits per kind and retention.';
COMMENT ON COLUMN ft_context_items.id IS 'Item id.';
COMMENT ON COLUMN ft_context_items.avatar_id IS 'Avatar the item is context for.';
COMMENT ON COLUMN ft_context_items.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_context_items.subject IS
  'Store, user or other subject the item is about; NULL for items that apply to every conversation of the avatar.';
COMMENT ON COLUMN ft_context_items.kind IS 'profile, store, conversation (summary of an earlier conversation), optimization or issue.';
COMMENT ON COLUMN ft_context_items.data IS
  'The fact: a JSON string, an object with a "text" or "summary" string (used as is), or any JSON (rendered compactly).';
COMMENT ON COLUMN ft_context_items.outcome IS
  'Outcome of an optimisation ("conversion +12%"); for an issue, its resolution (NULL while the issue is open).';
COMMENT ON COLUMN ft_context_items.created_at IS 'When the item was recorded; newer items are preferred.';
CREATE TRIGGER ft_context_items_owner BEFORE INSERT OR UPDATE ON ft_context_items
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_context_items', 'SELECT, INSERT, UPDATE, DELETE');

-- The limit of one kind from the avatar settings, checked (NULL: unlimited).
CREATE FUNCTION ft_internal.context_limit(settings jsonb, kind text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  v jsonb := ('{"conversation": 10, "optimization": 50}'::jsonb || coalesce(settings -> 'context_limits', '{}')) -> kind;
BEGIN
  IF v IS NULL OR v = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'number' OR v::text::numeric < 0 OR v::text::numeric <> trunc(v::text::numeric) THEN
    RAISE EXCEPTION 'avatar setting context_limits.% must be a non-negative integer', kind
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN v::text::integer;
END
$$;

CREATE FUNCTION ft_prune_context(avatar uuid DEFAULT NULL)
RETURNS TABLE (kind text, reason text, deleted bigint)
LANGUAGE plpgsql
AS $$
DECLARE
  aged text[];
  over text[];
  turns bigint;
BEGIN
  -- Retention: only what describes the past ages out; profile and store facts and open issues stay.
  WITH cfg AS (
    SELECT a.id, coalesce((a.settings ->> 'context_retention_days')::numeric, 30) AS days
      FROM ft_avatars a WHERE ft_prune_context.avatar IS NULL OR a.id = ft_prune_context.avatar),
  gone AS (
    DELETE FROM ft_context_items c USING cfg
     WHERE c.avatar_id = cfg.id
       AND (c.kind IN ('conversation', 'optimization') OR (c.kind = 'issue' AND c.outcome IS NOT NULL))
       AND c.created_at < now() - cfg.days * interval '1 day'
    RETURNING c.kind)
  SELECT coalesce(array_agg(g.kind), '{}') INTO aged FROM gone g;
  -- Limits: the newest rows of each avatar, subject and kind are kept.
  WITH ranked AS (
    SELECT c.avatar_id, c.id, c.kind, ft_internal.context_limit(a.settings, c.kind) AS lim,
           row_number() OVER (PARTITION BY c.avatar_id, c.subject, c.kind ORDER BY c.created_at DESC, c.id DESC) AS rn
      FROM ft_context_items c JOIN ft_avatars a ON a.id = c.avatar_id
     WHERE ft_prune_context.avatar IS NULL OR c.avatar_id = ft_prune_context.avatar),
  gone AS (
    DELETE FROM ft_context_items c USING ranked r
     WHERE c.avatar_id = r.avatar_id AND c.id = r.id AND r.rn > r.lim
    RETURNING c.kind)
  SELECT coalesce(array_agg(g.kind), '{}') INTO over FROM gone g;
  WITH cfg AS (
    SELECT a.id, coalesce((a.settings ->> 'context_retention_days')::numeric, 30) AS days
      FROM ft_avatars a WHERE ft_prune_context.avatar IS NULL OR a.id = ft_prune_context.avatar),
  gone AS (
    DELETE FROM ft_conversation_turns t USING cfg
     WHERE t.avatar_id = cfg.id AND t.created_at < now() - cfg.days * interval '1 day'
    RETURNING 1)
  SELECT count(*) INTO turns FROM gone;
  RETURN QUERY
    SELECT x.kind, x.reason, count(*)
      FROM (SELECT unnest(aged) AS kind, 'retention' AS reason
            UNION ALL SELECT unnest(over), 'limit'
            UNION ALL SELECT 'turn', 'retention' FROM generate_series(1, turns)) x
     GROUP BY 1, 2 ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION ft_prune_context(uuid) IS
  'Deletes context the avatars no longer need (all visible avatars, or one) and returns how many rows went, per kind '
  'and reason. Retention (avatar setting context_retention_days, default 30): conversation and optimization items, '
  'resolved issues and ft_conversation_turns older than that. Limits (avatar setting context_limits, default '
  '{"conversation": 10, "optimization": 50}, any kind may be given): only the newest rows per avatar, subject and '
  'kind are kept. Meant to be called by a schedule, e.g. SELECT cron.schedule(''0 3 * * *'', ''SELECT ft_prune_context()'').';

-- ===== Chat context

-- One candidate part of a chat context: a context item line, a few-shot example or a history turn.
CREATE TYPE ft_internal.context_part AS (
  part      text,     -- context_item, example or history_turn
  id        text,
  kind      text,     -- item kind, pattern type of the example, or role of the turn
  drop_rank integer,  -- parts with lower ranks are left out first
  tokens    integer,  -- estimated tokens the part adds
  content   jsonb,    -- the rendered line (a JSON string) or the messages of the part
  keep      boolean
);

-- Checks the options of ft_chat_context and fills in the defaults.
CREATE FUNCTION ft_internal.chat_context_options(options jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  valid_keys text[] := ARRAY['budget', 'reply_tokens', 'max_examples', 'max_history_turns', 'keep_recent_turns',
                             'context_per_kind', 'subject', 'model'];
  defaults jsonb := '{"reply_tokens": 1024, "max_examples": 3, "max_history_turns": 20, "keep_recent_turns": 2,
                      "context_per_kind": {"profile": 5, "store": 5, "issue": 10, "optimization": 5, "conversation": 3}}';
  bad text;
  k text;
BEGIN
  IF options IS NULL OR jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'options must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT o INTO bad FROM jsonb_object_keys(options) o WHERE o <> ALL (valid_keys) ORDER BY 1 LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'unknown chat context option "%"', bad
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Valid options are: ' || array_to_string(valid_keys, ', ') || '.';
  END IF;
  FOREACH k IN ARRAY ARRAY['budget', 'reply_tokens', 'max_examples', 'max_history_turns', 'keep_recent_turns'] LOOP
    IF options ? k AND (jsonb_typeof(options -> k) <> 'number' OR (options ->> k)::numeric < 0
                        OR (options ->> k)::numeric <> trunc((options ->> k)::numeric)
                        OR (options ->> k)::numeric > 100000000) THEN
      RAISE EXCEPTION 'option "%" must be a non-negative integer', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  IF options ? 'context_per_kind' AND (jsonb_typeof(options -> 'context_per_kind') <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_each(options -> 'context_per_kind') e
                   WHERE e.key NOT IN ('profile', 'store', 'conversation', 'optimization', 'issue')
                      OR jsonb_typeof(e.value) <> 'number' OR e.value::text::numeric < 0)) THEN
    RAISE EXCEPTION 'option "context_per_kind" must map kinds (profile, store, conversation, optimization, issue) to counts'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH k IN ARRAY ARRAY['subject', 'model'] LOOP
    IF options ? k AND jsonb_typeof(options -> k) <> 'string' THEN
      RAISE EXCEPTION 'option "%" must be a string', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN defaults || options
         || jsonb_build_object('context_per_kind', (defaults -> 'context_per_kind') || coalesce(options -> 'context_per_kind', '{}'));
END
$$;

-- Distinct lower-case words (3 characters or more) of a text, for the lexical overlap of few-shot selection.
CREATE FUNCTION ft_internal.words(input text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(array_agg(DISTINCT w ORDER BY w), '{}')
    FROM regexp_split_to_table(lower(coalesce(input, '')), '[[:space:][:punct:]]+') w
   WHERE length(w) >= 3
$$;

-- The messages of the kept parts, in the order they are sent.
CREATE FUNCTION ft_internal.assemble_context(system_prompt text, parts ft_internal.context_part[], user_message text)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
  SELECT jsonb_agg(m ORDER BY grp, ord)
    FROM (
      SELECT 1 AS grp, 0::bigint AS ord, jsonb_build_object('role', 'system', 'content', system_prompt) AS m
       WHERE system_prompt IS NOT NULL
      UNION ALL
      SELECT 2, 0, jsonb_build_object('role', 'system', 'content',
                                      'Context:' || E'\n' || string_agg(p.content #>> '{}', E'\n' ORDER BY p.o))
        FROM unnest(parts) WITH ORDINALITY p(part, id, kind, drop_rank, tokens, content, keep, o)
       WHERE p.part = 'context_item' AND p.keep
      HAVING count(*) > 0
      UNION ALL
      SELECT 3, p.o * 1000 + x.o, x.m
        FROM unnest(parts) WITH ORDINALITY p(part, id, kind, drop_rank, tokens, content, keep, o), jsonb_array_elements(p.content) WITH ORDINALITY x(m, o)
       WHERE p.part IN ('example', 'history_turn') AND p.keep
      UNION ALL
      SELECT 4, 0, jsonb_build_object('role', 'user', 'content', user_message)) s
$$;

CREATE FUNCTION ft_chat_context(avatar uuid, user_message text, conversation_id text DEFAULT NULL,
                                options jsonb DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql
AS $$
DECLARE
  a ft_avatars := ft_get_avatar(avatar);
  opt jsonb := ft_internal.chat_context_options(coalesce(options, '{}'));
  served text;
  counting_model text;
  encoding text;
  window_size integer;
  budget integer;
  system_prompt text := ft_active_prompt(avatar);
  fixed_tokens integer;
  parts ft_internal.context_part[] := '{}';
  left_out jsonb := '[]';
  msg_words text[] := ft_internal.words(user_message);
  estimate bigint;
  total integer;
  messages jsonb;
  r record;
  i integer;
  next_drop integer;
  n_turns integer;
  keep_recent integer := (opt ->> 'keep_recent_turns')::integer;
  max_turns integer := (opt ->> 'max_history_turns')::integer;
  skipped bigint;
  history ft_internal.context_part[] := '{}';
  dropped ft_internal.context_part;
BEGIN
  IF user_message IS NULL THEN
    RAISE EXCEPTION 'user_message must not be NULL' USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- The model that will answer: asked for, assigned to the conversation by the A/B test, or the avatar's.
  served := opt ->> 'model';
  IF served IS NULL AND conversation_id IS NOT NULL THEN
    SELECT x.model INTO served FROM ft_ab_assignments x
     WHERE x.avatar_id = avatar AND x.conversation_id = ft_chat_context.conversation_id;
  END IF;
  served := coalesce(served, a.active_model, a.base_model);
  -- Tokens are counted with the served model's encoding; a name the tokenizer does not know (a
  -- provider's fine-tuned name) is counted with the encoding of the avatar's base model.
  counting_model := served;
  BEGIN
    PERFORM ft_token_count('', served);
  EXCEPTION WHEN invalid_parameter_value OR undefined_object THEN
    counting_model := a.base_model;
  END;
  encoding := CASE WHEN ft_tokenize(' context', counting_model) = ft_tokenize(' context', 'cl100k_base')
                   THEN 'cl100k_base' ELSE 'o200k_base' END;
  SELECT coalesce((SELECT m.context_window FROM ft_models m WHERE m.model = served),
                  (SELECT m.context_window FROM ft_models m WHERE m.model = a.base_model),
                  CASE encoding WHEN 'cl100k_base' THEN 16385 ELSE 128000 END)
    INTO window_size;
  budget := coalesce((opt ->> 'budget')::integer, window_size - (opt ->> 'reply_tokens')::integer);

  fixed_tokens := ft_chat_token_count(ft_internal.assemble_context(system_prompt, '{}', user_message), counting_model);
  IF fixed_tokens > budget THEN
    RAISE EXCEPTION 'the system prompt and the user message alone need % tokens, over the budget of %', fixed_tokens, budget
      USING ERRCODE = 'program_limit_exceeded',
            DETAIL = format('Model %s, context window %s, %s tokens kept for the reply.', served, window_size, opt ->> 'reply_tokens'),
            HINT = 'Shorten the message or the system prompt, or pass a larger options.budget or a smaller options.reply_tokens.';
  END IF;

  -- Context items: profile and store facts, open issues, optimisations, earlier conversations.
  FOR r IN
    WITH items AS (
      SELECT c.*, row_number() OVER (PARTITION BY c.kind ORDER BY c.created_at DESC, c.id DESC) AS newest,
             array_position(ARRAY['profile', 'store', 'issue', 'optimization', 'conversation'], c.kind) AS shown,
             array_position(ARRAY['conversation', 'optimization', 'issue', 'store', 'profile'], c.kind) AS worth
        FROM ft_context_items c
       WHERE c.avatar_id = avatar
         AND (c.subject IS NULL OR c.subject = opt ->> 'subject')
         AND (c.kind <> 'issue' OR c.outcome IS NULL))
    SELECT i.*, i.newest > (opt -> 'context_per_kind' ->> i.kind)::integer AS over_limit,
           row_number() OVER (PARTITION BY i.kind ORDER BY i.created_at, i.id) AS age_order,
           '- ' || i.kind || coalesce(' (' || i.subject || ')', '') || ': '
             || CASE WHEN jsonb_typeof(i.data) = 'string' THEN i.data #>> '{}'
                     ELSE coalesce(i.data ->> 'text', i.data ->> 'summary', i.data::text) END
             || coalesce(' -> outcome: ' || i.outcome, '') AS line
      FROM items i
     ORDER BY i.shown, i.created_at, i.id
  LOOP
    IF r.over_limit THEN
      left_out := left_out || jsonb_build_object('part', 'context_item', 'id', r.id, 'kind', r.kind, 'reason', 'kind_limit');
      CONTINUE;
    END IF;
    parts := parts || ROW('context_item', r.id::text, r.kind, 2000000 + r.worth * 100000 + r.age_order::integer,
                          ft_token_count(r.line || E'\n', counting_model), to_jsonb(r.line), true)::ft_internal.context_part;
  END LOOP;

  -- Few-shot examples: relevance (share of the message's words found in the example's user turns)
  -- + 0.5 x quality + 0.1 if verified, minus 0.3 for each better example of the same pattern type.
  FOR r IN
    WITH cand AS (
      SELECT e.id, e.pattern_type, x.msgs,
             (SELECT count(*) FROM unnest(ft_internal.words(x.user_text)) w WHERE w = ANY (msg_words))::float8
               / greatest(cardinality(msg_words), 1)
             + 0.5 * coalesce(e.quality, 0) + CASE WHEN e.verified THEN 0.1 ELSE 0 END AS score
        FROM ft_examples e
        CROSS JOIN LATERAL (
          SELECT string_agg(m ->> 'content', ' ' ORDER BY o) FILTER (WHERE m ->> 'role' = 'user') AS user_text,
                 bool_or(m ->> 'role' = 'assistant') AS has_answer,
                 jsonb_agg(jsonb_build_object('role', 'system', 'name', 'example_' || (m ->> 'role'),
                                              'content', m ->> 'content') ORDER BY o) AS msgs
            FROM jsonb_array_elements(e.messages -> 'messages') WITH ORDINALITY t(m, o)
           WHERE m ->> 'role' IN ('user', 'assistant') AND jsonb_typeof(m -> 'content') = 'string') x
       WHERE e.avatar_id = avatar AND NOT e.excluded AND x.user_text IS NOT NULL AND x.has_answer),
    ranked AS (
      SELECT c.*, c.score - 0.3 * (row_number() OVER (PARTITION BY c.pattern_type ORDER BY c.score DESC, c.id) - 1) AS final
        FROM cand c)
    SELECT k.*, row_number() OVER (ORDER BY k.final DESC, k.id) AS rnk
      FROM ranked k
     ORDER BY k.final DESC, k.id
     LIMIT (opt ->> 'max_examples')::integer
  LOOP
    parts := parts || ROW('example', r.id::text, r.pattern_type, 1000000 + 1000 - r.rnk::integer,
                          ft_chat_token_count(r.msgs, counting_model) - 3, r.msgs, true)::ft_internal.context_part;
  END LOOP;

  -- History: the last turns of the conversation. A newest user turn equal to user_message is the
  -- message being answered, already stored by the app, so it is not repeated.
  IF conversation_id IS NOT NULL THEN
    SELECT count(*) INTO n_turns FROM ft_conversation_turns t
     WHERE t.avatar_id = avatar AND t.conversation_id = ft_chat_context.conversation_id;
    i := 0;
    FOR r IN
      WITH last_turns AS (
        SELECT t.id, t.seq, t.role, t.content, row_number() OVER (ORDER BY t.seq DESC) AS back
          FROM ft_conversation_turns t
         WHERE t.avatar_id = avatar AND t.conversation_id = ft_chat_context.conversation_id
         ORDER BY t.seq DESC
         LIMIT max_turns + 1)
      SELECT l.* FROM last_turns l
       WHERE NOT (l.back = 1 AND l.role = 'user' AND l.content = user_message)
       ORDER BY l.seq DESC
       LIMIT max_turns
    LOOP
      i := i + 1;
      history := ROW('history_turn', r.id::text, r.role,
                     CASE WHEN i <= keep_recent THEN 3000000 ELSE 0 END + 100000 - i,
                     ft_chat_token_count(jsonb_build_array(jsonb_build_object('role', r.role, 'content', r.content)),
                                         counting_model) - 3,
                     jsonb_build_array(jsonb_build_object('role', r.role, 'content', r.content)), true)::ft_internal.context_part
                 || history;
    END LOOP;
    parts := parts || history;
    skipped := n_turns - i - CASE WHEN EXISTS (
        SELECT 1 FROM ft_conversation_turns t
         WHERE t.avatar_id = avatar AND t.conversation_id = ft_chat_context.conversation_id
           AND t.role = 'user' AND t.content = user_message
           AND t.seq = (SELECT max(t2.seq) FROM ft_conversation_turns t2
                         WHERE t2.avatar_id = avatar AND t2.conversation_id = ft_chat_context.conversation_id))
      THEN 1 ELSE 0 END;
    IF skipped > 0 THEN
      left_out := left_out || jsonb_build_object('part', 'history_turn', 'reason', 'history_limit', 'count', skipped);
    END IF;
  END IF;

  -- Leave out the least useful parts until the estimate fits, then until the exact count fits.
  estimate := fixed_tokens + coalesce((SELECT sum(p.tokens) FROM unnest(parts) p), 0);
  IF EXISTS (SELECT 1 FROM unnest(parts) p WHERE p.part = 'context_item') THEN
    estimate := estimate + ft_chat_token_count('[{"role": "system", "content": "Context:"}]', counting_model) - 3;
  END IF;
  LOOP
    IF estimate <= budget THEN
      messages := ft_internal.assemble_context(system_prompt, parts, user_message);
      total := ft_chat_token_count(messages, counting_model);
      EXIT WHEN total <= budget;
    END IF;
    SELECT p.o INTO next_drop FROM unnest(parts) WITH ORDINALITY p(part, id, kind, drop_rank, tokens, content, keep, o) WHERE p.keep ORDER BY p.drop_rank, p.o LIMIT 1;
    IF next_drop IS NULL THEN
      -- cannot happen: without any part the messages are the fixed ones, which fit
      RAISE EXCEPTION 'chat context does not fit its budget' USING ERRCODE = 'internal_error';
    END IF;
    dropped := parts[next_drop];
    dropped.keep := false;
    parts[next_drop] := dropped;
    estimate := estimate - dropped.tokens;
    left_out := left_out || jsonb_build_object('part', dropped.part, 'id', dropped.id, 'kind', dropped.kind,
                                               'reason', 'token_budget', 'tokens', dropped.tokens);
    next_drop := NULL;
  END LOOP;

  RETURN jsonb_build_object('messages', messages, 'tokens', total, 'budget', budget, 'context_window', window_size,
                            'model', served, 'left_out', left_out);
END
$$;
COMMENT ON FUNCTION ft_chat_context(uuid, text, text, jsonb) IS
  'What to send to the model for a user message: {"messages": [...], "tokens": N, "budget": B, "context_window": W, '
  '"model": M, "left_out": [{"part", "id", "kind", "reason", "tokens"}]}. Messages in order: the active system prompt, '
  'a system message "Context:" with one line per context item (profile, store, open issues, optimisations with their '
  'outcome, earlier conversations; newest per kind up to options.context_per_kind), few-shot examples as system '
  'messages named example_user / example_assistant, the last turns of the conversation (ft_conversation_turns), then '
  'the user message. tokens is the exact ft_chat_token_count of messages and never exceeds the budget '
  '(options.budget, default the context window of the model minus options.reply_tokens, default 1024). Parts are left '
  'out least useful first: history turns older than the last keep_recent_turns (oldest first), then few-shot examples '
  '(lowest ranked first), then context items (conversation, optimization, issue, store, profile; oldest first), then '
  'the most recent turns. The system prompt and the user message are never left out: if they alone exceed the budget '
  'the error is 54000. Options: budget, reply_tokens, max_examples (3), max_history_turns (20), keep_recent_turns (2), '
  'context_per_kind, subject (also include context items of this subject), model (default: the model assigned to the '
  'conversation by ft_ab_assign, else ft_chat_model). The same inputs and rows always give the same result.';

-- ===== Optimisation patterns

CREATE TABLE ft_patterns (
  id           uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  owner_id     text        DEFAULT ft_current_owner(),
  name         text        NOT NULL CHECK (btrim(name) <> ''),
  description  text,
  category     text,
  store_type   text,
  conditions   jsonb       NOT NULL DEFAULT '{}',
  solution     jsonb       NOT NULL DEFAULT '{}',
  successes    bigint      NOT NULL DEFAULT 0 CHECK (successes >= 0),
  failures     bigint      NOT NULL DEFAULT 0 CHECK (failures >= 0),
  usage_count  bigint      NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  last_used_at timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ft_patterns_name_idx ON ft_patterns (coalesce(owner_id, ''), name);
CREATE INDEX ft_patterns_lookup_idx ON ft_patterns (category, store_type);
COMMENT ON TABLE ft_patterns IS
  'Optimisation patterns: reusable recipes (solution) with the conditions under which they apply and their track '
  'record. A tenant''s own patterns plus the shared ones (owner_id NULL) are visible; shared ones are written only '
  'by ft_admin. Find the best for a situation with ft_relevant_patterns.';
COMMENT ON COLUMN ft_patterns.id IS 'Pattern id.';
COMMENT ON COLUMN ft_patterns.owner_id IS 'Tenant owning the pattern; NULL: shared with every tenant (ft_admin only).';
COMMENT ON COLUMN ft_patterns.name IS 'Short name, unique per owner.';
COMMENT ON COLUMN ft_patterns.description IS 'What the pattern does and why it works.';
COMMENT ON COLUMN ft_patterns.category IS 'Category of problem it solves; NULL: any category.';
COMMENT ON COLUMN ft_patterns.store_type IS 'Kind of store (or subject) it suits; NULL: any.';
COMMENT ON COLUMN ft_patterns.conditions IS
  'When it applies: a JSON object of fact name (a dotted path into the facts) -> condition. All must hold. A condition '
  'is a value (equal; a string compares with a number fact as a number), a string with an operator ">10", ">=10", '
  '"<5", "<=5" (numbers) or "!=x", "=x", a list (one of its values), a boolean, or {"exists": true|false}. '
  'Checked on write (error 22023 naming the path and the reason); see ft_pattern_condition_problems.';
COMMENT ON COLUMN ft_patterns.solution IS 'The recipe to apply, as JSON for the app.';
COMMENT ON COLUMN ft_patterns.successes IS 'Times it worked (ft_record_pattern_outcome).';
COMMENT ON COLUMN ft_patterns.failures IS 'Times it did not work.';
COMMENT ON COLUMN ft_patterns.usage_count IS 'Times it was used (ft_use_pattern).';
COMMENT ON COLUMN ft_patterns.last_used_at IS 'When it was last used.';
COMMENT ON COLUMN ft_patterns.created_at IS 'When the pattern was created.';
COMMENT ON COLUMN ft_patterns.updated_at IS 'When the row last changed.';

CREATE TRIGGER ft_patterns_touch BEFORE UPDATE ON ft_patterns
  FOR EACH ROW EXECUTE FUNCTION ft_touch_updated_at();

-- Shared rows (owner_id NULL) are read by everyone and written by ft_admin only, so this table has
-- its own policies rather than ft_internal.enable_tenancy's.
REVOKE ALL ON ft_patterns FROM PUBLIC;
ALTER TABLE ft_patterns ENABLE ROW LEVEL SECURITY;
ALTER TABLE ft_patterns FORCE ROW LEVEL SECURITY;
CREATE POLICY own_or_shared_read ON ft_patterns FOR SELECT
  USING (owner_id IS NULL OR owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
CREATE POLICY own_insert ON ft_patterns FOR INSERT
  WITH CHECK (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
CREATE POLICY own_update ON ft_patterns FOR UPDATE
  USING (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()))
  WITH CHECK (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
CREATE POLICY own_delete ON ft_patterns FOR DELETE
  USING (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
INSERT INTO ft_internal.app_grants VALUES ('ft_patterns', 'SELECT, INSERT, UPDATE, DELETE');

-- Splits a condition string into operator and operand ("" when it has no operator).
CREATE FUNCTION ft_internal.condition_operator(cond text, OUT op text, OUT operand text)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT coalesce(m[1], ''), CASE WHEN m IS NULL THEN cond ELSE m[2] END
    FROM (SELECT regexp_match(cond, '^(>=|<=|!=|>|<|=)\s*(.*)$', 's') AS m) s
$$;

CREATE FUNCTION ft_internal.is_number(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT value ~ '^\s*-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'
$$;

CREATE FUNCTION ft_pattern_condition_problems(conditions jsonb)
RETURNS TABLE (path text, reason text)
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  k text;
  v jsonb;
  el jsonb;
  i integer;
  op text;
  operand text;
BEGIN
  IF conditions IS NULL OR jsonb_typeof(conditions) <> 'object' THEN
    path := 'conditions';
    reason := 'conditions must be a JSON object of fact name -> condition';
    RETURN NEXT;
    RETURN;
  END IF;
  FOR k, v IN SELECT e.key, e.value FROM jsonb_each(conditions) e ORDER BY e.key LOOP
    path := 'conditions.' || k;
    IF k = '' OR k LIKE '.%' OR k LIKE '%.' OR k LIKE '%..%' THEN
      reason := 'a fact name must be a non-empty dotted path such as "traffic.daily"';
      RETURN NEXT;
      CONTINUE;
    END IF;
    CASE jsonb_typeof(v)
      WHEN 'string' THEN
        SELECT c.op, c.operand INTO op, operand FROM ft_internal.condition_operator(v #>> '{}') c;
        IF op IN ('>', '>=', '<', '<=') AND NOT ft_internal.is_number(operand) THEN
          reason := format('comparison "%s" needs a number, not "%s"', op, operand);
          RETURN NEXT;
        END IF;
      WHEN 'number', 'boolean' THEN
        NULL;
      WHEN 'null' THEN
        reason := 'null is not a condition; use {"exists": false} for a missing fact';
        RETURN NEXT;
      WHEN 'array' THEN
        IF jsonb_array_length(v) = 0 THEN
          reason := 'a list of allowed values must not be empty';
          RETURN NEXT;
        END IF;
        i := 0;
        FOR el IN SELECT x FROM jsonb_array_elements(v) x LOOP
          IF jsonb_typeof(el) NOT IN ('string', 'number', 'boolean') THEN
            path := format('conditions.%s[%s]', k, i);
            reason := format('a list may only hold strings, numbers and booleans, not %s', jsonb_typeof(el));
            RETURN NEXT;
          END IF;
          i := i + 1;
        END LOOP;
      WHEN 'object' THEN
        IF NOT (v ? 'exists' AND (SELECT count(*) FROM jsonb_object_keys(v)) = 1
                AND jsonb_typeof(v -> 'exists') = 'boolean') THEN
          reason := 'an object condition must be {"exists": true} or {"exists": false}';
          RETURN NEXT;
        END IF;
    END CASE;
  END LOOP;
END
$$;
COMMENT ON FUNCTION ft_pattern_condition_problems(jsonb) IS
  'Every problem of a pattern''s conditions, as rows of path (conditions.<fact>, conditions.<fact>[i]) and reason; '
  'no rows when the conditions are valid. See the comment on ft_patterns.conditions for the language.';

CREATE FUNCTION ft_internal.check_pattern() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  problem record;
BEGIN
  SELECT * INTO problem FROM ft_pattern_condition_problems(NEW.conditions) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'invalid condition in pattern "%"', NEW.name
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('%s: %s.', problem.path, problem.reason),
            HINT = 'A condition is a value, ">10", ">=10", "<5", "<=5", "!=x", "=x", a list of values, a boolean, or {"exists": true|false}.';
  END IF;
  IF jsonb_typeof(NEW.solution) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'the solution of pattern "%" must be a JSON object', NEW.name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ft_patterns_check BEFORE INSERT OR UPDATE OF conditions, solution ON ft_patterns
  FOR EACH ROW EXECUTE FUNCTION ft_internal.check_pattern();

-- Whether a fact equals a condition value; strings and numbers compare as numbers when both can.
CREATE FUNCTION ft_internal.fact_equals(fact jsonb, expected jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE
           WHEN fact IS NULL OR jsonb_typeof(fact) = 'null' THEN false
           WHEN jsonb_typeof(fact) = 'number' AND jsonb_typeof(expected) IN ('number', 'string')
                AND ft_internal.is_number(expected #>> '{}')
             THEN (fact #>> '{}')::numeric = (expected #>> '{}')::numeric
           WHEN jsonb_typeof(expected) = 'string' THEN jsonb_typeof(fact) IN ('string', 'boolean') AND fact #>> '{}' = expected #>> '{}'
           ELSE fact = expected
         END
$$;

CREATE FUNCTION ft_pattern_matches(conditions jsonb, facts jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  k text;
  cond jsonb;
  fact jsonb;
  op text;
  operand text;
  ok boolean;
BEGIN
  FOR k, cond IN SELECT e.key, e.value FROM jsonb_each(coalesce(conditions, '{}')) e LOOP
    fact := coalesce(facts, '{}') #> string_to_array(k, '.');
    IF fact = 'null' THEN
      fact := NULL;
    END IF;
    IF jsonb_typeof(cond) = 'object' THEN
      ok := (fact IS NOT NULL) = (cond -> 'exists')::boolean;
    ELSIF fact IS NULL THEN
      ok := false;
    ELSIF jsonb_typeof(cond) = 'array' THEN
      ok := EXISTS (SELECT 1 FROM jsonb_array_elements(cond) x WHERE ft_internal.fact_equals(fact, x));
    ELSIF jsonb_typeof(cond) = 'string' THEN
      SELECT c.op, c.operand INTO op, operand FROM ft_internal.condition_operator(cond #>> '{}') c;
      IF op IN ('>', '>=', '<', '<=') THEN
        ok := jsonb_typeof(fact) = 'number' AND CASE op
                WHEN '>' THEN (fact #>> '{}')::numeric > operand::numeric
                WHEN '>=' THEN (fact #>> '{}')::numeric >= operand::numeric
                WHEN '<' THEN (fact #>> '{}')::numeric < operand::numeric
                ELSE (fact #>> '{}')::numeric <= operand::numeric END;
      ELSIF op = '!=' THEN
        ok := NOT ft_internal.fact_equals(fact, to_jsonb(operand));
      ELSE
        ok := ft_internal.fact_equals(fact, to_jsonb(operand));
      END IF;
    ELSE
      ok := ft_internal.fact_equals(fact, cond);
    END IF;
    IF NOT ok THEN
      RETURN false;
    END IF;
  END LOOP;
  RETURN true;
END
$$;
COMMENT ON FUNCTION ft_pattern_matches(jsonb, jsonb) IS
  'Whether facts (a JSON object) satisfy every condition of a pattern. A missing fact fails every condition '
  'except {"exists": false}; ">", ">=", "<", "<=" need a number fact.';

CREATE FUNCTION ft_relevant_patterns(store_type text DEFAULT NULL, category text DEFAULT NULL,
                                     facts jsonb DEFAULT '{}', lim integer DEFAULT 5)
RETURNS TABLE (id uuid, name text, description text, category text, store_type text, solution jsonb,
               successes bigint, failures bigint, usage_count bigint, success_rate double precision,
               wilson_lower double precision, shared boolean)
LANGUAGE sql STABLE
AS $$
  SELECT p.id, p.name, p.description, p.category, p.store_type, p.solution, p.successes, p.failures, p.usage_count,
         p.successes::float8 / nullif(p.successes + p.failures, 0),
         (ft_wilson_interval(p.successes, p.successes + p.failures)).lower,
         p.owner_id IS NULL
    FROM ft_patterns p
   WHERE (ft_relevant_patterns.store_type IS NULL OR p.store_type IS NULL OR p.store_type = ft_relevant_patterns.store_type)
     AND (ft_relevant_patterns.category IS NULL OR p.category IS NULL OR p.category = ft_relevant_patterns.category)
     AND ft_pattern_matches(p.conditions, facts)
   ORDER BY 11 DESC, p.usage_count DESC, p.id
   LIMIT greatest(lim, 0)
$$;
COMMENT ON FUNCTION ft_relevant_patterns(text, text, jsonb, integer) IS
  'Patterns (own and shared) for a store type and category (NULL on either side means any) whose conditions the '
  'facts satisfy, best first: by the lower bound of the 95% Wilson interval of the success rate, then usage, then id.';

-- Counters change in one UPDATE each, so concurrent calls never lose an increment. SECURITY
-- DEFINER because tenants record outcomes of shared patterns they may read but not write.
CREATE FUNCTION ft_record_pattern_outcome(pattern uuid, success boolean) RETURNS @extschema@.ft_patterns
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result @extschema@.ft_patterns;
BEGIN
  IF success IS NULL THEN
    RAISE EXCEPTION 'success must be true or false' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE @extschema@.ft_patterns p
     SET successes = p.successes + CASE WHEN success THEN 1 ELSE 0 END,
         failures = p.failures + CASE WHEN success THEN 0 ELSE 1 END
   WHERE p.id = pattern
     AND (p.owner_id IS NULL OR p.owner_id = @extschema@.ft_current_owner() OR @extschema@.ft_is_admin())
  RETURNING p.* INTO result;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pattern % does not exist', pattern
      USING ERRCODE = 'no_data_found', HINT = 'List patterns with SELECT id, name FROM ft_patterns.';
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION ft_record_pattern_outcome(uuid, boolean) IS
  'Counts one success or failure of a pattern (own or shared) in a single atomic UPDATE and returns the updated row.';

CREATE FUNCTION ft_use_pattern(pattern uuid) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  result jsonb;
BEGIN
  UPDATE @extschema@.ft_patterns p
     SET usage_count = p.usage_count + 1, last_used_at = now()
   WHERE p.id = pattern
     AND (p.owner_id IS NULL OR p.owner_id = @extschema@.ft_current_owner() OR @extschema@.ft_is_admin())
  RETURNING p.solution INTO result;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pattern % does not exist', pattern
      USING ERRCODE = 'no_data_found', HINT = 'List patterns with SELECT id, name FROM ft_patterns.';
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION ft_use_pattern(uuid) IS
  'Counts one use of a pattern (own or shared) in a single atomic UPDATE, sets last_used_at, and returns its solution.';

-- ===== A/B tests and their feedback

CREATE TABLE ft_ab_assignments (
  avatar_id       uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id        text        NOT NULL DEFAULT ft_current_owner(),
  conversation_id text        NOT NULL CHECK (conversation_id <> ''),
  model           text        NOT NULL,
  arm             text        NOT NULL CHECK (arm IN ('fine_tuned', 'baseline')),
  bucket          double precision NOT NULL CHECK (bucket >= 0 AND bucket < 1),
  share           double precision NOT NULL,
  assigned_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, conversation_id)
);
COMMENT ON TABLE ft_ab_assignments IS
  'Which model serves each conversation (ft_ab_assign); recorded once, so a conversation keeps its model.';
COMMENT ON COLUMN ft_ab_assignments.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_ab_assignments.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_ab_assignments.conversation_id IS 'The app''s conversation id.';
COMMENT ON COLUMN ft_ab_assignments.model IS 'Model that serves the conversation.';
COMMENT ON COLUMN ft_ab_assignments.arm IS 'fine_tuned (the avatar''s active model) or baseline (its base model).';
COMMENT ON COLUMN ft_ab_assignments.bucket IS
  'Position of the conversation in [0, 1): the first 32 bits of md5(avatar id || '':'' || conversation id) / 2^32.';
COMMENT ON COLUMN ft_ab_assignments.share IS 'Share of conversations given to the fine-tuned model when this one was assigned.';
COMMENT ON COLUMN ft_ab_assignments.assigned_at IS 'When the conversation was assigned.';
CREATE TRIGGER ft_ab_assignments_owner BEFORE INSERT OR UPDATE ON ft_ab_assignments
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_ab_assignments', 'SELECT, INSERT');

CREATE FUNCTION ft_ab_assign(avatar uuid, conversation_id text) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
  a ft_avatars := ft_get_avatar(avatar);
  share double precision;
  bucket double precision;
  chosen text;
BEGIN
  IF conversation_id IS NULL OR conversation_id = '' THEN
    RAISE EXCEPTION 'conversation_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT x.model INTO chosen FROM ft_ab_assignments x
   WHERE x.avatar_id = avatar AND x.conversation_id = ft_ab_assign.conversation_id;
  IF FOUND THEN
    RETURN chosen;
  END IF;
  IF a.settings ? 'ab_share' AND (jsonb_typeof(a.settings -> 'ab_share') <> 'number'
                                  OR (a.settings ->> 'ab_share')::float8 NOT BETWEEN 0 AND 1) THEN
    RAISE EXCEPTION 'avatar setting ab_share must be a number between 0 and 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  share := CASE WHEN a.active_model IS NULL OR a.active_model = a.base_model THEN 0
                ELSE coalesce((a.settings ->> 'ab_share')::float8, 0.5) END;
  bucket := ('x' || substr(md5(avatar::text || ':' || conversation_id), 1, 8))::bit(32)::bigint / 4294967296.0;
  INSERT INTO ft_ab_assignments (avatar_id, conversation_id, model, arm, bucket, share)
  VALUES (avatar, conversation_id, CASE WHEN bucket < share THEN a.active_model ELSE a.base_model END,
          CASE WHEN bucket < share THEN 'fine_tuned' ELSE 'baseline' END, bucket, share)
  ON CONFLICT DO NOTHING;
  -- a concurrent call may have won the insert; its choice stands
  SELECT x.model INTO STRICT chosen FROM ft_ab_assignments x
   WHERE x.avatar_id = avatar AND x.conversation_id = ft_ab_assign.conversation_id;
  RETURN chosen;
END
$$;
COMMENT ON FUNCTION ft_ab_assign(uuid, text) IS
  'The model that serves a conversation: the avatar''s fine-tuned (active) model for a share of conversations (avatar '
  'setting ab_share, default 0.5), else its base model; always the base model while no fine-tuned model is active. '
  'The choice depends only on the avatar and conversation ids (md5), is recorded in ft_ab_assignments on first call '
  'and returned unchanged afterwards, even if the share or the active model changed.';

CREATE TABLE ft_ab_ratings (
  id              uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id       uuid        NOT NULL,
  owner_id        text        NOT NULL DEFAULT ft_current_owner(),
  conversation_id text        NOT NULL,
  model           text        NOT NULL,
  arm             text        NOT NULL,
  rating          text        NOT NULL CHECK (rating IN ('up', 'down')),
  comment         text,
  input           jsonb       CHECK (input IS NULL OR jsonb_typeof(input -> 'messages') = 'array'),
  answer          text,
  preference_id   uuid,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, id),
  FOREIGN KEY (avatar_id, conversation_id) REFERENCES ft_ab_assignments (avatar_id, conversation_id) ON DELETE CASCADE
);
CREATE INDEX ft_ab_ratings_conv_idx ON ft_ab_ratings (avatar_id, conversation_id);
COMMENT ON TABLE ft_ab_ratings IS
  'Thumbs up or down on answers of A/B conversations, each counted for the model that served the conversation '
  '(ft_ab_feedback). Compared in ft_model_comparison; pairs become ft_preferences rows with ft_save_preference_pairs.';
COMMENT ON COLUMN ft_ab_ratings.id IS 'Rating id.';
COMMENT ON COLUMN ft_ab_ratings.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_ab_ratings.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_ab_ratings.conversation_id IS 'Conversation rated.';
COMMENT ON COLUMN ft_ab_ratings.model IS 'Model that served the conversation (from ft_ab_assignments).';
COMMENT ON COLUMN ft_ab_ratings.arm IS 'fine_tuned or baseline, from the assignment.';
COMMENT ON COLUMN ft_ab_ratings.rating IS 'up or down.';
COMMENT ON COLUMN ft_ab_ratings.comment IS 'Free text given with the rating.';
COMMENT ON COLUMN ft_ab_ratings.input IS 'The conversation before the rated answer, {"messages": [...]}; NULL when unknown.';
COMMENT ON COLUMN ft_ab_ratings.answer IS 'The rated answer; NULL when unknown.';
COMMENT ON COLUMN ft_ab_ratings.preference_id IS 'ft_preferences row this rating went into, once paired.';
COMMENT ON COLUMN ft_ab_ratings.created_at IS 'When the rating was given.';
CREATE TRIGGER ft_ab_ratings_owner BEFORE INSERT OR UPDATE ON ft_ab_ratings
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_ab_ratings', 'SELECT, INSERT, UPDATE');

CREATE FUNCTION ft_ab_feedback(avatar uuid, conversation_id text, rating text, comment text DEFAULT NULL,
                               messages jsonb DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
  asg ft_ab_assignments;
  msgs jsonb := CASE WHEN jsonb_typeof(messages) = 'object' THEN messages -> 'messages' ELSE messages END;
  new_id uuid;
  input jsonb;
  answer text;
BEGIN
  IF rating IS NULL OR rating NOT IN ('up', 'down') THEN
    RAISE EXCEPTION 'rating must be ''up'' or ''down'', not %', coalesce(quote_literal(rating), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM ft_get_avatar(avatar);
  SELECT * INTO asg FROM ft_ab_assignments x
   WHERE x.avatar_id = avatar AND x.conversation_id = ft_ab_feedback.conversation_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'conversation % of avatar % has no A/B assignment', conversation_id, avatar
      USING ERRCODE = 'no_data_found',
            HINT = 'Call ft_ab_assign(avatar, conversation_id) when the conversation starts, and use the model it returns.';
  END IF;
  IF msgs IS NOT NULL THEN
    -- the rated exchange: the conversation up to and including the rated assistant answer
    IF jsonb_typeof(msgs) <> 'array' OR jsonb_array_length(msgs) < 2 OR msgs -> -1 ->> 'role' <> 'assistant'
       OR jsonb_typeof(msgs -> -1 -> 'content') <> 'string' THEN
      RAISE EXCEPTION 'messages must be a chat ending with the rated assistant answer'
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Pass [{"role": "user", ...}, ..., {"role": "assistant", "content": "the answer"}].';
    END IF;
    input := jsonb_build_object('messages', msgs - (-1));
    answer := msgs -> -1 ->> 'content';
  ELSE
    -- the newest assistant turn stored for the conversation, and what came before it
    SELECT jsonb_build_object('messages', coalesce((
             SELECT jsonb_agg(jsonb_build_object('role', b.role, 'content', b.content) ORDER BY b.seq)
               FROM ft_conversation_turns b
              WHERE b.avatar_id = avatar AND b.conversation_id = ft_ab_feedback.conversation_id AND b.seq < t.seq), '[]')),
           t.content
      INTO input, answer
      FROM ft_conversation_turns t
     WHERE t.avatar_id = avatar AND t.conversation_id = ft_ab_feedback.conversation_id AND t.role = 'assistant'
     ORDER BY t.seq DESC LIMIT 1;
  END IF;
  INSERT INTO ft_ab_ratings (avatar_id, conversation_id, model, arm, rating, comment, input, answer)
  VALUES (avatar, conversation_id, asg.model, asg.arm, rating, comment, input, answer)
  RETURNING id INTO new_id;
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION ft_ab_feedback(uuid, text, text, text, jsonb) IS
  'Records a thumbs up or down (''up''/''down'') on an answer of an A/B conversation, counted for the model that served '
  'it; returns the rating id. messages (optional) is the chat up to and including the rated assistant answer; without '
  'it the newest assistant turn of the conversation in ft_conversation_turns is taken as the rated answer.';

CREATE FUNCTION ft_save_preference_pairs(avatar uuid) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  up_row record;
  down_row record;
  pair_id uuid;
  saved integer := 0;
BEGIN
  -- one pairing run per avatar at a time, so no rating is used twice
  PERFORM ft_get_avatar(avatar, lock => true);
  FOR up_row IN
    SELECT r.* FROM ft_ab_ratings r
     WHERE r.avatar_id = avatar AND r.rating = 'up' AND r.preference_id IS NULL
       AND r.input IS NOT NULL AND r.answer IS NOT NULL
     ORDER BY r.created_at, r.id
  LOOP
    SELECT r.* INTO down_row FROM ft_ab_ratings r
     WHERE r.avatar_id = avatar AND r.rating = 'down' AND r.preference_id IS NULL
       AND r.input = up_row.input AND r.model <> up_row.model AND r.answer <> up_row.answer
     ORDER BY r.created_at, r.id LIMIT 1;
    CONTINUE WHEN NOT FOUND;
    INSERT INTO ft_preferences (avatar_id, input, preferred, non_preferred, source)
    VALUES (avatar, up_row.input, to_jsonb(up_row.answer), to_jsonb(down_row.answer), 'ab_test')
    RETURNING id INTO pair_id;
    UPDATE ft_ab_ratings r SET preference_id = pair_id
     WHERE r.avatar_id = avatar AND r.id IN (up_row.id, down_row.id);
    saved := saved + 1;
  END LOOP;
  RETURN saved;
END
$$;
COMMENT ON FUNCTION ft_save_preference_pairs(uuid) IS
  'Turns A/B ratings into preference pairs for DPO: an answer rated up and an answer of the other model rated down, '
  'given to the same input (identical earlier messages), become one ft_preferences row (source ab_test). Each rating '
  'is used once, oldest first. Returns the number of pairs saved.';

CREATE VIEW ft_model_comparison WITH (security_invoker = true) AS
WITH per_model AS (
  SELECT x.avatar_id, x.model, min(x.arm) AS arm, count(*) AS conversations,
         coalesce(sum(r.ratings), 0)::bigint AS ratings, coalesce(sum(r.positive), 0)::bigint AS positive
    FROM ft_ab_assignments x
    LEFT JOIN (SELECT g.avatar_id, g.conversation_id, count(*) AS ratings,
                      count(*) FILTER (WHERE g.rating = 'up') AS positive
                 FROM ft_ab_ratings g GROUP BY 1, 2) r
      ON r.avatar_id = x.avatar_id AND r.conversation_id = x.conversation_id
   GROUP BY x.avatar_id, x.model),
with_other AS (
  SELECT m.*,
         sum(m.ratings) OVER w - m.ratings AS other_ratings,
         sum(m.positive) OVER w - m.positive AS other_positive
    FROM per_model m
  WINDOW w AS (PARTITION BY m.avatar_id)),
tested AS (
  SELECT o.*,
         o.positive::float8 / nullif(o.ratings, 0) AS rate,
         o.other_positive::float8 / nullif(o.other_ratings, 0) AS other_rate,
         (o.positive + o.other_positive)::float8 / nullif(o.ratings + o.other_ratings, 0) AS pooled
    FROM with_other o)
SELECT t.avatar_id,
       a.owner_id,
       t.model,
       t.arm,
       t.conversations,
       t.ratings,
       t.positive,
       t.rate AS positive_rate,
       CASE WHEN t.ratings > 0 THEN (ft_wilson_interval(t.positive, t.ratings)).lower END AS rate_lower,
       CASE WHEN t.ratings > 0 THEN (ft_wilson_interval(t.positive, t.ratings)).upper END AS rate_upper,
       t.other_ratings::bigint AS other_ratings,
       t.other_rate AS other_positive_rate,
       z.z,
       CASE WHEN z.z IS NOT NULL THEN ft_internal.two_sided_p(z.z) END AS p_value,
       CASE WHEN z.z IS NOT NULL THEN ft_internal.two_sided_p(z.z) < 0.05 END AS significant
  FROM tested t
  JOIN ft_avatars a ON a.id = t.avatar_id
  CROSS JOIN LATERAL (
    SELECT CASE WHEN t.ratings = 0 OR t.other_ratings = 0 THEN NULL
                WHEN t.pooled IN (0, 1) THEN 0::float8
                ELSE (t.rate - t.other_rate)
                     / sqrt(t.pooled * (1 - t.pooled) * (1.0 / t.ratings + 1.0 / t.other_ratings)) END AS z) z;
COMMENT ON VIEW ft_model_comparison IS
  'A/B results per avatar and model: conversations served, ratings, share rated up with its 95% Wilson interval, and a '
  'two-proportion z-test of that share against the avatar''s other model(s) pooled (significant when p < 0.05).';
COMMENT ON COLUMN ft_model_comparison.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_model_comparison.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_model_comparison.model IS 'Model that served the conversations.';
COMMENT ON COLUMN ft_model_comparison.arm IS 'fine_tuned or baseline.';
COMMENT ON COLUMN ft_model_comparison.conversations IS 'Conversations assigned to the model.';
COMMENT ON COLUMN ft_model_comparison.ratings IS 'Ratings of its answers.';
COMMENT ON COLUMN ft_model_comparison.positive IS 'Ratings ''up''.';
COMMENT ON COLUMN ft_model_comparison.positive_rate IS 'positive / ratings; NULL without ratings.';
COMMENT ON COLUMN ft_model_comparison.rate_lower IS 'Lower bound of the 95% Wilson interval of positive_rate.';
COMMENT ON COLUMN ft_model_comparison.rate_upper IS 'Upper bound of the 95% Wilson interval of positive_rate.';
COMMENT ON COLUMN ft_model_comparison.other_ratings IS 'Ratings of the avatar''s other model(s).';
COMMENT ON COLUMN ft_model_comparison.other_positive_rate IS 'Share rated up of the other model(s).';
COMMENT ON COLUMN ft_model_comparison.z IS 'Two-proportion z statistic (pooled); positive when this model is rated better.';
COMMENT ON COLUMN ft_model_comparison.p_value IS 'Two-sided p-value of z.';
COMMENT ON COLUMN ft_model_comparison.significant IS 'p_value < 0.05; NULL when either side has no ratings.';
INSERT INTO ft_internal.app_grants VALUES ('ft_model_comparison', 'SELECT');
