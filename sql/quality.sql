-- Quality: scoring on write, lexicon, de-duplication, validation, feedback and analyst views.
SET client_min_messages = warning;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never
-- SQLSTATE of a statement, for errors whose text names generated ids
CREATE FUNCTION pg_temp.sqlstate_of(statement text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
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

-- ft_score without an avatar: defaults and the caller's lexicon
SELECT score, components FROM ft_score('{"messages": [
  {"role": "user", "content": "My dog is sick and the vet appointment is tomorrow morning."},
  {"role": "assistant", "content": "I''m sorry to hear your dog is sick. Waiting for the vet appointment is hard. What did they say so far?"}]}');
-- generic, short reply; accents, case and typographic apostrophes do not matter
SELECT score, components ->> 'generic_hits' AS generic_hits, components ->> 'length' AS length
  FROM ft_score('[{"role": "user", "content": "I ran 5k"}, {"role": "assistant", "content": "THAT’S INTERESTING. Kéep it up!"}]');
-- too short, personal data, no assistant message at all
SELECT score, components ->> 'too_short' AS too_short FROM ft_score('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]');
SELECT components ->> 'pii' AS pii FROM ft_score('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Write to jane.doe@example.org and I will answer within a day or two, promise."}]');
SELECT score, components ->> 'length' AS length FROM ft_score('[{"role": "user", "content": "hello there"}]');
-- context: a marker, or content words shared with earlier user turns
SELECT components ->> 'context' AS context, components ->> 'context_markers' AS markers
  FROM ft_score('[{"role": "user", "content": "Back again"}, {"role": "assistant", "content": "Welcome! As you mentioned, the exam is next week."}]');
SELECT components ->> 'context' AS context, components ->> 'overlap' AS overlap
  FROM ft_score('[{"role": "user", "content": "My garden tomatoes have yellow leaves"}, {"role": "user", "content": "any idea?"}, {"role": "assistant", "content": "Yellow leaves on tomatoes often mean too much water in the garden bed."}]');
SELECT ft_score(NULL) IS NULL AS null_in_null_out;

-- avatars of this test
SELECT ft_create_avatar('quality-main', settings => '{"quality_threshold": 0.6}') AS av \gset
SELECT ft_create_avatar('quality-strict') AS strict \gset

-- ft_score with an avatar uses its settings: a band of 10-40 characters and no length weight
UPDATE ft_avatars SET settings = settings || '{"length_band": [10, 40], "score_weights": {"length": 0}}' WHERE id = :'strict';
SELECT score, components ->> 'in_band' AS in_band
  FROM ft_score('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there! How are you?"}]', :'strict');
-- bad settings and unknown avatars are errors with SQLSTATEs
UPDATE ft_avatars SET settings = '{"length_band": [300, 10]}' WHERE id = :'strict';
SELECT pg_temp.try(format($$SELECT score FROM ft_score('[{"role": "assistant", "content": "Hello"}]', %L)$$, :'strict'));
UPDATE ft_avatars SET settings = '{"score_weights": {"lenght": 1}}' WHERE id = :'strict';
SELECT pg_temp.try(format($$SELECT score FROM ft_score('[{"role": "assistant", "content": "Hello"}]', %L)$$, :'strict'));
UPDATE ft_avatars SET settings = '{"quality_threshold": 2}' WHERE id = :'strict';
SELECT pg_temp.try(format($$SELECT score FROM ft_score('[{"role": "assistant", "content": "Hello"}]', %L)$$, :'strict'));
UPDATE ft_avatars SET settings = '{}' WHERE id = :'strict';
SELECT pg_temp.try($$SELECT score FROM ft_score('[{"role": "assistant", "content": "Hello"}]', '00000000-0000-0000-0000-000000000000')$$);

-- the trigger: quality, components, hash, exclusion under the threshold (0.6 here)
SELECT ft_add_example(:'av', '[{"role": "user", "content": "My dog is sick and the vet appointment is tomorrow morning."},
  {"role": "assistant", "content": "I''m sorry to hear your dog is sick. Waiting for the vet appointment is hard. What did they say so far?"}]') AS good \gset
SELECT ft_add_example(:'av', '[{"role": "user", "content": "I ran 5k today"}, {"role": "assistant", "content": "That''s interesting. Keep it up!"}]') AS weak \gset
SELECT id = :'good' AS is_good, quality, excluded, exclusion_reason, octet_length(content_hash) AS hash_bytes,
       quality_components ->> 'empathy_hits' AS empathy_hits
  FROM ft_examples WHERE avatar_id = :'av' ORDER BY quality DESC;

