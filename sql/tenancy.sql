-- Tenant isolation, tested the way clients really call:
--  * PostgREST/Supabase: one database role (authenticated), SET LOCAL ROLE in a transaction and
--    the JWT claims in request.jwt.claims (or the older request.jwt.claim.sub);
--  * plain database roles logging in directly (regress_alice, regress_bob);
--  * an ft_admin member, who sees everything.
-- Neither tenant may read, change, delete or attach rows to the other's avatars, examples or
-- prompt versions, through the tables or through any function.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never
\set regress_user :USER

-- Roles are cluster-wide: all of them are dropped again at the end of this file.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
END
$$;
CREATE ROLE regress_alice LOGIN;
CREATE ROLE regress_bob LOGIN;
CREATE ROLE regress_auditor LOGIN IN ROLE ft_admin;
SELECT ft_grant_app_role('authenticated');
SELECT ft_grant_app_role('regress_alice');
SELECT ft_grant_app_role('regress_bob');
SELECT ft_grant_app_role('regress_auditor');
-- Granting to a missing role is a clear error.
DO $$
BEGIN
  PERFORM ft_grant_app_role('regress_nobody');
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE '%: %', SQLSTATE, SQLERRM;
END
$$;

-- Test helpers, usable by every role.
CREATE SCHEMA tenancy_util;
GRANT USAGE ON SCHEMA tenancy_util TO PUBLIC;

-- Runs one statement: "ok (N rows)", or the SQLSTATE and message (uuids masked).
CREATE FUNCTION tenancy_util.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  EXECUTE stmt;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN format('ok (%s rows)', n);
EXCEPTION WHEN OTHERS THEN
  RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM,
                        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
END
$$;

