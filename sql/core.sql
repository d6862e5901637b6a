-- Core SQL surface: avatars, prompt versions, examples and their checks, the audit trail,
-- settings, cascades and DROP EXTENSION. Runs as the superuser that pg_regress connects as.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Runs one statement and shows how it ended: "ok", or the SQLSTATE with message, detail and hint.
-- Random uuids in messages are masked so the output is stable.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
  -- Failing-row details carry timestamps; they are cut short.
  det := regexp_replace(det, '^Failing row contains .*', 'Failing row contains (...).');
  RETURN regexp_replace(SQLSTATE || ': ' || msg
                        || coalesce(nullif(' | DETAIL: ' || det, ' | DETAIL: '), '')
                        || coalesce(nullif(' | HINT: ' || hnt, ' | HINT: '), ''),
                        '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<uuid>', 'g');
END
$$;

-- The problems found in a value by the write path (trigger) as a single line.
CREATE FUNCTION pg_temp.insert_problem(avatar uuid, example text) RETURNS text
LANGUAGE sql AS $$
  SELECT pg_temp.try(format('INSERT INTO ft_examples (avatar_id, messages) VALUES (%L, %L)', avatar, example))
$$;

---------------------------------------------------------------------------------------------------
-- Avatars
---------------------------------------------------------------------------------------------------
SELECT ft_create_avatar('core bot', system_prompt => 'You are Core.') AS core_avatar \gset
SELECT ft_create_avatar(name => 'core plain', base_model => 'gpt-4.1-mini-2025-04-14',
                        provider => 'together', settings => '{"min_examples": 20}') AS plain_avatar \gset

SELECT name, provider, base_model, active_model, settings, owner_id = current_user AS owned_by_me,
       created_at = updated_at AS untouched
  FROM ft_avatars WHERE id IN (:'core_avatar', :'plain_avatar') ORDER BY name;

-- ft_get_avatar returns the row, locked or not; a missing avatar is P0002.
SELECT (ft_get_avatar(:'core_avatar')).name, (ft_get_avatar(:'core_avatar', lock => true)).base_model;
SELECT pg_temp.try($$SELECT ft_get_avatar('00000000-0000-0000-0000-000000000000')$$);
SELECT pg_temp.try($$SELECT ft_get_avatar('00000000-0000-0000-0000-000000000000', lock => true)$$);

-- Name must not be blank, settings must be an object.
SELECT pg_temp.try($$SELECT ft_create_avatar('  ')$$);
SELECT pg_temp.try($$SELECT ft_create_avatar('x', settings => '[1]')$$);
-- settings => NULL means "no settings".
SELECT ft_create_avatar('core null settings', settings => NULL) AS null_settings_avatar \gset
SELECT settings FROM ft_avatars WHERE id = :'null_settings_avatar';

-- The chat model is the base model until a fine-tuned one is active.
SELECT ft_chat_model(:'core_avatar') AS before_activation;
UPDATE ft_avatars SET active_model = 'ft:gpt-4o-mini-2024-07-18:org::abc123' WHERE id = :'core_avatar'
RETURNING updated_at = now() AS touched, updated_at > created_at AS later;
SELECT ft_chat_model(:'core_avatar') AS after_activation;
UPDATE ft_avatars SET active_model = NULL WHERE id = :'core_avatar';
SELECT ft_chat_model(:'core_avatar') AS after_deactivation;
SELECT pg_temp.try($$SELECT ft_chat_model('00000000-0000-0000-0000-000000000000')$$);

---------------------------------------------------------------------------------------------------
-- Prompt versions
---------------------------------------------------------------------------------------------------
-- ft_create_avatar with system_prompt made version 1, active.
SELECT version, system_prompt, note, is_active, previous_version
  FROM ft_prompt_versions WHERE avatar_id = :'core_avatar' ORDER BY version;