-- exact duplicate (case and spacing differ): the later copy is excluded, naming the first
SELECT ft_add_example(:'av', '[{"role": "user", "content": "my dog is  sick and the vet appointment is tomorrow morning."},
  {"role": "assistant", "content": "I''m sorry to hear your dog is sick. Waiting for the vet appointment is hard.   What did they say so far?"}]') AS copy \gset
SELECT excluded, exclusion_reason = 'duplicate: exact copy of ' || :'good' AS names_original, quality
  FROM ft_examples WHERE id = :'copy';
-- two copies in one INSERT: the second is flagged
INSERT INTO ft_examples (avatar_id, messages, category)
SELECT :'av', '[{"role": "user", "content": "What time do you open on Sundays?"}, {"role": "assistant", "content": "We open at ten on Sundays and close at four. Are you planning to come by this weekend?"}]', 'twin'
  FROM generate_series(1, 2);
SELECT count(*) FILTER (WHERE excluded) AS flagged, count(*) FILTER (WHERE NOT excluded) AS kept
  FROM ft_examples WHERE avatar_id = :'av' AND category = 'twin';

-- a manual exclusion is never overridden; a quality exclusion is lifted by a human review
UPDATE ft_examples SET excluded = true, exclusion_reason = 'off topic' WHERE id = :'good';
UPDATE ft_examples SET messages = messages WHERE id = :'good';
SELECT excluded, exclusion_reason FROM ft_examples WHERE id = :'good';
UPDATE ft_examples SET excluded = false, exclusion_reason = NULL WHERE id = :'good';
SELECT ft_review_example(:'weak', verified => true, rating => 4);
SELECT verified, rating, excluded, exclusion_reason FROM ft_examples WHERE id = :'weak';
SELECT pg_temp.try(format('SELECT ft_review_example(%L, rating => 9)', :'weak'));
SELECT pg_temp.try($$SELECT ft_review_example('00000000-0000-0000-0000-000000000000')$$);
UPDATE ft_examples SET verified = false WHERE id = :'weak';
SELECT excluded, exclusion_reason FROM ft_examples WHERE id = :'weak';

-- the lexicon: a tenant phrase is used after ft_rescore; the compiled matcher is rebuilt
SELECT ft_add_example(:'av', '[{"role": "user", "content": "Which trail should we take on Saturday?"}, {"role": "assistant", "content": "The ridge trail is lovely in autumn, about three hours with a picnic spot. Shall I send you the map?"}]') AS trail \gset
SELECT quality, excluded FROM ft_examples WHERE id = :'trail';
INSERT INTO ft_lexicon (owner_id, kind, phrase, weight) VALUES (ft_current_owner(), 'generic', 'Shall I send you the map', 1);
SELECT ft_rescore(:'av') AS rescored;
SELECT quality, excluded, quality_components ->> 'generic_hits' AS generic_hits FROM ft_examples WHERE id = :'trail';
-- a tenant row with weight 0 switches a shared phrase off
INSERT INTO ft_lexicon (owner_id, kind, phrase, weight) VALUES (ft_current_owner(), 'generic', 'keep it up', 0);
SELECT components ->> 'generic_hits' AS generic_hits FROM ft_score('[{"role": "assistant", "content": "Keep it up"}]');
DELETE FROM ft_lexicon WHERE owner_id = ft_current_owner();
SELECT components ->> 'generic_hits' AS generic_hits FROM ft_score('[{"role": "assistant", "content": "Keep it up"}]');
SELECT ft_rescore(:'av') AS rescored;
SELECT quality, excluded FROM ft_examples WHERE id = :'trail';
SELECT pg_temp.try($$SELECT ft_rescore('00000000-0000-0000-0000-000000000000')$$);
SELECT pg_temp.sqlstate_of($$INSERT INTO ft_lexicon (owner_id, kind, phrase) VALUES (ft_current_owner(), 'insult', 'whatever')$$) AS bad_kind;

