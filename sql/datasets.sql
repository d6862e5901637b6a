-- Datasets: ft_jsonl in every format, selection options, the deterministic split, reproducible
-- builds, previews and errors.
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

-- Fixed ids, so the order of lines and every split are the same on every run. A quality
-- threshold of 0 keeps the scoring trigger from excluding these short examples, so the
-- selection options alone decide.
INSERT INTO ft_avatars (id, name, settings) VALUES
 ('d5000000-0000-0000-0000-000000000001', 'datasets shop', '{"quality_threshold": 0}'),
 ('d5000000-0000-0000-0000-000000000002', 'datasets cap', '{"quality_threshold": 0}'),
 ('d5000000-0000-0000-0000-000000000003', 'datasets split', '{"quality_threshold": 0}');
SELECT ft_create_prompt_version('d5000000-0000-0000-0000-000000000001', 'You help customers of a shoe shop.');
INSERT INTO ft_examples (id, avatar_id, messages, category, pattern_type, quality, verified) VALUES
 ('d5000000-0000-0000-0000-0000000000a1', 'd5000000-0000-0000-0000-000000000001',
  '[{"role":"user","content":"Do you have \"Runner\" in size 42?\nThanks"},{"role":"assistant","content":"Yes, size 42 is in stock.","weight":1.0}]',
  'stock', 'question', 0.9, true),
 ('d5000000-0000-0000-0000-0000000000a2', 'd5000000-0000-0000-0000-000000000001',
  '{"messages":[{"role":"system","content":"Answer in German."},{"role":"user","content":"Versand?"},{"role":"assistant","content":"Der Versand kostet 4,95 €."}]}',
  'shipping', 'question', 0.7, false),
 ('d5000000-0000-0000-0000-0000000000a3', 'd5000000-0000-0000-0000-000000000001',
  '{"messages":[{"role":"user","content":"Where is order 7?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"order_status","arguments":"{\"order\":7}"}}]},{"role":"tool","tool_call_id":"call_1","content":"shipped"},{"role":"assistant","content":"Order 7 has shipped."}],"tools":[{"type":"function","function":{"name":"order_status","parameters":{"type":"object","properties":{"order":{"type":"integer","minimum":1.0}}}}}],"parallel_tool_calls":false}',
  'orders', 'question', 0.8, true),
 ('d5000000-0000-0000-0000-0000000000a4', 'd5000000-0000-0000-0000-000000000001',
  '[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello! How can I help?","weight":0},{"role":"user","content":"Return policy?"},{"role":"assistant","content":"30 days, unworn.","name":"shopbot"}]',
  'returns', 'greeting', 0.5, false);
-- quality as given (the scoring trigger computed its own on insert)
UPDATE ft_examples e SET quality = v.q
  FROM (VALUES ('d5000000-0000-0000-0000-0000000000a1'::uuid, 0.9), ('d5000000-0000-0000-0000-0000000000a2', 0.7),
               ('d5000000-0000-0000-0000-0000000000a3', 0.8), ('d5000000-0000-0000-0000-0000000000a4', 0.5)) v(id, q)
 WHERE e.id = v.id;

\pset format unaligned
\pset tuples_only on

-- chat (the default): prompt injected where the example has none, weight 1.0 written as 1, tools kept
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001');
-- together_chat: roles and contents only; the tool-using example cannot be expressed and is left out
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'together_chat');
-- alpaca: instruction = system prompt (own or injected), input = the turns before the answer
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'alpaca');
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'alpaca',
                       options => '{"inject_system_prompt": false}');
-- prompt_completion
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'prompt_completion');
-- inject_system_prompt off
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"inject_system_prompt": false}');

