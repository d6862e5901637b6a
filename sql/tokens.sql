-- Token counting: ft_token_count, ft_tokenize, ft_chat_token_count, ft_assistant_token_count,
-- model resolution through ft_models and tiktoken's prefixes, and every error path.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
SET client_min_messages = warning;

-- Runs a statement and shows SQLSTATE, message and hint of its error.
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

-- Ids identical to OpenAI tiktoken (expected values from @dqbd/tiktoken)
SELECT ft_tokenize('Translate the user message into plain English.');
SELECT ft_tokenize('Translate the user message into plain English.', 'cl100k_base');
SELECT ft_token_count('Translate the user message into plain English.') AS o200k;
-- U+0085 is whitespace, U+FEFF is not (tokenizer.md §4)
SELECT ft_tokenize(E' \u00850', 'cl100k_base') AS nel, ft_tokenize(E'x \uFEFFy', 'o200k_base') AS bom;
SELECT ft_tokenize('I''M HERE, they''re ''quoted'' don''t WON''T', 'o200k_base');
SELECT ft_tokenize('I''M HERE, they''re ''quoted'' don''t WON''T', 'cl100k_base');
SELECT ft_token_count('') AS empty, ft_tokenize('') AS no_ids, ft_token_count(NULL) AS strict_null;
SELECT ft_token_count('<|endoftext|> is plain text here', 'cl100k_base') AS special_as_text;
-- ft_token_count agrees with ft_tokenize on a long input with a very long piece
SELECT ft_token_count(t) = cardinality(ft_tokenize(t)) AS same, ft_token_count(t)
FROM (SELECT repeat('a', 100000) || ' ' || repeat('的', 30000) || repeat(' ', 5000) || 'x' AS t) s;

-- Models: ft_models first, then tiktoken's prefixes ("ft:gpt-4o" before "ft:gpt-4")
SELECT m AS model, ft_token_count('日本語のテキストと한국어 텍스트', m) AS tokens
FROM unnest(ARRAY['o200k_base', 'cl100k_base', 'gpt-4o-mini-2024-07-18', 'gpt-3.5-turbo-0125',
                  'gpt-4o', 'gpt-4', 'gpt-4-0613', 'ft:gpt-4o-mini-2024-07-18:org::abc',
                  'ft:gpt-4-0613:org::abc', 'ft:gpt-4.1-nano-2025-04-14:org::x', 'o3-mini',
                  'gpt-35-turbo-16k', 'chatgpt-4o-latest']) AS m;
SELECT model, encoding, training_token_limit, training_price_per_million, supports_dpo, seeded
FROM ft_models WHERE provider = 'openai' AND seeded ORDER BY model;
-- A row added to ft_models wins over the prefix table
INSERT INTO ft_models (model, encoding, note) VALUES ('gpt-4o-legacy-test', 'cl100k_base', 'test row');
SELECT ft_token_count('日本語のテキストと한국어 텍스트', 'gpt-4o-legacy-test') AS from_table,
       ft_token_count('日本語のテキストと한국어 텍스트', 'gpt-4o-other') AS from_prefix;
SELECT u.condition FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(rel, condition)
WHERE e.extname = 'pg_finetune' AND u.rel = 'ft_models'::regclass;

-- Chat accounting: the OpenAI cookbook's example gives 129 (cl100k_base) and 124 (o200k_base)
\set cookbook '[{"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."}, {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."}, {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."}, {"role": "system", "name": "example_user", "content": "Let''s circle back when we have more bandwidth to touch base on opportunities for increased leverage."}, {"role": "system", "name": "example_assistant", "content": "Let''s talk later when we''re less busy about how to do better."}, {"role": "user", "content": "This late pivot means we don''t have time to boil the ocean for the client deliverable."}]'
SELECT ft_chat_token_count(:'cookbook', 'gpt-3.5-turbo-0125') AS cl100k,
       ft_chat_token_count(:'cookbook', 'gpt-4o-mini-2024-07-18') AS o200k,
       ft_chat_token_count(:'cookbook') AS default_model;
