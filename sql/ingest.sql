-- Getting conversations in: ft_redact, ft_import_transcript (every format and its errors) and the
-- ft_capture trigger on an app's own chat table, including failures and tenant isolation.
SET client_min_messages = warning;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_finetune;
RESET client_min_messages;
RESET client_min_messages;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Runs one statement and prints "ok" or the SQLSTATE and message, so errors show their code.
CREATE FUNCTION pg_temp.try(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- ===== ft_redact
SELECT * FROM ft_redact('Mail ann.lee@example.com or call +1 (415) 555-2671, card 4111 1111 1111 1111.');
SELECT * FROM ft_redact('IBAN DE89 3704 0044 0532 0130 00, SSN 536-22-1234, server 10.0.0.7 and 2001:db8::1');
SELECT * FROM ft_redact('key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z, AWS AKIAIOSFODNN7EXAMPLE, Authorization: Bearer abcdef0123456789ABCDEF');
SELECT * FROM ft_redact('reset at https://shop.example.com/reset?token=9f8e7d6c and https://bob:pw@example.com/');
-- look-alikes stay: prices, dates, years, versions, order numbers, times, Luhn-failing numbers
SELECT * FROM ft_redact('Order #123456789012 for $1,299.99 on 2024-01-15 10:30 (v2.10.4, since 2019); ref 4111 1111 1111 1112.');
SELECT * FROM ft_redact('Grüße aus Köln — 東京 📞 nothing here');
SELECT * FROM ft_redact(NULL);

-- ===== ft_import_transcript
SELECT ft_create_avatar('ingest shop bot') AS shop \gset

-- "Speaker: text" with a multi-line message and a line that only looks like a speaker
SELECT ft_import_transcript(:'shop', $t$Customer: Hi, my parcel has not arrived.
It was due on Monday.
Note: it is a gift
Agent: I'm sorry to hear that! Could you give me your order number?
Customer: It's 5512-AX, and you can reach me at maria@example.com or +44 20 7946 0958.
Agent: Thank you, Maria. I see it is held at the depot; it will arrive tomorrow.
Customer: great, thanks
$t$, category => 'delivery');
SELECT messages, source, category, redactions
  FROM ft_examples WHERE avatar_id = :'shop' ORDER BY jsonb_array_length(messages->'messages'), messages::text;

-- choosing the assistant explicitly, no context and no redaction
SELECT ft_import_transcript(:'shop', $t$Customer: hello
Agent: hi! how can I help?
Customer: my email is x@y.com
Agent: noted
$t$, assistant_speaker => 'customer', context_turns => 0, redact => false) - 'speakers';
SELECT messages, redactions FROM ft_examples
 WHERE avatar_id = :'shop' AND messages->'messages'->-1->>'content' = 'my email is x@y.com';

-- WhatsApp, iOS shape, with the encryption notice, a system line, media and an edited message
SELECT ft_import_transcript(:'shop', E'\u200e[12/01/2024, 09:15:02] Tom: \u200eMessages and calls are end-to-end encrypted. No one outside of this chat can read them.\n'
  '[12/01/2024, 09:15:02] Tom created group "Trip"\n'
  '[12/01/2024, 09:16:10] Tom: Are we still on for Saturday?\n'
  '[12/01/2024, 09:17:45] ShopBot: Yes! We open at 8.\n'
  'Bring your receipt.\n'
  '[12/01/2024, 09:18:00] ShopBot: \u200eimage omitted\n'
  '[12/01/2024, 09:20:31] Tom: Great, see you <This message was edited>\n'
  '[12/01/2024, 09:21:00] ShopBot: See you!\n');
SELECT messages FROM ft_examples
 WHERE avatar_id = :'shop' AND messages::text LIKE '%Saturday%' ORDER BY jsonb_array_length(messages->'messages');

-- WhatsApp, Android shape, month first with AM/PM
SELECT ft_import_transcript(:'shop', E'12/31/23, 9:41\u202fPM - Messages and calls are end-to-end encrypted. Tap to learn more.\n'
  '12/31/23, 9:41 PM - Lena: Do you ship to Spain?\n'
  '12/31/23, 9:42 PM - Shop: <Media omitted>\n'
  '12/31/23, 9:43 PM - Shop: Yes, in 3-5 days.\n'
  '12/31/23, 9:44 PM - Lena: This message was deleted\n'
  '12/31/23, 9:45 PM - Lena: And the cost?\n'
  '12/31/23, 9:46 PM - Shop: 9.90 EUR, free above 50 EUR.\n', assistant_speaker => 'Shop');

-- Telegram JSON export
SELECT ft_import_transcript(:'shop', $j${"name": "Support", "type": "personal_chat", "messages": [
  {"id": 1, "type": "service", "action": "phone_call"},
  {"id": 2, "type": "message", "from": "Eve", "text": "Is the shop open on Sunday?"},
  {"id": 3, "type": "message", "from": "Support Bot", "text": ["Yes, ", {"type": "bold", "text": "10 am to 4 pm"}, "."]},
  {"id": 4, "type": "message", "from": "Eve", "photo": "photos/p1.jpg", "text": ""},
  {"id": 5, "type": "message", "from": "Eve", "text": "thanks!"},
  {"id": 6, "type": "message", "from": "Support Bot", "text": "You're welcome."}
]}$j$);

-- OpenAI chat JSONL, one example per line (a bare messages array is accepted too)
SELECT ft_import_transcript(:'shop', $j${"messages": [{"role": "system", "content": "You are a shop assistant."}, {"role": "user", "content": "My card 5555 5555 5555 4444 was charged twice"}, {"role": "assistant", "content": "I am sorry! I will refund one charge."}]}

[{"role": "user", "content": "Where is my parcel?"}, {"role": "assistant", "content": "It ships today."}]
$j$, category => 'billing');
SELECT messages, source, redactions FROM ft_examples
 WHERE avatar_id = :'shop' AND category = 'billing' ORDER BY messages::text;

SELECT source, count(*) FROM ft_examples WHERE avatar_id = :'shop' GROUP BY source;

-- the avatar setting turns redaction off when the argument is NULL
SELECT ft_create_avatar('ingest raw bot', settings => '{"redact": false}') AS raw \gset
SELECT ft_import_transcript(:'raw', E'User: I am at bob@example.com\nBot: Thanks Bob\n') -> 'redacted' AS redacted;
SELECT messages->'messages'->0->>'content' AS user_text, redactions FROM ft_examples WHERE avatar_id = :'raw';

-- errors, with their SQLSTATE; nothing is inserted by a failing import
SELECT count(*) AS before FROM ft_examples WHERE avatar_id = :'shop' \gset
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L, format => %L)', :'shop', 'A: x', 'csv'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L, format => %L)', :'shop',
  E'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"messages": [}\n', 'jsonl'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop',
  E'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"prompt": "x"}\n'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop', E'{"messages": [\n {"type": "message", "from": "A" "text": "x"}]}'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L, format => %L)', :'shop', E'hello\n[12/01/2024, 09:16:10] Tom: hi\n', 'whatsapp'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop', E'just prose\nwithout any speaker\n'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop', E'   \n'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L, assistant_speaker => %L)', :'shop', E'Ann: hi\nBen: hello\n', 'Zed'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop', E'Ann: hi\nAnn: anyone?\n'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L, context_turns => -1)', :'shop', E'Ann: hi\nBen: hello\n'));
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', '00000000-0000-0000-0000-000000000001', E'Ann: hi\nBen: hello\n'));
SELECT pg_temp.try('SELECT ft_import_transcript(NULL, ''Ann: hi'')');
-- an example rejected by the checks on ft_examples rolls back the whole import, and says which line
SELECT pg_temp.try(format('SELECT ft_import_transcript(%L, %L)', :'shop',
  E'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'));