-- row-level security of the lexicon: shared rows plus one's own; only one's own are writable
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ft_quality_alice') THEN CREATE ROLE ft_quality_alice NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ft_quality_bob') THEN CREATE ROLE ft_quality_bob NOLOGIN; END IF;
END $$;
SELECT ft_grant_app_role('ft_quality_alice'), ft_grant_app_role('ft_quality_bob');
SELECT count(*) > 80 AS shared_defaults FROM ft_lexicon WHERE owner_id IS NULL;
SET ROLE ft_quality_alice;
INSERT INTO ft_lexicon (kind, phrase, weight) VALUES ('empathy', 'hang in there', 1);
SELECT owner_id, phrase FROM ft_lexicon WHERE owner_id IS NOT NULL;
SELECT count(*) > 80 AS sees_shared FROM ft_lexicon WHERE owner_id IS NULL;
UPDATE ft_lexicon SET weight = 0 WHERE phrase = 'keep it up';
DELETE FROM ft_lexicon WHERE owner_id IS NULL;
SELECT pg_temp.try($$INSERT INTO ft_lexicon (owner_id, kind, phrase) VALUES (NULL, 'empathy', 'sneaky shared phrase')$$);
SELECT components ->> 'empathy_hits' AS alice_hits FROM ft_score('[{"role": "assistant", "content": "Hang in there!"}]');
SET ROLE ft_quality_bob;
SELECT count(*) AS bob_sees_alice FROM ft_lexicon WHERE owner_id = 'ft_quality_alice';
SELECT components ->> 'empathy_hits' AS bob_hits FROM ft_score('[{"role": "assistant", "content": "Hang in there!"}]');
UPDATE ft_lexicon SET weight = 0 WHERE owner_id = 'ft_quality_alice';
RESET ROLE;
SELECT weight FROM ft_lexicon WHERE owner_id = 'ft_quality_alice';
SELECT weight, (SELECT count(*) FROM ft_lexicon WHERE owner_id IS NULL) > 80 AS shared_intact FROM ft_lexicon WHERE owner_id IS NULL AND phrase = 'keep it up';
DELETE FROM ft_lexicon WHERE owner_id = 'ft_quality_alice';

-- ft_validate: structural problems (from ft_example_problems) and semantic ones
SELECT ft_create_avatar('quality-validate') AS val \gset
ALTER TABLE ft_examples DISABLE TRIGGER ft_examples_check;
INSERT INTO ft_examples (avatar_id, messages, category) VALUES
  (:'val', '{"messages": [{"role": "bot", "content": "hi"}]}', 'v1'),
  (:'val', '{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "Hello there"}]}', 'v2'),
  (:'val', '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello", "weight": 0}, {"role": "user", "content": "bye"}]}', 'v3'),
  (:'val', '{"messages": [{"role": "user", "content": "weather?"},
     {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\""}}]},
     {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
     {"role": "assistant", "content": "It is sunny in Paris."}],
     "tools": [{"type": "function", "function": {"name": "get_time"}}]}', 'v4'),
  (:'val', '{"messages": [{"role": "user", "content": "weather?"},
     {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
     {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
     {"role": "assistant", "content": "It is sunny in Paris.", "weight": 1}],
     "tools": [{"type": "function", "function": {"name": "get_weather"}}]}', 'v5-clean');
ALTER TABLE ft_examples ENABLE TRIGGER ft_examples_check;
SELECT e.category, v.code, v.detail
  FROM ft_validate(:'val') v JOIN ft_examples e ON e.id = v.example_id
 ORDER BY e.category, v.code, v.detail;
SELECT code, detail FROM ft_example_semantic_problems('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]}', 5000, 4096);
SELECT pg_temp.try($$SELECT * FROM ft_validate('00000000-0000-0000-0000-000000000000')$$);

-- near-duplicates, marking and diversity: fifty varied examples beat two hundred repetitive ones
SELECT ft_create_avatar('quality-varied', settings => '{"quality_threshold": 0}') AS varied \gset
SELECT ft_create_avatar('quality-repetitive', settings => '{"quality_threshold": 0}') AS rep \gset
INSERT INTO ft_examples (avatar_id, messages, category, pattern_type)
SELECT :'varied', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', format('Question %s about %s and %s', i, w[1 + i % 7], w[1 + (i * 3) % 11])),
         jsonb_build_object('role', 'assistant', 'content',
           format('%s %s %s %s %s %s.', w[1 + (i * 5) % 11], w[1 + (i * 7) % 13], w[1 + (i * 11) % 17], w[1 + (i * 13) % 19], w[1 + (i * 17) % 23], i))),
       'c' || (i % 5), (ARRAY['greeting', 'question', 'statement', 'joke', 'story'])[1 + i % 5]
  FROM generate_series(1, 50) i,
       LATERAL (SELECT ARRAY['apples', 'rivers', 'engines', 'violins', 'glaciers', 'tax forms', 'comets', 'bread', 'chess',
                             'tides', 'lanterns', 'moss', 'radios', 'kites', 'saffron', 'ferries', 'quartz', 'owls', 'maps',
                             'copper', 'honey', 'yurts', 'zithers'] AS w) words;
INSERT INTO ft_examples (avatar_id, messages, category)
SELECT :'rep', jsonb_build_array(
         jsonb_build_object('role', 'user', 'content', 'Hi, how are you today?'),
         jsonb_build_object('role', 'assistant', 'content', format('Hi there! I am doing great today, thanks for asking, friend number %s. How are you?', i))),
       'small talk'
  FROM generate_series(1, 200) i;
