-- Getting conversations in: redaction, transcript import, and capture from an app's chat table.

ALTER TABLE ft_examples ADD COLUMN redactions jsonb;
COMMENT ON COLUMN ft_examples.redactions IS
  'What redaction removed from the example when it came in through ft_import_transcript or ft_capture, '
  'as counts per kind (for example {"email": 1, "phone": 2}; {} when nothing was found); NULL when the '
  'example was not redacted.';

CREATE FUNCTION ft_redact(input text, OUT redacted text, OUT found jsonb)
AS 'MODULE_PATHNAME', 'ft_redact'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION ft_redact(text) IS
  'The text with personal data and secrets replaced by [EMAIL], [PHONE], [CARD] (Luhn-checked), '
  '[IBAN] (mod-97-checked), [SSN], [IP], [URL] (URLs carrying credentials or tokens) and [SECRET] '
  '(sk-/AKIA/GitHub/Slack/Stripe/Google keys, JWTs, Bearer tokens, api_key=... values), and the '
  'counts of what was found per kind, e.g. {"email": 1, "card": 2}. Dates, prices, years, version '
  'numbers and order numbers are left alone.';

CREATE FUNCTION ft_import_transcript(avatar uuid, transcript text, format text DEFAULT 'auto',
                                     assistant_speaker text DEFAULT NULL, context_turns integer DEFAULT 6,
                                     redact boolean DEFAULT NULL, category text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'ft_import_transcript'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ft_import_transcript(uuid, text, text, text, integer, boolean, text) IS
  'Turns a pasted conversation into training examples of an avatar (source ''import''), all or nothing. '
  'format: auto (detected), speaker ("Name: text" lines; lines without a known speaker prefix continue '
  'the message before), whatsapp (both "[31/12/2023, 21:41:05] Name: text" and "31/12/2023, 21:41 - '
  'Name: text", day or month first; system lines, media placeholders and deleted messages skipped), '
  'telegram (JSON export; service messages and media without text skipped) or jsonl (OpenAI chat '
  'fine-tuning lines, one example each). The assistant is assistant_speaker when given (case-insensitive), '
  'else the first speaker named assistant/ai/bot/chatbot/chatgpt/gpt/model/agent or ending in "bot", '
  'else the second speaker to appear; every other speaker becomes user (prefixed with its name in group '
  'chats), and consecutive messages of one side are merged. Each assistant turn becomes one example with '
  'the user turn before it and up to context_turns earlier turns. redact NULL follows the avatar setting '
  'settings->>''redact'' (default true). Returns {format, assistant_speaker, assistant_rule, speakers, '
  'turns, examples, assistant_turns_without_user, skipped: {reason: count}, skipped_total, redacted, '
  'redactions}. An unreadable transcript raises 22P02 naming the line; a bad argument 22023.';

CREATE TABLE ft_capture_failures (
  id           uuid        NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
  avatar_id    uuid,
  owner_id     text        NOT NULL DEFAULT ft_current_owner(),
  source_table regclass    NOT NULL,
  conversation text,
  message_key  text,
  reason       text        NOT NULL,
  sqlstate     text        NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ft_capture_failures_owner_idx ON ft_capture_failures (owner_id, created_at DESC);
CREATE INDEX ft_capture_failures_avatar_idx ON ft_capture_failures (avatar_id, created_at DESC);

COMMENT ON TABLE ft_capture_failures IS
  'Assistant messages of an app''s chat table that ft_capture could not turn into an example. The app''s '
  'row itself is kept (its INSERT never fails because of capture); this table says which row and why.';
COMMENT ON COLUMN ft_capture_failures.id IS 'Failure id.';
COMMENT ON COLUMN ft_capture_failures.avatar_id IS
  'Avatar named by the message, when it could be read as a uuid (the avatar may be missing or invisible: '
  'that can be the very reason, so there is no foreign key).';
COMMENT ON COLUMN ft_capture_failures.owner_id IS
  'Tenant owning the row: the avatar''s owner when the inserting role can see the avatar, else the inserting tenant.';
COMMENT ON COLUMN ft_capture_failures.source_table IS 'The app table the message was inserted into.';
COMMENT ON COLUMN ft_capture_failures.conversation IS 'Conversation column value of the message, as text.';
COMMENT ON COLUMN ft_capture_failures.message_key IS
  'Which row of source_table: its primary key as "column=value, ...", or its ctid when it has no primary key.';
COMMENT ON COLUMN ft_capture_failures.reason IS 'The error message that stopped the capture.';
COMMENT ON COLUMN ft_capture_failures.sqlstate IS 'SQLSTATE of that error.';
COMMENT ON COLUMN ft_capture_failures.created_at IS 'When the capture failed.';

SELECT ft_internal.enable_tenancy('ft_capture_failures', 'SELECT, INSERT, DELETE');

CREATE FUNCTION ft_capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'ft_capture'
LANGUAGE C;
COMMENT ON FUNCTION ft_capture() IS
  'AFTER INSERT FOR EACH ROW trigger for an app''s chat-message table: '
  'CREATE TRIGGER t AFTER INSERT ON app_messages FOR EACH ROW EXECUTE FUNCTION ft_capture('
  '''avatar_col'', ''conversation_col'', ''role_col'', ''content_col'' [, ''option=value'' ...]). '
  'Options: assistant_roles=ai,bot,assistant (the default) and user_roles=user,human (the default) map the '
  'app''s role values case-insensitively, other roles (system, tool) are ignored; context_turns=6 earlier '
  'turns besides the user message; order_col=created_at[,...] orders the conversation, then the primary '
  'key, then ctid break ties (so with a random uuid key and no order_col, the order is the physical one); '
  'category=text for the examples. Each new assistant message becomes one example (source '
  '''capture''): the assistant message (merged with assistant messages right before it), the user turn '
  'before it, and up to context_turns earlier turns of the same conversation read from the app table; an '
  'assistant message with no user message before it (an opening greeting) makes no example. Redaction '
  'follows the avatar setting settings->>''redact'' (default true). The work runs in a subtransaction: '
  'when it fails (avatar missing or not visible, invalid avatar id, example rejected by a check) the app''s '
  'INSERT still succeeds and the failure is recorded in ft_capture_failures with its reason and SQLSTATE. '
  'Setup mistakes are NOT swallowed: a column name that does not exist (42703), an unknown or invalid '
  'option or fewer than four arguments (22023), or a trigger that is not AFTER INSERT FOR EACH ROW (39P01) '
  'make the INSERT fail, so they are seen at the first message. The trigger runs as the inserting role: it '
  'must be able to see the avatar (row-level security) to capture.';
