/*
 * Transcript parsers and example cutting.
 *
 * Line formats ("Speaker: text", WhatsApp) are read line by line: a line that starts a message
 * names its speaker, any other line continues the message before it. JSON formats (Telegram,
 * OpenAI JSONL) are read with jansson. Everything is malloc'd; ft_transcript_free releases it.
 */
#include "transcript.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NAME 64				/* longest speaker name accepted */

typedef struct Line
{
	const char *s;
	size_t		len;
	int			number;
} Line;

static const char *const FormatNames[] = {"auto", "speaker", "whatsapp", "telegram", "jsonl"};

/* Name of a format */
const char *
ft_transcript_format_name(FtTranscriptFormat format)
{
	return (format >= FT_TRANSCRIPT_AUTO && format <= FT_TRANSCRIPT_JSONL) ? FormatNames[format] : "unknown";
}

/* Format from its name */
bool
ft_transcript_format_from_name(const char *name, FtTranscriptFormat *format)
{
	int			k;

	for (k = FT_TRANSCRIPT_AUTO; k <= FT_TRANSCRIPT_JSONL; k++)
		if (strcasecmp(name, FormatNames[k]) == 0)
		{
			*format = (FtTranscriptFormat) k;
			return true;
		}
	return false;
}

static bool Fail(FtTranscript *t, int line, const char *fmt,...) __attribute__((format(printf, 3, 4)));

/* Record why the transcript cannot be read; always returns false */
static bool
Fail(FtTranscript *t, int line, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, args);
	va_end(args);
	t->error_line = line;
	return false;
}

/* Count one skipped line or message under its reason */
static void
Skip(FtTranscript *t, const char *reason, int line)
{
	int			k;

	for (k = 0; k < t->nskips; k++)
		if (strcmp(t->skips[k].reason, reason) == 0)
		{
			t->skips[k].count++;
			return;
		}
	if (t->nskips < FT_TRANSCRIPT_MAX_SKIPS)
	{
		t->skips[t->nskips].reason = reason;
		t->skips[t->nskips].count = 1;
		t->skips[t->nskips].first_line = line;
		t->nskips++;
	}
}

/* Make room for one more element in a growable array */
static bool
Reserve(void **items, int *cap, int n, size_t elem)
{
	void	   *p;
	int			newcap;

	if (n < *cap)
		return true;
	newcap = *cap ? *cap * 2 : 16;
	p = realloc(*items, (size_t) newcap * elem);
	if (p == NULL)
		return false;
	*items = p;
	*cap = newcap;
	return true;
}

