-- The main job, offline: a transcript comes in, is redacted and scored, becomes a dataset, and a
-- fine-tuning job runs against the local provider (tests/mock_provider) started by the demo.
INSERT INTO ft_providers (name, kind, base_url) VALUES ('local', 'mock', 'http://127.0.0.1:' || :'mock_port' || '/v1');
SET log_statement = 'none';
SELECT ft_set_api_key('local', 'sk-demo-local-provider-key');
RESET log_statement;

SELECT ft_create_avatar('Trail shoes assistant', provider => 'local',
                        settings => '{"min_examples": 12, "quality_threshold": 0.5}',
                        system_prompt => 'You are the friendly assistant of a trail running shop. Be brief and helpful.') AS avatar \gset

-- A pasted chat log: the shop's replies are what the model should learn. PII is redacted on import.
SELECT jsonb_pretty(ft_import_transcript(:'avatar', string_agg(line, E'\n'), assistant_speaker => 'Shop'))
FROM (
  SELECT format(E'Customer: Hi, do you have the Cascadia %s in size %s? My email is runner%s@example.com\nShop: Hello! Yes, the Cascadia %s in size %s is in stock. Would you like me to reserve a pair for you?',
                v, 36 + v % 10, v, v, 36 + v % 10) AS line
    FROM generate_series(1, 12) v
  UNION ALL
  SELECT format(E'Customer: My order %s has not arrived yet, it is a gift for Sunday.\nShop: I am sorry about the wait! I can see order %s left our warehouse yesterday; as you mentioned Sunday, I will ask the courier to prioritise it. Is the address still the same?', 9000 + v, 9000 + v)
    FROM generate_series(1, 8) v) t;

SELECT quality, exclusion_reason, left(messages->'messages'->0->>'content', 60) AS first_user_turn
  FROM ft_examples WHERE avatar_id = :'avatar' ORDER BY quality DESC NULLS LAST LIMIT 5;
SELECT * FROM ft_quality_metrics WHERE avatar_id = :'avatar';
SELECT split, line_no, left(line, 140) AS line FROM ft_dataset_preview(:'avatar', 1);
SELECT ft_token_count('Hello! Yes, the Cascadia 16 is in stock.', 'gpt-4o-mini-2024-07-18') AS tokens_of_a_reply;

-- The job returns at once; the worker uploads, creates and polls after COMMIT.
SELECT ft_create_job(:'avatar', options => '{"suffix": "trail", "n_epochs": 2}') AS job;