SELECT ft_active_prompt(:'core_avatar');
-- An avatar without a prompt has no active prompt.
SELECT ft_active_prompt(:'plain_avatar') IS NULL AS no_prompt;

SELECT ft_create_prompt_version(:'core_avatar', 'You are Core, version two.', note => 'friendlier') AS v;
SELECT ft_create_prompt_version(:'core_avatar', 'You are Core, version three.') AS v;
-- A draft: created but not activated.
SELECT ft_create_prompt_version(:'core_avatar', 'Draft four.', note => 'draft', activate => false) AS v;
SELECT version, note, is_active, previous_version
  FROM ft_prompt_versions WHERE avatar_id = :'core_avatar' ORDER BY version;
SELECT ft_active_prompt(:'core_avatar');

-- Rolling back walks back in time, one step per call, until there is nothing earlier.
SELECT ft_rollback_prompt(:'core_avatar') AS rolled_back_to;
SELECT ft_active_prompt(:'core_avatar');
SELECT ft_rollback_prompt(:'core_avatar') AS rolled_back_to;
SELECT ft_active_prompt(:'core_avatar');
SELECT pg_temp.try(format('SELECT ft_rollback_prompt(%L)', :'core_avatar'));
SELECT version FROM ft_prompt_versions WHERE avatar_id = :'core_avatar' AND is_active;

-- Explicit activation remembers what it replaced; activating the active version changes nothing.
SELECT ft_activate_prompt_version(:'core_avatar', 4) AS activated;
SELECT ft_activate_prompt_version(:'core_avatar', 4) AS activated_again;
SELECT version, is_active, previous_version
  FROM ft_prompt_versions WHERE avatar_id = :'core_avatar' ORDER BY version;
SELECT ft_rollback_prompt(:'core_avatar') AS rolled_back_to;
SELECT ft_active_prompt(:'core_avatar');

-- Errors.
SELECT pg_temp.try(format('SELECT ft_activate_prompt_version(%L, 99)', :'core_avatar'));
SELECT pg_temp.try($$SELECT ft_activate_prompt_version('00000000-0000-0000-0000-000000000000', 1)$$);
SELECT pg_temp.try(format('SELECT ft_rollback_prompt(%L)', :'plain_avatar'));
SELECT pg_temp.try($$SELECT ft_rollback_prompt('00000000-0000-0000-0000-000000000000')$$);
SELECT pg_temp.try(format('SELECT ft_create_prompt_version(%L, %L)', :'core_avatar', '   '));
SELECT pg_temp.try(format('SELECT ft_create_prompt_version(%L, NULL)', :'core_avatar'));
SELECT pg_temp.try($$SELECT ft_create_prompt_version('00000000-0000-0000-0000-000000000000', 'hi')$$);
-- Only one version can be active at a time, even when written directly.
SELECT pg_temp.try(format('UPDATE ft_prompt_versions SET is_active = true WHERE avatar_id = %L', :'core_avatar'));
-- A prompt version cannot point at a missing avatar.
SELECT pg_temp.try($$INSERT INTO ft_prompt_versions (avatar_id, version, system_prompt)
                     VALUES ('00000000-0000-0000-0000-000000000000', 1, 'x')$$);

---------------------------------------------------------------------------------------------------
-- Examples: ft_add_example and plain INSERT go through the same checks
---------------------------------------------------------------------------------------------------
SELECT ft_add_example(:'core_avatar',
                      '{"messages": [{"role": "system", "content": "You are Core."},
                                     {"role": "user", "content": "Hi"},
                                     {"role": "assistant", "content": "Hello!"}]}',
                      category => 'greetings', pattern_type => 'greeting', verified => true, rating => 5)
       AS ex1 \gset
-- (The same conversation goes to the other avatar, so that no duplicate detection gets involved.)
INSERT INTO ft_examples (avatar_id, messages, category, pattern_type, verified, rating)
VALUES (:'plain_avatar',
        '{"messages": [{"role": "system", "content": "You are Core."},
                       {"role": "user", "content": "Hi"},
                       {"role": "assistant", "content": "Hello!"}]}',
        'greetings', 'greeting', true, 5)
