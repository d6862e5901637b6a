-- Stored token counts of examples, recount on a change of base model, ft_dataset_stats,
-- ft_estimate_cost and the default-epochs rule.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;

-- Errors are shown as SQLSTATE, message and hint, without source locations.
CREATE FUNCTION pg_temp.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; hint text;
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ': ' || msg || coalesce(' | ' || nullif(hint, ''), '');
END
$$;

-- Cookbook count recomputed from the parts, independently of ft_chat_token_count:
-- 3 per message + tokens of role and content, + 3 for the primed reply.
CREATE FUNCTION pg_temp.by_hand(example jsonb, model text) RETURNS integer
LANGUAGE sql AS $$
  SELECT 3 + coalesce(sum(3 + ft_token_count(m ->> 'role', model) + ft_token_count(m ->> 'content', model)), 0)::integer
    FROM jsonb_array_elements(example -> 'messages') m
$$;

-- Calls of a function so far (track_functions = all); compared before and after a statement
-- in one transaction, since the counts of earlier transactions may not be flushed yet.
CREATE FUNCTION pg_temp.calls(fn text) RETURNS bigint
LANGUAGE sql AS $$
  SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = fn
$$;

-- A quality threshold of 0 keeps the scoring trigger from excluding these short examples.
INSERT INTO ft_avatars (id, name, base_model, settings) VALUES
 ('7c000000-0000-0000-0000-000000000001', 'tokens coach', 'gpt-4o-mini-2024-07-18', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000002', 'tokens polyglot', 'gpt-4o-mini-2024-07-18', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000003', 'tokens unknown', 'acme-llm-7b', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000004', 'tokens ten', 'gpt-4o-mini-2024-07-18', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000005', 'tokens empty', 'gpt-4o-mini-2024-07-18', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000006', 'tokens mixed o200k', 'gpt-4.1-mini-2025-04-14', '{"quality_threshold": 0}'),
 ('7c000000-0000-0000-0000-000000000007', 'tokens mixed unknown', 'acme-llm-7b', '{"quality_threshold": 0}');

-- ===== Counts stored on insert

INSERT INTO ft_examples (id, avatar_id, messages, token_count, assistant_token_count) VALUES
 ('7c000000-0000-0000-0000-0000000000a1', '7c000000-0000-0000-0000-000000000001',
  '[{"role": "system", "content": "You are a kind running coach."},
    {"role": "user", "content": "How do I start running?"},
    {"role": "assistant", "content": "Start with short, easy runs three times a week."}]', NULL, NULL),
 -- counts given by the caller are not trusted: they are replaced
 ('7c000000-0000-0000-0000-0000000000a2', '7c000000-0000-0000-0000-000000000001',
  '[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How are you today?"}]', 999, 999),
 -- no user message
 ('7c000000-0000-0000-0000-0000000000a3', '7c000000-0000-0000-0000-000000000001',
  '[{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Welcome back."}]', NULL, NULL);

-- The content tokens of every message (o200k_base), then the stored counts, which must equal
-- both ft_chat_token_count and the sum by hand.
SELECT e.id, i - 1 AS msg, m ->> 'role' AS role, ft_token_count(m ->> 'content', 'gpt-4o-mini-2024-07-18') AS content_tokens
  FROM ft_examples e, jsonb_array_elements(e.messages -> 'messages') WITH ORDINALITY AS x(m, i)
 WHERE e.avatar_id = '7c000000-0000-0000-0000-000000000001' ORDER BY e.id, i;
SELECT e.id, e.token_count, e.assistant_token_count,
       e.token_count = ft_chat_token_count(e.messages, 'gpt-4o-mini-2024-07-18') AS same_as_function,
       e.token_count = pg_temp.by_hand(e.messages, 'gpt-4o-mini-2024-07-18') AS same_by_hand,
       e.assistant_token_count = ft_assistant_token_count(e.messages, 'gpt-4o-mini-2024-07-18') AS assistant_same
  FROM ft_examples e WHERE e.avatar_id = '7c000000-0000-0000-0000-000000000001' ORDER BY e.id;
-- a1: (3+1+7) + (3+1+6) + (3+1+11) + 3 = 39, assistant 11
-- a2: (3+1+1) + (3+1+7) + 3 = 19 (not 999), assistant 7
-- a3: (3+1+3) + (3+1+3) + 3 = 17, assistant 3

-- ===== Counts kept current on update

UPDATE ft_examples SET messages = '[{"role": "user", "content": "Hi"},
  {"role": "assistant", "content": "Hello! How are you today? Did you sleep well?"}]'
 WHERE id = '7c000000-0000-0000-0000-0000000000a2';
