-- Avatars (the bots being trained) and their prompt versions.

CREATE TABLE ft_avatars (
  id           uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  owner_id     text        NOT NULL DEFAULT ft_current_owner(),
  name         text        NOT NULL CHECK (btrim(name) <> ''),
  provider     text        NOT NULL DEFAULT 'openai',
  base_model   text        NOT NULL DEFAULT 'gpt-4o-mini-2024-07-18',
  active_model text,
  settings     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ft_avatars_owner_idx ON ft_avatars (owner_id);

COMMENT ON TABLE ft_avatars IS
  'Avatars: the chatbots being trained. Each tenant sees only its own rows (row-level security on owner_id).';
COMMENT ON COLUMN ft_avatars.id IS 'Avatar id; every other table refers to it as avatar_id.';
COMMENT ON COLUMN ft_avatars.owner_id IS 'Tenant owning the avatar; defaults to ft_current_owner().';
COMMENT ON COLUMN ft_avatars.name IS 'Display name of the avatar.';
COMMENT ON COLUMN ft_avatars.provider IS 'Fine-tuning provider used for this avatar''s jobs unless a job names another.';
COMMENT ON COLUMN ft_avatars.base_model IS 'Model that is fine-tuned, and served while no fine-tuned model is active.';
COMMENT ON COLUMN ft_avatars.active_model IS 'Fine-tuned model in use; NULL until a job succeeds or a model is activated.';
COMMENT ON COLUMN ft_avatars.settings IS
  'Per-avatar options as a JSON object (for example quality_threshold, min_examples, redact, validation_share).';
COMMENT ON COLUMN ft_avatars.created_at IS 'When the avatar was created.';
COMMENT ON COLUMN ft_avatars.updated_at IS 'When the avatar row last changed.';

CREATE TABLE ft_prompt_versions (
  avatar_id        uuid        NOT NULL REFERENCES ft_avatars (id) ON DELETE CASCADE,
  owner_id         text        NOT NULL DEFAULT ft_current_owner(),
  version          integer     NOT NULL CHECK (version > 0),
  system_prompt    text        NOT NULL,
  note             text,
  is_active        boolean     NOT NULL DEFAULT false,
  previous_version integer,
  activated_at     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (avatar_id, version)
);
CREATE UNIQUE INDEX ft_prompt_versions_one_active ON ft_prompt_versions (avatar_id) WHERE is_active;

COMMENT ON TABLE ft_prompt_versions IS
  'System prompt versions of each avatar; at most one is active. Use ft_create_prompt_version, '
  'ft_activate_prompt_version and ft_rollback_prompt to change them.';
COMMENT ON COLUMN ft_prompt_versions.avatar_id IS 'Avatar the prompt belongs to.';
COMMENT ON COLUMN ft_prompt_versions.owner_id IS 'Tenant owning the row; always the avatar''s owner.';
COMMENT ON COLUMN ft_prompt_versions.version IS 'Version number, 1, 2, 3 ... per avatar.';
COMMENT ON COLUMN ft_prompt_versions.system_prompt IS 'The system prompt text sent as the system message.';
COMMENT ON COLUMN ft_prompt_versions.note IS 'Free text: why this version was made.';
COMMENT ON COLUMN ft_prompt_versions.is_active IS 'True for the one version in use.';
COMMENT ON COLUMN ft_prompt_versions.previous_version IS
  'Version that was active when this one was activated; ft_rollback_prompt returns to it.';
COMMENT ON COLUMN ft_prompt_versions.activated_at IS 'When this version was last activated.';
COMMENT ON COLUMN ft_prompt_versions.created_at IS 'When this version was created.';

-- Keep updated_at honest without trusting callers.
CREATE FUNCTION ft_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION ft_touch_updated_at() IS 'Trigger: sets updated_at to now() on every update.';

CREATE TRIGGER ft_avatars_touch BEFORE UPDATE ON ft_avatars
  FOR EACH ROW EXECUTE FUNCTION ft_touch_updated_at();

-- Child rows always belong to their avatar's owner. Reading the avatar under the caller's own
-- row-level security is also what stops a tenant from attaching rows to an avatar it cannot see
-- (foreign-key checks alone bypass row-level security).
CREATE FUNCTION ft_inherit_avatar_owner() RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
  avatar_owner text;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.avatar_id = OLD.avatar_id AND NEW.owner_id = OLD.owner_id THEN
    RETURN NEW;
  END IF;
  SELECT a.owner_id INTO avatar_owner FROM @extschema@.ft_avatars a WHERE a.id = NEW.avatar_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'avatar % does not exist', NEW.avatar_id
      USING ERRCODE = 'foreign_key_violation',
            HINT = 'Rows can only be attached to an avatar you can see in ft_avatars.';
  END IF;
  NEW.owner_id := avatar_owner;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION ft_inherit_avatar_owner() IS
  'Trigger: gives a row the owner of its avatar, and refuses avatars the caller cannot see.';

CREATE TRIGGER ft_prompt_versions_owner BEFORE INSERT OR UPDATE ON ft_prompt_versions
  FOR EACH ROW EXECUTE FUNCTION ft_inherit_avatar_owner();

-- The visible avatar row, locked for the rest of the transaction when asked.
CREATE FUNCTION ft_get_avatar(avatar uuid, lock boolean DEFAULT false) RETURNS ft_avatars
LANGUAGE plpgsql
AS $$
DECLARE
  result ft_avatars;
BEGIN
  IF lock THEN
    SELECT * INTO result FROM ft_avatars WHERE id = avatar FOR UPDATE;
  ELSE
    SELECT * INTO result FROM ft_avatars WHERE id = avatar;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'avatar % does not exist', avatar
      USING ERRCODE = 'no_data_found',
            HINT = 'List your avatars with SELECT id, name FROM ft_avatars.';
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION ft_get_avatar(uuid, boolean) IS
  'The avatar row if the caller can see it (optionally locked FOR UPDATE), else error P0002. '
  'Avatars of other tenants and missing ones give the same error.';

CREATE FUNCTION ft_create_avatar(name text, base_model text DEFAULT 'gpt-4o-mini-2024-07-18',
                                 provider text DEFAULT 'openai', settings jsonb DEFAULT '{}',
                                 system_prompt text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
AS $$
DECLARE
  new_id uuid;
BEGIN
  INSERT INTO ft_avatars (name, base_model, provider, settings)
  VALUES (ft_create_avatar.name, ft_create_avatar.base_model, ft_create_avatar.provider,
          coalesce(ft_create_avatar.settings, '{}'))
  RETURNING id INTO new_id;
  IF system_prompt IS NOT NULL THEN
    PERFORM ft_create_prompt_version(new_id, system_prompt, 'initial prompt');
  END IF;
  RETURN new_id;
END
$$;
COMMENT ON FUNCTION ft_create_avatar(text, text, text, jsonb, text) IS
  'Creates an avatar owned by the caller and, when system_prompt is given, its first active prompt version. Returns the id.';

CREATE FUNCTION ft_chat_model(avatar uuid) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(a.active_model, a.base_model) FROM ft_get_avatar(avatar) a
$$;
COMMENT ON FUNCTION ft_chat_model(uuid) IS
  'The model chat code should call for this avatar: its active fine-tuned model, else its base model.';

CREATE FUNCTION ft_create_prompt_version(avatar uuid, prompt text, note text DEFAULT NULL,
                                         activate boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  next_version integer;
BEGIN
  IF prompt IS NULL OR btrim(prompt) = '' THEN
    RAISE EXCEPTION 'system prompt must not be empty'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Locking the avatar serialises version numbering per avatar.
  PERFORM ft_get_avatar(avatar, lock => true);
  SELECT coalesce(max(version), 0) + 1 INTO next_version
    FROM ft_prompt_versions WHERE avatar_id = avatar;
  INSERT INTO ft_prompt_versions (avatar_id, version, system_prompt, note)
  VALUES (avatar, next_version, prompt, ft_create_prompt_version.note);
  IF activate THEN
    PERFORM ft_activate_prompt_version(avatar, next_version);
  END IF;
  RETURN next_version;
END
$$;
COMMENT ON FUNCTION ft_create_prompt_version(uuid, text, text, boolean) IS
  'Adds the next prompt version of an avatar (activating it unless activate is false) and returns its number.';

CREATE FUNCTION ft_activate_prompt_version(avatar uuid, version integer) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  current_version integer;
BEGIN
  PERFORM ft_get_avatar(avatar, lock => true);
  IF NOT EXISTS (SELECT 1 FROM ft_prompt_versions p
                  WHERE p.avatar_id = avatar AND p.version = ft_activate_prompt_version.version) THEN
    RAISE EXCEPTION 'prompt version % of avatar % does not exist', version, avatar
      USING ERRCODE = 'no_data_found',
            HINT = 'List versions with SELECT version, note FROM ft_prompt_versions WHERE avatar_id = ...';
  END IF;
  SELECT p.version INTO current_version FROM ft_prompt_versions p
   WHERE p.avatar_id = avatar AND p.is_active;
  IF current_version = version THEN
    RETURN version;
  END IF;
  UPDATE ft_prompt_versions p SET is_active = false
   WHERE p.avatar_id = avatar AND p.is_active;
  UPDATE ft_prompt_versions p
     SET is_active = true, previous_version = current_version, activated_at = now()
   WHERE p.avatar_id = avatar AND p.version = ft_activate_prompt_version.version;
  RETURN version;
END
$$;
COMMENT ON FUNCTION ft_activate_prompt_version(uuid, integer) IS
  'Makes the given prompt version the active one and remembers the version it replaces.';

CREATE FUNCTION ft_rollback_prompt(avatar uuid) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
  active_row ft_prompt_versions;
BEGIN
  PERFORM ft_get_avatar(avatar, lock => true);
  SELECT * INTO active_row FROM ft_prompt_versions p WHERE p.avatar_id = avatar AND p.is_active;
  IF NOT FOUND OR active_row.previous_version IS NULL THEN
    RAISE EXCEPTION 'avatar % has no earlier prompt version to roll back to', avatar
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Activate a version explicitly with ft_activate_prompt_version.';
  END IF;
  UPDATE ft_prompt_versions p SET is_active = false
   WHERE p.avatar_id = avatar AND p.version = active_row.version;
  -- The restored version keeps its own previous_version, so repeated rollbacks walk back in time.
  UPDATE ft_prompt_versions p SET is_active = true, activated_at = now()
   WHERE p.avatar_id = avatar AND p.version = active_row.previous_version;
  RETURN active_row.previous_version;
END
$$;
COMMENT ON FUNCTION ft_rollback_prompt(uuid) IS
  'Re-activates the prompt version that was active before the current one and returns its number.';

CREATE FUNCTION ft_active_prompt(avatar uuid) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT p.system_prompt FROM ft_prompt_versions p
   WHERE p.avatar_id = avatar AND p.is_active
$$;
COMMENT ON FUNCTION ft_active_prompt(uuid) IS 'The active system prompt of an avatar, or NULL when it has none.';
