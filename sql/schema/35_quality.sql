-- Quality: the phrase lexicon, scoring on write, de-duplication, validation, feedback and the
-- analyst views built on them.

-- ===== Lexicon

CREATE TABLE ft_lexicon (
  id         uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  owner_id   text                 DEFAULT ft_current_owner(),
  language   text        NOT NULL DEFAULT 'en',
  kind       text        NOT NULL CHECK (kind IN ('empathy', 'generic', 'question', 'context', 'greeting')),
  phrase     text        NOT NULL CHECK (btrim(phrase) <> '' AND length(phrase) <= 200),
  weight     real        NOT NULL DEFAULT 1 CHECK (weight BETWEEN 0 AND 1),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ft_lexicon_phrase_idx ON ft_lexicon (coalesce(owner_id, ''), kind, lower(phrase));

COMMENT ON TABLE ft_lexicon IS
  'Phrases the quality score looks for, by kind. Rows with owner_id NULL are the shared defaults shipped '
  'with pg_finetune (editable by ft_admin only); each tenant sees them plus its own rows and edits only '
  'its own. A tenant row with the same kind and phrase (ignoring case) replaces the shared one; weight 0 '
  'switches a phrase off. Matching ignores case and Latin accents and respects word boundaries; phrases '
  'of every language are matched. Run ft_rescore(avatar) after a change to rescore existing examples.';
COMMENT ON COLUMN ft_lexicon.id IS 'Phrase id.';
COMMENT ON COLUMN ft_lexicon.owner_id IS 'Tenant owning the phrase; NULL for the shared defaults.';
COMMENT ON COLUMN ft_lexicon.language IS 'Language of the phrase (informative; all languages are matched).';
COMMENT ON COLUMN ft_lexicon.kind IS
  'empathy (raises the score), generic (lowers it), question (counts as asking a question), '
  'context (refers back to earlier turns) or greeting (reported only).';
COMMENT ON COLUMN ft_lexicon.phrase IS 'The phrase; matched as whole words, case- and accent-insensitively.';
COMMENT ON COLUMN ft_lexicon.weight IS
  'Weight between 0 and 1; empathy and generic weights of the phrases found are summed and capped at 1.';
COMMENT ON COLUMN ft_lexicon.created_at IS 'When the phrase was added.';

INSERT INTO ft_lexicon (owner_id, language, kind, phrase, weight) VALUES
  -- empathy markers
  (NULL, 'en', 'empathy', 'I''m sorry to hear', 1), (NULL, 'en', 'empathy', 'sorry to hear that', 1),
  (NULL, 'en', 'empathy', 'I''m sorry you''re going through', 1), (NULL, 'en', 'empathy', 'that sounds hard', 1),
  (NULL, 'en', 'empathy', 'that sounds difficult', 1), (NULL, 'en', 'empathy', 'that sounds frustrating', 1),
  (NULL, 'en', 'empathy', 'that sounds stressful', 1), (NULL, 'en', 'empathy', 'that sounds exciting', 0.7),
  (NULL, 'en', 'empathy', 'that must be', 0.7), (NULL, 'en', 'empathy', 'that must feel', 0.8),
  (NULL, 'en', 'empathy', 'must have been', 0.5), (NULL, 'en', 'empathy', 'I can imagine', 0.7),
  (NULL, 'en', 'empathy', 'I can see why', 0.7), (NULL, 'en', 'empathy', 'it makes sense that you', 0.8),
  (NULL, 'en', 'empathy', 'it''s understandable', 0.7), (NULL, 'en', 'empathy', 'that''s understandable', 0.7),
  (NULL, 'en', 'empathy', 'you''re not alone', 1), (NULL, 'en', 'empathy', 'I hear you', 0.8),
  (NULL, 'en', 'empathy', 'how are you feeling', 0.8), (NULL, 'en', 'empathy', 'how do you feel', 0.6),
  (NULL, 'en', 'empathy', 'that''s tough', 0.8), (NULL, 'en', 'empathy', 'that''s a lot to deal with', 1),
  (NULL, 'en', 'empathy', 'it''s okay to feel', 1), (NULL, 'en', 'empathy', 'it''s completely normal to', 0.8),
  (NULL, 'en', 'empathy', 'I''m here for you', 1), (NULL, 'en', 'empathy', 'I''m happy for you', 0.8),
  (NULL, 'en', 'empathy', 'I''m so glad', 0.6), (NULL, 'en', 'empathy', 'be gentle with yourself', 1),
  (NULL, 'en', 'empathy', 'take your time', 0.5), (NULL, 'en', 'empathy', 'I appreciate you sharing', 1),
  (NULL, 'en', 'empathy', 'thank you for telling me', 0.8), (NULL, 'en', 'empathy', 'it sounds like you', 0.6),
  (NULL, 'en', 'empathy', 'you must be', 0.5), (NULL, 'en', 'empathy', 'proud of you', 0.8),
  (NULL, 'de', 'empathy', 'das tut mir leid', 1), (NULL, 'fr', 'empathy', 'je suis désolé', 1),
  (NULL, 'es', 'empathy', 'lo siento mucho', 1), (NULL, 'es', 'empathy', 'entiendo cómo te sientes', 1),
  -- generic phrases that could answer anything
  (NULL, 'en', 'generic', 'that''s interesting', 0.6), (NULL, 'en', 'generic', 'that is interesting', 0.6),
  (NULL, 'en', 'generic', 'how interesting', 0.6), (NULL, 'en', 'generic', 'I understand', 0.4),
  (NULL, 'en', 'generic', 'I see.', 0.3), (NULL, 'en', 'generic', 'keep it up', 0.5),
  (NULL, 'en', 'generic', 'keep up the good work', 0.6), (NULL, 'en', 'generic', 'great question', 0.5),
  (NULL, 'en', 'generic', 'good question', 0.4), (NULL, 'en', 'generic', 'thanks for sharing', 0.4),
  (NULL, 'en', 'generic', 'that''s great', 0.3), (NULL, 'en', 'generic', 'that''s cool', 0.4),
  (NULL, 'en', 'generic', 'sounds good', 0.3), (NULL, 'en', 'generic', 'good job', 0.4),
  (NULL, 'en', 'generic', 'well done', 0.3), (NULL, 'en', 'generic', 'I hope this helps', 0.4),
  (NULL, 'en', 'generic', 'hope this helps', 0.4), (NULL, 'en', 'generic', 'feel free to ask', 0.4),
  (NULL, 'en', 'generic', 'let me know if you have any other questions', 0.6),
  (NULL, 'en', 'generic', 'is there anything else I can help you with', 0.6),
  (NULL, 'en', 'generic', 'as an AI language model', 1), (NULL, 'en', 'generic', 'as an AI', 0.8),
  (NULL, 'en', 'generic', 'I''m just an AI', 1), (NULL, 'en', 'generic', 'I don''t have personal opinions', 1),
  -- questions without a question mark
  (NULL, 'en', 'question', 'what do you think', 1), (NULL, 'en', 'question', 'how about you', 1),
  (NULL, 'en', 'question', 'what about you', 1), (NULL, 'en', 'question', 'tell me more', 1),
  (NULL, 'en', 'question', 'I''d love to hear', 1), (NULL, 'en', 'question', 'would you like to', 1),
  (NULL, 'en', 'question', 'have you tried', 1), (NULL, 'en', 'question', 'have you considered', 1),
  (NULL, 'en', 'question', 'how does that sound', 1), (NULL, 'en', 'question', 'let me know what you think', 1),
  -- references to earlier turns
  (NULL, 'en', 'context', 'as you mentioned', 1), (NULL, 'en', 'context', 'as you said', 1),
  (NULL, 'en', 'context', 'you mentioned', 1), (NULL, 'en', 'context', 'you said earlier', 1),
  (NULL, 'en', 'context', 'earlier you said', 1), (NULL, 'en', 'context', 'like you said', 1),
  (NULL, 'en', 'context', 'last time', 1), (NULL, 'en', 'context', 'you told me', 1),
  (NULL, 'en', 'context', 'going back to', 1), (NULL, 'en', 'context', 'as we discussed', 1),
  (NULL, 'en', 'context', 'we talked about', 1), (NULL, 'en', 'context', 'you were saying', 1),
  (NULL, 'en', 'context', 'following up on', 1), (NULL, 'en', 'context', 'from what you''ve told me', 1),
  (NULL, 'en', 'context', 'you brought up', 1), (NULL, 'en', 'context', 'since you mentioned', 1),
  (NULL, 'en', 'context', 'how did it go', 1), (NULL, 'en', 'context', 'how did the', 0.5),
  -- greetings (reported, not scored)
  (NULL, 'en', 'greeting', 'hello', 1), (NULL, 'en', 'greeting', 'hi', 1), (NULL, 'en', 'greeting', 'hey', 1),
  (NULL, 'en', 'greeting', 'good morning', 1), (NULL, 'en', 'greeting', 'good afternoon', 1),
  (NULL, 'en', 'greeting', 'good evening', 1), (NULL, 'en', 'greeting', 'welcome back', 1),
  (NULL, 'en', 'greeting', 'nice to meet you', 1);

-- Tenants see the shared rows and their own, and change only their own; ft_admin changes all.
-- (enable_tenancy is not used because of the shared rows with owner_id NULL.)
REVOKE ALL ON ft_lexicon FROM PUBLIC;
ALTER TABLE ft_lexicon ENABLE ROW LEVEL SECURITY;
ALTER TABLE ft_lexicon FORCE ROW LEVEL SECURITY;
CREATE POLICY lexicon_read ON ft_lexicon FOR SELECT
  USING (owner_id IS NULL OR owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
CREATE POLICY lexicon_write ON ft_lexicon FOR ALL
  USING (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()))
  WITH CHECK (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()));