SELECT token_count, assistant_token_count,
       token_count = pg_temp.by_hand(messages, 'gpt-4o-mini-2024-07-18') AS same_by_hand
  FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000a2';
-- the longer answer has 12 tokens: (3+1+1) + (3+1+12) + 3 = 24, assistant 12
-- A count written by hand is recounted, so it always tells the truth.
UPDATE ft_examples SET token_count = 1 WHERE id = '7c000000-0000-0000-0000-0000000000a2';
SELECT token_count FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000a2';
-- Other columns leave the counts alone.
UPDATE ft_examples SET category = 'greeting' WHERE id = '7c000000-0000-0000-0000-0000000000a2';
SELECT token_count, category FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000a2';

-- ===== Recount on a change of base model

-- Japanese and Russian text: o200k_base and cl100k_base split it differently.
INSERT INTO ft_examples (id, avatar_id, messages) VALUES
 ('7c000000-0000-0000-0000-0000000000b1', '7c000000-0000-0000-0000-000000000002',
  '[{"role": "user", "content": "今日はとても寒いですね。温かいお茶を飲みましょうか？"},
    {"role": "assistant", "content": "Да, отличная идея! Я поставлю чайник, а вы выберите чай."}]');
SELECT ft_token_count('今日はとても寒いですね。温かいお茶を飲みましょうか？', 'o200k_base') AS user_o200k,
       ft_token_count('Да, отличная идея! Я поставлю чайник, а вы выберите чай.', 'o200k_base') AS assistant_o200k,
       ft_token_count('今日はとても寒いですね。温かいお茶を飲みましょうか？', 'cl100k_base') AS user_cl100k,
       ft_token_count('Да, отличная идея! Я поставлю чайник, а вы выберите чай.', 'cl100k_base') AS assistant_cl100k;
SELECT token_count, assistant_token_count FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000b1';
-- o200k_base: (3+1+19) + (3+1+18) + 3 = 48, assistant 18
-- The change of base model recounts in one UPDATE that fires the token trigger, never the
-- scoring trigger (function call counts of this transaction).
BEGIN;
SET LOCAL track_functions = 'all';
SELECT pg_temp.calls('ft_examples_tokens') AS tokens_before, pg_temp.calls('ft_examples_score') AS score_before \gset
UPDATE ft_avatars SET base_model = 'gpt-3.5-turbo-0125' WHERE id = '7c000000-0000-0000-0000-000000000002';
SELECT pg_temp.calls('ft_examples_tokens') - :tokens_before AS token_trigger_calls,
       pg_temp.calls('ft_examples_score') - :score_before AS score_trigger_calls;
COMMIT;
SELECT token_count, assistant_token_count,
       token_count = pg_temp.by_hand(messages, 'cl100k_base') AS same_by_hand
  FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000b1';
-- cl100k_base: (3+1+31) + (3+1+27) + 3 = 69, assistant 27
-- Another model of the same encoding changes nothing and recounts nothing.
BEGIN;
SET LOCAL track_functions = 'all';
SELECT pg_temp.calls('ft_examples_tokens') AS tokens_before \gset
UPDATE ft_avatars SET base_model = 'gpt-4-0613' WHERE id = '7c000000-0000-0000-0000-000000000002';
SELECT pg_temp.calls('ft_examples_tokens') - :tokens_before AS token_trigger_calls;
COMMIT;
SELECT token_count FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000b1';
-- Stats for an o200k model now count on the fly (48), those for the base model use the stored 69.
SELECT s ->> 'model' AS model, s ->> 'counted_from' AS counted_from, s -> 'tokens_per_example' ->> 'max' AS tokens,
       s -> 'assistant_tokens_per_example' ->> 'max' AS assistant_tokens
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000002', model => 'gpt-4o-mini-2024-07-18') s
UNION ALL
SELECT s ->> 'model', s ->> 'counted_from', s -> 'tokens_per_example' ->> 'max', s -> 'assistant_tokens_per_example' ->> 'max'
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000002') s;

-- One statement writing to three avatars (cl100k_base, o200k_base, unknown), interleaved:
-- each row is counted for its own avatar's model.
INSERT INTO ft_examples (avatar_id, messages, category)
SELECT a::uuid, '[{"role": "user", "content": "今日はとても寒いですね。温かいお茶を飲みましょうか？"},
    {"role": "assistant", "content": "Да, отличная идея! Я поставлю чайник, а вы выберите чай."}]', 'row ' || i
  FROM unnest(ARRAY['7c000000-0000-0000-0000-000000000006', '7c000000-0000-0000-0000-000000000002',
                    '7c000000-0000-0000-0000-000000000007', '7c000000-0000-0000-0000-000000000006',
                    '7c000000-0000-0000-0000-000000000002']) WITH ORDINALITY AS x(a, i);
