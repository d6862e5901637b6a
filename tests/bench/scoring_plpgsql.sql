-- The quality score of ft_score written the idiomatic way, in PL/pgSQL with regular expressions,
-- for the benchmark. Same rules and default weights (see src/score.h): length band 50-200,
-- too short < 20, question mark or question phrase, empathy/generic phrase weights summed and
-- capped at 1, context phrase or two shared content words with earlier user turns, e-mail or
-- 9+ digit number in a non-system message. Phrases come from ft_lexicon, compiled once into one
-- alternation per kind (bench_rx), as a careful PL/pgSQL author would do. Differences: the
-- regex engine reports non-overlapping matches only, and in the C locale it treats only ASCII
-- as word characters; the duplicate component needs an avatar and is left out of both sides.

CREATE FUNCTION bench_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT btrim(regexp_replace(
           replace(replace(replace(replace(
             translate(lower(t),
               'àáâãäåçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝ’‘“”¿¡',
               'aaaaaaceeeeiiiinoooooouuuuyyaaaaaaceeeeiiiinoooooouuuuy''''""'),
             'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'), '…', '...'),
           '\s+', ' ', 'g'))
$$;

-- One row: per kind, an alternation of the folded phrases between word boundaries, and the weights.
CREATE TABLE bench_rx AS
WITH p AS (
  SELECT DISTINCT ON (kind, bench_fold(phrase)) kind, bench_fold(phrase) AS phrase, weight
    FROM ft_lexicon WHERE owner_id IS NULL AND weight > 0
   ORDER BY kind, bench_fold(phrase)),
k AS (
  SELECT kind,
         '(?<![[:alnum:]])(' || string_agg(regexp_replace(phrase, '([.?*+^$()\[\]{}|\\])', '\\\1', 'g'), '|'
                                            ORDER BY length(phrase) DESC) || ')(?![[:alnum:]])' AS rx,
         jsonb_object_agg(phrase, weight) AS weights
    FROM p GROUP BY kind)
SELECT (SELECT rx FROM k WHERE kind = 'empathy') AS empathy_rx,
       (SELECT weights FROM k WHERE kind = 'empathy') AS empathy_w,
       (SELECT rx FROM k WHERE kind = 'generic') AS generic_rx,
       (SELECT weights FROM k WHERE kind = 'generic') AS generic_w,
       (SELECT rx FROM k WHERE kind = 'question') AS question_rx,
       (SELECT rx FROM k WHERE kind = 'context') AS context_rx,
       (SELECT rx FROM k WHERE kind = 'greeting') AS greeting_rx;

CREATE FUNCTION bench_plpgsql_score(messages jsonb, rx bench_rx, OUT score real, OUT components jsonb)
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  stop text[] := '{about,after,again,also,because,been,before,being,could,does,doing,from,have,having,here,into,just,know,like,more,most,much,only,other,over,really,should,some,such,than,that,their,them,then,there,these,they,thing,things,think,this,those,very,want,well,were,what,when,where,which,while,will,with,would,your,yours,sure,okay,thanks,thank,please,hello,maybe,make,good,great}';
  msgs jsonb := messages -> 'messages';
  n int := jsonb_array_length(msgs);
  ridx int := -1;
  resp text := '';
  folded text;
  ctx text;
  len int;
  emp_hits int; emp real; gen_hits int; gen real; q_hits int; ctx_hits int; greet_hits int;
  overlap int := 0;
  question boolean; context boolean; too_short boolean; in_band boolean; pii boolean;
  length_score real;
BEGIN
  FOR i IN REVERSE n - 1 .. 0 LOOP
    IF msgs -> i ->> 'role' = 'assistant' THEN
      ridx := i;
      resp := coalesce(msgs -> i ->> 'content', '');
      EXIT;
    END IF;
  END LOOP;
  len := char_length(btrim(resp, E' \t\n\r\f\v'));
  folded := bench_fold(resp);
  SELECT count(*), coalesce(sum((rx.empathy_w ->> m[1])::real), 0) INTO emp_hits, emp
    FROM regexp_matches(folded, rx.empathy_rx, 'g') m;
  SELECT count(*), coalesce(sum((rx.generic_w ->> m[1])::real), 0) INTO gen_hits, gen
    FROM regexp_matches(folded, rx.generic_rx, 'g') m;
  SELECT count(*) INTO q_hits FROM regexp_matches(folded, rx.question_rx, 'g') m;
  SELECT count(*) INTO ctx_hits FROM regexp_matches(folded, rx.context_rx, 'g') m;
  SELECT count(*) INTO greet_hits FROM regexp_matches(folded, rx.greeting_rx, 'g') m;
  question := position('?' in folded) > 0 OR q_hits > 0;
  SELECT string_agg(bench_fold(x ->> 'content'), ' ') INTO ctx
    FROM jsonb_array_elements(msgs) WITH ORDINALITY e(x, o)
   WHERE o - 1 < ridx AND x ->> 'role' = 'user';
  IF ctx IS NOT NULL THEN
    SELECT count(DISTINCT w) INTO overlap
      FROM regexp_split_to_table(folded, '[^[:alnum:]]+') w
     WHERE length(w) >= 4 AND w <> ALL (stop)
       AND w IN (SELECT regexp_split_to_table(ctx, '[^[:alnum:]]+'));
  END IF;
  SELECT coalesce(bool_or(x ->> 'content' ~ '[[:alnum:]._]@[[:alnum:]-]+(\.[[:alnum:]-]+)*\.[[:alnum:]]{2,}'
                          OR x ->> 'content' ~ '[0-9]([ ().-]{0,2}[0-9]){8,18}'), false) INTO pii
    FROM jsonb_array_elements(msgs) x WHERE x ->> 'role' IS DISTINCT FROM 'system';
  in_band := len BETWEEN 50 AND 200;
  too_short := len < 20;
  length_score := CASE WHEN len < 50 THEN len / 50.0
                       WHEN len > 200 THEN greatest(0, 1 - (len - 200) / 200.0)
                       ELSE 1 END;
  context := ctx_hits > 0 OR overlap >= 2;
  emp := least(emp, 1);
  gen := least(gen, 1);
  score := (0.35 * length_score + 0.25 * question::int + 0.20 * emp + 0.20 * context::int) / 1.0
           - 0.30 * gen - 0.50 * too_short::int - 0.30 * pii::int;
  score := round(least(greatest(score, 0), 1)::numeric, 4);
  components := jsonb_build_object('length', len, 'in_band', in_band, 'length_score', round(length_score::numeric, 3),
    'question', question, 'empathy', round(emp::numeric, 3), 'empathy_hits', emp_hits,
    'generic', round(gen::numeric, 3), 'generic_hits', gen_hits, 'greeting_hits', greet_hits,
    'too_short', too_short, 'context', context, 'context_markers', ctx_hits, 'overlap', overlap,
    'pii', pii, 'duplicate', false);
END
$$;

-- Milliseconds one statement takes
CREATE FUNCTION bench_ms(query text) RETURNS double precision
LANGUAGE plpgsql
AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
BEGIN
  EXECUTE query;
  RETURN round((extract(epoch FROM clock_timestamp() - t0) * 1000)::numeric, 1);
END
$$;
