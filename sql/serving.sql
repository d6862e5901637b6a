-- Serving side: ft_chat_context within an exact token budget, context items and pruning,
-- optimisation patterns (condition language, Wilson ranking, shared rows), A/B assignment,
-- ratings, model comparison and preference pairs.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Runs a statement and shows SQLSTATE, message, detail and hint of its error.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  msg text;
  detail text;
  hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  -- ids are random: they are masked so the expected output stays stable
  RETURN regexp_replace(SQLSTATE || ': ' || msg || CASE WHEN detail <> '' THEN E'\nDETAIL: ' || detail ELSE '' END
                        || CASE WHEN hint <> '' THEN E'\nHINT: ' || hint ELSE '' END,
                        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;

---------------------------------------------------------------------------------------------------
-- Chat context
---------------------------------------------------------------------------------------------------
SELECT ft_create_avatar('serving shop', system_prompt => 'You are the assistant of a shoe shop.',
                        settings => '{"quality_threshold": 0}') AS a \gset
SELECT count(ft_add_example(:'a', jsonb_build_array(jsonb_build_object('role', 'user', 'content', q),
                                                    jsonb_build_object('role', 'assistant', 'content', r)),
                            category => c, pattern_type => pt))
  FROM (VALUES ('Do you have running shoes in size 42?', 'Yes, size 42 running shoes are in stock. Shall I reserve a pair?', 'stock', 'question'),
               ('Are trail running shoes waterproof?', 'Most of our trail running shoes are. Which pair are you looking at?', 'product', 'question'),
               ('Hello there!', 'Hello! How can I help you today?', 'greeting', 'greeting'),
               ('What are your opening hours?', 'We are open 9 to 18 from Monday to Saturday.', 'hours', 'question'),
               ('Tell me a joke about shoes', 'Why did the shoe go to school? To get a little polish!', 'fun', 'joke')) v(q, r, c, pt);
-- An excluded example is never used as a few-shot example.
UPDATE ft_examples SET excluded = true, exclusion_reason = 'test'
 WHERE avatar_id = :'a' AND category = 'hours';

INSERT INTO ft_context_items (avatar_id, kind, data, outcome, subject, created_at) VALUES
  (:'a', 'profile', '"The shop sells running and hiking shoes."', NULL, NULL, now() - interval '3 days'),
  (:'a', 'store', '{"text": "Berlin store: open on Sundays."}', NULL, 'berlin', now() - interval '2 days'),
  (:'a', 'issue', '{"text": "Size 44 hiking boots are back-ordered."}', NULL, NULL, now() - interval '2 days'),
  (:'a', 'issue', '{"text": "Card terminal was down."}', 'fixed on Monday', NULL, now() - interval '1 day'),
  (:'a', 'optimization', '{"action": "free insoles with running shoes"}', 'conversion +8%', NULL, now() - interval '1 day'),
  (:'a', 'conversation', '{"summary": "Customer asked about returns; wants a refund."}', NULL, NULL, now() - interval '1 hour');
SELECT ft_add_turn(:'a', 'conv-1', 'user', 'Hi, I need new shoes.') IS NOT NULL AS turn1,
       ft_add_turn(:'a', 'conv-1', 'assistant', 'Happy to help! Running or hiking?') IS NOT NULL AS turn2;

-- Everything fits the default budget: the model's context window (128000 for o200k models when
-- ft_models does not say) minus 1024 tokens for the reply.
SELECT ft_chat_context(:'a', 'Running shoes, size 42 please', 'conv-1') AS ctx \gset
SELECT (:'ctx'::jsonb) ->> 'model' AS model, (:'ctx'::jsonb) -> 'budget' AS budget,
       (:'ctx'::jsonb) -> 'context_window' AS window, (:'ctx'::jsonb) -> 'tokens' AS tokens,
       ft_chat_token_count((:'ctx'::jsonb) -> 'messages', 'gpt-4o-mini-2024-07-18') AS recounted,
       (:'ctx'::jsonb) -> 'left_out' AS left_out;