RETURNING id AS ex2 \gset
SELECT e.avatar_id = :'core_avatar' AS core, e.messages, e.category, e.pattern_type, e.source, e.verified, e.rating,
       e.owner_id = current_user AS owned_by_me
  FROM ft_examples e WHERE e.id IN (:'ex1', :'ex2') ORDER BY e.created_at, e.id;
SELECT count(DISTINCT (messages, category, pattern_type, source, verified, rating, owner_id)) AS distinct_rows
  FROM ft_examples WHERE id IN (:'ex1', :'ex2');

-- A bare messages array is stored wrapped, by both paths.
SELECT ft_add_example(:'core_avatar', '[{"role": "user", "content": "Joke?"}, {"role": "assistant", "content": "No."}]',
                      pattern_type => 'joke', source => 'import') AS ex3 \gset
SELECT messages, pattern_type, source FROM ft_examples WHERE id = :'ex3';
INSERT INTO ft_examples (avatar_id, messages)
VALUES (:'core_avatar', '[{"role": "user", "content": "Bare"}, {"role": "assistant", "content": "Array"}]')
RETURNING messages, pattern_type, source;

-- Weights, tools and tool calls in the OpenAI shape are accepted.
SELECT ft_add_example(:'core_avatar',
  '{"messages": [{"role": "user", "content": "Hi"},
                 {"role": "assistant", "content": "Bad answer", "weight": 0},
                 {"role": "user", "content": "Again"},
                 {"role": "assistant", "content": "Good answer", "weight": 1.0}]}') AS ex4 \gset
SELECT messages FROM ft_examples WHERE id = :'ex4';
SELECT ft_check_example('{"messages": [{"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
  {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
  {"role": "assistant", "content": "It is 18C.", "name": "core"}],
  "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
  "parallel_tool_calls": false}') IS NOT NULL AS tool_example_ok;
SELECT ft_check_example('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]');

-- Row checks and enumerations.
SELECT pg_temp.try(format($$SELECT ft_add_example(%L, '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]', pattern_type => 'riddle')$$, :'core_avatar'));
SELECT pg_temp.try(format($$SELECT ft_add_example(%L, '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]', source => 'scraped')$$, :'core_avatar'));
SELECT pg_temp.try(format($$SELECT ft_add_example(%L, '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]', rating => 6)$$, :'core_avatar'));
SELECT pg_temp.try($$SELECT ft_add_example('00000000-0000-0000-0000-000000000000', '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]')$$);
SELECT pg_temp.insert_problem('00000000-0000-0000-0000-000000000000', '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]');

