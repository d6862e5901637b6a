-- Datasets: JSONL built from tables, streamed, reproducible; preference pairs for DPO.

CREATE TABLE ft_preferences (
  id            uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id     uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id      text        NOT NULL DEFAULT ft_current_owner(),
  input         jsonb       NOT NULL
                CHECK ((jsonb_typeof(input) = 'object' AND jsonb_typeof(input -> 'messages') = 'array')
                       OR jsonb_typeof(input) = 'array'),
  preferred     jsonb       NOT NULL
                CHECK (jsonb_typeof(preferred) = 'string'
                       OR (jsonb_typeof(preferred) = 'object' AND preferred ->> 'role' = 'assistant'
                           AND jsonb_typeof(preferred -> 'content') = 'string')),
  non_preferred jsonb       NOT NULL
                CHECK (jsonb_typeof(non_preferred) = 'string'
                       OR (jsonb_typeof(non_preferred) = 'object' AND non_preferred ->> 'role' = 'assistant'
                           AND jsonb_typeof(non_preferred -> 'content') = 'string')),
  source        text        NOT NULL DEFAULT 'manual' CHECK (source IN ('feedback', 'ab_test', 'manual')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- avatar_id leads the key so the table can be distributed on it, like ft_examples.
  PRIMARY KEY (avatar_id, id)
);
CREATE UNIQUE INDEX ft_preferences_id_idx ON ft_preferences (id);
CREATE INDEX ft_preferences_owner_idx ON ft_preferences (owner_id);

COMMENT ON TABLE ft_preferences IS
  'Preference pairs for direct preference optimisation (format dpo of ft_jsonl): a conversation and '
  'a preferred and a non-preferred assistant answer to it. Filled by hand, from feedback or from A/B results.';
COMMENT ON COLUMN ft_preferences.id IS 'Preference pair id; also decides its side of the train/validation split.';
COMMENT ON COLUMN ft_preferences.avatar_id IS 'Avatar the pair trains.';
COMMENT ON COLUMN ft_preferences.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_preferences.input IS
  'The conversation before the answer: {"messages": [...], "tools": [...]} or a bare messages array.';
COMMENT ON COLUMN ft_preferences.preferred IS
  'The better answer: a JSON string (its content) or an assistant message object {"role": "assistant", "content": ...}.';
COMMENT ON COLUMN ft_preferences.non_preferred IS 'The worse answer, in the same shape as preferred.';
COMMENT ON COLUMN ft_preferences.source IS 'Where the pair came from: feedback, ab_test or manual.';
COMMENT ON COLUMN ft_preferences.created_at IS 'When the pair was added; over max_examples the most recent pairs are kept.';

CREATE TRIGGER ft_preferences_owner BEFORE INSERT OR UPDATE ON ft_preferences
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();

SELECT ft_internal.enable_tenancy('ft_preferences', 'SELECT, INSERT, UPDATE, DELETE');

CREATE TABLE ft_datasets (
  id                uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id         uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id          text        NOT NULL DEFAULT ft_current_owner(),
  job_id            uuid,
  format            text        NOT NULL,
  options           jsonb       NOT NULL,
  train_count       bigint      NOT NULL,
  validation_count  bigint      NOT NULL,
  train_bytes       bigint      NOT NULL,
  validation_bytes  bigint      NOT NULL,
  train_sha256      text        NOT NULL,
  validation_sha256 text        NOT NULL,
  train_tokens      bigint,
  validation_tokens bigint,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, id)
);
CREATE UNIQUE INDEX ft_datasets_id_idx ON ft_datasets (id);
CREATE INDEX ft_datasets_job_idx ON ft_datasets (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX ft_datasets_owner_idx ON ft_datasets (owner_id);

COMMENT ON TABLE ft_datasets IS
  'Every dataset build: what was selected (resolved options), how much (counts, bytes, tokens) and its '
  'fingerprint (sha256 of each file). Written by ft_build_dataset and by the worker for each job.';
COMMENT ON COLUMN ft_datasets.id IS 'Dataset build id.';
COMMENT ON COLUMN ft_datasets.avatar_id IS 'Avatar whose examples were built.';
COMMENT ON COLUMN ft_datasets.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_datasets.job_id IS 'Job that used the files; NULL for a build made with ft_build_dataset.';
COMMENT ON COLUMN ft_datasets.format IS 'Line format: chat, dpo, together_chat, alpaca or prompt_completion.';
COMMENT ON COLUMN ft_datasets.options IS
  'The options really used, every default and avatar setting filled in, so the build can be repeated exactly.';
COMMENT ON COLUMN ft_datasets.train_count IS 'Lines in the training file.';
COMMENT ON COLUMN ft_datasets.validation_count IS 'Lines in the validation file (0: no validation file).';
COMMENT ON COLUMN ft_datasets.train_bytes IS 'Size of the training file in bytes, newlines included.';
COMMENT ON COLUMN ft_datasets.validation_bytes IS 'Size of the validation file in bytes, newlines included.';
COMMENT ON COLUMN ft_datasets.train_sha256 IS 'SHA-256 of the training file (every line followed by a newline), hex.';
COMMENT ON COLUMN ft_datasets.validation_sha256 IS 'SHA-256 of the validation file, hex (that of empty input when there is none).';
COMMENT ON COLUMN ft_datasets.train_tokens IS
  'Sum of ft_examples.token_count over the training lines (unknown counts as 0; an injected system prompt '
  'is not included). NULL for format dpo.';
COMMENT ON COLUMN ft_datasets.validation_tokens IS 'The same sum over the validation lines.';
COMMENT ON COLUMN ft_datasets.created_at IS 'When the dataset was built.';

CREATE TRIGGER ft_datasets_owner BEFORE INSERT OR UPDATE ON ft_datasets
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();

SELECT ft_internal.enable_tenancy('ft_datasets', 'SELECT, INSERT, DELETE');

CREATE FUNCTION ft_jsonl(avatar uuid, split text DEFAULT 'all', format text DEFAULT 'chat',
                         options jsonb DEFAULT '{}')
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'ft_jsonl'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION ft_jsonl(uuid, text, text, jsonb) IS
  'One compact JSON line per example of the avatar, in example id order: split train, validation or all; '
  'format chat, dpo, together_chat, alpaca or prompt_completion; options inject_system_prompt, '
  'include_excluded, include_duplicates, min_quality, verified_only, max_examples, over_limit, redact, '
  'validation_share, seed (see the README). Write a file with COPY (SELECT * FROM ft_jsonl(...)) TO STDOUT '
  'WITH (FORMAT csv, QUOTE E''\x01'', DELIMITER E''\x02''), which copies lines verbatim (text COPY would '
  'double every backslash).';

CREATE FUNCTION ft_build_dataset(avatar uuid, options jsonb DEFAULT '{}', format text DEFAULT 'chat')
RETURNS uuid
AS 'MODULE_PATHNAME', 'ft_build_dataset'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION ft_build_dataset(uuid, jsonb, text) IS
  'Streams both splits of the avatar''s dataset (nothing is kept in memory) to count, measure and '
  'fingerprint them, records an ft_datasets row without a job and returns its id. The same rows and '
  'options always give the same sha256.';

CREATE FUNCTION ft_dataset_preview(avatar uuid, n integer DEFAULT 3, format text DEFAULT 'chat',
                                   options jsonb DEFAULT '{}')
RETURNS TABLE (split text, line_no integer, line text)
AS 'MODULE_PATHNAME', 'ft_dataset_preview'
LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION ft_dataset_preview(uuid, integer, text, jsonb) IS
  'The first n lines (default 3) of the train and of the validation split, for a quick look in psql.';

CREATE FUNCTION ft_internal.write_dataset_files(avatar uuid, train_path text, validation_path text DEFAULT NULL,
                                                format text DEFAULT 'chat', options jsonb DEFAULT '{}',
                                                job_id uuid DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'ft_write_dataset_files'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION ft_internal.write_dataset_files(uuid, text, text, text, jsonb, uuid) FROM PUBLIC;
COMMENT ON FUNCTION ft_internal.write_dataset_files(uuid, text, text, text, jsonb, uuid) IS
  'Writes the avatar''s train and validation JSONL files on the database server (fsync''d), records the '
  'build in ft_datasets and returns its id: the code path the worker uses before uploading. Superuser only; '
  'without validation_path the validation lines are counted and hashed but not written.';
