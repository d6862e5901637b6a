-- Core: the private schema, the admin role, tenancy and the grant helper.

-- Secrets and worker bookkeeping live here; nobody but the extension owner can read it.
CREATE SCHEMA ft_internal;
REVOKE ALL ON SCHEMA ft_internal FROM PUBLIC;
COMMENT ON SCHEMA ft_internal IS
  'pg_finetune private state (API keys, worker bookkeeping). Readable only by the extension owner.';

-- Roles are cluster-wide, so the admin role may already exist from another database; it is
-- therefore created when missing and never dropped by DROP EXTENSION.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'ft_admin') THEN
    CREATE ROLE ft_admin NOLOGIN;
  END IF;
END
$$;

-- JWT claims are plain settings that any session can set, so they are believed only in sessions
-- that PostgREST/Supabase opened (session user listed in ft.jwt_session_roles, by default
-- authenticator) or that a superuser opened; anyone else is who they logged in as.
CREATE FUNCTION ft_current_owner() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(
    CASE WHEN session_user::text = ANY (string_to_array(replace(current_setting('ft.jwt_session_roles', true), ' ', ''), ','))
              OR (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user)
         THEN coalesce(nullif(nullif(current_setting('request.jwt.claims', true), ''), 'null')::jsonb ->> 'sub',
                       nullif(current_setting('request.jwt.claim.sub', true), '')) END,
    nullif(current_setting('role', true), 'none'),
    session_user::text)
$$;
COMMENT ON FUNCTION ft_current_owner() IS
  'The tenant making this call: the JWT "sub" claim when the call came through PostgREST/Supabase '
  '(setting request.jwt.claims, or the older request.jwt.claim.sub) in sessions opened by a role listed in '
  'ft.jwt_session_roles (default authenticator) or by a superuser; otherwise the current role '
  '(the role set with SET ROLE, else the session user, so that SECURITY DEFINER functions still see their caller). '
  'Every owner_id column defaults to it and every row-level security policy compares with it.';

CREATE FUNCTION ft_is_admin() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT pg_catalog.pg_has_role(coalesce(nullif(current_setting('role', true), 'none'), session_user::text),
                                 'ft_admin', 'MEMBER')
$$;
COMMENT ON FUNCTION ft_is_admin() IS
  'True when the calling role (SET ROLE role, else session user) is a member of ft_admin, which sees and manages every tenant''s rows.';

-- The identity that really acts, also from inside SECURITY DEFINER code (where current_user is
-- the definer): the role set with SET ROLE, else the session user.
CREATE FUNCTION ft_internal.acting_role() RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(nullif(current_setting('role', true), 'none'), session_user::text)
$$;


-- Which privileges ft_grant_app_role gives on each user-facing relation; each schema part
-- registers its own relations, so grants stay next to the tables they are about.
CREATE TABLE ft_internal.app_grants (
  relation   regclass PRIMARY KEY,
  privileges text     NOT NULL
);

-- Turns on tenant isolation for a user-facing table: row-level security enabled and forced, one
-- policy comparing owner_id with the caller, and the privileges an app role will be given.
CREATE FUNCTION ft_internal.enable_tenancy(relation regclass, privileges text) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', relation);
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', relation);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', relation);
  -- The sub-selects make PostgreSQL evaluate the owner once per statement, not once per row.
  EXECUTE format('CREATE POLICY tenant_isolation ON %s '
                 'USING (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin())) '
                 'WITH CHECK (owner_id = (SELECT ft_current_owner()) OR (SELECT ft_is_admin()))',
                 relation);
  INSERT INTO ft_internal.app_grants VALUES (relation, privileges);
  -- Extension tables are skipped by pg_dump unless registered: tenants' data must survive a dump.
  PERFORM pg_catalog.pg_extension_config_dump(relation, '');
END
$$;