-- Every structural error, through ft_check_example, ft_add_example and a plain INSERT alike.
CREATE TEMP TABLE bad_examples (label text, example text);
INSERT INTO bad_examples VALUES
  ('not an object (string)',       '"hello"'),
  ('not an object (number)',       '42'),
  ('no messages array',            '{}'),
  ('no messages array, only tools', '{"tools": []}'),
  ('other key instead of messages', '{"conversation": []}'),
  ('messages not an array',        '{"messages": {"role": "user"}}'),
  ('messages empty',               '{"messages": []}'),
  ('unknown top-level key',        '{"messages": [{"role": "assistant", "content": "x"}], "model": "gpt"}'),
  ('message not an object',        '{"messages": ["hi", {"role": "assistant", "content": "x"}]}'),
  ('missing role',                 '{"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}'),
  ('unknown role',                 '{"messages": [{"role": "moderator", "content": "hi"}, {"role": "assistant", "content": "x"}]}'),
  ('unknown message key',          '{"messages": [{"role": "user", "content": "hi", "mood": "happy"}, {"role": "assistant", "content": "x"}]}'),
  ('non-string content (array)',   '{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant", "content": "x"}]}'),
  ('non-string content (number)',  '{"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "x"}]}'),
  ('missing content',              '{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}'),
  ('null content without tools',   '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}]}'),
  ('weight not 0/1 (0.5)',         '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0.5}]}'),
  ('weight not 0/1 (2)',           '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 2}]}'),
  ('weight not 0/1 (string)',      '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": "1"}]}'),
  ('weight not 0/1 (true)',        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": true}]}'),
  ('weight on a user message',     '{"messages": [{"role": "user", "content": "hi", "weight": 1}, {"role": "assistant", "content": "x"}]}'),
  ('weight on a system message',   '{"messages": [{"role": "system", "content": "s", "weight": 0}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}'),
  ('no assistant message',         '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}'),
  ('name not a string',            '{"messages": [{"role": "user", "content": "hi", "name": 5}, {"role": "assistant", "content": "x"}]}'),
  ('tool message without id',      '{"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "18C"}, {"role": "assistant", "content": "x"}]}'),
  ('tool_calls on a user message', '{"messages": [{"role": "user", "content": "hi", "tool_calls": []}, {"role": "assistant", "content": "x"}]}'),
  ('tool_calls not an array',      '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": {"id": "c"}}]}'),
  ('tool_calls empty',             '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": []}]}'),
  ('tool call malformed',          '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}]}]}'),
  ('tool call wrong type',         '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "retrieval", "function": {"name": "f", "arguments": "{}"}}]}]}'),
  ('tools not an array',           '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "tools": {}}'),
  ('tool without function name',   '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "tools": [{"type": "function", "function": {}}]}'),
  ('parallel_tool_calls not bool', '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}], "parallel_tool_calls": "yes"}'),
  ('bare array, no assistant',     '[{"role": "user", "content": "hi"}]'),
  ('bare empty array',             '[]');

-- The error each one raises from ft_check_example (SQLSTATE, message, detail; the hint is the same for all).
SELECT label,
       split_part(pg_temp.try(format('SELECT ft_check_example(%L)', example)), ' | HINT: ', 1) AS error
  FROM bad_examples ORDER BY label;
-- The hint, once.
SELECT pg_temp.try($$SELECT ft_check_example('{}')$$);

-- The write paths raise exactly the same errors, and nothing is written.
SELECT count(*) AS rows_before FROM ft_examples WHERE avatar_id = :'core_avatar' \gset
SELECT label
  FROM bad_examples b
 WHERE pg_temp.try(format('SELECT ft_check_example(%L)', example))
       IS DISTINCT FROM pg_temp.insert_problem(:'core_avatar', example)
    OR pg_temp.try(format('SELECT ft_check_example(%L)', example))
       IS DISTINCT FROM pg_temp.try(format('SELECT ft_add_example(%L, %L)', :'core_avatar', example));
SELECT count(*) - :rows_before AS rows_written FROM ft_examples WHERE avatar_id = :'core_avatar';

-- ft_example_problems lists every problem, not only the first.
SELECT * FROM ft_example_problems('{"messages": [{"role": "user", "content": 1, "weight": 1},
                                                 {"role": "robot", "content": "x"}], "extra": true}');
SELECT * FROM ft_example_problems('{"messages": [{"role": "user", "content": "hi", "weight": 0.5},
                                                 {"role": "tool", "content": "r"}]}');
SELECT count(*) AS problems_of_valid_example
  FROM ft_example_problems('[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]');
-- Every label of bad_examples has at least one problem, and the first is the one raised.
SELECT b.label
  FROM bad_examples b
 WHERE NOT EXISTS (SELECT 1 FROM ft_example_problems(b.example::jsonb) p
                    WHERE pg_temp.try(format('SELECT ft_check_example(%L)', b.example))
                          LIKE '22023: invalid training example: ' || p.code || ' at ' || p.path || '%');