INSERT INTO ft_internal.app_grants VALUES ('ft_lexicon', 'SELECT, INSERT, UPDATE, DELETE');
-- pg_dump keeps the tenants' phrases; the shared ones come back with CREATE EXTENSION.
SELECT pg_catalog.pg_extension_config_dump('ft_lexicon', 'WHERE owner_id IS NOT NULL');

CREATE FUNCTION ft_lexicon_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'ft_lexicon_changed'
LANGUAGE C;
COMMENT ON FUNCTION ft_lexicon_changed() IS
  'Trigger on ft_lexicon: invalidates the compiled phrase matchers of every backend (at commit).';

CREATE TRIGGER ft_lexicon_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ft_lexicon
  FOR EACH STATEMENT EXECUTE FUNCTION ft_lexicon_changed();

-- ===== Scoring

CREATE FUNCTION ft_score(messages jsonb, avatar uuid DEFAULT NULL, OUT score real, OUT components jsonb)
AS 'MODULE_PATHNAME', 'ft_score'
LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION ft_score(jsonb, uuid) IS
  'Quality score in [0,1] of a conversation and its components. The response is the last assistant '
  'message; earlier turns are context. score = (0.35 length + 0.25 question + 0.20 empathy + 0.20 context) '
  '/ 1.0 - 0.30 generic - 0.50 too_short - 0.30 pii - 1.00 duplicate, clamped to [0,1], where length is 1 '
  'inside the length band (default 50-200 characters) falling linearly to 0 at length 0 and at twice the '
  'maximum; question is a question mark or a question phrase; empathy and generic are summed phrase '
  'weights capped at 1; too_short is a response under 20 characters; context is a context phrase or two '
  'content words shared with earlier user turns; pii is an e-mail address or a 9-19 digit number in a '
  'non-system message; duplicate is the same normalised conversation among the avatar''s examples. With '
  'an avatar, its settings length_band ([min,max]), too_short and score_weights ({"length": ...}) apply, '
  'its owner''s lexicon is used and duplicates are looked up; without one, defaults and the caller''s lexicon.';