-- System prompt, context block (resolved issue and other subjects left out), few-shot examples
-- (most relevant first, one per pattern type before repeats), history, then the user message.
SELECT o, m ->> 'role' AS role, m ->> 'name' AS name, m ->> 'content' AS content
  FROM jsonb_array_elements((:'ctx'::jsonb) -> 'messages') WITH ORDINALITY x(m, o) ORDER BY o;

-- The same inputs give the same answer.
SELECT ft_chat_context(:'a', 'Running shoes, size 42 please', 'conv-1') = :'ctx'::jsonb AS deterministic;

-- A subject adds its own items; per-kind limits keep the newest items.
SELECT m ->> 'content' AS context_block
  FROM jsonb_array_elements(ft_chat_context(:'a', 'Open today?', NULL,
                            '{"subject": "berlin", "context_per_kind": {"conversation": 0}}') -> 'messages') m
 WHERE m ->> 'content' LIKE 'Context:%';
SELECT e ->> 'part' AS part, e ->> 'kind' AS kind, e ->> 'reason' AS reason
  FROM jsonb_array_elements(ft_chat_context(:'a', 'Open today?', NULL,
                            '{"subject": "berlin", "context_per_kind": {"conversation": 0}}') -> 'left_out') e;

-- A tight budget: the least useful parts go first (old history, then the lowest ranked examples,
-- then context items by kind, then the recent turns); the count is exact and within the budget.
SELECT ft_chat_context(:'a', 'Running shoes, size 42 please', 'conv-1', '{"budget": 150}') AS tight \gset
SELECT (:'tight'::jsonb) -> 'tokens' AS tokens,
       ft_chat_token_count((:'tight'::jsonb) -> 'messages', 'gpt-4o-mini-2024-07-18') AS recounted;
SELECT e ->> 'part' AS part, e ->> 'kind' AS kind, e ->> 'reason' AS reason, e -> 'tokens' AS tokens
  FROM jsonb_array_elements((:'tight'::jsonb) -> 'left_out') e;
SELECT m ->> 'role' AS role, m ->> 'name' AS name, left(m ->> 'content', 40) AS content
  FROM jsonb_array_elements((:'tight'::jsonb) -> 'messages') m;

-- Every budget from the bare minimum up: never over budget, always exactly counted, and a larger
-- budget never sends fewer messages.
WITH sweep AS (
  SELECT b, ft_chat_context(:'a', 'Running shoes, size 42 please', 'conv-1', jsonb_build_object('budget', b)) AS c
    FROM generate_series(40, 260, 3) b),
checked AS (
  SELECT b, (c ->> 'tokens')::int AS tokens, jsonb_array_length(c -> 'messages') AS n,
         ft_chat_token_count(c -> 'messages', 'gpt-4o-mini-2024-07-18') AS recounted
    FROM sweep)
SELECT count(*) AS budgets,
       bool_and(tokens <= b) AS within_budget,
       bool_and(tokens = recounted) AS exact,
       bool_and(n >= coalesce(prev_n, 0)) AS monotone,
       min(n) AS fewest_messages, max(n) AS most_messages
  FROM (SELECT *, lag(n) OVER (ORDER BY b) AS prev_n FROM checked) s;

-- The system prompt and the user message are never dropped: when they alone do not fit, 54000.
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L, NULL, %L)', :'a', 'Running shoes, size 42 please', '{"budget": 20}'));
-- Options are checked.
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L, NULL, %L)', :'a', 'hi', '{"budgett": 10}'));
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L, NULL, %L)', :'a', 'hi', '{"budget": -1}'));
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L, NULL, %L)', :'a', 'hi', '{"context_per_kind": {"weather": 1}}'));
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, NULL)', :'a'));
SELECT pg_temp.err('SELECT ft_chat_context(''00000000-0000-0000-0000-000000000000'', ''hi'')');

