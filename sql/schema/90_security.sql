-- Tenancy of the core tables, the audit trail, and the grants an application role needs.

SELECT ft_internal.enable_tenancy('ft_avatars', 'SELECT, INSERT, UPDATE, DELETE');
SELECT ft_internal.enable_tenancy('ft_prompt_versions', 'SELECT, INSERT, UPDATE, DELETE');
SELECT ft_internal.enable_tenancy('ft_examples', 'SELECT, INSERT, UPDATE, DELETE');

CREATE TABLE ft_audit (
  id          uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  owner_id    text        NOT NULL,
  avatar_id   uuid,
  actor_role  text        NOT NULL,
  actor_sub   text,
  action      text        NOT NULL,
  object_type text        NOT NULL,
  object_id   text,
  detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX ft_audit_owner_at_idx ON ft_audit (owner_id, at DESC);

COMMENT ON TABLE ft_audit IS
  'Audit trail of sensitive actions (avatar deleted, examples deleted, prompt activated, model activated, '
  'job created or cancelled, key set). Written only by pg_finetune''s own triggers and functions; '
  'tenants read their own rows and cannot change or delete them.';
COMMENT ON COLUMN ft_audit.id IS 'Audit entry id.';
COMMENT ON COLUMN ft_audit.at IS 'When the action happened (transaction time).';
COMMENT ON COLUMN ft_audit.owner_id IS 'Tenant owning the object acted on.';
COMMENT ON COLUMN ft_audit.avatar_id IS 'Avatar concerned, when there is one.';
COMMENT ON COLUMN ft_audit.actor_role IS 'Database role that acted (the SET ROLE role, else the session user).';
COMMENT ON COLUMN ft_audit.actor_sub IS 'JWT subject of the caller when the call came through PostgREST/Supabase.';
COMMENT ON COLUMN ft_audit.action IS
  'What happened: avatar_deleted, examples_deleted, prompt_activated, model_activated, job_created, job_cancelled, key_set.';
COMMENT ON COLUMN ft_audit.object_type IS 'Kind of object acted on: avatar, example, prompt_version, job, model, api_key.';
COMMENT ON COLUMN ft_audit.object_id IS 'Id of the object acted on (text, since kinds differ).';
COMMENT ON COLUMN ft_audit.detail IS 'Action-specific facts, for example how many examples were deleted.';

SELECT ft_internal.enable_tenancy('ft_audit', 'SELECT');

-- Writes one audit row. Only pg_finetune's SECURITY DEFINER code reaches it, so tenants can
-- neither forge nor remove entries.
CREATE FUNCTION ft_internal.write_audit(owner text, avatar uuid, action text, object_type text,
                                        object_id text, detail jsonb DEFAULT '{}')
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO @extschema@.ft_audit (owner_id, avatar_id, actor_role, actor_sub, action, object_type, object_id, detail)
  VALUES (owner, avatar, ft_internal.acting_role(),
          -- the caller's identity when it differs from its role name: the trusted JWT subject
          nullif(@extschema@.ft_current_owner(), ft_internal.acting_role()),
          action, object_type, object_id, coalesce(detail, '{}'))
$$;
REVOKE ALL ON FUNCTION ft_internal.write_audit(text, uuid, text, text, text, jsonb) FROM PUBLIC;

CREATE FUNCTION ft_internal.audit_avatar_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM ft_internal.write_audit(OLD.owner_id, OLD.id, 'avatar_deleted', 'avatar', OLD.id::text,
                                  jsonb_build_object('name', OLD.name));
  RETURN OLD;
END
$$;
CREATE TRIGGER ft_avatars_audit AFTER DELETE ON ft_avatars
  FOR EACH ROW EXECUTE FUNCTION ft_internal.audit_avatar_deleted();

-- One entry per avatar and statement, not per row: deleting 100,000 examples is one action.
CREATE FUNCTION ft_internal.audit_examples_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT owner_id, avatar_id, count(*) AS n FROM deleted_rows GROUP BY owner_id, avatar_id LOOP
    PERFORM ft_internal.write_audit(r.owner_id, r.avatar_id, 'examples_deleted', 'example', NULL,
                                    jsonb_build_object('count', r.n));
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER ft_examples_audit AFTER DELETE ON ft_examples
  REFERENCING OLD TABLE AS deleted_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ft_internal.audit_examples_deleted();

CREATE FUNCTION ft_internal.audit_prompt_activated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM ft_internal.write_audit(NEW.owner_id, NEW.avatar_id, 'prompt_activated', 'prompt_version',
                                  NEW.version::text,
                                  jsonb_build_object('version', NEW.version, 'previous_version', NEW.previous_version));
  RETURN NEW;
END
$$;
CREATE TRIGGER ft_prompt_versions_audit AFTER UPDATE OF is_active ON ft_prompt_versions
  FOR EACH ROW WHEN (NEW.is_active AND NOT OLD.is_active)
  EXECUTE FUNCTION ft_internal.audit_prompt_activated();
CREATE TRIGGER ft_prompt_versions_audit_insert AFTER INSERT ON ft_prompt_versions
  FOR EACH ROW WHEN (NEW.is_active)
  EXECUTE FUNCTION ft_internal.audit_prompt_activated();

-- Grants an application role (for Supabase: authenticated) what it needs to use pg_finetune
-- under row-level security. Nothing is granted to PUBLIC by the extension itself.
CREATE FUNCTION ft_grant_app_role(role_name name) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  g record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
    RAISE EXCEPTION 'role "%" does not exist', role_name
      USING ERRCODE = 'undefined_object',
            HINT = 'Create the role first, for example CREATE ROLE app NOLOGIN.';
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', '@extschema@', role_name);
  FOR g IN SELECT relation, privileges FROM ft_internal.app_grants ORDER BY relation::text LOOP
    EXECUTE format('GRANT %s ON %s TO %I', g.privileges, g.relation, role_name);
  END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ft_grant_app_role(name) FROM PUBLIC;
COMMENT ON FUNCTION ft_grant_app_role(name) IS
  'Grants an application role (for Supabase: authenticated) the table privileges pg_finetune needs. '
  'Row-level security still limits every tenant to its own rows.';