-- dpo, from ft_preferences (string answers or assistant message objects)
INSERT INTO ft_preferences (id, avatar_id, input, preferred, non_preferred, source, created_at) VALUES
 ('d5000000-0000-0000-0000-0000000000b1', 'd5000000-0000-0000-0000-000000000001',
  '{"messages":[{"role":"user","content":"Can I pay later?"}]}', '"Yes, with invoice at checkout."', '"No."', 'feedback', '2024-01-01'),
 ('d5000000-0000-0000-0000-0000000000b2', 'd5000000-0000-0000-0000-000000000001',
  '[{"role":"system","content":"Be brief."},{"role":"user","content":"Colours?"}]',
  '{"role":"assistant","content":"Black, white and red. Questions: shop@example.com"}', '{"role":"assistant","content":"We have many colours, for example black, and also white, and red too."}',
  'ab_test', '2024-01-02');
SELECT * FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'dpo');

\pset format aligned
\pset tuples_only off

-- Selection options
UPDATE ft_examples SET excluded = true, exclusion_reason = 'test'
 WHERE id = 'd5000000-0000-0000-0000-0000000000a4';
SELECT count(*) AS not_excluded FROM ft_jsonl('d5000000-0000-0000-0000-000000000001');
SELECT count(*) AS with_excluded FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"include_excluded": true}');
UPDATE ft_examples SET excluded = false WHERE id = 'd5000000-0000-0000-0000-0000000000a4';
SELECT count(*) AS quality_0_75 FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"min_quality": 0.75}');
-- a stored 0.7 (a real) passes min_quality 0.7
SELECT count(*) AS quality_0_7 FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"min_quality": 0.7}');
SELECT count(*) AS verified FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"verified_only": true}');
-- over the base model's training token limit: a test model whose limit only the longest example exceeds
-- (token_count is kept current by a trigger, so the limit follows the counts)
INSERT INTO ft_models (model, encoding, training_token_limit) VALUES ('ft-datasets-test-model', 'o200k_base', 1000000);
UPDATE ft_avatars SET base_model = 'ft-datasets-test-model' WHERE id = 'd5000000-0000-0000-0000-000000000001';
UPDATE ft_models SET training_token_limit = (SELECT max(token_count) - 1 FROM ft_examples
                                             WHERE avatar_id = 'd5000000-0000-0000-0000-000000000001')
 WHERE model = 'ft-datasets-test-model';
SELECT right(e.id::text, 2) AS example, e.token_count > m.training_token_limit AS over_limit
  FROM ft_examples e, ft_models m
 WHERE e.avatar_id = 'd5000000-0000-0000-0000-000000000001' AND m.model = 'ft-datasets-test-model' ORDER BY e.id;
SELECT count(*) AS over_limit_dropped FROM ft_jsonl('d5000000-0000-0000-0000-000000000001');
SELECT count(*) AS over_limit_kept FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"over_limit": "keep"}');
-- unknown limit: nothing is dropped
UPDATE ft_models SET training_token_limit = NULL WHERE model = 'ft-datasets-test-model';
SELECT count(*) AS limit_unknown FROM ft_jsonl('d5000000-0000-0000-0000-000000000001');
-- duplicates: the same content_hash twice keeps the first by id
UPDATE ft_examples SET content_hash = '\x0102' WHERE id IN ('d5000000-0000-0000-0000-0000000000a1', 'd5000000-0000-0000-0000-0000000000a4');
SELECT line::jsonb -> 'messages' -> 1 ->> 'content' AS without_duplicates
  FROM ft_jsonl('d5000000-0000-0000-0000-000000000001') AS line;
SELECT count(*) AS with_duplicates FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"include_duplicates": true}');
UPDATE ft_examples SET content_hash = NULL WHERE avatar_id = 'd5000000-0000-0000-0000-000000000001';

-- redact: personal data and secrets in message contents replaced by the redactor's tokens
INSERT INTO ft_examples (id, avatar_id, messages, category) VALUES
 ('d5000000-0000-0000-0000-0000000000a5', 'd5000000-0000-0000-0000-000000000001',
  '[{"role":"user","content":"I am jane.doe@example.com, card 4111 1111 1111 1111."},{"role":"assistant","content":"Thanks, I will write to jane.doe@example.com."}]',
  'privacy');