SELECT ft_diversity(:'varied') > ft_diversity(:'rep') AS varied_wins,
       ft_diversity(:'varied') > 0.7 AS varied_high, ft_diversity(:'rep') < 0.4 AS repetitive_low;
SELECT count(*) > 1000 AS many_pairs, min(similarity) >= 0.8 AS all_above, bool_and(a.created_at <= b.created_at) AS a_first
  FROM ft_near_duplicates(:'rep', 0.8) d
  JOIN ft_examples a ON a.id = d.example_a JOIN ft_examples b ON b.id = d.example_b;
SELECT count(*) AS varied_pairs FROM ft_near_duplicates(:'varied');
SELECT count(*) AS near_copy_pairs FROM ft_near_duplicates(:'av', 0.9);
SELECT ft_mark_duplicates(:'rep', 0.8) > 150 AS most_marked;
SELECT count(*) FILTER (WHERE NOT excluded) < 50 AS few_left,
       bool_and(exclusion_reason LIKE 'duplicate: near %') FILTER (WHERE excluded) AS reasons
  FROM ft_examples WHERE avatar_id = :'rep';
SELECT ft_mark_duplicates(:'rep', 0.8) AS second_run;
SELECT pg_temp.try(format('SELECT * FROM ft_near_duplicates(%L, 1.5)', :'rep'));
SELECT pg_temp.try($$SELECT * FROM ft_near_duplicates('00000000-0000-0000-0000-000000000000')$$);
SELECT pg_temp.try($$SELECT ft_diversity('00000000-0000-0000-0000-000000000000')$$);
SELECT ft_diversity(:'val') AS one_or_none;

-- feedback and the review queue
SELECT ft_add_feedback(:'av', 'down', example => :'good', comment => 'too formal') IS NOT NULL AS down_recorded;
SELECT ft_add_feedback(:'av', 'up', example => :'weak') IS NOT NULL AS up_recorded;
SELECT ft_add_feedback(:'av', 'up', message_ref => 'chat-msg-17') IS NOT NULL AS message_feedback;
SELECT pg_temp.try(format($$SELECT ft_add_feedback(%L, 'meh', example => %L)$$, :'av', :'good'));
SELECT pg_temp.try(format($$SELECT ft_add_feedback(%L, 'up')$$, :'av'));
SELECT pg_temp.sqlstate_of(format('SELECT ft_add_feedback(%L, %L, example => %L)', :'av', 'up', :'varied')) AS example_of_other_avatar;
SELECT CASE example_id WHEN :'weak' THEN 'weak' WHEN :'good' THEN 'good' ELSE 'other' END AS example, reason, ups, downs
  FROM ft_review_queue WHERE avatar_id = :'av' ORDER BY priority DESC, example LIMIT 3;

-- analyst views
SELECT avatar_name, examples, included_examples, share_in_length_band, share_question, question_in_range,
       share_empathy, share_context
  FROM ft_quality_metrics WHERE avatar_id IN (:'av', :'varied') ORDER BY avatar_name;
INSERT INTO ft_coverage_targets (avatar_id, category, target_share) VALUES (:'varied', 'c1', 0.3), (:'varied', 'billing', 0.1);
SELECT category, examples, share, target_share, gap, target_met FROM ft_coverage WHERE avatar_id = :'varied' ORDER BY category;
SELECT pg_temp.sqlstate_of(format('INSERT INTO ft_coverage_targets (avatar_id, category, target_share) VALUES (%L, %L, 1.5)', :'varied', 'c2')) AS bad_share;

-- a tenant sees no other tenant's metrics, coverage or queue
SET ROLE ft_quality_alice;
SELECT count(*) AS alice_metrics FROM ft_quality_metrics;
SELECT count(*) AS alice_coverage FROM ft_coverage;
SELECT count(*) AS alice_queue FROM ft_review_queue;
SELECT pg_temp.sqlstate_of(format('SELECT ft_add_feedback(%L, %L, message_ref => %L)', :'av', 'up', 'x')) AS alice_feedback_on_foreign_avatar;
SELECT pg_temp.sqlstate_of(format('INSERT INTO ft_feedback (avatar_id, message_ref, rating) VALUES (%L, %L, %L)', :'av', 'x', 'up')) AS alice_insert_on_foreign_avatar;
RESET ROLE;
DROP OWNED BY ft_quality_alice, ft_quality_bob;
DROP ROLE ft_quality_alice, ft_quality_bob;