-- History: the app may store the user message before asking; it is not repeated. Turns beyond
-- max_history_turns are reported as one entry.
SELECT ft_add_turn(:'a', 'conv-1', 'user', 'Do you ship to Austria?') IS NOT NULL AS stored;
SELECT count(*) FILTER (WHERE m ->> 'content' = 'Do you ship to Austria?') AS times_sent,
       (ft_chat_context(:'a', 'Do you ship to Austria?', 'conv-1') -> 'messages') -> -1 ->> 'content' AS last
  FROM jsonb_array_elements(ft_chat_context(:'a', 'Do you ship to Austria?', 'conv-1') -> 'messages') m;
SELECT ft_chat_context(:'a', 'Do you ship to Austria?', 'conv-1', '{"max_history_turns": 1}') -> 'left_out' AS left_out;
SELECT m ->> 'role' AS role, m ->> 'content' AS content
  FROM jsonb_array_elements(ft_chat_context(:'a', 'Do you ship to Austria?', 'conv-1',
                                            '{"max_history_turns": 1, "max_examples": 0}') -> 'messages') m;
-- Old turns are the first to go, oldest first; the last two turns outlast examples and context.
SELECT count(ft_add_turn(:'a', 'conv-long', CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END, 'turn number ' || i))
  FROM generate_series(1, 6) i;
SELECT (ft_chat_context(:'a', 'And size 43?', 'conv-long') ->> 'tokens')::int AS full_tokens \gset
SELECT e ->> 'part' AS part, e ->> 'kind' AS kind, e ->> 'reason' AS reason
  FROM jsonb_array_elements(ft_chat_context(:'a', 'And size 43?', 'conv-long',
                                            jsonb_build_object('budget', :full_tokens - 10)) -> 'left_out') e;
SELECT m ->> 'role' AS role, m ->> 'name' AS name, left(m ->> 'content', 30) AS content
  FROM jsonb_array_elements(ft_chat_context(:'a', 'And size 43?', 'conv-long', '{"budget": 60}') -> 'messages') m;
SELECT e ->> 'part' AS part, e ->> 'kind' AS kind
  FROM jsonb_array_elements(ft_chat_context(:'a', 'And size 43?', 'conv-long', '{"budget": 60}') -> 'left_out') e;

-- A cl100k model: its window defaults to 16385; ft_models can say otherwise.
SELECT ft_create_avatar('serving legacy', base_model => 'gpt-3.5-turbo-0125', system_prompt => 'Be brief.') AS legacy \gset
SELECT c -> 'context_window' AS window, c -> 'budget' AS budget, c -> 'tokens' AS tokens,
       ft_chat_token_count(c -> 'messages', 'cl100k_base') AS recounted
  FROM ft_chat_context(:'legacy', 'Hello', NULL, '{"reply_tokens": 385}') c;
UPDATE ft_models SET context_window = 16000 WHERE model = 'gpt-3.5-turbo-0125';
SELECT c -> 'context_window' AS window, c -> 'budget' AS budget
  FROM ft_chat_context(:'legacy', 'Hello') c;
UPDATE ft_models SET context_window = NULL WHERE model = 'gpt-3.5-turbo-0125';
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L)', :'legacy', repeat('very long message ', 6000)));
-- A fine-tuned model name is counted with its own encoding (known prefix ft:gpt-4o).
UPDATE ft_avatars SET active_model = 'ft:gpt-4o-mini-2024-07-18:shop::abc123' WHERE id = :'legacy';
SELECT c ->> 'model' AS model, c -> 'context_window' AS window FROM ft_chat_context(:'legacy', 'Hello') c;

---------------------------------------------------------------------------------------------------
-- Pruning context
---------------------------------------------------------------------------------------------------
SELECT ft_create_avatar('serving prune', settings => '{"context_limits": {"optimization": 3}, "context_retention_days": 10}') AS p \gset
INSERT INTO ft_context_items (avatar_id, kind, data, created_at)
SELECT :'p', 'optimization', jsonb_build_object('text', 'action ' || i), now() - i * interval '1 hour'
  FROM generate_series(1, 6) i;
INSERT INTO ft_context_items (avatar_id, kind, data, created_at)
SELECT :'p', 'conversation', jsonb_build_object('summary', 'talk ' || i), now() - i * interval '1 day'
  FROM generate_series(1, 14) i;
