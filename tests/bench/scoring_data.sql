-- Deterministic generator of realistic chat examples for the scoring benchmark.
-- bench_messages(i) always returns the same conversation for the same i: mixed lengths (one word
-- to several sentences), 10% non-English (German, French, Spanish, Chinese), 30% multi-turn,
-- about 2% with an e-mail address or phone number, half with a system prompt.

CREATE FUNCTION bench_pick(arr text[], i bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT arr[1 + ((hashint8(i * 131 + salt) & 2147483647) % array_length(arr, 1))] $$;

CREATE FUNCTION bench_roll(i bigint, salt int, n int) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((hashint8(i * 977 + salt) & 2147483647) % n)::int $$;

CREATE FUNCTION bench_messages(i bigint) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  names text[] := '{Sam,Alex,Priya,Jonas,Mia,Tomás,Chloé,Yuki,Omar,Lena,Marco,Ava,Noah,Zoë,Ibrahim,Sofia}';
  users text[] := ARRAY[
    'My dog has been sick since Monday and the vet can only see us on Friday.',
    'I failed my driving test again today, the parallel parking went badly.',
    'Can you recommend a book for a long flight to Tokyo?',
    'I''m trying to get back into running after a knee injury.',
    'My order #%s still has not arrived and the tracking page shows nothing.',
    'How do I reset the password of my account?',
    'I have a job interview tomorrow morning and I can''t sleep.',
    'What should I cook tonight with rice, spinach and two eggs?',
    'My sister and I had a big argument about our parents'' house.',
    'Is it worth upgrading my laptop battery or should I buy a new one?',
    'I started learning the guitar but my fingers hurt after ten minutes.',
    'The new budget spreadsheet keeps showing a negative balance in March.',
    'I moved to a new city and I don''t know anyone here yet.',
    'Can you explain the difference between a Roth IRA and a traditional one?',
    'My plants keep dying even though I water them every day.',
    'We are planning a hiking trip in the Alps in September.',
    'hi', 'thanks!', 'ok', 'what?'];
  openers text[] := ARRAY[
    'I''m sorry to hear that, %s.', 'That sounds frustrating.', 'That sounds hard.', 'That''s interesting.',
    'Great question!', 'Sure.', 'Okay.', '', '', 'I understand.', 'I can imagine how that feels.',
    'As you mentioned last time,', 'Good news:', 'Thanks for telling me, %s.'];
  bodies text[] := ARRAY[
    'The vet will probably check for dehydration first, so keep fresh water close to the bed.',
    'Parallel parking gets easier if you practise with two cones in an empty car park.',
    'A long novel like The Count of Monte Cristo makes a twelve-hour flight feel shorter.',
    'Start with ten minutes of walking and one minute of easy jogging, three times a week.',
    'Orders usually leave the warehouse within two days; I can open a ticket with the carrier.',
    'Open the settings page, choose Security, then Reset password and follow the e-mail link.',
    'Write down three stories from your last job that show how you solved a real problem.',
    'Fried rice with spinach and a soft egg on top takes about fifteen minutes.',
    'Family houses carry a lot of memories, so it helps to talk about feelings before money.',
    'A new battery costs far less than a laptop and fixes most short-battery complaints.',
    'Sore fingertips are normal for the first weeks; short daily sessions build calluses.',
    'Check whether the March row subtracts the annual insurance payment twice.',
    'Local clubs, climbing gyms and language exchanges are easy ways to meet people.',
    'A Roth IRA is funded with taxed money and grows tax-free; a traditional one defers the tax.',
    'Daily watering often drowns roots; most houseplants prefer drying out between waterings.',
    'September is a good month for the Alps: fewer crowds, but pack layers for cold mornings.',
    'Many people find that a short routine before bed makes the night less stressful.',
    'If the problem comes back, a photo of the error message helps me see what happened.'];
  closers text[] := ARRAY[
    'What have you tried so far?', 'How are you feeling about it?', 'Keep it up!',
    'Let me know what you think.', '', '', 'Does that help?', 'Would you like a step-by-step plan?',
    'I hope this helps.', 'How did it go last time?'];
  foreigns text[] := ARRAY[
    'Das tut mir leid. Hast du schon mit dem Tierarzt über die Symptome gesprochen?',
    'Je suis désolé d''apprendre ça. Qu''est-ce que le médecin a dit exactement ?',
    'Lo siento mucho. ¿Quieres que busquemos juntos una solución para mañana?',
    'Für die Wanderung im September solltest du warme Kleidung und Regenschutz einpacken.',
    'Le riz sauté aux épinards avec un œuf est prêt en quinze minutes, c''est très simple.',
    '我明白你的感受。你可以先试着每天练习十分钟，慢慢就会习惯的。你觉得怎么样？',
    '这本书很适合长途飞行，故事很长也很精彩。你喜欢什么类型的小说？',
    'Ich verstehe. Schreib mir gern, wie das Vorstellungsgespräch morgen gelaufen ist!'];
  name text := bench_pick(names, i, 1);
  user_text text := format(bench_pick(users, i, 2), 1000 + bench_roll(i, 3, 90000));
  reply text;
  msgs jsonb := '[]';
  nbody int := bench_roll(i, 4, 6);
BEGIN
  IF bench_roll(i, 5, 10) = 0 THEN
    reply := bench_pick(foreigns, i, 6);
  ELSE
    reply := format(bench_pick(openers, i, 7), name);
    FOR k IN 1 .. nbody LOOP
      reply := reply || ' ' || bench_pick(bodies, i, 10 + k);
    END LOOP;
    reply := btrim(reply || ' ' || bench_pick(closers, i, 8));
    IF reply = '' THEN
      reply := 'Okay.';
    END IF;
  END IF;
  IF bench_roll(i, 9, 50) = 0 THEN
    reply := reply || CASE WHEN i % 2 = 0 THEN format(' You can reach me at %s.%s@example.com.', lower(name), i)
                           ELSE format(' Call +1 (555) %s-%s.', 100 + i % 900, 1000 + i % 9000) END;
  END IF;
  IF bench_roll(i, 20, 2) = 0 THEN
    msgs := msgs || jsonb_build_object('role', 'system', 'content', 'You are a warm, practical companion. Keep answers short.');
  END IF;
  IF bench_roll(i, 21, 10) < 3 THEN
    msgs := msgs || jsonb_build_object('role', 'user', 'content', 'Hi, it''s ' || name || ' again. ' || bench_pick(users, i, 22))
                 || jsonb_build_object('role', 'assistant', 'content', bench_pick(bodies, i, 23));
  END IF;
  msgs := msgs || jsonb_build_object('role', 'user', 'content', user_text)
               || jsonb_build_object('role', 'assistant', 'content', reply);
  RETURN jsonb_build_object('messages', msgs);
END
$$;