-- NULL input gives NULL (the functions are strict).
SELECT ft_check_example(NULL) IS NULL AS null_in_null_out, count(*) AS problems FROM ft_example_problems(NULL);

-- Updates are checked too, and a valid update is normalised.
SELECT pg_temp.try(format($$UPDATE ft_examples SET messages = '{"messages": [{"role": "user", "content": "x"}]}' WHERE id = %L$$, :'ex1'));
UPDATE ft_examples SET messages = '[{"role": "user", "content": "Hey"}, {"role": "assistant", "content": "Hey you"}]'
 WHERE id = :'ex1' RETURNING messages, updated_at = now() AS touched;
-- Updating other columns leaves messages alone.
UPDATE ft_examples SET rating = 4 WHERE id = :'ex1' RETURNING rating, messages;

-- (NULL messages are tested in tests/t/001_preload.pl, where a backend crash cannot take other
-- suites down with it.)

---------------------------------------------------------------------------------------------------
-- Audit trail
---------------------------------------------------------------------------------------------------
-- Prompt activations so far (creation with activation, explicit activation, rollback).
SELECT action, object_type, object_id, detail, actor_role = current_user AS by_me, actor_sub
  FROM ft_audit WHERE avatar_id = :'core_avatar' ORDER BY at, (detail->>'version')::int, id;
SELECT count(*) FROM ft_audit WHERE avatar_id = :'core_avatar' AND owner_id <> current_user;

-- Deleting examples: one row per statement and avatar, with the count.
SELECT ft_add_example(:'plain_avatar', '[{"role":"user","content":"p1"},{"role":"assistant","content":"a"}]') IS NOT NULL AS added;
SELECT ft_add_example(:'plain_avatar', '[{"role":"user","content":"p2"},{"role":"assistant","content":"a"}]') IS NOT NULL AS added;
SELECT ft_add_example(:'plain_avatar', '[{"role":"user","content":"p3"},{"role":"assistant","content":"a"}]') IS NOT NULL AS added;
WITH d AS (DELETE FROM ft_examples WHERE avatar_id IN (:'core_avatar', :'plain_avatar')
                                     AND category IS DISTINCT FROM 'greetings' RETURNING avatar_id)
SELECT avatar_id = :'core_avatar' AS core, count(*) FROM d GROUP BY 1 ORDER BY 1;
SELECT avatar_id = :'core_avatar' AS core, action, object_type, object_id, detail
  FROM ft_audit WHERE action = 'examples_deleted' AND avatar_id IN (:'core_avatar', :'plain_avatar')
 ORDER BY 1;
-- A statement deleting nothing writes nothing.
DELETE FROM ft_examples WHERE avatar_id = :'plain_avatar' AND category = 'no such category';
SELECT count(*) AS examples_deleted_rows FROM ft_audit WHERE action = 'examples_deleted' AND avatar_id = :'plain_avatar';

-- Deleting an avatar removes its examples and prompt versions, and is audited.
SELECT count(*) AS examples, (SELECT count(*) FROM ft_prompt_versions WHERE avatar_id = :'core_avatar') AS prompts
  FROM ft_examples WHERE avatar_id = :'core_avatar';
DELETE FROM ft_avatars WHERE id = :'core_avatar';
SELECT (SELECT count(*) FROM ft_examples WHERE avatar_id = :'core_avatar') AS examples_left,
       (SELECT count(*) FROM ft_prompt_versions WHERE avatar_id = :'core_avatar') AS prompts_left;
SELECT action, object_type, object_id = :'core_avatar' AS right_object, detail
  FROM ft_audit WHERE avatar_id = :'core_avatar' AND action IN ('avatar_deleted', 'examples_deleted')
 ORDER BY action, detail::text;