INSERT INTO ft_context_items (avatar_id, kind, data, outcome, created_at) VALUES
  (:'p', 'profile', '"old but still true"', NULL, now() - interval '400 days'),
  (:'p', 'issue', '"open for ages"', NULL, now() - interval '400 days'),
  (:'p', 'issue', '"resolved long ago"', 'fixed', now() - interval '400 days');
INSERT INTO ft_conversation_turns (avatar_id, conversation_id, role, content, created_at)
VALUES (:'p', 'old', 'user', 'hello', now() - interval '11 days'), (:'p', 'new', 'user', 'hello', now());
SELECT * FROM ft_prune_context(:'p');
SELECT kind, count(*), min(data::text) FROM ft_context_items WHERE avatar_id = :'p' GROUP BY kind ORDER BY kind;
SELECT count(*) AS turns_left FROM ft_conversation_turns WHERE avatar_id = :'p';
SELECT count(*) AS second_run FROM ft_prune_context(:'p');
UPDATE ft_avatars SET settings = '{"context_limits": {"issue": "many"}}' WHERE id = :'p';
SELECT pg_temp.err(format('SELECT * FROM ft_prune_context(%L)', :'p'));

---------------------------------------------------------------------------------------------------
-- Patterns
---------------------------------------------------------------------------------------------------
SELECT round(lower::numeric, 4) AS lower, round(upper::numeric, 4) AS upper, label
  FROM (SELECT (ft_wilson_interval(2, 2)).*, '2 of 2' AS label UNION ALL
        SELECT (ft_wilson_interval(85, 100)).*, '85 of 100' UNION ALL
        SELECT (ft_wilson_interval(0, 0)).*, 'no trials' UNION ALL
        SELECT (ft_wilson_interval(0, 10)).*, '0 of 10') s;

-- The condition language, and what a malformed condition says.
SELECT * FROM ft_pattern_condition_problems('{"visits": ">abc", "country": [], "plan": null, "tags": ["a", {"b": 1}],
                                              "x": {"exists": "yes"}, "": 1, "ok": ">=10", "fine": ["DE", "AT", 3, true]}');
SELECT * FROM ft_pattern_condition_problems('[1]');
SELECT pg_temp.err($$INSERT INTO ft_patterns (name, conditions) VALUES ('bad', '{"traffic.daily": "<lots"}')$$);
SELECT pg_temp.err($$INSERT INTO ft_patterns (name, conditions, solution) VALUES ('bad', '{}', '[1]')$$);

SELECT c AS condition, f AS facts, ft_pattern_matches(c::jsonb, f::jsonb) AS matches
  FROM (VALUES ('{"visits": ">10"}', '{"visits": 11}'),
               ('{"visits": ">10"}', '{"visits": 10}'),
               ('{"visits": ">=10"}', '{"visits": 10}'),
               ('{"visits": "<=10", "cart": "<0.5"}', '{"visits": 3, "cart": 0.25}'),
               ('{"visits": ">10"}', '{"visits": "11"}'),
               ('{"visits": ">10"}', '{}'),
               ('{"country": ["DE", "AT"]}', '{"country": "AT"}'),
               ('{"country": ["DE", "AT"]}', '{"country": "FR"}'),
               ('{"country": "!=DE"}', '{"country": "FR"}'),
               ('{"country": "!=DE"}', '{}'),
               ('{"plan": "pro"}', '{"plan": "pro"}'),
               ('{"plan": "=>weird"}', '{"plan": ">weird"}'),
               ('{"size": "42"}', '{"size": 42}'),
               ('{"size": 42}', '{"size": 42.0}'),
               ('{"has_shop": true}', '{"has_shop": true}'),
               ('{"has_shop": true}', '{"has_shop": "true"}'),
               ('{"coupon": {"exists": false}}', '{}'),
               ('{"coupon": {"exists": false}}', '{"coupon": null}'),
               ('{"coupon": {"exists": true}}', '{"coupon": "X"}'),
               ('{"traffic.daily": ">100"}', '{"traffic": {"daily": 150}}'),
               ('{}', '{"anything": 1}')) v(c, f);