-- Everything a tenant might try against another tenant's avatar (victim, owned by victim_owner),
-- plus attempts to hand its own rows over to the victim. Runs with the caller's rights.
CREATE FUNCTION tenancy_util.attack(victim uuid, victim_owner text, own_avatar uuid, own_example uuid)
RETURNS TABLE (attempt text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
  ex constant text := '[{"role":"user","content":"hi"},{"role":"assistant","content":"gotcha"}]';
  t text[];
BEGIN
  FOREACH t SLICE 1 IN ARRAY ARRAY[
    ['read ft_avatars',               'SELECT * FROM ft_avatars WHERE id = %1$L OR owner_id = %2$L'],
    ['read ft_examples',              'SELECT * FROM ft_examples WHERE avatar_id = %1$L OR owner_id = %2$L'],
    ['read ft_prompt_versions',       'SELECT * FROM ft_prompt_versions WHERE avatar_id = %1$L OR owner_id = %2$L'],
    ['read ft_audit',                 'SELECT * FROM ft_audit WHERE avatar_id = %1$L OR owner_id = %2$L'],
    ['lock ft_avatars',               'SELECT * FROM ft_avatars WHERE id = %1$L FOR UPDATE'],
    ['ft_get_avatar',                 'SELECT ft_get_avatar(%1$L)'],
    ['ft_get_avatar(lock)',           'SELECT ft_get_avatar(%1$L, lock => true)'],
    ['ft_chat_model',                 'SELECT ft_chat_model(%1$L)'],
    ['ft_active_prompt is not null',  'SELECT 1 WHERE ft_active_prompt(%1$L) IS NOT NULL'],
    ['ft_create_prompt_version',      'SELECT ft_create_prompt_version(%1$L, ''hijacked'')'],
    ['ft_activate_prompt_version',    'SELECT ft_activate_prompt_version(%1$L, 1)'],
    ['ft_rollback_prompt',            'SELECT ft_rollback_prompt(%1$L)'],
    ['ft_add_example',                'SELECT ft_add_example(%1$L, %5$L)'],
    ['insert example for victim',     'INSERT INTO ft_examples (avatar_id, messages) VALUES (%1$L, %5$L)'],
    ['insert prompt for victim',      'INSERT INTO ft_prompt_versions (avatar_id, version, system_prompt) VALUES (%1$L, 99, ''hijacked'')'],
    ['insert avatar as victim',       'INSERT INTO ft_avatars (name, owner_id) VALUES (''planted'', %2$L)'],
    ['update victim avatar',          'UPDATE ft_avatars SET name = ''pwned'' WHERE id = %1$L'],
    ['update victim examples',        'UPDATE ft_examples SET rating = 1 WHERE avatar_id = %1$L OR owner_id = %2$L'],
    ['update victim prompts',         'UPDATE ft_prompt_versions SET system_prompt = ''pwned'' WHERE avatar_id = %1$L'],
    ['give own avatar to victim',     'UPDATE ft_avatars SET owner_id = %2$L WHERE id = %3$L'],
    ['move own example to victim',    'UPDATE ft_examples SET avatar_id = %1$L WHERE id = %4$L'],
    ['move own prompts to victim',    'UPDATE ft_prompt_versions SET avatar_id = %1$L WHERE avatar_id = %3$L'],
    ['delete victim examples',        'DELETE FROM ft_examples WHERE avatar_id = %1$L OR owner_id = %2$L'],
    ['delete victim prompts',         'DELETE FROM ft_prompt_versions WHERE avatar_id = %1$L'],
    ['delete victim avatar',          'DELETE FROM ft_avatars WHERE id = %1$L'],
    ['forge audit row for victim',    'INSERT INTO ft_audit (owner_id, actor_role, action, object_type) VALUES (%2$L, ''x'', ''forged'', ''avatar'')'],
    ['forge own audit row',           'INSERT INTO ft_audit (owner_id, actor_role, action, object_type) VALUES (ft_current_owner(), ''x'', ''forged'', ''avatar'')'],
    ['update audit',                  'UPDATE ft_audit SET action = ''forged'''],
    ['delete audit',                  'DELETE FROM ft_audit'],
    ['truncate ft_examples',          'TRUNCATE ft_examples'],
    ['read ft_internal',              'SELECT * FROM ft_internal.app_grants'],
    ['call ft_internal.write_audit',  'SELECT ft_internal.write_audit(%2$L, %1$L, ''forged'', ''avatar'', NULL)'],
    ['ft_grant_app_role',             'SELECT ft_grant_app_role(current_user)']
  ] LOOP
    attempt := t[1];
    outcome := tenancy_util.try(format(t[2], victim, victim_owner, own_avatar, own_example, ex));
    RETURN NEXT;
  END LOOP;
END
$$;

-- A digest of every row a tenant owns, to prove that attacks changed nothing (run as superuser).
CREATE FUNCTION tenancy_util.digest(owner text) RETURNS text
LANGUAGE sql AS $$
  SELECT md5(concat_ws('|',
    (SELECT string_agg(a::text, ',' ORDER BY a.id) FROM ft_avatars a WHERE a.owner_id = owner),
    (SELECT string_agg(e::text, ',' ORDER BY e.id) FROM ft_examples e WHERE e.owner_id = owner),
    (SELECT string_agg(p::text, ',' ORDER BY p.avatar_id, p.version) FROM ft_prompt_versions p WHERE p.owner_id = owner),
    (SELECT string_agg(u::text, ',' ORDER BY u.id) FROM ft_audit u WHERE u.owner_id = owner)))
$$;

---------------------------------------------------------------------------------------------------
-- Grants: nothing for PUBLIC, and what ft_grant_app_role gives an app role
---------------------------------------------------------------------------------------------------
-- Tables with tenant rows (an owner_id column) grant nothing to PUBLIC and, when user-facing, have
-- row-level security enabled and forced; reference tables may at most be readable by PUBLIC.
SELECT c.oid::regclass AS relation, a.privilege_type
  FROM pg_depend d
  JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
  CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND a.grantee = 0
   AND (a.privilege_type <> 'SELECT'
        OR EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'owner_id'))
 ORDER BY 1, 2;
SELECT c.oid::regclass AS tenant_table_without_forced_rls
  FROM pg_depend d
  JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND c.relkind IN ('r', 'p') AND c.relnamespace <> 'ft_internal'::regnamespace
   AND EXISTS (SELECT 1 FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attname = 'owner_id')
   AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
 ORDER BY 1;
SELECT has_schema_privilege('regress_alice', 'ft_internal', 'USAGE') AS alice_uses_ft_internal;
-- SECURITY DEFINER functions a tenant can call run with the extension owner's rights, so each
-- one must pin its search_path.
SELECT p.oid::regprocedure
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND p.prosecdef AND has_function_privilege('regress_alice', p.oid, 'EXECUTE')
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;
SELECT table_name, string_agg(privilege_type, ', ' ORDER BY privilege_type) AS privileges
  FROM information_schema.role_table_grants
 WHERE grantee = 'authenticated'
   AND table_name IN ('ft_avatars', 'ft_examples', 'ft_prompt_versions', 'ft_audit')
 GROUP BY 1 ORDER BY 1;
-- Row-level security is enabled and forced on every user-facing table.
SELECT relname, relrowsecurity, relforcerowsecurity
  FROM pg_class WHERE oid IN ('ft_avatars'::regclass, 'ft_examples'::regclass,
                              'ft_prompt_versions'::regclass, 'ft_audit'::regclass)
 ORDER BY 1;