\set SHOW_CONTEXT errors
SELECT ft_import_transcript(:'shop',
  E'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]}\n');
\set SHOW_CONTEXT never
SELECT count(*) = :before AS nothing_inserted FROM ft_examples WHERE avatar_id = :'shop';

-- ===== ft_capture on an app's own chat table
CREATE TABLE ingest_app_messages (
  id              bigserial PRIMARY KEY,
  bot_id          uuid,
  conversation_id text NOT NULL,
  sender          text NOT NULL,
  body            text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER capture AFTER INSERT ON ingest_app_messages FOR EACH ROW
  EXECUTE FUNCTION ft_capture('bot_id', 'conversation_id', 'sender', 'body',
                              'assistant_roles=AI,bot', 'user_roles=user', 'context_turns=2',
                              'order_col=created_at', 'category=chat');
SELECT ft_create_avatar('ingest capture bot') AS cap \gset

-- an opening greeting makes no example; a system message is ignored
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'cap', 'c1', 'ai', 'Welcome to the shop!'),
  (:'cap', 'c1', 'system', 'internal note');
SELECT count(*) FROM ft_examples WHERE avatar_id = :'cap';
-- user and assistant in one statement (equal created_at: the primary key orders them)
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'cap', 'c1', 'user', 'Hi, I need help with my order'),
  (:'cap', 'c1', 'ai', 'Sure! What is your order number?');
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'cap', 'c1', 'user', 'It is 5512, email me at ann@example.com');
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'cap', 'c1', 'bot', 'Thanks Ann,'),
  (:'cap', 'c1', 'AI', 'I found it: it ships today.');
-- another conversation does not leak into c1's context
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'cap', 'c2', 'user', 'Do you sell gift cards?'),
  (:'cap', 'c2', 'ai', 'Yes, from 10 EUR.');
SELECT messages, source, category, redactions FROM ft_examples
 WHERE avatar_id = :'cap' ORDER BY jsonb_array_length(messages->'messages'), messages::text;