INSERT INTO ft_patterns (name, category, store_type, conditions, solution, successes, failures) VALUES
  ('lucky streak', 'conversion', NULL, '{"visits": ">100"}', '{"do": "banner"}', 2, 0),
  ('proven', 'conversion', 'fashion', '{"visits": ">100", "cart_rate": "<0.1"}', '{"do": "free shipping"}', 85, 15),
  ('untried', 'conversion', NULL, '{}', '{"do": "chat popup"}', 0, 0),
  ('wrong store', 'conversion', 'grocery', '{}', '{"do": "recipes"}', 50, 0),
  ('needs coupon', 'conversion', NULL, '{"coupon": {"exists": true}}', '{"do": "remind coupon"}', 9, 1);
-- 85 of 100 outranks 2 of 2; patterns for other store types or unmet conditions are left out.
SELECT name, successes, failures, round(success_rate::numeric, 3) AS rate, round(wilson_lower::numeric, 4) AS wilson_lower, shared
  FROM ft_relevant_patterns('fashion', 'conversion', '{"visits": 500, "cart_rate": 0.05}');
SELECT name FROM ft_relevant_patterns('fashion', 'conversion', '{"visits": 500, "cart_rate": 0.05}', lim => 1);
SELECT name FROM ft_relevant_patterns(NULL, NULL, '{"coupon": "SPRING"}');
SELECT id AS proven FROM ft_patterns WHERE name = 'proven' \gset
SELECT successes, failures FROM ft_record_pattern_outcome(:'proven', true);
SELECT successes, failures FROM ft_record_pattern_outcome(:'proven', false);
SELECT ft_use_pattern(:'proven') AS solution;
SELECT usage_count, last_used_at IS NOT NULL AS used FROM ft_patterns WHERE id = :'proven';
SELECT pg_temp.err(format('SELECT ft_record_pattern_outcome(%L, NULL)', :'proven'));
SELECT pg_temp.err('SELECT ft_use_pattern(''00000000-0000-0000-0000-000000000000'')');

-- Shared patterns (owner NULL): every tenant reads them and records outcomes, only ft_admin writes them.
CREATE ROLE regress_serving_a;
CREATE ROLE regress_serving_b;
SELECT ft_grant_app_role('regress_serving_a');
SELECT ft_grant_app_role('regress_serving_b');
INSERT INTO ft_patterns (owner_id, name, category, solution, successes, failures)
VALUES (NULL, 'shared recipe', 'conversion', '{"do": "shared"}', 10, 2) RETURNING name, owner_id IS NULL AS shared;
SELECT id AS shared_id FROM ft_patterns WHERE name = 'shared recipe' \gset
SET ROLE regress_serving_a;
INSERT INTO ft_patterns (name, category, solution) VALUES ('a private', 'conversion', '{"do": "mine"}');
SELECT name, owner_id FROM ft_patterns ORDER BY name;
SELECT pg_temp.err($$INSERT INTO ft_patterns (owner_id, name) VALUES (NULL, 'sneaky shared')$$);
SELECT pg_temp.err($$INSERT INTO ft_patterns (owner_id, name) VALUES ('regress_serving_b', 'planted')$$);
UPDATE ft_patterns SET successes = 1000 WHERE name = 'shared recipe';
DELETE FROM ft_patterns WHERE name = 'shared recipe';
SELECT successes, failures FROM ft_record_pattern_outcome(:'shared_id', true);
SELECT ft_use_pattern(:'shared_id') AS solution;
SELECT name, shared FROM ft_relevant_patterns(NULL, 'conversion', '{}');
SET ROLE regress_serving_b;
SELECT name, owner_id FROM ft_patterns ORDER BY name;
SELECT count(*) AS b_sees_a_private FROM ft_patterns WHERE name = 'a private';
RESET ROLE;
SELECT id AS a_private FROM ft_patterns WHERE name = 'a private' \gset
SET ROLE regress_serving_b;
SELECT pg_temp.err(format('SELECT ft_use_pattern(%L)', :'a_private'));
RESET ROLE;
SELECT name, successes, failures, usage_count FROM ft_patterns WHERE name IN ('shared recipe', 'a private') ORDER BY name;