SELECT line FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"redact": true, "inject_system_prompt": false}') line
 WHERE line LIKE '%example.com%' OR line LIKE '%[EMAIL]%';
SELECT count(*) AS unredacted FROM ft_jsonl('d5000000-0000-0000-0000-000000000001') line WHERE line LIKE '%jane.doe@example.com%';
SELECT line FROM ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'dpo', options => '{"redact": true}') line;
DELETE FROM ft_examples WHERE id = 'd5000000-0000-0000-0000-0000000000a5';

-- max_examples keeps the best of each category first (round-robin by quality rank)
INSERT INTO ft_examples (id, avatar_id, messages, category, quality)
SELECT ('d5000000-0000-0000-0000-0000000001' || lpad(i::text, 2, '0'))::uuid, 'd5000000-0000-0000-0000-000000000002',
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'q' || i),
                         jsonb_build_object('role', 'assistant', 'content', 'a' || i)),
       CASE WHEN i <= 6 THEN 'big' WHEN i <= 8 THEN 'small' ELSE 'tiny' END,
       0
  FROM generate_series(1, 9) i;
UPDATE ft_examples SET quality = (right(id::text, 2))::int / 10.0 WHERE avatar_id = 'd5000000-0000-0000-0000-000000000002';
SELECT right(id::text, 2) AS example, category, quality FROM ft_examples
 WHERE avatar_id = 'd5000000-0000-0000-0000-000000000002' ORDER BY id;
SELECT line::jsonb -> 'messages' -> 0 ->> 'content' AS kept_of_cap_4
  FROM ft_jsonl('d5000000-0000-0000-0000-000000000002', options => '{"max_examples": 4}') AS line;
SELECT count(*) AS no_cap FROM ft_jsonl('d5000000-0000-0000-0000-000000000002', options => '{"max_examples": null}');

-- Deterministic split: record the sides of 300 examples, add 300 more, nothing moves
INSERT INTO ft_examples (id, avatar_id, messages, category)
SELECT md5('split' || i)::uuid, 'd5000000-0000-0000-0000-000000000003',
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || i),
                         jsonb_build_object('role', 'assistant', 'content', 'answer ' || i)),
       'c' || (i % 3)
  FROM generate_series(1, 300) i;
CREATE TEMP TABLE sides_before AS
SELECT s.split, line::jsonb -> 'messages' -> 0 ->> 'content' AS question
  FROM unnest(ARRAY['train', 'validation']) s(split),
       LATERAL ft_jsonl('d5000000-0000-0000-0000-000000000003', s.split, options => '{"inject_system_prompt": false}') line;
SELECT split, count(*) FROM sides_before GROUP BY split ORDER BY split;
SELECT count(*) AS in_both FROM sides_before t JOIN sides_before v USING (question)
 WHERE t.split = 'train' AND v.split = 'validation';
INSERT INTO ft_examples (id, avatar_id, messages, category)
SELECT md5('split' || i)::uuid, 'd5000000-0000-0000-0000-000000000003',
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question ' || i),
                         jsonb_build_object('role', 'assistant', 'content', 'answer ' || i)),
       'c' || (i % 3)
  FROM generate_series(301, 600) i;
CREATE TEMP TABLE sides_after AS
SELECT s.split, line::jsonb -> 'messages' -> 0 ->> 'content' AS question
  FROM unnest(ARRAY['train', 'validation']) s(split),
       LATERAL ft_jsonl('d5000000-0000-0000-0000-000000000003', s.split, options => '{"inject_system_prompt": false}') line;