SELECT e.category, a.base_model, e.token_count, e.assistant_token_count
  FROM ft_examples e JOIN ft_avatars a ON a.id = e.avatar_id
 WHERE e.category LIKE 'row %' ORDER BY e.category;

-- ===== Unknown base model: the example is stored, its counts stay NULL

SELECT ft_model_encoding('acme-llm-7b') AS unknown, ft_model_encoding('gpt-4o') AS by_prefix,
       ft_model_encoding('gpt-3.5-turbo-0125') AS from_table, ft_model_encoding('cl100k_base') AS encoding;
INSERT INTO ft_examples (id, avatar_id, messages) VALUES
 ('7c000000-0000-0000-0000-0000000000c1', '7c000000-0000-0000-0000-000000000003',
  '[{"role": "user", "content": "Ping?"}, {"role": "assistant", "content": "Pong."}]');
SELECT token_count, assistant_token_count FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000c1';
SELECT pg_temp.try($$SELECT ft_dataset_stats('7c000000-0000-0000-0000-000000000003')$$);
-- counted on the fly for a model given by name
SELECT s ->> 'counted_from' AS counted_from, s -> 'tokens_per_example' ->> 'max' AS tokens
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000003', model => 'gpt-4o-mini-2024-07-18') s;
-- a known base model fills the counts in
UPDATE ft_avatars SET base_model = 'gpt-4o-mini-2024-07-18' WHERE id = '7c000000-0000-0000-0000-000000000003';
SELECT token_count, assistant_token_count,
       token_count = pg_temp.by_hand(messages, 'o200k_base') AS same_by_hand
  FROM ft_examples WHERE id = '7c000000-0000-0000-0000-0000000000c1';
-- and ft_recount_tokens recounts on demand
SELECT ft_recount_tokens('7c000000-0000-0000-0000-000000000003') AS recounted;

-- ===== ft_dataset_stats and ft_estimate_cost, checked by hand

-- Avatar "tokens coach" now holds a1 (system, user, assistant), a2 (user, assistant; no
-- system) and a3 (system, assistant; no user). Without an active prompt nothing is injected.
SELECT jsonb_pretty(ft_dataset_stats('7c000000-0000-0000-0000-000000000001'));
-- examples 3; missing_system 1 (a2), missing_user 1 (a3); nothing injected.
-- tokens 17, 24, 39: mean 80/3 = 26.67, median 24, p10 = 17 + 0.2 * (24-17) = 18.4,
--   p90 = 24 + 0.8 * (39-24) = 36 (linear interpolation at rank 0.1 * (n-1), like numpy).
-- messages 2, 2, 3: mean 2.33, median 2, p10 2, p90 = 2 + 0.8 * 1 = 2.8.
-- assistant tokens 3, 11, 12: mean 26/3 = 8.67, median 11, p10 = 3 + 0.2 * 8 = 4.6, p90 = 11.8.
-- limit 65536 (ft_models), none over it; billing = 17 + 24 + 39 = 80.
-- epochs: 3 * 3 = 9 < 100, so min(25, 100 / 3 = 33) = 25; charged = 25 * 80 = 2000;
-- cost = 2000 / 1e6 * 3.00 = 0.006. Trained: 25 * (80 - 2 * 3) = 1850, 1850 / 1e6 * 3.00 = 0.00555.

-- With an active prompt it is injected into a2, which then has 3 messages and more tokens.
SELECT ft_create_prompt_version('7c000000-0000-0000-0000-000000000001', 'You are a running coach.');
SELECT 4 + ft_token_count('You are a running coach.', 'o200k_base') AS injected_by_hand;
SELECT s ->> 'missing_system' AS raw, s ->> 'missing_system_after_injection' AS after_injection,
       s ->> 'injected_system_tokens' AS injected, s -> 'messages_per_example' AS messages,
       s -> 'tokens_per_example' AS tokens, s ->> 'billing_tokens' AS billing, s ->> 'charged_tokens' AS charged
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000001') s;
-- a2 gets the injected system message: 24 + 10 = 34; tokens 17, 34, 39: mean 30, median 34,
-- p10 = 17 + 0.2 * 17 = 20.4, p90 = 34 + 0.8 * 5 = 38; messages 2, 3, 3; billing 90, charged 25 * 90 = 2250.