---------------------------------------------------------------------------------------------------
-- Settings
---------------------------------------------------------------------------------------------------
SHOW ft.poll_interval;
SHOW ft.max_attempts;
SHOW ft.worker_enabled;
SELECT pg_temp.try('SET ft.nonexistent = 1');
SELECT pg_temp.try($$SELECT set_config('ft.poll_intervall', '5', false)$$);
-- Server-wide settings cannot be changed in a session.
SELECT pg_temp.try('SET ft.poll_interval = 10');
SELECT name, setting, unit, context FROM pg_settings
 WHERE name IN ('ft.poll_interval', 'ft.max_attempts', 'ft.worker_enabled', 'ft.request_timeout') ORDER BY name;

---------------------------------------------------------------------------------------------------
-- Documentation: every table, column, view and function of the extension has a comment
---------------------------------------------------------------------------------------------------
SELECT c.relname, a.attname
  FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND c.relkind IN ('r', 'v', 'm', 'p') AND c.relnamespace <> 'ft_internal'::regnamespace
   AND (obj_description(c.oid, 'pg_class') IS NULL
        OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
 ORDER BY 1, 2;
SELECT p.oid::regprocedure
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND p.pronamespace <> 'ft_internal'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY 1;
-- Every SECURITY DEFINER function pins its search_path.
SELECT p.oid::regprocedure
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_finetune')
   AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;

---------------------------------------------------------------------------------------------------
-- DROP EXTENSION removes everything it made. Done in a database of its own, with data, audit rows
-- and grants in place, so that objects of other suites cannot get in the way.
---------------------------------------------------------------------------------------------------
\set regress_db :DBNAME
CREATE DATABASE core_drop_test;
CREATE ROLE core_app_role NOLOGIN;
\c core_drop_test
CREATE EXTENSION pg_finetune;
SELECT ft_grant_app_role('core_app_role');
SELECT ft_create_avatar('to be dropped', system_prompt => 'p1') AS drop_avatar \gset
SELECT ft_create_prompt_version(:'drop_avatar', 'p2') AS v;
SELECT ft_add_example(:'drop_avatar', '[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]') IS NOT NULL AS added;
DELETE FROM ft_examples;
SELECT action, count(*) FROM ft_audit GROUP BY 1 ORDER BY 1;
DROP EXTENSION pg_finetune;
SELECT relname FROM pg_class WHERE relname LIKE 'ft\_%' ORDER BY 1;
SELECT proname FROM pg_proc WHERE proname LIKE 'ft\_%' ORDER BY 1;
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'ft\_%' ORDER BY 1;
SELECT typname FROM pg_type WHERE typname LIKE 'ft\_%' OR typname LIKE '\_ft\_%' ORDER BY 1;
SELECT tgname FROM pg_trigger WHERE tgname LIKE 'ft\_%' ORDER BY 1;
SELECT polname FROM pg_policy ORDER BY 1;
-- What the app role still holds in this database: only USAGE on the extension's schema, which
-- ft_grant_app_role granted and which is not the extension's to take back.
SELECT classid::regclass, CASE WHEN classid = 'pg_namespace'::regclass THEN objid::regnamespace::text END AS object, deptype
  FROM pg_shdepend WHERE refobjid = 'core_app_role'::regrole
   AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database());
-- The admin role is cluster-wide and outlives the extension on purpose.
SELECT rolname FROM pg_roles WHERE rolname LIKE 'ft\_%' ORDER BY 1;
-- It comes back cleanly, empty.
CREATE EXTENSION pg_finetune;
SELECT count(*) AS avatars, (SELECT count(*) FROM ft_audit) AS audit_rows FROM ft_avatars;
DROP EXTENSION pg_finetune;
\c :regress_db
DROP DATABASE core_drop_test;
DROP ROLE core_app_role;
-- The suites that follow find the extension in place.
CREATE EXTENSION IF NOT EXISTS pg_finetune;
SELECT count(*) AS avatars_table FROM pg_class WHERE relname = 'ft_avatars';