---------------------------------------------------------------------------------------------------
-- A/B tests
---------------------------------------------------------------------------------------------------
-- Fixed avatar ids: the arm of a conversation depends only on the avatar and conversation ids.
INSERT INTO ft_avatars (id, name) VALUES ('5e7a1a00-0000-4000-8000-000000000001', 'serving ab')
RETURNING id AS ab \gset
SELECT ft_create_prompt_version(:'ab', 'You sell shoes.');
-- No fine-tuned model yet: every conversation gets the base model.
SELECT ft_ab_assign(:'ab', 'before-ft') AS model;
UPDATE ft_avatars SET active_model = 'ft:gpt-4o-mini-2024-07-18:shop::v1' WHERE id = :'ab';
-- Default share 0.5; the choice is stable and recorded once.
SELECT count(DISTINCT ft_ab_assign(:'ab', 'conv-' || i)) AS models FROM generate_series(1, 400) i;
SELECT arm, model, count(*), round(min(bucket)::numeric, 2) AS min_bucket, round(max(bucket)::numeric, 2) AS max_bucket
  FROM ft_ab_assignments WHERE avatar_id = :'ab' AND conversation_id LIKE 'conv-%' GROUP BY 1, 2 ORDER BY 1;
SELECT bool_and(ft_ab_assign(:'ab', conversation_id) = model) AS stable, count(*) AS assignments
  FROM ft_ab_assignments WHERE avatar_id = :'ab';
SELECT ft_ab_assign(:'ab', 'before-ft') AS still_base;
-- ft_chat_context serves the conversation with its assigned model.
SELECT x.model = (ft_chat_context(:'ab', 'hi', x.conversation_id) ->> 'model') AS same_model
  FROM ft_ab_assignments x WHERE x.avatar_id = :'ab' ORDER BY x.conversation_id LIMIT 3;
-- The share is an avatar setting.
INSERT INTO ft_avatars (id, name, settings) VALUES ('5e7a1a00-0000-4000-8000-000000000002', 'serving ab share', '{"ab_share": 0.1}')
RETURNING id AS abs \gset
UPDATE ft_avatars SET active_model = 'ft:gpt-4o-mini-2024-07-18:shop::v2' WHERE id = :'abs';
SELECT round(avg((ft_ab_assign(:'abs', 'c-' || i) LIKE 'ft:%')::int), 2) AS fine_tuned_share FROM generate_series(1, 1000) i;
UPDATE ft_avatars SET settings = '{"ab_share": 1.5}' WHERE id = :'abs';
SELECT pg_temp.err(format('SELECT ft_ab_assign(%L, %L)', :'abs', 'brand-new'));
SELECT pg_temp.err(format('SELECT ft_ab_assign(%L, %L)', :'abs', ''));

-- Ratings count for the model that served the conversation: fine-tuned 60 of 80 up, base 30 of 80.
SELECT count(ft_ab_feedback(:'ab', conversation_id, CASE WHEN n <= CASE WHEN arm = 'fine_tuned' THEN 60 ELSE 30 END THEN 'up' ELSE 'down' END))
  FROM (SELECT x.*, row_number() OVER (PARTITION BY arm ORDER BY conversation_id) AS n
          FROM ft_ab_assignments x WHERE x.avatar_id = :'ab' AND conversation_id LIKE 'conv-%') s
 WHERE n <= 80;
SELECT model, arm, conversations, ratings, positive, round(positive_rate::numeric, 3) AS rate,
       round(rate_lower::numeric, 3) AS lower, round(rate_upper::numeric, 3) AS upper, other_ratings,
       round(z::numeric, 3) AS z, round(p_value::numeric, 6) AS p_value, significant
  FROM ft_model_comparison WHERE avatar_id = :'ab' ORDER BY arm DESC;
