-- Token counting identical to OpenAI's tiktoken (o200k_base, cl100k_base) and the model table.

CREATE TABLE ft_models (
  model                      text    NOT NULL PRIMARY KEY,
  provider                   text    NOT NULL DEFAULT 'openai',
  encoding                   text    NOT NULL CHECK (encoding IN ('o200k_base', 'cl100k_base')),
  context_window             integer CHECK (context_window > 0),
  training_token_limit       integer CHECK (training_token_limit > 0),
  training_price_per_million numeric CHECK (training_price_per_million >= 0),
  supports_dpo               boolean NOT NULL DEFAULT false,
  note                       text,
  seeded                     boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE ft_models IS
  'Models that can be fine-tuned, with their tokenizer encoding, limits and training price. '
  'Reference data: readable by everyone, changed by ft_admin. ft_token_count and the other token '
  'functions look a model up here before falling back to tiktoken''s model-name prefixes.';
COMMENT ON COLUMN ft_models.model IS 'Model name as the provider spells it, for example gpt-4o-mini-2024-07-18.';
COMMENT ON COLUMN ft_models.provider IS 'Provider kind that offers the model (openai by default).';
COMMENT ON COLUMN ft_models.encoding IS 'BPE encoding of the model: o200k_base or cl100k_base.';
COMMENT ON COLUMN ft_models.context_window IS 'Context window in tokens at inference; NULL when unknown.';
COMMENT ON COLUMN ft_models.training_token_limit IS 'Largest training example in tokens the provider accepts; NULL when unknown.';
COMMENT ON COLUMN ft_models.training_price_per_million IS 'Training price in USD per million trained tokens; NULL when unknown.';
COMMENT ON COLUMN ft_models.supports_dpo IS 'True when the model can be fine-tuned with direct preference optimisation.';
COMMENT ON COLUMN ft_models.note IS 'Free text: source of the figures, caveats.';
COMMENT ON COLUMN ft_models.seeded IS
  'True for rows shipped with pg_finetune; other rows are kept by pg_dump (changes to shipped rows are not).';

INSERT INTO ft_models (model, encoding, training_token_limit, training_price_per_million, supports_dpo, seeded)
VALUES
  ('gpt-4o-mini-2024-07-18',  'o200k_base',  65536,  3.00, false, true),
  ('gpt-4o-2024-08-06',       'o200k_base',  65536, 25.00, false, true),
  ('gpt-4.1-2025-04-14',      'o200k_base',  65536, 25.00, true,  true),
  ('gpt-4.1-mini-2025-04-14', 'o200k_base',  65536,  5.00, true,  true),
  ('gpt-4.1-nano-2025-04-14', 'o200k_base',  32768,  1.50, true,  true),
  ('gpt-3.5-turbo-0125',      'cl100k_base', 16385,  8.00, false, true);
SELECT pg_catalog.pg_extension_config_dump('ft_models', 'WHERE NOT seeded');

REVOKE ALL ON ft_models FROM PUBLIC;
GRANT SELECT ON ft_models TO PUBLIC;
-- Column grants leave out "seeded", so rows added by ft_admin are always dumped.
GRANT INSERT (model, provider, encoding, context_window, training_token_limit,
              training_price_per_million, supports_dpo, note),
      UPDATE (model, provider, encoding, context_window, training_token_limit,
              training_price_per_million, supports_dpo, note),
      DELETE ON ft_models TO ft_admin;

CREATE FUNCTION ft_token_count(text text, encoding_or_model text DEFAULT 'o200k_base')
RETURNS integer
AS 'MODULE_PATHNAME', 'ft_token_count'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_token_count(text, text) IS
  'Number of tokens of a text, identical to OpenAI tiktoken''s encode_ordinary (special-token text counts '
  'as plain text). The second argument is an encoding (o200k_base, cl100k_base) or a model name, looked '
  'up in ft_models, then by tiktoken''s model-name prefixes. STABLE because ft_models can change.';

CREATE FUNCTION ft_tokenize(text text, encoding_or_model text DEFAULT 'o200k_base')
RETURNS integer[]
AS 'MODULE_PATHNAME', 'ft_tokenize'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_tokenize(text, text) IS
  'Token ids of a text, identical to OpenAI tiktoken''s encode_ordinary; the second argument is an '
  'encoding or a model name, as for ft_token_count.';

CREATE FUNCTION ft_chat_token_count(messages jsonb, model text DEFAULT 'gpt-4o-mini-2024-07-18')
RETURNS integer
AS 'MODULE_PATHNAME', 'ft_chat_token_count'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_chat_token_count(jsonb, text) IS
  'Tokens of a chat example by the OpenAI cookbook formula: 3 per message, the tokens of every string '
  'value (role, content, name, tool_call_id), 1 more per name, 3 for the primed reply. Accepts a '
  'messages array or an object {"messages": [...], "tools": [...]}; tool definitions are counted as the '
  'cookbook''s num_tokens_for_tools does. Not in the cookbook: content-part arrays count their "text" '
  'strings, and assistant tool_calls count the tokens of each function name and arguments string. '
  'OpenAI bills about 2 tokens per example fewer than this estimate.';

CREATE FUNCTION ft_assistant_token_count(messages jsonb, model text DEFAULT 'gpt-4o-mini-2024-07-18')
RETURNS integer
AS 'MODULE_PATHNAME', 'ft_assistant_token_count'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_assistant_token_count(jsonb, text) IS
  'Tokens of the content of the assistant messages of a chat example (the completion part), without the '
  'per-message overhead and without tool calls; same input shapes as ft_chat_token_count.';