SELECT split, count(*) FROM sides_after GROUP BY split ORDER BY split;
SELECT count(*) AS moved FROM sides_before b JOIN sides_after a USING (question) WHERE a.split <> b.split;
SELECT count(*) AS lost FROM sides_before b LEFT JOIN sides_after a USING (question) WHERE a.question IS NULL;
-- 'all' is exactly train plus validation, in id order
SELECT (SELECT count(*) FROM ft_jsonl('d5000000-0000-0000-0000-000000000003')) AS all_lines;
-- the share, the seed and the avatar settings
SELECT count(*) AS validation_share_0 FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation', options => '{"validation_share": 0}');
SELECT count(*) AS validation_share_half FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation', options => '{"validation_share": 0.5}');
SELECT count(*) AS other_seed FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation', options => '{"seed": "another"}');
SELECT count(*) AS other_seed_moved
  FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation', options => '{"seed": "another", "inject_system_prompt": false}') line
 WHERE line::jsonb -> 'messages' -> 0 ->> 'content' NOT IN (SELECT question FROM sides_after WHERE split = 'validation');
UPDATE ft_avatars SET settings = '{"validation_share": 0.25, "split_seed": 42}' WHERE id = 'd5000000-0000-0000-0000-000000000003';
SELECT count(*) AS from_settings FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation');
SELECT count(*) AS option_beats_setting FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'validation', options => '{"validation_share": 0.1, "seed": 42}');

-- Reproducible builds: the same rows and options give the same bytes
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000003', '{"max_examples": 500}') AS first_build \gset
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000003', '{"max_examples": 500}') AS second_build \gset
SELECT a.train_sha256 = b.train_sha256 AND a.validation_sha256 = b.validation_sha256 AS same_sha,
       a.train_count, a.validation_count, a.train_count + a.validation_count AS total,
       a.train_bytes = b.train_bytes AS same_bytes, a.job_id, a.format, a.options
  FROM ft_datasets a, ft_datasets b WHERE a.id = :'first_build' AND b.id = :'second_build';
-- the recorded sha256 and sizes are those of the lines ft_jsonl returns, each followed by a newline
SELECT d.train_sha256 = encode(sha256(convert_to(string_agg(l.line || E'\n', '' ORDER BY l.n), 'UTF8')), 'hex') AS sha_matches,
       d.train_bytes = sum(octet_length(l.line) + 1) AS bytes_match
  FROM ft_datasets d,
       ft_jsonl('d5000000-0000-0000-0000-000000000003', 'train', options => '{"max_examples": 500}') WITH ORDINALITY l(line, n)
 WHERE d.id = :'first_build' GROUP BY d.train_sha256, d.train_bytes;
-- a large selection is put in id order through temporary files once it outgrows work_mem: same bytes
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000003') AS in_memory_build \gset
SET work_mem = '64kB';
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000003') AS spilled_build \gset
RESET work_mem;
SELECT a.train_sha256 = b.train_sha256 AND a.validation_sha256 = b.validation_sha256 AS spilled_same_sha,
       a.train_count + a.validation_count AS examples
  FROM ft_datasets a, ft_datasets b WHERE a.id = :'in_memory_build' AND b.id = :'spilled_build';
-- and in the same order as the preview, which reads through the primary key
SELECT p.line = j.line AS preview_in_same_order
  FROM ft_dataset_preview('d5000000-0000-0000-0000-000000000003', 3) p
  JOIN (SELECT row_number() OVER () AS n, line
          FROM ft_jsonl('d5000000-0000-0000-0000-000000000003', 'train') line) j ON j.n = p.line_no
 WHERE p.split = 'train' ORDER BY p.line_no;
-- token totals are the sums of token_count (unknown counts as 0)
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000001', '{"validation_share": 0}') AS shop_build \gset
SELECT train_count, validation_count,
       train_tokens = (SELECT sum(coalesce(token_count, 0)) FROM ft_examples
                        WHERE avatar_id = 'd5000000-0000-0000-0000-000000000001' AND NOT excluded) AS train_tokens_match,
       train_tokens > 0 AS counted, validation_tokens,
       validation_sha256 = encode(sha256(''), 'hex') AS empty_validation
  FROM ft_datasets WHERE id = :'shop_build';
SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000001', format => 'dpo') AS dpo_build \gset
SELECT train_tokens IS NULL AS dpo_has_no_tokens, train_count + validation_count AS pairs, options
  FROM ft_datasets WHERE id = :'dpo_build';