SELECT pg_temp.err(format('SELECT ft_ab_feedback(%L, %L, %L)', :'ab', 'conv-1', 'meh'));
SELECT pg_temp.err(format('SELECT ft_ab_feedback(%L, %L, %L)', :'ab', 'never-assigned', 'up'));
SELECT pg_temp.err(format('SELECT ft_ab_feedback(%L, %L, %L, NULL, %L)', :'ab', 'conv-1', 'up', '[{"role": "user", "content": "hi"}]'));

-- Preference pairs: the same question answered by both models, one rated up, the other down.
SELECT x.conversation_id AS ft_conv FROM ft_ab_assignments x
 WHERE x.avatar_id = :'ab' AND x.arm = 'fine_tuned' ORDER BY x.conversation_id LIMIT 1 \gset
SELECT x.conversation_id AS base_conv FROM ft_ab_assignments x
 WHERE x.avatar_id = :'ab' AND x.arm = 'baseline' AND x.conversation_id LIKE 'conv-%' ORDER BY x.conversation_id LIMIT 1 \gset
SELECT ft_ab_feedback(:'ab', :'ft_conv', 'up', 'great',
         '[{"role": "user", "content": "Do you have size 42?"}, {"role": "assistant", "content": "Yes! Shall I reserve a pair?"}]') IS NOT NULL AS rated;
-- the answer of the other model comes from the stored turns
SELECT ft_add_turn(:'ab', :'base_conv', 'user', 'Do you have size 42?') IS NOT NULL AS t1,
       ft_add_turn(:'ab', :'base_conv', 'assistant', 'Check the website.') IS NOT NULL AS t2;
SELECT ft_ab_feedback(:'ab', :'base_conv', 'down') IS NOT NULL AS rated;
SELECT ft_save_preference_pairs(:'ab') AS pairs;
SELECT ft_save_preference_pairs(:'ab') AS pairs_again;
SELECT input, preferred, non_preferred, source FROM ft_preferences WHERE avatar_id = :'ab';
SELECT l FROM ft_jsonl(:'ab', format => 'dpo') l;

-- Tenancy: another tenant sees none of it.
SET ROLE regress_serving_b;
SELECT count(*) AS assignments FROM ft_ab_assignments;
SELECT count(*) AS ratings FROM ft_ab_ratings;
SELECT count(*) AS comparison_rows FROM ft_model_comparison;
SELECT count(*) AS items FROM ft_context_items;
SELECT pg_temp.err(format('SELECT ft_ab_assign(%L, %L)', :'ab', 'x'));
SELECT pg_temp.err(format('SELECT ft_chat_context(%L, %L)', :'a', 'hi'));
SELECT pg_temp.err(format($$INSERT INTO ft_context_items (avatar_id, kind, data) VALUES (%L, 'profile', '"x"')$$, :'a'));
RESET ROLE;

-- Every serving table, view and function is documented.
SELECT c.relname, a.attname
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relname IN ('ft_conversation_turns', 'ft_context_items', 'ft_patterns', 'ft_ab_assignments', 'ft_ab_ratings',
                     'ft_model_comparison')
   AND col_description(c.oid, a.attnum) IS NULL;
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname IN ('ft_wilson_interval', 'ft_add_turn', 'ft_prune_context', 'ft_chat_context', 'ft_pattern_condition_problems',
                     'ft_pattern_matches', 'ft_relevant_patterns', 'ft_record_pattern_outcome', 'ft_use_pattern',
                     'ft_ab_assign', 'ft_ab_feedback', 'ft_save_preference_pairs')
   AND obj_description(p.oid, 'pg_proc') IS NULL;

DELETE FROM ft_patterns WHERE name IN ('lucky streak', 'proven', 'untried', 'wrong store', 'needs coupon', 'shared recipe', 'a private');
DELETE FROM ft_avatars WHERE name LIKE 'serving %';
DROP OWNED BY regress_serving_a, regress_serving_b;
DROP ROLE regress_serving_a, regress_serving_b;