static char *
DupN(const char *s, size_t n)
{
	char	   *d = malloc(n + 1);

	if (d)
	{
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Index of a speaker, added when new; -1 when out of memory */
static int
SpeakerIndex(FtTranscript *t, const char *name, size_t len)
{
	int			k;
	char	  **p;

	for (k = 0; k < t->nspeakers; k++)
		if (strlen(t->speakers[k]) == len && memcmp(t->speakers[k], name, len) == 0)
			return k;
	p = realloc(t->speakers, sizeof(char *) * (t->nspeakers + 1));
	if (p == NULL)
		return -1;
	t->speakers = p;
	if ((t->speakers[t->nspeakers] = DupN(name, len)) == NULL)
		return -1;
	return t->nspeakers++;
}

/* Append text to a string with a newline between */
static bool
AppendText(char **dst, const char *text, size_t len)
{
	size_t		old = strlen(*dst);
	char	   *p = realloc(*dst, old + len + 2);

	if (p == NULL)
		return false;
	if (old > 0)
		p[old++] = '\n';
	memcpy(p + old, text, len);
	p[old + len] = '\0';
	*dst = p;
	return true;
}

/* Add a message; a message of the same speaker as the last turn is merged into it */
static bool
AddMessage(FtTranscript *t, const char *speaker, size_t slen, const char *text, size_t len, int line)
{
	int			sp = SpeakerIndex(t, speaker, slen);

	if (sp < 0)
		return Fail(t, 0, "out of memory");
	if (t->nturns > 0 && t->turns[t->nturns - 1].speaker == sp)
		return AppendText(&t->turns[t->nturns - 1].text, text, len) || Fail(t, 0, "out of memory");
	if (!Reserve((void **) &t->turns, &t->turncap, t->nturns, sizeof(FtTurn)))
		return Fail(t, 0, "out of memory");
	t->turns[t->nturns].speaker = sp;
	t->turns[t->nturns].line = line;
	t->turns[t->nturns].text = DupN(text, len);
	if (t->turns[t->nturns].text == NULL)
		return Fail(t, 0, "out of memory");
	t->nturns++;
	return true;
}

/* ---------- text helpers ---------- */

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 when invalid */
static size_t
Utf8Len(const unsigned char *s, size_t n)
{
	size_t		need,
				k;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		need = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		need = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (need > n)
		return 0;
	for (k = 1; k < need; k++)
	{
		if ((s[k] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3F);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return need;
}

/* Check the whole text is UTF-8 without NUL bytes, naming the first bad line */
static bool
CheckUtf8(FtTranscript *t, const char *text, size_t len)
{
	size_t		i = 0;
	int			line = 1;

	while (i < len)
	{
		size_t		l = Utf8Len((const unsigned char *) text + i, len - i);

		if (l == 0)
			return Fail(t, line, "line %d: the text is not valid UTF-8", line);
		if (text[i] == '\0')
			return Fail(t, line, "line %d: the text contains a NUL byte", line);
		if (text[i] == '\n')
			line++;
		i += l;
	}
	return true;
}

/* Split text into lines (\n, \r\n or \r); returns a malloc'd array */
static Line *
SplitLines(const char *text, size_t len, int *nlines)
{
	Line	   *lines = NULL;
	int			cap = 0,
				n = 0;
	size_t		i = 0;

	while (i < len)
	{
		size_t		start = i;

		while (i < len && text[i] != '\n' && text[i] != '\r')
			i++;
		if (!Reserve((void **) &lines, &cap, n, sizeof(Line)))
		{
			free(lines);
			return NULL;
		}
		lines[n].s = text + start;
		lines[n].len = i - start;
		lines[n].number = n + 1;
		n++;
		if (i < len && text[i] == '\r')
		{
			i++;
			if (i < len && text[i] == '\n')
				i++;
		}
		else if (i < len)
			i++;
	}
	*nlines = n;
	if (lines == NULL)
		lines = malloc(sizeof(Line));
	return lines;
}

/* Skip invisible marks WhatsApp puts in exports: BOM, LRM/RLM, and spaces */
static size_t
SkipMarks(const char *s, size_t len, size_t i)
{
	const unsigned char *u = (const unsigned char *) s;

	for (;;)
	{
		if (i + 2 < len && u[i] == 0xEF && u[i + 1] == 0xBB && u[i + 2] == 0xBF)
			i += 3;
		else if (i + 2 < len && u[i] == 0xE2 && u[i + 1] == 0x80 && (u[i + 2] == 0x8E || u[i + 2] == 0x8F))
			i += 3;
		else if (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		else
			return i;
	}
}

/* Trim spaces and invisible marks at both ends of s[*start, *end) */
static void
Trim(const char *s, size_t *start, size_t *end)
{
	*start = SkipMarks(s, *end, *start);
	while (*end > *start && (s[*end - 1] == ' ' || s[*end - 1] == '\t'))
		(*end)--;
}

static bool
IsBlank(const Line *l)
{
	return SkipMarks(l->s, l->len, 0) == l->len;
}

/* ---------- "Speaker: text" ---------- */

/*
 * Does the line start with "Name: "? Names are 1-64 bytes, at most four words, contain a
 * letter, and none of the characters that make the text before a colon look like prose, a URL
 * or a time ("10:30").
 */
static bool
SpeakerPrefix(const Line *l, size_t *name_start, size_t *name_end, size_t *text_start)
{
	size_t		i = SkipMarks(l->s, l->len, 0),
				k,
				start = i;
	int			words = 1;
	bool		letter = false;

	for (k = i; k < l->len && l->s[k] != ':'; k++)
	{
		unsigned char c = (unsigned char) l->s[k];

		if (k - start >= MAX_NAME || strchr("\"{}[]<>()=/\\@#*|;,?!", c) != NULL)
			return false;
		if (c == ' ' && k > start && l->s[k - 1] != ' ')
			words++;
		letter |= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c >= 0x80;
	}
	if (k >= l->len || k == start || !letter || words > 4 || l->s[k - 1] == ' ')
		return false;
	if (k + 1 < l->len && l->s[k + 1] != ' ' && l->s[k + 1] != '\t')
		return false;
	*name_start = start;
	*name_end = k;
	*text_start = k + 1;
	return true;
}

/* Is the speaker name one of the accepted ones? */
static bool
Accepted(char **names, int n, const char *name, size_t len)
{
	int			k;

	for (k = 0; k < n; k++)
		if (strlen(names[k]) == len && memcmp(names[k], name, len) == 0)
			return true;
	return false;
}

/* Words that end in a colon inside messages ("Note: ...") rather than naming someone */
static bool
LabelWord(const char *s, size_t len)
{
	static const char *const words[] = {
		"note", "notes", "ps", "p.s.", "nb", "fyi", "update", "edit", "warning", "tip", "example",
		"answer", "question", "subject", "re", "total", "price", "address", "phone", "email",
		"date", "time", "step", "summary", "result", "reason", "important", "todo", NULL
	};
	int			k;

	for (k = 0; words[k]; k++)
		if (strlen(words[k]) == len && strncasecmp(s, words[k], len) == 0)
			return true;
	return false;
}

/*
 * Which prefixes really are speakers: those used at least twice; those used once on a line
 * that directly follows another speaker line (a group member who spoke once), unless the
 * name is a label word; then, in order, the rest until there are two. A line like
 * "Note: bring shoes" inside a message is thus read as a continuation, not a new speaker.
 */
static int
AcceptedSpeakers(const Line *lines, int nlines, char ***out)
{
	char	  **names = NULL;
	int		   *uses = NULL;
	int			n = 0,
				k,
				accepted = 0;
	char	  **result;
	bool		prev_speaker = true;	/* the first speaker line continues nothing */

	for (k = 0; k < nlines; k++)
	{
		size_t		ns,
					ne,
					ts;
		int			j;
		bool		after_speaker = prev_speaker;

		if (IsBlank(&lines[k]))
			continue;
		prev_speaker = SpeakerPrefix(&lines[k], &ns, &ne, &ts);
		if (!prev_speaker)
			continue;
		for (j = 0; j < n; j++)
			if (strlen(names[j]) == ne - ns && memcmp(names[j], lines[k].s + ns, ne - ns) == 0)
				break;
		if (j == n)
		{
			char	  **nn = realloc(names, sizeof(char *) * (n + 1));
			int		   *nu = realloc(uses, sizeof(int) * (n + 1));

			if (nn)
				names = nn;
			if (nu)
				uses = nu;
			if (!nn || !nu || (names[n] = DupN(lines[k].s + ns, ne - ns)) == NULL)
				break;
			uses[n++] = 0;
		}
		/* a name used once right after another speaker counts as a real speaker */
		uses[j] += (uses[j] == 0 && after_speaker && !LabelWord(lines[k].s + ns, ne - ns)) ? 2 : 1;
	}
	result = malloc(sizeof(char *) * (n + 1));
	for (k = 0; result && k < n; k++)
		if (uses[k] >= 2)
			result[accepted++] = names[k];
	for (k = 0; result && k < n && accepted < 2; k++)
		if (uses[k] == 1)
		{
			result[accepted++] = names[k];
			uses[k] = 2;		/* owned by result now */
		}
	for (k = 0; k < n; k++)
		if (!result || uses[k] < 2)
			free(names[k]);
	free(names);
	free(uses);
	*out = result;
	return result ? accepted : -1;
}

/* Flush the message being collected (trailing blank lines dropped) */
static bool
FlushMessage(FtTranscript *t, const char *speaker, size_t slen, const Line *lines, int first, int last,
			 size_t first_offset)
{
	size_t		cap = 0,
				len = 0;
	char	   *buf = NULL;
	int			k;
	bool		ok;

	while (last >= first && (last > first ? IsBlank(&lines[last]) : false))
		last--;
	for (k = first; k <= last; k++)
	{
		size_t		s = k == first ? first_offset : 0,
					e = lines[k].len;
		char	   *nb;

		if (k == first)
			Trim(lines[k].s, &s, &e);
		if (cap < len + (e - s) + 2)
		{
			cap = (len + (e - s) + 2) * 2;
			if ((nb = realloc(buf, cap)) == NULL)
			{
				free(buf);
				return Fail(t, 0, "out of memory");
			}
			buf = nb;
		}
		if (k > first)
			buf[len++] = '\n';
		memcpy(buf + len, lines[k].s + s, e - s);
		len += e - s;
	}
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\n'))
		len--;
	if (len == 0)
	{
		free(buf);
		Skip(t, "empty message", lines[first].number);
		return true;
	}
	ok = AddMessage(t, speaker, slen, buf, len, lines[first].number);
	free(buf);
	return ok;
}

/* "Speaker: text" lines; other lines continue the message before them */
static bool
ParseSpeakerLines(FtTranscript *t, const Line *lines, int nlines)
{
	char	  **names;
	int			nnames = AcceptedSpeakers(lines, nlines, &names),
				k,
				cur = -1;
	size_t		ns = 0,
				ne = 0,
				ts = 0,
				cur_ns = 0,
				cur_ne = 0,
				cur_ts = 0;
	bool		ok = true;

	if (nnames < 0)
		return Fail(t, 0, "out of memory");
	if (nnames == 0)
	{
		free(names);
		for (k = 0; k < nlines && IsBlank(&lines[k]); k++)
			;
		return Fail(t, k < nlines ? lines[k].number : 1,
					"line %d: no \"Speaker: text\" line found", k < nlines ? lines[k].number : 1);
	}
	for (k = 0; k < nlines && ok; k++)
	{
		bool		starts = SpeakerPrefix(&lines[k], &ns, &ne, &ts) &&
			Accepted(names, nnames, lines[k].s + ns, ne - ns);

		if (!starts)
		{
			if (cur < 0 && !IsBlank(&lines[k]))
				Skip(t, "text before the first speaker", lines[k].number);
			continue;
		}
		if (cur >= 0)
			ok = FlushMessage(t, lines[cur].s + cur_ns, cur_ne - cur_ns, lines, cur, k - 1, cur_ts);
		cur = k;
		cur_ns = ns;
		cur_ne = ne;
		cur_ts = ts;
	}
	if (ok && cur >= 0)
		ok = FlushMessage(t, lines[cur].s + cur_ns, cur_ne - cur_ns, lines, cur, nlines - 1, cur_ts);
	for (k = 0; k < nnames; k++)
		free(names[k]);
	free(names);
	return ok;
}

/* ---------- WhatsApp ---------- */

/* Read 1..max digits at *i */
static bool
Digits(const char *s, size_t len, size_t *i, int min, int max)
{
	int			n = 0;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9' && n < max)
		(*i)++, n++;
	return n >= min && !(*i < len && s[*i] >= '0' && s[*i] <= '9');
}

/* "12/31/23", "31.12.2023", "2023-12-31" */
static bool
WaDate(const char *s, size_t len, size_t *i)
{
	char		sep;

	if (!Digits(s, len, i, 1, 4) || *i >= len || strchr("/.-", s[*i]) == NULL)
		return false;
	sep = s[(*i)++];
	if (!Digits(s, len, i, 1, 2) || *i >= len || s[*i] != sep)
		return false;
	(*i)++;
	if (!Digits(s, len, i, 2, 4))
		return false;
	if (*i < len && s[*i] == '.')	/* "31.12.23." in some locales */
		(*i)++;
	return true;
}

/* "9:41", "21:41:05", "9:41 PM", "9:41\u202fp.m." */
static bool
WaTime(const char *s, size_t len, size_t *i)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t		k;

	if (!Digits(s, len, i, 1, 2) || *i >= len || (s[*i] != ':' && s[*i] != '.'))
		return false;
	(*i)++;
	if (!Digits(s, len, i, 2, 2))
		return false;
	if (*i + 1 < len && (s[*i] == ':' || s[*i] == '.') && s[*i + 1] >= '0' && s[*i + 1] <= '9')
	{
		(*i)++;
		if (!Digits(s, len, i, 2, 2))
			return false;
	}
	k = *i;
	if (k < len && s[k] == ' ')
		k++;
	else if (k + 2 < len && u[k] == 0xE2 && u[k + 1] == 0x80 && u[k + 2] == 0xAF)
		k += 3;
	else if (k + 1 < len && u[k] == 0xC2 && u[k + 1] == 0xA0)
		k += 2;
	if (k + 1 < len && strchr("AaPp", s[k]) && (s[k + 1] == 'M' || s[k + 1] == 'm'))
		*i = k + 2;
	else if (k + 3 < len && strchr("AaPp", s[k]) && s[k + 1] == '.' && (s[k + 2] == 'm' || s[k + 2] == 'M') && s[k + 3] == '.')
		*i = k + 4;
	return true;
}

/*
 * A WhatsApp message header: "[date, time] " (iOS) or "date, time - " (Android). Returns the
 * offset of the text after it, 0 when the line has no header.
 */
static size_t
WhatsAppHeader(const Line *l)
{
	const char *s = l->s;
	size_t		len = l->len,
				i = SkipMarks(s, len, 0);
	bool		bracket = i < len && s[i] == '[';

	if (bracket)
		i++;
	if (!WaDate(s, len, &i))
		return 0;
	if (i < len && s[i] == ',')
		i++;
	if (i >= len || s[i] != ' ')
		return 0;
	while (i < len && s[i] == ' ')
		i++;
	if (!WaTime(s, len, &i))
		return 0;
	if (bracket)
		return (i + 1 < len && s[i] == ']' && s[i + 1] == ' ') ? i + 2 : 0;
	return (i + 2 < len && s[i] == ' ' && s[i + 1] == '-' && s[i + 2] == ' ') ? i + 3 : 0;
}

/* Placeholder texts WhatsApp writes instead of media, and for deleted messages */
static const char *
WhatsAppPlaceholder(const char *s, size_t len)
{
	static const char *const media[] = {
		"<Media omitted>", "image omitted", "video omitted", "audio omitted", "sticker omitted",
		"GIF omitted", "document omitted", "Contact card omitted", "<attached:", "null", NULL
	};
	static const char *const deleted[] = {
		"This message was deleted", "You deleted this message", NULL
	};
	int			k;

	for (k = 0; media[k]; k++)
		if (len >= strlen(media[k]) && strncasecmp(s, media[k], strlen(media[k])) == 0 &&
			(media[k][0] == '<' ? true : len == strlen(media[k])))
			return "media omitted";
	for (k = 0; deleted[k]; k++)
		if (len >= strlen(deleted[k]) && strncmp(s, deleted[k], strlen(deleted[k])) == 0)
			return "deleted message";
	return NULL;
}

/* Does s[0, len) contain needle? */
static bool
ContainsN(const char *s, size_t len, const char *needle)
{
	size_t		nl = strlen(needle),
				k;

	for (k = 0; k + nl <= len; k++)
		if (memcmp(s + k, needle, nl) == 0)
			return true;
	return false;
}

/* Find "Name: " in the text after a header; the name ends at the first ": " */
static bool
WhatsAppSender(const Line *l, size_t at, size_t *ns, size_t *ne, size_t *ts)
{
	size_t		k;

	*ns = SkipMarks(l->s, l->len, at);
	for (k = *ns; k < l->len && k - *ns <= 2 * MAX_NAME; k++)
		if (l->s[k] == ':' && (k + 1 == l->len || l->s[k + 1] == ' '))
		{
			*ne = k;
			*ts = k + 1;
			Trim(l->s, ns, ne);
			return *ne > *ns;
		}
	return false;
}

/* Flush one WhatsApp message, leaving out media placeholders and deleted messages */
static bool
FlushWhatsApp(FtTranscript *t, const Line *lines, int first, int last, size_t ns, size_t ne, size_t ts)
{
	size_t		s = ts,
				e = lines[first].len;
	const char *placeholder;
	static const char edited[] = "<This message was edited>";

	Trim(lines[first].s, &s, &e);
	placeholder = WhatsAppPlaceholder(lines[first].s + s, e - s);
	if (placeholder == NULL && ContainsN(lines[first].s + s, e - s, "end-to-end encrypt"))
		placeholder = "system message";
	if (placeholder)
	{
		Skip(t, placeholder, lines[first].number);
		return true;
	}
	/* the "edited" mark is WhatsApp's, not the speaker's words */
	if (first == last && e - s >= sizeof(edited) - 1 &&
		memcmp(lines[first].s + e - (sizeof(edited) - 1), edited, sizeof(edited) - 1) == 0)
	{
		Line		cut = lines[first];

		cut.len = e - (sizeof(edited) - 1);
		return FlushMessage(t, lines[first].s + ns, ne - ns, &cut, 0, 0, ts);
	}
	return FlushMessage(t, lines[first].s + ns, ne - ns, lines, first, last, ts);
}

/* A WhatsApp export; lines without a header continue the message before them */
static bool
ParseWhatsApp(FtTranscript *t, const Line *lines, int nlines)
{
	int			k,
				cur = -1,
				headers = 0;
	size_t		cur_ns = 0,
				cur_ne = 0,
				cur_ts = 0;
	bool		ok = true;

	for (k = 0; k < nlines && ok; k++)
	{
		size_t		at = WhatsAppHeader(&lines[k]),
					ns,
					ne,
					ts;

		if (at == 0)
		{
			if (cur < 0 && !IsBlank(&lines[k]))
			{
				if (headers == 0)
					return Fail(t, lines[k].number,
								"line %d: expected a WhatsApp message line such as \"[31/12/2023, 21:41:05] Name: text\" "
								"or \"31/12/2023, 21:41 - Name: text\"", lines[k].number);
				Skip(t, "continuation of a skipped line", lines[k].number);
			}
			continue;
		}
		headers++;
		if (cur >= 0)
			ok = FlushWhatsApp(t, lines, cur, k - 1, cur_ns, cur_ne, cur_ts);
		cur = -1;
		if (!ok)
			break;
		if (!WhatsAppSender(&lines[k], at, &ns, &ne, &ts))
		{
			Skip(t, "system message", lines[k].number);
			continue;
		}
		cur = k;
		cur_ns = ns;
		cur_ne = ne;
		cur_ts = ts;
	}
	if (ok && cur >= 0)
		ok = FlushWhatsApp(t, lines, cur, nlines - 1, cur_ns, cur_ne, cur_ts);
	return ok;
}

/* ---------- Telegram JSON ---------- */

/* Telegram message text: a string, or an array of strings and {"type":..,"text":..} parts */
static char *
TelegramText(json_t *text)
{
	size_t		k;
	json_t	   *part;
	char	   *out = strdup("");

	if (json_is_string(text))
	{
		free(out);
		return DupN(json_string_value(text), json_string_length(text));
	}
	json_array_foreach(text, k, part)
	{
		json_t	   *piece = json_is_object(part) ? json_object_get(part, "text") : part;
		size_t		old,
					add;
		char	   *p;

		if (out == NULL || !json_is_string(piece))
			continue;
		old = strlen(out);
		add = json_string_length(piece);
		if ((p = realloc(out, old + add + 1)) == NULL)
		{
			free(out);
			return NULL;
		}
		out = p;
		memcpy(out + old, json_string_value(piece), add);
		out[old + add] = '\0';
	}
	return out;
}

/* Does a Telegram message carry media (photo, file, sticker, poll, ...)? */
static bool
TelegramMedia(json_t *msg)
{
	static const char *const keys[] = {
		"photo", "file", "media_type", "sticker_emoji", "poll", "location_information",
		"contact_information", NULL
	};
	int			k;

	for (k = 0; keys[k]; k++)
		if (json_object_get(msg, keys[k]))
			return true;
	return false;
}

/* A Telegram chat export: {"messages": [{"type": "message", "from": ..., "text": ...}]} */
static bool
ParseTelegramJson(FtTranscript *t, json_t *root)
{
	json_t	   *messages = json_is_object(root) ? json_object_get(root, "messages") : NULL,
			   *msg;
	size_t		k;

	if (!json_is_array(messages))
		return Fail(t, 1, "line 1: a Telegram export is a JSON object with a \"messages\" array");
	json_array_foreach(messages, k, msg)
	{
		json_t	   *type = json_object_get(msg, "type"),
				   *from = json_object_get(msg, "from");
		char	   *text;
		size_t		s = 0,
					e;

		if (!json_is_object(msg))
			return Fail(t, 0, "message %zu of the Telegram export is not a JSON object", k + 1);
		if (type && (!json_is_string(type) || strcmp(json_string_value(type), "message") != 0))
		{
			Skip(t, "service message", 0);
			continue;
		}
		if (!json_is_string(from) || json_string_length(from) == 0)
		{
			Skip(t, "message without a sender", 0);
			continue;
		}
		if ((text = TelegramText(json_object_get(msg, "text"))) == NULL)
			return Fail(t, 0, "out of memory");
		e = strlen(text);
		Trim(text, &s, &e);
		if (s == e)
			Skip(t, TelegramMedia(msg) ? "media omitted" : "empty message", 0);
		else if (!AddMessage(t, json_string_value(from), json_string_length(from), text + s, e - s, 0))
		{
			free(text);
			return false;
		}
		free(text);
	}
	return true;
}

/* ---------- OpenAI chat JSONL ---------- */

/* Keep one JSONL example (compact JSON, a bare messages array wrapped) */
static bool
AddJsonlExample(FtTranscript *t, json_t *value, int line)
{
	json_t	   *wrapped = json_is_array(value) ? json_pack("{sO}", "messages", value) : json_incref(value);
	char	   *text = wrapped ? json_dumps(wrapped, JSON_COMPACT) : NULL;

	json_decref(wrapped);
	if (text == NULL ||
		!Reserve((void **) &t->examples, &t->examplecap, t->nexamples, sizeof(char *)))
	{
		free(text);
		return Fail(t, 0, "out of memory");
	}
	t->example_lines = realloc(t->example_lines, sizeof(int) * t->examplecap);
	if (t->example_lines == NULL)
	{
		free(text);
		return Fail(t, 0, "out of memory");
	}
	t->examples[t->nexamples] = text;
	t->example_lines[t->nexamples++] = line;
	return true;
}

/* One example per line: {"messages": [...]} (or a bare messages array); blank lines ignored */
static bool
ParseJsonl(FtTranscript *t, const Line *lines, int nlines)
{
	int			k;

	for (k = 0; k < nlines; k++)
	{
		json_error_t err;
		json_t	   *value;
		bool		ok;

		if (IsBlank(&lines[k]))
			continue;
		value = json_loadb(lines[k].s, lines[k].len, JSON_REJECT_DUPLICATES, &err);
		if (value == NULL)
			return Fail(t, lines[k].number, "line %d: invalid JSON at column %d: %s",
						lines[k].number, err.column, err.text);
		if (!(json_is_array(value) || (json_is_object(value) && json_is_array(json_object_get(value, "messages")))))
		{
			json_decref(value);
			return Fail(t, lines[k].number, "line %d: expected a JSON object with a \"messages\" array", lines[k].number);
		}
		ok = AddJsonlExample(t, value, lines[k].number);
		json_decref(value);
		if (!ok)
			return false;
	}
	if (t->nexamples == 0)
		return Fail(t, 1, "line 1: the JSONL text has no example lines");
	return true;
}

/* ---------- detection and entry point ---------- */

/* Is value the first line of OpenAI chat JSONL (messages with roles)? */
static bool
LooksLikeChatExample(json_t *value)
{
	json_t	   *messages = json_is_object(value) ? json_object_get(value, "messages") : value,
			   *first = json_array_get(messages, 0);

	return json_is_array(messages) && (first == NULL || json_object_get(first, "role") != NULL);
}

/* JSON input: one Telegram export, or JSONL (which may also be one single line) */
static bool
ParseJsonText(FtTranscript *t, const char *text, size_t len, const Line *lines, int nlines,
			  FtTranscriptFormat format)
{
	json_error_t err;
	json_t	   *root = NULL;
	bool		ok;

	if (format != FT_TRANSCRIPT_JSONL)
		root = json_loadb(text, len, 0, &err);
	if (format == FT_TRANSCRIPT_AUTO)
	{
		if (root == NULL || LooksLikeChatExample(root))
		{
			int			k;
			json_t	   *first = NULL;
			json_error_t err1;

			for (k = 0; k < nlines && IsBlank(&lines[k]); k++)
				;
			if (root == NULL && k < nlines)
				first = json_loadb(lines[k].s, lines[k].len, 0, &err1);
			if (root == NULL && first == NULL)
				return Fail(t, err.line, "line %d: invalid JSON at column %d: %s", err.line, err.column, err.text);
			json_decref(first);
			json_decref(root);
			t->format = FT_TRANSCRIPT_JSONL;
			return ParseJsonl(t, lines, nlines);
		}
		t->format = FT_TRANSCRIPT_TELEGRAM;
	}
	if (format == FT_TRANSCRIPT_JSONL)
		return ParseJsonl(t, lines, nlines);
	if (root == NULL)
		return Fail(t, err.line, "line %d: invalid JSON at column %d: %s", err.line, err.column, err.text);
	ok = ParseTelegramJson(t, root);
	json_decref(root);
	return ok;
}

/* Parse a transcript; see transcript.h */
bool
ft_transcript_parse(const char *text, size_t len, FtTranscriptFormat format, FtTranscript *t)
{
	Line	   *lines;
	int			nlines = 0,
				k;
	size_t		first;
	bool		ok;

	memset(t, 0, sizeof(*t));
	t->format = format;
	if (!CheckUtf8(t, text, len))
		return false;
	if ((lines = SplitLines(text, len, &nlines)) == NULL)
		return Fail(t, 0, "out of memory");
	for (k = 0; k < nlines && IsBlank(&lines[k]); k++)
		;
	if (k == nlines)
	{
		free(lines);
		return Fail(t, 1, "line 1: the transcript is empty");
	}
	first = SkipMarks(lines[k].s, lines[k].len, 0);
	if (format == FT_TRANSCRIPT_AUTO)
	{
		if (WhatsAppHeader(&lines[k]))
			t->format = FT_TRANSCRIPT_WHATSAPP;
		else if (lines[k].s[first] == '{' || lines[k].s[first] == '[')
			t->format = FT_TRANSCRIPT_AUTO; /* decided by ParseJsonText */
		else
			t->format = FT_TRANSCRIPT_SPEAKER;
	}
	switch (t->format)
	{
		case FT_TRANSCRIPT_SPEAKER:
			ok = ParseSpeakerLines(t, lines, nlines);
			break;
		case FT_TRANSCRIPT_WHATSAPP:
			ok = ParseWhatsApp(t, lines, nlines);
			break;
		default:
			ok = ParseJsonText(t, text, len, lines, nlines, t->format);
			break;
	}
	free(lines);
	if (ok && t->format != FT_TRANSCRIPT_JSONL && t->nturns == 0)
		return Fail(t, 0, "the transcript has no messages left after skipping %d line(s)",
					t->nskips ? t->skips[0].count : 0);
	return ok;
}

/* Free everything a parse allocated */
void
ft_transcript_free(FtTranscript *t)
{
	int			k;

	for (k = 0; k < t->nspeakers; k++)
		free(t->speakers[k]);
	for (k = 0; k < t->nturns; k++)
		free(t->turns[k].text);
	for (k = 0; k < t->nexamples; k++)
		free(t->examples[k]);
	free(t->speakers);
	free(t->turns);
	free(t->examples);
	free(t->example_lines);
	memset(t, 0, sizeof(*t));
}

/* ---------- the assistant, and cutting examples ---------- */

/* Does a speaker name say it is a bot? */
static bool
BotName(const char *name)
{
	static const char *const names[] = {
		"assistant", "ai", "bot", "chatbot", "chatgpt", "gpt", "model", "agent", NULL
	};
	size_t		len = strlen(name);
	int			k;

	for (k = 0; names[k]; k++)
		if (strcasecmp(name, names[k]) == 0)
			return true;
	return len > 3 && strcasecmp(name + len - 3, "bot") == 0;
}

/* Pick the assistant speaker; see transcript.h */
int
ft_transcript_pick_assistant(const FtTranscript *t, const char *requested, const char **rule)
{
	int			k;

	if (requested)
	{
		for (k = 0; k < t->nspeakers; k++)
			if (strcasecmp(t->speakers[k], requested) == 0)
			{
				*rule = "argument";
				return k;
			}
		*rule = "the requested speaker does not appear in the transcript";
		return -1;
	}
	for (k = 0; k < t->nspeakers; k++)
		if (BotName(t->speakers[k]))
		{
			*rule = "name";
			return k;
		}
	if (t->nspeakers >= 2)
	{
		*rule = "second speaker";
		return 1;
	}
	*rule = "the transcript has only one speaker";
	return -1;
}

/* {"role": role, "content": content} appended to an array */
static bool
AppendMessage(json_t *array, const char *role, const char *content)
{
	json_t	   *c = json_string(content ? content : "");

	if (c == NULL)
		return false;
	return json_array_append_new(array, json_pack("{sssO}", "role", role, "content", c)) == 0 &&
		(json_decref(c), true);
}

/* JSON text of {"messages": array} */
static char *
DumpExample(json_t *array)
{
	json_t	   *root = json_pack("{sO}", "messages", array);
	char	   *text = root ? json_dumps(root, JSON_COMPACT) : NULL;

	json_decref(root);
	return text;
}

/* Build an example from role/content pairs; see transcript.h */
char *
ft_chat_example_json(const FtChatMessage *msgs, int n, bool redact, FtRedactCounts *counts)
{
	json_t	   *array = json_array();
	char	   *text = NULL;
	int			k;
	bool		ok = array != NULL;

	for (k = 0; k < n && ok; k++)
	{
		const char *content = msgs[k].content ? msgs[k].content : "";
		char	   *red = NULL;

		if (redact && (red = ft_redact_text(content, strlen(content), NULL, counts)) == NULL)
			ok = false;
		else
			ok = AppendMessage(array, msgs[k].role, red ? red : content);
		free(red);
	}
	if (ok)
		text = DumpExample(array);
	json_decref(array);
	return text;
}

/* Redact every text content of a JSONL example in place */
static bool
RedactJsonExample(json_t *root, FtRedactCounts *counts)
{
	json_t	   *messages = json_object_get(root, "messages"),
			   *msg;
	size_t		k;

	json_array_foreach(messages, k, msg)
	{
		json_t	   *content = json_object_get(msg, "content"),
				   *part;
		size_t		p;

		if (json_is_array(content))
		{
			json_array_foreach(content, p, part)
			{
				json_t	   *txt = json_object_get(part, "text");
				char	   *red;
				size_t		len;

				if (!json_is_string(txt))
					continue;
				red = ft_redact_text(json_string_value(txt), json_string_length(txt), &len, counts);
				if (red == NULL || json_object_set_new(part, "text", json_stringn(red, len)) != 0)
				{
					free(red);
					return false;
				}
				free(red);
			}
		}
		else if (json_is_string(content))
		{
			size_t		len;
			char	   *red = ft_redact_text(json_string_value(content), json_string_length(content), &len, counts);

			if (red == NULL || json_object_set_new(msg, "content", json_stringn(red, len)) != 0)
			{
				free(red);
				return false;
			}
			free(red);
		}
	}
	return true;
}

/* Add one cut example to the set */
static bool
AddCut(FtExampleSet *set, char *json, int line, const FtRedactCounts *counts)
{
	if (json == NULL || !Reserve((void **) &set->items, &set->cap, set->n, sizeof(FtCutExample)))
	{
		free(json);
		return false;
	}
	set->items[set->n].json = json;
	set->items[set->n].line = line;
	memset(&set->items[set->n].counts, 0, sizeof(FtRedactCounts));
	if (counts)
		set->items[set->n].counts = *counts;
	set->n++;
	return true;
}

/* JSONL: one example per line, contents redacted when asked */
static bool
JsonlExamples(const FtTranscript *t, bool redact, FtExampleSet *set, char *errbuf, size_t errlen)
{
	int			k;

	for (k = 0; k < t->nexamples; k++)
	{
		FtRedactCounts counts;
		json_t	   *root;

		memset(&counts, 0, sizeof(counts));
		if (!redact)
		{
			if (!AddCut(set, strdup(t->examples[k]), t->example_lines[k], NULL))
				return snprintf(errbuf, errlen, "out of memory") < 0;
			continue;
		}
		root = json_loads(t->examples[k], 0, NULL);
		if (root == NULL || !RedactJsonExample(root, &counts))
		{
			json_decref(root);
			snprintf(errbuf, errlen, "line %d: cannot redact the example", t->example_lines[k]);
			return false;
		}
		ft_redact_add(&set->total, &counts);
		if (!AddCut(set, json_dumps(root, JSON_COMPACT), t->example_lines[k], &counts))
		{
			json_decref(root);
			return snprintf(errbuf, errlen, "out of memory") < 0;
		}
		json_decref(root);
	}
	set->turns = 0;
	return true;
}

typedef struct RoleTurn
{
	bool		assistant;
	int			line;
	char	   *text;
	FtRedactCounts counts;
} RoleTurn;

/* Turns mapped to user/assistant and merged; in group chats user lines keep their speaker name */
static RoleTurn *
RoleTurns(const FtTranscript *t, int assistant, bool redact, int *n)
{
	RoleTurn   *rt = calloc(t->nturns + 1, sizeof(RoleTurn));
	bool		group = t->nspeakers > 2;
	int			k,
				m = 0;

	for (k = 0; rt && k < t->nturns; k++)
	{
		const FtTurn *turn = &t->turns[k];
		bool		a = turn->speaker == assistant;
		char	   *piece;
		size_t		plen;

		if (group && !a)
		{
			plen = strlen(t->speakers[turn->speaker]) + strlen(turn->text) + 3;
			if ((piece = malloc(plen)) != NULL)
				snprintf(piece, plen, "%s: %s", t->speakers[turn->speaker], turn->text);
		}
		else
			piece = strdup(turn->text);
		if (piece == NULL)
			goto oom;
		if (m > 0 && rt[m - 1].assistant == a)
		{
			bool		ok = AppendText(&rt[m - 1].text, piece, strlen(piece));

			free(piece);
			if (!ok)
				goto oom;
			continue;
		}
		rt[m].assistant = a;
		rt[m].line = turn->line;
		rt[m].text = piece;
		m++;
	}
	for (k = 0; rt && redact && k < m; k++)
	{
		char	   *red = ft_redact_text(rt[k].text, strlen(rt[k].text), NULL, &rt[k].counts);

		if (red == NULL)
			goto oom;
		free(rt[k].text);
		rt[k].text = red;
	}
	*n = m;
	return rt;
oom:
	for (k = 0; k < m; k++)
		free(rt[k].text);
	free(rt);
	return NULL;
}

/* Cut examples; see transcript.h */
bool
ft_transcript_examples(const FtTranscript *t, int assistant, int context_turns, bool redact,
					   FtExampleSet *set, char *errbuf, size_t errlen)
{
	RoleTurn   *rt;
	int			n = 0,
				k,
				j;
	bool		ok = true;

	memset(set, 0, sizeof(*set));
	if (t->format == FT_TRANSCRIPT_JSONL)
		return JsonlExamples(t, redact, set, errbuf, errlen);
	if ((rt = RoleTurns(t, assistant, redact, &n)) == NULL)
		return snprintf(errbuf, errlen, "out of memory") < 0;
	set->turns = n;
	for (k = 0; k < n; k++)
		ft_redact_add(&set->total, &rt[k].counts);
	for (k = 0; k < n && ok; k++)
	{
		int			start;
		json_t	   *array;
		FtRedactCounts counts;

		if (!rt[k].assistant)
			continue;
		if (k == 0)
		{
			set->orphan_turns++;
			continue;
		}
		start = k - 1 - (context_turns > 0 ? context_turns : 0);
		if (start < 0)
			start = 0;
		if (rt[start].assistant)
			start++;
		memset(&counts, 0, sizeof(counts));
		array = json_array();
		for (j = start; j <= k && array; j++)
		{
			ft_redact_add(&counts, &rt[j].counts);
			if (!AppendMessage(array, rt[j].assistant ? "assistant" : "user", rt[j].text))
				ok = false;
		}
		ok = ok && array && AddCut(set, DumpExample(array), rt[k].line, &counts);
		json_decref(array);
	}
	for (k = 0; k < n; k++)
		free(rt[k].text);
	free(rt);
	if (!ok)
		snprintf(errbuf, errlen, "out of memory");
	return ok;
}

/* Free a set of cut examples */
void
ft_example_set_free(FtExampleSet *set)
{
	int			k;

	for (k = 0; k < set->n; k++)
		free(set->items[k].json);
	free(set->items);
	memset(set, 0, sizeof(*set));
}