-- A limit below the longest example: it is counted as over the limit and billed at the limit.
SELECT s ->> 'token_limit' AS lim, s ->> 'token_limit_source' AS source, s ->> 'over_limit' AS over,
       s ->> 'billing_tokens' AS billing, s ->> 'charged_tokens' AS charged, s ->> 'estimated_cost' AS cost
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000001', max_tokens => 30) s;
-- 39 and 34 exceed 30: billing = 30 + 30 + 17 = 77, charged 25 * 77 = 1925, cost 1925 / 1e6 * 3 = 0.005775.

-- 25 * 90 = 2250 tokens, 2250 / 1e6 * 3.00 = 0.00675; with 2 epochs 180 tokens, 0.00054.
SELECT * FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000001');
SELECT * FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000001', epochs => 2);
-- Another encoding: counted on the fly with cl100k_base, priced from ft_models.
SELECT * FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000001', model => 'gpt-3.5-turbo-0125');
SELECT sum(pg_temp.by_hand(messages, 'cl100k_base')) AS cl100k_by_hand,
       4 + ft_token_count('You are a running coach.', 'cl100k_base') AS injected_by_hand
  FROM ft_examples WHERE avatar_id = '7c000000-0000-0000-0000-000000000001';
-- this English text has the same counts in both encodings: 80 + 10 = 90; 25 * 90 = 2250,
-- 2250 / 1e6 * 8.00 = 0.018
-- Unknown price (gpt-4o is known by its name prefix only): no cost is invented.
SELECT * FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000001', model => 'gpt-4o');
SELECT s ->> 'token_limit' AS lim, s ->> 'over_limit' AS over, s ->> 'estimated_cost_trained' AS cost_trained
  FROM ft_dataset_stats('7c000000-0000-0000-0000-000000000001', model => 'gpt-4o') s;

-- Excluded examples are not counted: a1 and a2 remain, 39 + 34 = 73; 100 / 2 = 50, capped at 25.
UPDATE ft_examples SET excluded = true, exclusion_reason = 'by hand'
 WHERE id = '7c000000-0000-0000-0000-0000000000a3';
SELECT examples, epochs, billing_tokens FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000001');

-- ===== The default epochs

-- 3, raised to min(25, 100 / n) when 3n < 100, lowered to max(1, 25000 / n) when 3n > 25000.
SELECT n, ft_default_epochs(n) AS epochs
  FROM unnest(ARRAY[0, 1, 2, 4, 5, 10, 33, 34, 8333, 8334, 9000, 12500, 12501, 25000, 25001]::bigint[]) n;
-- 0: no examples, no epochs; 1, 2, 4: 100 / n >= 25, capped at 25; 5: 100 / 5 = 20; 10: 10;
-- 33: 99 < 100, 100 / 33 = 3; 34: 102, the target 3; 8333: 24999 <= 25000, 3;
-- 8334: 25002 > 25000, 25000 / 8334 = 2; 9000: 2; 12500: 2; 12501: 1; 25000: 1; 25001: 0, raised to 1.
-- Ten distinct examples: 3 * 10 < 100, so min(25, 100 / 10) = 10 epochs.
INSERT INTO ft_examples (avatar_id, messages)
SELECT '7c000000-0000-0000-0000-000000000004',
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'Question number ' || i),
                         jsonb_build_object('role', 'assistant', 'content', 'Answer number ' || i))
  FROM generate_series(1, 10) i;
SELECT examples, epochs, billing_tokens, charged_tokens, estimated_cost
  FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000004');
-- each example: (3+1+4) + (3+1+4) + 3 = 19 ("Question", " number", " ", "1": digits stand alone);
-- billing 190, charged 10 * 190 = 1900, cost 1900 / 1e6 * 3 = 0.0057
-- No examples at all
SELECT * FROM ft_estimate_cost('7c000000-0000-0000-0000-000000000005');

-- ===== Errors

SELECT pg_temp.try($$SELECT ft_dataset_stats('7c000000-0000-0000-0000-000000000001', model => 'no-such-model')$$);
SELECT pg_temp.try($$SELECT ft_estimate_cost('7c000000-0000-0000-0000-000000000001', model => 'no-such-model')$$);
SELECT pg_temp.try($$SELECT ft_dataset_stats('7c000000-0000-0000-0000-0000000000ff')$$);
SELECT pg_temp.try($$SELECT ft_dataset_stats('7c000000-0000-0000-0000-000000000001', max_tokens => 0)$$);
SELECT pg_temp.try($$SELECT ft_estimate_cost('7c000000-0000-0000-0000-000000000001', epochs => 0)$$);

DELETE FROM ft_avatars WHERE id::text LIKE '7c000000-%';
