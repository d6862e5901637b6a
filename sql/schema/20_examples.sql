-- Training examples: one conversation each, in the OpenAI chat shape, checked on write.

CREATE TABLE ft_examples (
  id                    uuid        NOT NULL DEFAULT gen_random_uuid(),
  avatar_id             uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id              text        NOT NULL DEFAULT ft_current_owner(),
  messages              jsonb       NOT NULL,
  category              text,
  pattern_type          text        NOT NULL DEFAULT 'other'
                        CHECK (pattern_type IN ('greeting', 'question', 'statement', 'joke', 'story', 'other')),
  source                text        NOT NULL DEFAULT 'manual'
                        CHECK (source IN ('manual', 'import', 'capture')),
  verified              boolean     NOT NULL DEFAULT false,
  rating                smallint    CHECK (rating BETWEEN 1 AND 5),
  quality               real        CHECK (quality BETWEEN 0 AND 1),
  quality_components    jsonb,
  excluded              boolean     NOT NULL DEFAULT false,
  exclusion_reason      text,
  content_hash          bytea,
  token_count           integer,
  assistant_token_count integer,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  -- avatar_id leads the key so the table can be distributed on it (see README, "Beyond one machine").
  PRIMARY KEY (avatar_id, id)
);
CREATE UNIQUE INDEX ft_examples_id_idx ON ft_examples (id);
CREATE INDEX ft_examples_owner_idx ON ft_examples (owner_id);

COMMENT ON TABLE ft_examples IS
  'Training examples: one conversation each. messages is checked on every write (ft_check_example); '
  'quality, hash and token columns are filled on write by pg_finetune.';
COMMENT ON COLUMN ft_examples.id IS 'Example id.';
COMMENT ON COLUMN ft_examples.avatar_id IS 'Avatar the example trains.';
COMMENT ON COLUMN ft_examples.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_examples.messages IS
  'The conversation as an OpenAI chat fine-tuning line: {"messages": [...], "tools": [...], "parallel_tool_calls": ...}. '
  'A bare messages array is accepted on write and stored wrapped in that object.';
COMMENT ON COLUMN ft_examples.category IS 'Free category used for coverage and for stratifying the train/validation split.';
COMMENT ON COLUMN ft_examples.pattern_type IS 'Kind of exchange: greeting, question, statement, joke, story or other.';
COMMENT ON COLUMN ft_examples.source IS 'How the example arrived: manual, import (ft_import_transcript) or capture (ft_capture trigger).';
COMMENT ON COLUMN ft_examples.verified IS 'True once a human has reviewed the example.';
COMMENT ON COLUMN ft_examples.rating IS 'Human rating from 1 (bad) to 5 (excellent), NULL when unrated.';
COMMENT ON COLUMN ft_examples.quality IS 'Automatic quality score in [0,1]; NULL until scored.';
COMMENT ON COLUMN ft_examples.quality_components IS 'The parts the quality score is made of, as JSON.';
COMMENT ON COLUMN ft_examples.excluded IS 'True when the example is left out of datasets (low quality, duplicate, ...).';
COMMENT ON COLUMN ft_examples.exclusion_reason IS 'Why the example is excluded.';
COMMENT ON COLUMN ft_examples.content_hash IS 'Hash of the normalised conversation text, for exact de-duplication.';
COMMENT ON COLUMN ft_examples.token_count IS 'Tokens of the whole example for the avatar''s base model (OpenAI chat accounting).';
COMMENT ON COLUMN ft_examples.assistant_token_count IS 'Tokens of the assistant messages only.';
COMMENT ON COLUMN ft_examples.created_at IS 'When the example was added.';
COMMENT ON COLUMN ft_examples.updated_at IS 'When the example last changed.';

CREATE FUNCTION ft_check_example(example jsonb) RETURNS jsonb
AS 'MODULE_PATHNAME', 'ft_check_example'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_check_example(jsonb) IS
  'Checks that a value is a valid OpenAI chat fine-tuning example and returns it in stored form '
  '(a bare messages array is wrapped as {"messages": [...]}). Raises 22023 naming the first problem and its path.';

CREATE FUNCTION ft_example_problems(example jsonb)
RETURNS TABLE (code text, path text, detail text)
AS 'MODULE_PATHNAME', 'ft_example_problems'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 4;
COMMENT ON FUNCTION ft_example_problems(jsonb) IS
  'Every structural problem of an example (not just the first), as rows of code, JSON path and detail.';

CREATE FUNCTION ft_examples_before_write() RETURNS trigger
AS 'MODULE_PATHNAME', 'ft_examples_before_write'
LANGUAGE C;
COMMENT ON FUNCTION ft_examples_before_write() IS
  'Trigger on ft_examples: checks and normalises messages on every insert and update.';

CREATE TRIGGER ft_examples_owner BEFORE INSERT OR UPDATE ON ft_examples
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();
CREATE TRIGGER ft_examples_check BEFORE INSERT OR UPDATE ON ft_examples
  FOR EACH ROW EXECUTE FUNCTION ft_examples_before_write();
CREATE TRIGGER ft_examples_touch BEFORE UPDATE ON ft_examples
  FOR EACH ROW EXECUTE FUNCTION ft_touch_updated_at();

CREATE FUNCTION ft_add_example(avatar uuid, messages jsonb, category text DEFAULT NULL,
                               pattern_type text DEFAULT 'other', source text DEFAULT 'manual',
                               verified boolean DEFAULT false, rating integer DEFAULT NULL)
RETURNS uuid
LANGUAGE sql
AS $$
  INSERT INTO ft_examples (avatar_id, messages, category, pattern_type, source, verified, rating)
  VALUES (avatar, messages, category, pattern_type, source, verified, rating)
  RETURNING id
$$;
COMMENT ON FUNCTION ft_add_example(uuid, jsonb, text, text, text, boolean, integer) IS
  'Adds one training example to an avatar and returns its id; exactly the same checks as a plain INSERT.';