CREATE FUNCTION ft_examples_score() RETURNS trigger
AS 'MODULE_PATHNAME', 'ft_examples_score'
LANGUAGE C;
COMMENT ON FUNCTION ft_examples_score() IS
  'Trigger on ft_examples: fills quality, quality_components and content_hash, and excludes examples '
  'under the avatar''s quality_threshold (default 0.8; verified examples are exempt) or exactly duplicating '
  'another example of the avatar. It only manages exclusions it made itself (reasons starting with '
  '"quality:" or "duplicate: exact", or "duplicate: near" when the content changed); an example excluded '
  'by hand for any other reason stays as it is.';

-- Fires after ft_examples_check and ft_examples_owner (triggers run in name order), so it sees
-- normalised messages and the right owner.
CREATE TRIGGER ft_examples_score BEFORE INSERT OR UPDATE OF messages, verified ON ft_examples
  FOR EACH ROW EXECUTE FUNCTION ft_examples_score();

CREATE INDEX ft_examples_content_hash_idx ON ft_examples (avatar_id, content_hash);

CREATE FUNCTION ft_rescore(avatar uuid) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  n integer;
BEGIN
  PERFORM ft_get_avatar(avatar);
  -- One UPDATE: the scoring trigger does the work for every row.
  UPDATE ft_examples e SET messages = e.messages WHERE e.avatar_id = avatar;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION ft_rescore(uuid) IS
  'Rescores every example of an avatar (after a lexicon or settings change) and returns how many were rescored.';

-- ===== De-duplication and diversity

CREATE FUNCTION ft_near_duplicates(avatar uuid, threshold real DEFAULT 0.8)
RETURNS TABLE (example_a uuid, example_b uuid, similarity real)
AS 'MODULE_PATHNAME', 'ft_near_duplicates'
LANGUAGE C STABLE STRICT ROWS 100;
COMMENT ON FUNCTION ft_near_duplicates(uuid, real) IS
  'Pairs of an avatar''s examples whose user and assistant text are near-duplicates: estimated Jaccard '
  'similarity of word-pair shingles (MinHash, 128 hashes) at least threshold, candidates found by LSH '
  'banding (about 95% of pairs right at the threshold are found, more above it). example_a is the earlier one.';