---------------------------------------------------------------------------------------------------
-- PostgREST style: role authenticated, JWT claims per request
---------------------------------------------------------------------------------------------------
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"user-a","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT current_user, ft_current_owner();
SELECT ft_create_avatar('A bot', system_prompt => 'I am A.') AS a_avatar \gset
SELECT ft_create_prompt_version(:'a_avatar', 'I am A, v2.') AS v;
SELECT ft_add_example(:'a_avatar', '[{"role":"user","content":"Hi A"},{"role":"assistant","content":"Hello from A"}]',
                      category => 'greetings') AS a_example \gset
SELECT ft_add_example(:'a_avatar', '[{"role":"user","content":"Bye A"},{"role":"assistant","content":"Bye from A"}]') AS a_example2 \gset
DELETE FROM ft_examples WHERE id = :'a_example2';
COMMIT;

BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"user-b","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT current_user, ft_current_owner();
SELECT ft_create_avatar('B bot', system_prompt => 'I am B.') AS b_avatar \gset
SELECT ft_add_example(:'b_avatar', '[{"role":"user","content":"Hi B"},{"role":"assistant","content":"Hello from B"}]') AS b_example \gset
COMMIT;

-- After a transaction the claims are gone: the same role without claims is its own (empty) tenant.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT ft_current_owner(), count(*) AS avatars_seen FROM ft_avatars;
COMMIT;

-- What each tenant sees.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"user-a","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT owner_id, name, ft_chat_model(id), ft_active_prompt(id) FROM ft_avatars ORDER BY name;
SELECT owner_id, avatar_id = :'a_avatar' AS own_avatar, messages->'messages'->1->>'content' AS answer FROM ft_examples ORDER BY 3;
SELECT owner_id, version, system_prompt, is_active FROM ft_prompt_versions ORDER BY version;
SELECT owner_id, actor_role, actor_sub, action, detail FROM ft_audit ORDER BY at, action, detail::text;
COMMIT;

SELECT tenancy_util.digest('user-a') AS a_digest \gset
SELECT tenancy_util.digest('user-b') AS b_digest \gset

-- user-b attacks user-a.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"user-b","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT * FROM tenancy_util.attack(:'a_avatar', 'user-a', :'b_avatar', :'b_example');
-- user-b's own example stays user-b's, whatever owner_id it tries to write.
UPDATE ft_examples SET owner_id = 'user-a' WHERE id = :'b_example' RETURNING owner_id;
INSERT INTO ft_examples (avatar_id, owner_id, messages)
VALUES (:'b_avatar', 'user-a', '[{"role":"user","content":"x"},{"role":"assistant","content":"y"}]')
RETURNING owner_id;
ROLLBACK;

-- user-a attacks user-b.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"user-a","role":"authenticated"}', true) IS NOT NULL AS claims_set;
SELECT * FROM tenancy_util.attack(:'b_avatar', 'user-b', :'a_avatar', :'a_example');
COMMIT;

-- Nothing of either tenant changed (the attacks that were not refused matched no rows).
SELECT tenancy_util.digest('user-a') = :'a_digest' AS a_unchanged,
       tenancy_util.digest('user-b') = :'b_digest' AS b_unchanged;

-- The older request.jwt.claim.sub setting names the tenant too.
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claim.sub', 'user-a', true) IS NOT NULL AS claim_set;
SELECT ft_current_owner(), count(*) AS avatars_seen, bool_and(owner_id = 'user-a') AS all_own FROM ft_avatars;
SELECT ft_chat_model(:'a_avatar');
SELECT tenancy_util.try(format('SELECT ft_get_avatar(%L)', :'b_avatar'));
COMMIT;
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claim.sub', 'user-c', true) IS NOT NULL AS claim_set;
SELECT ft_create_avatar('C bot') AS c_avatar \gset
SELECT ft_add_example(:'c_avatar', '[{"role":"user","content":"Hi C"},{"role":"assistant","content":"Hello from C"}]') AS c_example \gset
SELECT owner_id, name FROM ft_avatars ORDER BY name;
SELECT * FROM tenancy_util.attack(:'a_avatar', 'user-a', :'c_avatar', :'c_example') WHERE outcome NOT LIKE '%(0 rows)';
COMMIT;
SELECT tenancy_util.digest('user-a') = :'a_digest' AS a_unchanged;

---------------------------------------------------------------------------------------------------
-- Plain database roles logging in directly
---------------------------------------------------------------------------------------------------
\c - regress_alice
SELECT current_user, ft_current_owner();
SELECT ft_create_avatar('Alice bot', system_prompt => 'I am Alice.') AS alice_avatar \gset
SELECT ft_add_example(:'alice_avatar', '[{"role":"user","content":"Hi Alice"},{"role":"assistant","content":"Hello from Alice"}]') AS alice_example \gset
SELECT owner_id, name FROM ft_avatars ORDER BY name;