-- The cookbook's tools example gives 105 (gpt-3.5-turbo) and 101 (gpt-4o)
\set tools '{"tools": [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather in a given location", "parameters": {"type": "object", "properties": {"location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}, "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}}], "messages": [{"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."}, {"role": "user", "content": "What''s the weather like in San Francisco?"}]}'
SELECT ft_chat_token_count(:'tools', 'gpt-3.5-turbo') AS cl100k, ft_chat_token_count(:'tools', 'gpt-4o') AS o200k;
-- Per message: 3 + tokens of every string value (+1 per name); 3 for the primed reply
\set example '{"messages": [{"role": "user", "content": "Bonjour, ça va ?"}, {"role": "assistant", "content": "Très bien, merci !", "weight": 1}]}'
SELECT ft_chat_token_count(:'example') AS total,
       3 + (3 + ft_token_count('user') + ft_token_count('Bonjour, ça va ?'))
         + (3 + ft_token_count('assistant') + ft_token_count('Très bien, merci !')) AS by_hand,
       ft_assistant_token_count(:'example') AS assistant,
       ft_token_count('Très bien, merci !') AS assistant_by_hand;
-- Content parts count their text; tool calls count function name and arguments
SELECT ft_chat_token_count('[{"role": "user", "content": [{"type": "text", "text": "Hello there"}, {"type": "image_url", "image_url": {"url": "https://x"}}]}]')
       = 3 + 3 + ft_token_count('user') + ft_token_count('Hello there') AS content_parts,
       ft_chat_token_count('[{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}]')
       = 3 + 3 + ft_token_count('assistant') + ft_token_count('get_weather') + ft_token_count('{"city": "Paris"}') AS tool_calls,
       ft_assistant_token_count('[{"role": "assistant", "tool_calls": []}, {"role": "user", "content": "x"}]') AS no_assistant_content;
SELECT ft_chat_token_count('[]') AS no_messages, ft_chat_token_count(NULL) AS strict_null;

-- Errors with their SQLSTATE
SELECT pg_temp.err($$SELECT ft_token_count('x', 'p50k_base')$$);
SELECT pg_temp.err($$SELECT ft_tokenize('x', 'claude-3')$$);
SELECT pg_temp.err($$SELECT ft_chat_token_count('[]', 'llama-3')$$);
SELECT pg_temp.err($$SELECT ft_assistant_token_count('[]', '')$$);
SELECT pg_temp.err($$SELECT ft_chat_token_count('"just a string"')$$);
SELECT pg_temp.err($$SELECT ft_chat_token_count('{"message": []}')$$);
SELECT pg_temp.err($$SELECT ft_chat_token_count('[{"role": "user", "content": "x"}, 42]')$$);
SELECT pg_temp.err($$SELECT ft_assistant_token_count('{"messages": "nope"}')$$);
SELECT pg_temp.err($$INSERT INTO ft_models (model, encoding) VALUES ('bad', 'p50k_base')$$);
-- Missing rank files: 58P01 naming the file and the setting
SET ft.tokenizer_dir = '/nonexistent/encodings';
SELECT pg_temp.err($$SELECT ft_token_count('x')$$);
SELECT pg_temp.err($$SELECT ft_tokenize('x', 'gpt-3.5-turbo')$$);
-- A corrupt rank file: XX001 naming the file
SELECT set_config('ft.tokenizer_dir', current_setting('data_directory'), false) IS NOT NULL AS dir_set;
DO $$
BEGIN
  EXECUTE format('COPY (SELECT %L) TO %L', 'not a rank file',
                 current_setting('data_directory') || '/o200k_base.tiktoken');
END
$$;
SELECT replace(pg_temp.err($$SELECT ft_token_count('x', 'o200k_base')$$),
               current_setting('data_directory'), '$PGDATA') AS err;
RESET ft.tokenizer_dir;
SELECT ft_token_count('back to the installed files') AS tokens;

-- ft_models: readable by everyone, written by ft_admin only, and never its "seeded" column
CREATE ROLE ft_tokens_user;
CREATE ROLE ft_tokens_admin IN ROLE ft_admin;
SET ROLE ft_tokens_user;
SELECT count(*) AS models FROM ft_models WHERE seeded AND provider = 'openai';
SELECT ft_token_count('hello', 'gpt-4.1-mini-2025-04-14') AS as_user;
SELECT pg_temp.err($$INSERT INTO ft_models (model, encoding) VALUES ('x', 'o200k_base')$$);
SELECT pg_temp.err($$UPDATE ft_models SET training_price_per_million = 0$$);
SET ROLE ft_tokens_admin;
INSERT INTO ft_models (model, encoding) VALUES ('admin-model', 'o200k_base');
SELECT pg_temp.err($$UPDATE ft_models SET seeded = true WHERE model = 'admin-model'$$);
DELETE FROM ft_models WHERE model IN ('admin-model', 'gpt-4o-legacy-test');
RESET ROLE;
DROP ROLE ft_tokens_user;
DROP ROLE ft_tokens_admin;