-- failures never fail the app's insert: they are recorded with reason and SQLSTATE
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  ('00000000-0000-0000-0000-0000000000ff', 'c3', 'user', 'hello?'),
  ('00000000-0000-0000-0000-0000000000ff', 'c3', 'ai', 'hi');
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (NULL, 'c4', 'ai', 'who am I?');
SELECT count(*) AS app_rows FROM ingest_app_messages;
SELECT source_table, conversation, message_key, reason, sqlstate FROM ft_capture_failures ORDER BY conversation;

-- setup mistakes do fail the insert, at the first message
CREATE TABLE ingest_bad_messages (id serial PRIMARY KEY, avatar uuid, conv text, role text, content text);
CREATE TRIGGER capture AFTER INSERT ON ingest_bad_messages FOR EACH ROW
  EXECUTE FUNCTION ft_capture('avatar', 'conv', 'speaker', 'content');
SELECT pg_temp.try(format('INSERT INTO ingest_bad_messages (avatar, conv, role, content) VALUES (%L, %L, %L, %L)', :'cap', 'x', 'ai', 'hi'));
DROP TRIGGER capture ON ingest_bad_messages;
CREATE TRIGGER capture AFTER INSERT ON ingest_bad_messages FOR EACH ROW
  EXECUTE FUNCTION ft_capture('avatar', 'conv', 'role', 'content', 'context=3');
SELECT pg_temp.try(format('INSERT INTO ingest_bad_messages (avatar, conv, role, content) VALUES (%L, %L, %L, %L)', :'cap', 'x', 'ai', 'hi'));
DROP TRIGGER capture ON ingest_bad_messages;
CREATE TRIGGER capture AFTER INSERT ON ingest_bad_messages FOR EACH ROW
  EXECUTE FUNCTION ft_capture('avatar', 'conv', 'role');
SELECT pg_temp.try(format('INSERT INTO ingest_bad_messages (avatar, conv, role, content) VALUES (%L, %L, %L, %L)', :'cap', 'x', 'ai', 'hi'));
DROP TRIGGER capture ON ingest_bad_messages;
CREATE TRIGGER capture BEFORE INSERT ON ingest_bad_messages FOR EACH ROW
  EXECUTE FUNCTION ft_capture('avatar', 'conv', 'role', 'content');
SELECT pg_temp.try(format('INSERT INTO ingest_bad_messages (avatar, conv, role, content) VALUES (%L, %L, %L, %L)', :'cap', 'x', 'ai', 'hi'));
SELECT count(*) AS bad_rows FROM ingest_bad_messages;
DROP TABLE ingest_bad_messages;

-- ===== two tenants: each sees only its own capture failures
CREATE ROLE regress_ingest_a LOGIN;
CREATE ROLE regress_ingest_b LOGIN;
SELECT ft_grant_app_role('regress_ingest_a');
SELECT ft_grant_app_role('regress_ingest_b');
GRANT SELECT, INSERT ON ingest_app_messages TO regress_ingest_a, regress_ingest_b;
GRANT USAGE ON SEQUENCE ingest_app_messages_id_seq TO regress_ingest_a, regress_ingest_b;
DELETE FROM ft_capture_failures;

SET ROLE regress_ingest_a;
SELECT ft_create_avatar('tenant a bot') AS bot_a \gset
SET ROLE regress_ingest_b;
SELECT ft_create_avatar('tenant b bot') AS bot_b \gset
-- b captures with its own avatar, and fails with a's avatar (invisible to b)
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES
  (:'bot_b', 'b1', 'user', 'hi from b'), (:'bot_b', 'b1', 'ai', 'hello b'),
  (:'bot_a', 'b2', 'user', 'sneaky'), (:'bot_a', 'b2', 'ai', 'should not be captured');
SELECT messages FROM ft_examples;
SELECT conversation, regexp_replace(reason, '[0-9a-f-]{36}', '<uuid>') AS reason, sqlstate FROM ft_capture_failures;
SET ROLE regress_ingest_a;
SELECT count(*) AS a_examples FROM ft_examples;
SELECT count(*) AS a_sees_failures FROM ft_capture_failures;
RESET ROLE;
-- a text avatar column that does not hold a uuid is recorded too
ALTER TABLE ingest_app_messages ALTER COLUMN bot_id TYPE text;
SET ROLE regress_ingest_a;
INSERT INTO ingest_app_messages (bot_id, conversation_id, sender, body) VALUES ('not-a-uuid', 'a1', 'ai', 'x');
SELECT conversation, reason, sqlstate FROM ft_capture_failures;
SET ROLE regress_ingest_b;
SELECT conversation, sqlstate FROM ft_capture_failures;
RESET ROLE;
SELECT owner_id, conversation, sqlstate FROM ft_capture_failures ORDER BY owner_id;

-- clean up this file's cluster-wide roles
DROP TABLE ingest_app_messages;
DELETE FROM ft_capture_failures;
DELETE FROM ft_avatars WHERE owner_id IN ('regress_ingest_a', 'regress_ingest_b');
DELETE FROM ft_audit WHERE owner_id IN ('regress_ingest_a', 'regress_ingest_b');
DROP OWNED BY regress_ingest_a, regress_ingest_b;
DROP ROLE regress_ingest_a;
DROP ROLE regress_ingest_b;