\c - regress_bob
SELECT current_user, ft_current_owner();
SELECT ft_create_avatar('Bob bot', system_prompt => 'I am Bob.') AS bob_avatar \gset
SELECT ft_add_example(:'bob_avatar', '[{"role":"user","content":"Hi Bob"},{"role":"assistant","content":"Hello from Bob"}]') AS bob_example \gset
SELECT owner_id, name FROM ft_avatars ORDER BY name;

\c - :regress_user
SELECT tenancy_util.digest('regress_alice') AS alice_digest \gset
SELECT tenancy_util.digest('regress_bob') AS bob_digest \gset

\c - regress_bob
SELECT * FROM tenancy_util.attack(:'alice_avatar', 'regress_alice', :'bob_avatar', :'bob_example');
-- A direct login cannot pose as another tenant by setting the PostgREST claim settings: those are
-- trusted only for the role PostgREST switches to, not for a role that logged in itself.
SET request.jwt.claims = '{"sub":"regress_alice","role":"authenticated"}';
SELECT ft_current_owner(), count(*) FILTER (WHERE owner_id = 'regress_alice') AS alice_rows_seen FROM ft_avatars;
RESET request.jwt.claims;
SET request.jwt.claim.sub = 'regress_alice';
SELECT ft_current_owner(), count(*) FILTER (WHERE owner_id = 'regress_alice') AS alice_rows_seen FROM ft_avatars;
RESET request.jwt.claim.sub;

\c - regress_alice
SELECT * FROM tenancy_util.attack(:'bob_avatar', 'regress_bob', :'alice_avatar', :'alice_example');
-- Nor by switching roles: regress_alice is not a member of authenticated.
SELECT tenancy_util.try('SET ROLE authenticated');

\c - :regress_user
SELECT tenancy_util.digest('regress_alice') = :'alice_digest' AS alice_unchanged,
       tenancy_util.digest('regress_bob') = :'bob_digest' AS bob_unchanged,
       tenancy_util.digest('user-a') = :'a_digest' AS a_unchanged;

-- Each tenant removes its own data by deleting its avatar, and sees its own audit trail only.
\c - regress_alice
DELETE FROM ft_avatars WHERE id = :'alice_avatar';
SELECT (SELECT count(*) FROM ft_avatars) AS avatars, (SELECT count(*) FROM ft_examples) AS examples,
       (SELECT count(*) FROM ft_prompt_versions) AS prompts;
SELECT owner_id, actor_role, actor_sub, action, object_type, detail FROM ft_audit ORDER BY at, action;
SELECT count(*) AS foreign_audit_rows FROM ft_audit WHERE owner_id <> 'regress_alice';

---------------------------------------------------------------------------------------------------
-- ft_admin members see and manage every tenant's rows
---------------------------------------------------------------------------------------------------
\c - regress_auditor
SELECT ft_is_admin();
SELECT owner_id, name FROM ft_avatars
 WHERE owner_id IN ('user-a', 'user-b', 'user-c', 'regress_alice', 'regress_bob') ORDER BY owner_id;
SELECT owner_id, count(*) FROM ft_examples
 WHERE owner_id IN ('user-a', 'user-b', 'user-c', 'regress_alice', 'regress_bob') GROUP BY 1 ORDER BY 1;
SELECT owner_id, action, count(*) FROM ft_audit
 WHERE owner_id IN ('user-a', 'user-b', 'user-c', 'regress_alice', 'regress_bob') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT (ft_get_avatar(:'bob_avatar')).name, ft_chat_model(:'a_avatar'), ft_active_prompt(:'b_avatar');
SELECT ft_create_prompt_version(:'bob_avatar', 'I am Bob, says the admin.') AS v;
-- The new version belongs to the avatar's owner, not to the admin.
SELECT owner_id, version, is_active FROM ft_prompt_versions WHERE avatar_id = :'bob_avatar' ORDER BY version;
SELECT ft_rollback_prompt(:'bob_avatar') AS rolled_back_to;
-- Even an admin cannot write the audit trail directly.
SELECT tenancy_util.try('DELETE FROM ft_audit');
-- Who acted is recorded: the admin's activation is in Bob's trail under the admin's role.
\c - regress_bob
SELECT actor_role, action, detail FROM ft_audit WHERE action = 'prompt_activated' ORDER BY at, detail::text;

---------------------------------------------------------------------------------------------------
-- Clean up: roles are cluster-wide
---------------------------------------------------------------------------------------------------
\c - :regress_user
DELETE FROM ft_avatars WHERE owner_id IN ('user-a', 'user-b', 'user-c', 'regress_alice', 'regress_bob');
DROP SCHEMA tenancy_util CASCADE;
DROP OWNED BY authenticated, regress_alice, regress_bob, regress_auditor;
DROP ROLE authenticated, regress_alice, regress_bob, regress_auditor;