CREATE FUNCTION ft_mark_duplicates(avatar uuid, threshold real DEFAULT 0.8) RETURNS integer
AS 'MODULE_PATHNAME', 'ft_mark_duplicates'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION ft_mark_duplicates(uuid, real) IS
  'Excludes, in creation order, every example that is a near-duplicate of an earlier example still in the '
  'dataset, with reason "duplicate: near <id>", and returns how many it excluded. Datasets leave excluded '
  'examples out.';

CREATE FUNCTION ft_diversity(avatar uuid) RETURNS real
AS 'MODULE_PATHNAME', 'ft_diversity'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION ft_diversity(uuid) IS
  'Diversity of an avatar''s dataset in [0,1]: 0.8 * (1 - mean pairwise MinHash similarity) + 0.2 * '
  'Shannon entropy of (category, pattern_type) normalised by log(min(n, 16)), over up to 1000 included '
  'examples (a fixed sample ordered by id). 0 for fewer than two examples.';

-- ===== Validation

CREATE FUNCTION ft_example_semantic_problems(example jsonb, token_count integer DEFAULT NULL,
                                             token_limit integer DEFAULT NULL)
RETURNS TABLE (code text, path text, detail text)
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  msgs jsonb := CASE jsonb_typeof(example) WHEN 'array' THEN example ELSE example -> 'messages' END;
  n integer := coalesce(jsonb_array_length(msgs), 0);
  m jsonb;
  tc jsonb;
  role text;
  call_ids text[] := '{}';
  tool_names text[];
  assistants integer := 0;
  trained integer := 0;
  last_assistant integer := -1;
