-- pg_finetune demo: two tenants of one app share a database and never see each other's data.
-- Run by tests/demo/setup-and-demo against a fresh database with the extension created.
-- Each tenant calls the way PostgREST/Supabase does: SET LOCAL ROLE authenticated plus the JWT
-- claims in request.jwt.claims, inside one transaction per request.
\set ON_ERROR_STOP on
\pset footer off
\set alice_claims '{"sub": "tenant-alice", "role": "authenticated"}'
\set bob_claims '{"sub": "tenant-bob", "role": "authenticated"}'

\echo
\echo '=== 1. The app role: what a Supabase project calls "authenticated"'
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    CREATE ROLE authenticated NOLOGIN;
  END IF;
END
$$;
SELECT ft_grant_app_role('authenticated');

\echo
\echo '=== 2. Tenant alice creates an avatar, two prompt versions and three examples'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', :'alice_claims', true) IS NOT NULL AS signed_in;
SELECT ft_create_avatar('Ada', system_prompt => 'You are Ada, a patient maths tutor.') AS ada \gset
SELECT ft_create_prompt_version(:'ada', 'You are Ada, a patient maths tutor. Answer in at most two sentences.',
                                note => 'shorter answers') AS prompt_version;
SELECT ft_add_example(:'ada',
  '[{"role": "user", "content": "What is a third of 12?"},
    {"role": "assistant", "content": "A third of 12 is 4, because 3 groups of 4 make 12."}]',
  category => 'fractions', pattern_type => 'question', verified => true, rating => 5) IS NOT NULL AS added;
SELECT ft_add_example(:'ada',
  '{"messages": [{"role": "user", "content": "Hi Ada!"},
                 {"role": "assistant", "content": "Hello! Which topic shall we practise today?"}]}',
  category => 'small talk', pattern_type => 'greeting') IS NOT NULL AS added;
-- A plain INSERT goes through exactly the same checks as ft_add_example.
INSERT INTO ft_examples (avatar_id, messages, category, pattern_type)
VALUES (:'ada', '[{"role": "user", "content": "Is 0.5 the same as 1/2?"},
                  {"role": "assistant", "content": "Yes: 0.5 is five tenths, which simplifies to one half."}]',
        'fractions', 'question');
COMMIT;

\echo
\echo '=== 3. Tenant bob does the same for his own avatar, then rolls back a prompt he did not like'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', :'bob_claims', true) IS NOT NULL AS signed_in;
SELECT ft_create_avatar('Bolt', base_model => 'gpt-4.1-mini-2025-04-14',
                        system_prompt => 'You are Bolt, a cheerful bike mechanic.') AS bolt \gset
SELECT ft_add_example(:'bolt',
  '[{"role": "system", "content": "You are Bolt, a cheerful bike mechanic."},
    {"role": "user", "content": "My chain keeps slipping."},
    {"role": "assistant", "content": "Sounds like a worn chain or cassette. Check the chain stretch first!"}]',
  category => 'repairs', pattern_type => 'statement') IS NOT NULL AS added;
SELECT ft_create_prompt_version(:'bolt', 'You are Bolt. Be grumpy.', note => 'experiment') AS prompt_version;
SELECT ft_rollback_prompt(:'bolt') AS back_to_version;
COMMIT;

\echo
\echo '=== 4. Examples are checked on write: the problems of a malformed one'
SELECT * FROM ft_example_problems(
  '{"messages": [{"role": "user", "content": "Hi", "weight": 1},
                 {"role": "bot", "content": 42}]}');

\echo
\echo '=== 5. What alice sees'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', :'alice_claims', true) IS NOT NULL AS signed_in;
SELECT ft_current_owner() AS tenant;
SELECT name, ft_chat_model(id) AS chat_model, ft_active_prompt(id) AS active_prompt FROM ft_avatars ORDER BY name;
SELECT a.name AS avatar, e.category, e.pattern_type, e.verified,
       e.messages->'messages'->-1->>'content' AS answer
  FROM ft_examples e JOIN ft_avatars a ON a.id = e.avatar_id ORDER BY e.created_at;
SELECT count(*) AS bolt_rows_visible_to_alice FROM ft_avatars WHERE name = 'Bolt';
COMMIT;

\echo
\echo '=== 6. What bob sees'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', :'bob_claims', true) IS NOT NULL AS signed_in;
SELECT ft_current_owner() AS tenant;
SELECT name, ft_chat_model(id) AS chat_model, ft_active_prompt(id) AS active_prompt FROM ft_avatars ORDER BY name;
SELECT a.name AS avatar, p.version, p.note, p.is_active
  FROM ft_prompt_versions p JOIN ft_avatars a ON a.id = p.avatar_id ORDER BY p.version;
SELECT count(*) AS ada_examples_visible_to_bob FROM ft_examples WHERE avatar_id = :'ada';
SELECT action, detail FROM ft_audit ORDER BY at, action;
COMMIT;

\echo
\echo '=== 7. The operator (superuser, like any ft_admin member) sees both tenants'
SELECT owner_id, count(*) AS avatars,
       (SELECT count(*) FROM ft_examples e WHERE e.owner_id = a.owner_id) AS examples,
       (SELECT count(*) FROM ft_prompt_versions p WHERE p.owner_id = a.owner_id) AS prompt_versions
  FROM ft_avatars a GROUP BY owner_id ORDER BY owner_id;