-- The file writer the worker uses gives the same bytes as ft_jsonl
SELECT ft_internal.write_dataset_files('d5000000-0000-0000-0000-000000000003', '/tmp/ft_datasets_test_train.jsonl',
                                       '/tmp/ft_datasets_test_validation.jsonl', options => '{"max_examples": 500}') AS file_build \gset
SELECT encode(sha256(pg_read_binary_file('/tmp/ft_datasets_test_train.jsonl')), 'hex') = train_sha256 AS train_file_matches,
       encode(sha256(pg_read_binary_file('/tmp/ft_datasets_test_validation.jsonl')), 'hex') = validation_sha256 AS validation_file_matches,
       (pg_stat_file('/tmp/ft_datasets_test_train.jsonl')).size = train_bytes AS size_matches,
       train_sha256 = (SELECT train_sha256 FROM ft_datasets WHERE id = :'first_build') AS same_as_build
  FROM ft_datasets WHERE id = :'file_build';
SELECT pg_temp.try($$SELECT ft_internal.write_dataset_files('d5000000-0000-0000-0000-000000000003', '/nonexistent/dir/train.jsonl')$$);

-- Preview: the first lines of each split
SELECT split, line_no, left(line, 60) AS line FROM ft_dataset_preview('d5000000-0000-0000-0000-000000000003', 2);
SELECT split, line_no, line FROM ft_dataset_preview('d5000000-0000-0000-0000-000000000001', 1, 'alpaca', '{"validation_share": 0}');

-- Errors name the problem and list what is valid
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'jsonl')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', split => 'test')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"max_exemples": 5}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '[]')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"min_quality": 2}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"max_examples": 0}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"over_limit": "trim"}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"validation_share": 1}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"verified_only": "yes"}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', options => '{"seed": ""}')$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001', format => 'dpo', options => '{"min_quality": 0.5}')$$);
SELECT pg_temp.try($$SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000001', format => 'csv')$$);
SELECT pg_temp.try($$SELECT * FROM ft_dataset_preview('d5000000-0000-0000-0000-000000000001', 5000)$$);
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-0000000000ff')$$);
UPDATE ft_avatars SET settings = '{"validation_share": "lots"}' WHERE id = 'd5000000-0000-0000-0000-000000000003';
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000003')$$);

-- Tenancy: another tenant sees neither the avatar nor its datasets
CREATE ROLE ft_datasets_tenant NOLOGIN;
SELECT ft_grant_app_role('ft_datasets_tenant');
GRANT EXECUTE ON FUNCTION pg_temp.try(text) TO ft_datasets_tenant;
SET ROLE ft_datasets_tenant;
SELECT pg_temp.try($$SELECT ft_jsonl('d5000000-0000-0000-0000-000000000001')$$);
SELECT pg_temp.try($$SELECT ft_build_dataset('d5000000-0000-0000-0000-000000000001')$$);
SELECT count(*) AS visible_datasets FROM ft_datasets;
SELECT count(*) AS visible_preferences FROM ft_preferences;
SELECT pg_temp.try($$INSERT INTO ft_preferences (avatar_id, input, preferred, non_preferred)
  VALUES ('d5000000-0000-0000-0000-000000000001', '[]', '"a"', '"b"')$$);
SELECT pg_temp.try($$SELECT ft_internal.write_dataset_files('d5000000-0000-0000-0000-000000000001', '/tmp/x')$$);
RESET ROLE;
DROP OWNED BY ft_datasets_tenant;
DROP ROLE ft_datasets_tenant;

-- Leave nothing behind for the suites that run after this one
DELETE FROM ft_avatars WHERE id IN ('d5000000-0000-0000-0000-000000000001', 'd5000000-0000-0000-0000-000000000002',
                                    'd5000000-0000-0000-0000-000000000003');
DELETE FROM ft_models WHERE model = 'ft-datasets-test-model';
SELECT count(*) AS datasets_left FROM ft_datasets WHERE avatar_id::text LIKE 'd5000000-%';