BEGIN
  IF jsonb_typeof(example -> 'tools') = 'array' THEN
    SELECT array_agg(t #>> '{function,name}') INTO tool_names FROM jsonb_array_elements(example -> 'tools') t;
  END IF;
  FOR i IN 0 .. n - 1 LOOP
    m := msgs -> i;
    role := m ->> 'role';
    IF jsonb_typeof(m -> 'content') = 'string' AND btrim(m ->> 'content') = ''
       AND NOT (role = 'assistant' AND m ? 'tool_calls') THEN
      code := 'empty_content'; path := format('messages[%s].content', i);
      detail := format('The %s message has empty content.', role);
      RETURN NEXT;
    END IF;
    IF role = 'assistant' THEN
      assistants := assistants + 1;
      last_assistant := i;
      IF coalesce((m ->> 'weight')::numeric, 1) <> 0 THEN
        trained := trained + 1;
      END IF;
      FOR tc IN SELECT c FROM jsonb_array_elements(CASE jsonb_typeof(m -> 'tool_calls') WHEN 'array' THEN m -> 'tool_calls' ELSE '[]' END) c LOOP
        call_ids := call_ids || (tc ->> 'id');
        IF tool_names IS NOT NULL AND NOT ((tc #>> '{function,name}') = ANY (tool_names)) THEN
          code := 'unknown_tool'; path := format('messages[%s].tool_calls', i);
          detail := format('Tool call %s names function "%s", which is not in tools.', tc ->> 'id', tc #>> '{function,name}');
          RETURN NEXT;
        END IF;
        BEGIN
          PERFORM (tc #>> '{function,arguments}')::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
          code := 'tool_arguments_not_json'; path := format('messages[%s].tool_calls', i);
          detail := format('The arguments of tool call %s are not valid JSON.', tc ->> 'id');
          RETURN NEXT;
        END;
      END LOOP;
    ELSIF role = 'tool' AND NOT ((m ->> 'tool_call_id') = ANY (call_ids)) THEN
      code := 'unknown_tool_call_id'; path := format('messages[%s].tool_call_id', i);
      detail := format('No earlier assistant message made tool call "%s".', m ->> 'tool_call_id');
      RETURN NEXT;
    END IF;
  END LOOP;
  IF assistants > 0 AND trained = 0 THEN
    code := 'nothing_to_train'; path := 'messages';
    detail := 'Every assistant message has weight 0, so the example teaches nothing.';
    RETURN NEXT;
  END IF;
  IF last_assistant >= 0 AND last_assistant < n - 1 THEN
    code := 'trailing_messages'; path := format('messages[%s]', last_assistant + 1);
    detail := format('%s message(s) after the last assistant message are not trained on.', n - 1 - last_assistant);
    RETURN NEXT;
  END IF;
  IF token_count IS NOT NULL AND token_limit IS NOT NULL AND token_count > token_limit THEN
    code := 'too_many_tokens'; path := 'messages';
    detail := format('The example has %s tokens; the model trains on at most %s per example, so it would be truncated or dropped.', token_count, token_limit);
    RETURN NEXT;
  END IF;
END
$$;
COMMENT ON FUNCTION ft_example_semantic_problems(jsonb, integer, integer) IS
  'Problems of a structurally valid example that fine-tuning would reject or silently drop: empty content, '
  'tool calls with arguments that are not JSON or naming undefined tools, tool messages answering no earlier '
  'tool call, all assistant weights 0, messages after the last assistant message, and more tokens than the limit.';

CREATE FUNCTION ft_validate(avatar uuid) RETURNS TABLE (example_id uuid, code text, detail text)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  a ft_avatars;
  token_limit integer;
  e record;
  structural boolean;
BEGIN
  a := ft_get_avatar(avatar);
  -- ft_models is created by a later part of the script; PL/pgSQL resolves it at run time.
  SELECT m.training_token_limit INTO token_limit FROM ft_models m WHERE m.model = a.base_model;
  FOR e IN SELECT x.id, x.messages, x.token_count FROM ft_examples x
            WHERE x.avatar_id = avatar ORDER BY x.created_at, x.id LOOP
    structural := false;
    FOR code, detail IN SELECT p.code, p.path || ': ' || p.detail FROM ft_example_problems(e.messages) p LOOP
      example_id := e.id;
      structural := true;
      RETURN NEXT;
    END LOOP;
    -- the semantic checks assume a well-formed example
    CONTINUE WHEN structural;
    FOR code, detail IN SELECT s.code, s.path || ': ' || s.detail
                          FROM ft_example_semantic_problems(e.messages, e.token_count, token_limit) s LOOP
      example_id := e.id;
      RETURN NEXT;
    END LOOP;
  END LOOP;
END
$$;
COMMENT ON FUNCTION ft_validate(uuid) IS
  'Every problem of an avatar''s examples that fine-tuning validation would reject or silently drop, as rows '
  'of example id, problem code and "path: detail": the structural problems of ft_example_problems, then the '
  'semantic ones of ft_example_semantic_problems (token limit from ft_models for the avatar''s base model).';

-- ===== Feedback and review

CREATE TABLE ft_feedback (
  id          uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  avatar_id   uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id    text        NOT NULL DEFAULT ft_current_owner(),
  example_id  uuid,
  message_ref text,
  rating      text        NOT NULL CHECK (rating IN ('up', 'down')),
  comment     text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (example_id IS NOT NULL OR message_ref IS NOT NULL),
  -- the example must belong to the same avatar
  FOREIGN KEY (avatar_id, example_id) REFERENCES ft_examples (avatar_id, id) ON DELETE CASCADE
);
CREATE INDEX ft_feedback_example_idx ON ft_feedback (example_id) WHERE example_id IS NOT NULL;
CREATE INDEX ft_feedback_avatar_idx ON ft_feedback (avatar_id, created_at);

COMMENT ON TABLE ft_feedback IS
  'Thumbs up or down from users or reviewers on an example or on a chat message of the app (message_ref).';
COMMENT ON COLUMN ft_feedback.id IS 'Feedback id.';
COMMENT ON COLUMN ft_feedback.avatar_id IS 'Avatar the feedback is about.';
COMMENT ON COLUMN ft_feedback.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_feedback.example_id IS 'Example rated, when the feedback is about an example.';
COMMENT ON COLUMN ft_feedback.message_ref IS 'The app''s own reference of the rated chat message, when it is about one.';
COMMENT ON COLUMN ft_feedback.rating IS 'up or down.';
COMMENT ON COLUMN ft_feedback.comment IS 'Free text given with the rating.';
COMMENT ON COLUMN ft_feedback.created_at IS 'When the feedback was given.';

CREATE TRIGGER ft_feedback_owner BEFORE INSERT OR UPDATE ON ft_feedback
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_feedback', 'SELECT, INSERT, UPDATE, DELETE');

CREATE FUNCTION ft_add_feedback(avatar uuid, rating text, example uuid DEFAULT NULL,
                                message_ref text DEFAULT NULL, comment text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
  new_id uuid;
BEGIN
  IF rating IS NULL OR rating NOT IN ('up', 'down') THEN
    RAISE EXCEPTION 'rating must be ''up'' or ''down'', not %', coalesce(quote_literal(rating), 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF example IS NULL AND message_ref IS NULL THEN
    RAISE EXCEPTION 'feedback needs an example or a message_ref'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass example => id of the example, or message_ref => your chat message id.';
  END IF;
  PERFORM ft_get_avatar(avatar);
  IF example IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ft_examples e WHERE e.avatar_id = avatar AND e.id = example) THEN
    RAISE EXCEPTION 'example % of avatar % does not exist', example, avatar
      USING ERRCODE = 'no_data_found';
  END IF;
  INSERT INTO ft_feedback (avatar_id, example_id, message_ref, rating, comment)
  VALUES (avatar, example, ft_add_feedback.message_ref, ft_add_feedback.rating, ft_add_feedback.comment)
  RETURNING id INTO new_id;
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION ft_add_feedback(uuid, text, uuid, text, text) IS
  'Records a thumbs up or down (rating ''up''/''down'') on an example or on a chat message and returns its id.';

CREATE VIEW ft_review_queue WITH (security_invoker = true) AS
SELECT e.id AS example_id,
       e.avatar_id,
       e.owner_id,
       e.quality,
       coalesce((a.settings ->> 'quality_threshold')::real, 0.8) AS threshold,
       coalesce(f.ups, 0) AS ups,
       coalesce(f.downs, 0) AS downs,
       e.rating,
       e.excluded,
       e.exclusion_reason,
       r.reason,
       r.priority
  FROM ft_examples e
  JOIN ft_avatars a ON a.id = e.avatar_id
  LEFT JOIN (SELECT fb.example_id, count(*) FILTER (WHERE fb.rating = 'up') AS ups,
                    count(*) FILTER (WHERE fb.rating = 'down') AS downs
               FROM ft_feedback fb WHERE fb.example_id IS NOT NULL GROUP BY fb.example_id) f
    ON f.example_id = e.id
  CROSS JOIN LATERAL (
    SELECT CASE
             WHEN e.quality IS NULL THEN 'not scored'
             WHEN e.quality < coalesce((a.settings ->> 'quality_threshold')::real, 0.8)
                  AND (coalesce(f.ups, 0) > 0 OR e.rating >= 4) THEN 'scored low but rated up'
             WHEN e.quality >= coalesce((a.settings ->> 'quality_threshold')::real, 0.8)
                  AND (coalesce(f.downs, 0) > 0 OR e.rating <= 2) THEN 'scored high but rated down'
             WHEN e.quality < coalesce((a.settings ->> 'quality_threshold')::real, 0.8) THEN 'low score'
           END AS reason) r0
  CROSS JOIN LATERAL (
    SELECT r0.reason,
           (CASE r0.reason
              WHEN 'scored low but rated up' THEN 3
              WHEN 'scored high but rated down' THEN 2
              WHEN 'not scored' THEN 1
              ELSE 0 END
            + (1 - coalesce(e.quality, 0)))::real AS priority) r
 WHERE NOT e.verified
   AND r.reason IS NOT NULL
   AND coalesce(e.exclusion_reason, '') NOT LIKE 'duplicate:%'
 ORDER BY r.priority DESC, e.created_at, e.id;
COMMENT ON VIEW ft_review_queue IS
  'Unverified examples that most need a human look, most urgent first: scored low but rated up (feedback '
  '"up" or rating 4-5), scored high but rated down (feedback "down" or rating 1-2), not scored, then low '
  'scores, lowest first. Duplicates are left out. Settle an example with ft_review_example.';
COMMENT ON COLUMN ft_review_queue.example_id IS 'Example to review.';
COMMENT ON COLUMN ft_review_queue.avatar_id IS 'Its avatar.';
COMMENT ON COLUMN ft_review_queue.owner_id IS 'Tenant owning it.';
COMMENT ON COLUMN ft_review_queue.quality IS 'Its automatic quality score.';
COMMENT ON COLUMN ft_review_queue.threshold IS 'The avatar''s quality threshold.';
COMMENT ON COLUMN ft_review_queue.ups IS 'Thumbs up in ft_feedback.';
COMMENT ON COLUMN ft_review_queue.downs IS 'Thumbs down in ft_feedback.';
COMMENT ON COLUMN ft_review_queue.rating IS 'Its human rating, if any.';
COMMENT ON COLUMN ft_review_queue.excluded IS 'Whether it is currently left out of datasets.';
COMMENT ON COLUMN ft_review_queue.exclusion_reason IS 'Why it is left out.';
COMMENT ON COLUMN ft_review_queue.reason IS 'Why it is in the queue.';
COMMENT ON COLUMN ft_review_queue.priority IS 'Higher is more urgent.';
INSERT INTO ft_internal.app_grants VALUES ('ft_review_queue', 'SELECT');

CREATE FUNCTION ft_review_example(id uuid, verified boolean DEFAULT true, rating integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF rating IS NOT NULL AND rating NOT BETWEEN 1 AND 5 THEN
    RAISE EXCEPTION 'rating must be between 1 and 5, not %', rating
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- updating verified re-runs the scoring trigger: verified examples are not excluded for quality
  UPDATE ft_examples e
     SET verified = coalesce(ft_review_example.verified, e.verified),
         rating = coalesce(ft_review_example.rating, e.rating)
   WHERE e.id = ft_review_example.id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'example % does not exist', id
      USING ERRCODE = 'no_data_found',
            HINT = 'Find examples to review with SELECT * FROM ft_review_queue.';
  END IF;
END
$$;
COMMENT ON FUNCTION ft_review_example(uuid, boolean, integer) IS
  'Records a human review of an example: verified (default true) and optionally a rating from 1 to 5. '
  'A verified example is no longer excluded for a low score.';

-- ===== Analyst views
-- security_invoker (PostgreSQL 15+) makes the views apply the caller's row-level security. On
-- PostgreSQL 13/14 the same is had by a set-returning SECURITY INVOKER SQL function wrapped in a view.

CREATE VIEW ft_quality_metrics WITH (security_invoker = true) AS
WITH agg AS (
  SELECT e.avatar_id,
         count(*) AS examples,
         count(*) FILTER (WHERE NOT e.excluded) AS included,
         avg(e.quality) FILTER (WHERE NOT e.excluded) AS mean_quality,
         avg(((e.quality_components ->> 'in_band')::boolean)::int) FILTER (WHERE NOT e.excluded) AS in_band,
         avg(((e.quality_components ->> 'question')::boolean)::int) FILTER (WHERE NOT e.excluded) AS question,
         avg(((e.quality_components ->> 'empathy_hits')::int > 0)::int) FILTER (WHERE NOT e.excluded) AS empathy,
         avg(((e.quality_components ->> 'context')::boolean)::int) FILTER (WHERE NOT e.excluded) AS context
    FROM ft_examples e
   GROUP BY e.avatar_id)
SELECT a.id AS avatar_id,
       a.owner_id,
       a.name AS avatar_name,
       coalesce(g.examples, 0) AS examples,
       coalesce(g.included, 0) AS included_examples,
       g.mean_quality::real AS mean_quality,
       g.in_band::real AS share_in_length_band,
       t.length_min, t.length_max,
       g.in_band BETWEEN t.length_min AND t.length_max AS length_in_range,
       g.question::real AS share_question,
       t.question_min, t.question_max,
       g.question BETWEEN t.question_min AND t.question_max AS question_in_range,
       g.empathy::real AS share_empathy,
       t.empathy_min, t.empathy_max,
       g.empathy BETWEEN t.empathy_min AND t.empathy_max AS empathy_in_range,
       g.context::real AS share_context,
       t.context_min, t.context_max,
       g.context BETWEEN t.context_min AND t.context_max AS context_in_range
  FROM ft_avatars a
  LEFT JOIN agg g ON g.avatar_id = a.id
  CROSS JOIN LATERAL (
    SELECT coalesce((a.settings #>> '{metric_targets,length_band,0}')::real, 0.6) AS length_min,
           coalesce((a.settings #>> '{metric_targets,length_band,1}')::real, 0.8) AS length_max,
           coalesce((a.settings #>> '{metric_targets,question,0}')::real, 0.7) AS question_min,
           coalesce((a.settings #>> '{metric_targets,question,1}')::real, 0.9) AS question_max,
           coalesce((a.settings #>> '{metric_targets,empathy,0}')::real, 0.4) AS empathy_min,
           coalesce((a.settings #>> '{metric_targets,empathy,1}')::real, 0.6) AS empathy_max,
           coalesce((a.settings #>> '{metric_targets,context,0}')::real, 0.3) AS context_min,
           coalesce((a.settings #>> '{metric_targets,context,1}')::real, 0.7) AS context_max) t;
COMMENT ON VIEW ft_quality_metrics IS
  'Per avatar, over the examples left in the dataset (not excluded): share of responses inside the length '
  'band, asking a question, with empathy markers and with context awareness, against target ranges '
  '(defaults 60-80%, 70-90%, 40-60%, 30-70%; override with avatar setting metric_targets, e.g. '
  '{"question": [0.6, 0.8]}), and whether each share is in its range.';
COMMENT ON COLUMN ft_quality_metrics.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_quality_metrics.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_quality_metrics.avatar_name IS 'Avatar name.';
COMMENT ON COLUMN ft_quality_metrics.examples IS 'All examples of the avatar.';
COMMENT ON COLUMN ft_quality_metrics.included_examples IS 'Examples not excluded, over which the shares are computed.';
COMMENT ON COLUMN ft_quality_metrics.mean_quality IS 'Mean quality score of the included examples.';
COMMENT ON COLUMN ft_quality_metrics.share_in_length_band IS 'Share of responses inside the length band.';
COMMENT ON COLUMN ft_quality_metrics.length_min IS 'Lower end of the target range of share_in_length_band.';
COMMENT ON COLUMN ft_quality_metrics.length_max IS 'Upper end of the target range of share_in_length_band.';
COMMENT ON COLUMN ft_quality_metrics.length_in_range IS 'share_in_length_band is inside its target range.';
COMMENT ON COLUMN ft_quality_metrics.share_question IS 'Share of responses asking a question.';
COMMENT ON COLUMN ft_quality_metrics.question_min IS 'Lower end of the target range of share_question.';
COMMENT ON COLUMN ft_quality_metrics.question_max IS 'Upper end of the target range of share_question.';
COMMENT ON COLUMN ft_quality_metrics.question_in_range IS 'share_question is inside its target range.';
COMMENT ON COLUMN ft_quality_metrics.share_empathy IS 'Share of responses with at least one empathy marker.';
COMMENT ON COLUMN ft_quality_metrics.empathy_min IS 'Lower end of the target range of share_empathy.';
COMMENT ON COLUMN ft_quality_metrics.empathy_max IS 'Upper end of the target range of share_empathy.';
COMMENT ON COLUMN ft_quality_metrics.empathy_in_range IS 'share_empathy is inside its target range.';
COMMENT ON COLUMN ft_quality_metrics.share_context IS 'Share of responses referring back to earlier turns.';
COMMENT ON COLUMN ft_quality_metrics.context_min IS 'Lower end of the target range of share_context.';
COMMENT ON COLUMN ft_quality_metrics.context_max IS 'Upper end of the target range of share_context.';
COMMENT ON COLUMN ft_quality_metrics.context_in_range IS 'share_context is inside its target range.';
INSERT INTO ft_internal.app_grants VALUES ('ft_quality_metrics', 'SELECT');

CREATE TABLE ft_coverage_targets (
  avatar_id    uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id     text        NOT NULL DEFAULT ft_current_owner(),
  category     text        NOT NULL,
  target_share real        NOT NULL CHECK (target_share BETWEEN 0 AND 1),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, category)
);
COMMENT ON TABLE ft_coverage_targets IS 'Share of an avatar''s dataset each category should have; compared in ft_coverage.';
COMMENT ON COLUMN ft_coverage_targets.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_coverage_targets.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_coverage_targets.category IS 'Category, as in ft_examples.category.';
COMMENT ON COLUMN ft_coverage_targets.target_share IS 'Wanted share of included examples, between 0 and 1.';
COMMENT ON COLUMN ft_coverage_targets.created_at IS 'When the target was set.';
CREATE TRIGGER ft_coverage_targets_owner BEFORE INSERT OR UPDATE ON ft_coverage_targets
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
SELECT ft_internal.enable_tenancy('ft_coverage_targets', 'SELECT, INSERT, UPDATE, DELETE');

CREATE VIEW ft_coverage WITH (security_invoker = true) AS
WITH counts AS (
  SELECT e.avatar_id, coalesce(e.category, '(none)') AS category, count(*) AS examples
    FROM ft_examples e WHERE NOT e.excluded
   GROUP BY 1, 2),
totals AS (
  SELECT c.avatar_id, sum(c.examples) AS total FROM counts c GROUP BY 1)
SELECT a.id AS avatar_id,
       a.owner_id,
       coalesce(c.category, t.category) AS category,
       coalesce(c.examples, 0) AS examples,
       round(coalesce(c.examples::numeric / nullif(tot.total, 0), 0), 4)::real AS share,
       t.target_share,
       round(coalesce(c.examples::numeric / nullif(tot.total, 0), 0) - t.target_share::numeric, 4)::real AS gap,
       coalesce(c.examples::real / nullif(tot.total, 0), 0) >= t.target_share AS target_met
  FROM counts c
  FULL JOIN ft_coverage_targets t ON t.avatar_id = c.avatar_id AND t.category = c.category
  JOIN ft_avatars a ON a.id = coalesce(c.avatar_id, t.avatar_id)
  LEFT JOIN totals tot ON tot.avatar_id = a.id;
COMMENT ON VIEW ft_coverage IS
  'Included examples per avatar and category against the target shares of ft_coverage_targets; categories '
  'with a target but no examples appear with share 0. Examples without a category count as "(none)".';
COMMENT ON COLUMN ft_coverage.avatar_id IS 'Avatar.';
COMMENT ON COLUMN ft_coverage.owner_id IS 'Tenant owning the avatar.';
COMMENT ON COLUMN ft_coverage.category IS 'Category.';
COMMENT ON COLUMN ft_coverage.examples IS 'Included examples of the category.';
COMMENT ON COLUMN ft_coverage.share IS 'Share of the avatar''s included examples.';
COMMENT ON COLUMN ft_coverage.target_share IS 'Target share, NULL without a target.';
COMMENT ON COLUMN ft_coverage.gap IS 'share - target_share (negative: under-covered).';
COMMENT ON COLUMN ft_coverage.target_met IS 'share reaches target_share; NULL without a target.';
INSERT INTO ft_internal.app_grants VALUES ('ft_coverage', 'SELECT');
