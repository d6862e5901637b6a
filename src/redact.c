/*
 * Redaction of personal data and secrets in free text.
 *
 * The scanner walks the text once. At each position where a token starts (the byte before is
 * not a letter, digit, '_' or part of a multibyte character) it asks the matchers, most
 * specific first, whether a finding starts there. Every matcher reads at most a fixed number of
 * bytes ahead and checks the bounds on every read, so the whole pass is linear and never reads
 * outside the buffer. A match describes the bytes to keep verbatim, the range to replace and the
 * kind; plain URLs and numbers that are not findings are copied as one piece so that their
 * parts (a path segment, one group of an order number) are not matched again on their own.
 */
#include "redact.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_URL		4096		/* longest URL considered */
#define MAX_TOKEN	8192		/* longest secret token considered */
#define MAX_GROUPS	12			/* digit groups in one number */

static const char *const KindNames[FT_REDACT_NKINDS] = {
	"email", "phone", "card", "iban", "ssn", "ip", "url", "secret"
};
static const char *const KindTokens[FT_REDACT_NKINDS] = {
	"[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[SSN]", "[IP]", "[URL]", "[SECRET]"
};

/* A finding: s[start, a) is kept, s[a, b) becomes the token of kind, s[b, end) is kept */
typedef struct Match
{
	size_t		a;
	size_t		b;
	size_t		end;
	int			kind;			/* -1: no finding, copy s[start, end) verbatim */
} Match;

typedef struct Text
{
	const unsigned char *s;
	size_t		n;
} Text;

typedef struct OutBuf
{
	char	   *buf;
	size_t		len;
	size_t		cap;
	bool		failed;
} OutBuf;

/* JSON key of a kind */
const char *
ft_redact_kind_name(FtRedactKind kind)
{
	return (kind >= 0 && kind < FT_REDACT_NKINDS) ? KindNames[kind] : "unknown";
}

/* Replacement token of a kind */
const char *
ft_redact_kind_token(FtRedactKind kind)
{
	return (kind >= 0 && kind < FT_REDACT_NKINDS) ? KindTokens[kind] : "[REDACTED]";
}

static inline bool
IsDigit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
IsUpper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static inline bool
IsAlpha(unsigned char c)
{
	return IsUpper(c) || (c >= 'a' && c <= 'z');
}

static inline bool
IsAlnum(unsigned char c)
{
	return IsAlpha(c) || IsDigit(c);
}

static inline bool
IsHex(unsigned char c)
{
	return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Letters, digits, '_' and any byte of a multibyte character belong to words */
static inline bool
IsWord(unsigned char c)
{
	return IsAlnum(c) || c == '_' || c >= 0x80;
}

static inline bool
IsSpace(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline unsigned char
Lower(unsigned char c)
{
	return IsUpper(c) ? (unsigned char) (c + 32) : c;
}

/* Byte at i, or 0 past the end: lets matchers peek without separate bound checks */
static inline unsigned char
At(const Text *t, size_t i)
{
	return i < t->n ? t->s[i] : 0;
}

/* Does the text at i start with lit (ASCII, case-insensitive when nocase)? */
static bool
HasPrefix(const Text *t, size_t i, const char *lit, bool nocase)
{
	size_t		k;

	for (k = 0; lit[k]; k++)
	{
		unsigned char c = At(t, i + k);

		if (c == 0)
			return false;
		if (nocase ? Lower(c) != Lower((unsigned char) lit[k]) : c != (unsigned char) lit[k])
			return false;
	}
	return true;
}

/* Length of the run of bytes accepted by pred starting at i, capped at max */
static size_t
Run(const Text *t, size_t i, bool (*pred) (unsigned char), size_t max)
{
	size_t		k = 0;

	while (k < max && i + k < t->n && pred(t->s[i + k]))
		k++;
	return k;
}

static void
OutAppend(OutBuf *o, const void *p, size_t n)
{
	if (o->failed || n == 0)
		return;
	if (o->len + n + 1 > o->cap)
	{
		size_t		cap = o->cap ? o->cap : 64;
		char	   *nb;

		while (o->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(o->buf, cap);
		if (nb == NULL)
		{
			o->failed = true;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

/* ---------- e-mail ---------- */

static bool
IsLocalChar(unsigned char c)
{
	return IsAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* End of a domain name with at least one dot and an alphabetic TLD starting at i, or 0 */
static size_t
DomainEnd(const Text *t, size_t i)
{
	size_t		k = i,
				label = i,
				lastdot = 0,
				j;

	while (k < t->n && k - i < 253)
	{
		unsigned char c = t->s[k];

		if (IsAlnum(c) || c == '-')
			k++;
		else if (c == '.' && k > label && IsAlnum(At(t, k + 1)))
		{
			lastdot = k;
			label = ++k;
		}
		else
			break;
	}
	if (lastdot == 0 || k - lastdot - 1 < 2 || k - lastdot - 1 > 24)
		return 0;
	for (j = lastdot + 1; j < k; j++)
		if (!IsAlpha(t->s[j]))
			return 0;
	if (IsWord(At(t, k)))
		return 0;
	return k;
}

/* An e-mail address: local@domain.tld */
static bool
MatchEmail(const Text *t, size_t i, Match *m)
{
	size_t		j = i + Run(t, i, IsLocalChar, 64);
	size_t		end;

	if (j == i || At(t, j) != '@' || t->s[i] == '.' || t->s[j - 1] == '.')
		return false;
	end = DomainEnd(t, j + 1);
	if (end == 0)
		return false;
	m->a = i;
	m->b = m->end = end;
	m->kind = FT_REDACT_EMAIL;
	return true;
}

/* ---------- IP addresses ---------- */

/* End of a dotted IPv4 address at i (octets 0-255, no leading zeros), or 0 */
static size_t
Ipv4End(const Text *t, size_t i)
{
	size_t		k = i;
	int			part;

	for (part = 0; part < 4; part++)
	{
		size_t		nd = Run(t, k, IsDigit, 4);
		int			v = 0;
		size_t		d;

		if (nd == 0 || nd > 3 || (nd > 1 && t->s[k] == '0'))
			return 0;
		for (d = 0; d < nd; d++)
			v = v * 10 + (t->s[k + d] - '0');
		if (v > 255)
			return 0;
		k += nd;
		if (part < 3)
		{
			if (At(t, k) != '.')
				return 0;
			k++;
		}
	}
	return k;
}

/* Is s[i, end) a valid IPv6 address (with at most one "::", optionally ending in IPv4)? */
static bool
ValidIpv6(const Text *t, size_t i, size_t end)
{
	int			groups = 0;
	bool		compressed = false;
	size_t		k = i;

	if (end - i < 2)
		return false;
	if (t->s[k] == ':')
	{
		if (At(t, k + 1) != ':')
			return false;
		compressed = true;
		k += 2;
		if (k == end)
			return false;		/* "::" alone */
	}
	while (k < end)
	{
		size_t		nh = 0;

		while (k + nh < end && IsHex(t->s[k + nh]) && nh < 5)
			nh++;
		if (k + nh < end && t->s[k + nh] == '.')
		{
			size_t		v4 = Ipv4End(t, k);

			if (v4 != end)
				return false;
			groups += 2;
			k = end;
			break;
		}
		if (nh == 0 || nh > 4)
			return false;
		groups++;
		k += nh;
		if (k == end)
			break;
		if (t->s[k] != ':')
			return false;
		k++;
		if (k < end && t->s[k] == ':')
		{
			if (compressed)
				return false;
			compressed = true;
			k++;
		}
		else if (k == end)
			return false;		/* trailing single colon */
	}
	return compressed ? groups <= 7 && groups >= 1 : groups == 8;
}

static bool
IsIpv6Char(unsigned char c)
{
	return IsHex(c) || c == ':' || c == '.';
}

/* An IPv4 or IPv6 address */
static bool
MatchIp(const Text *t, size_t i, Match *m)
{
	size_t		end = 0;

	if (IsDigit(t->s[i]))
	{
		end = Ipv4End(t, i);
		/* a fifth part or a longer number means a version string, not an address */
		if (end && (IsWord(At(t, end)) || ((At(t, end) == '.') && IsDigit(At(t, end + 1)))))
			end = 0;
	}
	if (end == 0 && (IsHex(t->s[i]) || t->s[i] == ':'))
	{
		size_t		run = Run(t, i, IsIpv6Char, 46);

		while (run > 0 && (t->s[i + run - 1] == '.'))
			run--;
		if (run >= 3 && !IsWord(At(t, i + run)) && ValidIpv6(t, i, i + run))
		{
			size_t		k,
						colons = 0;

			for (k = i; k < i + run; k++)
				colons += t->s[k] == ':';
			if (colons >= 2)
				end = i + run;
		}
	}
	if (end == 0)
		return false;
	m->a = i;
	m->b = m->end = end;
	m->kind = FT_REDACT_IP;
	return true;
}

/* ---------- URLs ---------- */

static bool
IsUrlChar(unsigned char c)
{
	return c > ' ' && c != '<' && c != '>' && c != '"' && c != '\'' && c != '`' && c != 0x7f && c < 0x80;
}

static bool
IsSchemeChar(unsigned char c)
{
	return IsAlnum(c) || c == '+' || c == '.' || c == '-';
}

/* Is a query parameter name one that carries a credential? */
static bool
SensitiveParam(const Text *t, size_t i, size_t len)
{
	static const char *const exact[] = {
		"key", "sig", "signature", "auth", "code", "pass", "pwd", "password", "secret",
		"session", "sessionid", "sid", "jwt", "otp", "apikey", "api_key", "api-key", NULL
	};
	static const char *const suffixes[] = {
		"token", "_key", "-key", "apikey", "secret", "signature", "credential", "password", NULL
	};
	char		name[40];
	size_t		k;
	int			e;

	if (len == 0 || len >= sizeof(name))
		return false;
	for (k = 0; k < len; k++)
		name[k] = (char) Lower(t->s[i + k]);
	name[len] = '\0';
	for (e = 0; exact[e]; e++)
		if (strcmp(name, exact[e]) == 0)
			return true;
	for (e = 0; suffixes[e]; e++)
	{
		size_t		sl = strlen(suffixes[e]);

		if (len >= sl && strcmp(name + len - sl, suffixes[e]) == 0)
			return true;
	}
	return false;
}

/* Does the query/fragment s[q, end) carry a credential or an e-mail address? */
static bool
SensitiveQuery(const Text *t, size_t q, size_t end)
{
	size_t		k = q;

	while (k < end)
	{
		size_t		name = k,
					eq = 0,
					stop;

		while (k < end && t->s[k] != '&' && t->s[k] != ';' && t->s[k] != '#' && t->s[k] != '?')
		{
			if (t->s[k] == '=' && eq == 0)
				eq = k;
			k++;
		}
		stop = k;
		if (eq && eq + 1 < stop)
		{
			Text		v = {t->s, stop};
			Match		em;

			if (SensitiveParam(t, name, eq - name))
				return true;
			if (MatchEmail(&v, eq + 1, &em))
				return true;
		}
		k++;
	}
	return false;
}

/*
 * A scheme://... URL. It becomes [URL] when it carries credentials (user info) or a token,
 * signature, key or e-mail in its query; otherwise it is kept, except that an IP address as
 * host becomes [IP].
 */
static bool
MatchUrl(const Text *t, size_t i, Match *m)
{
	size_t		scheme = Run(t, i, IsSchemeChar, 32);
	size_t		start,
				end,
				auth_end,
				host,
				host_end,
				k;
	int			open = 0;

	if (!IsAlpha(t->s[i]) || scheme == 0 || !HasPrefix(t, i + scheme, "://", false))
		return false;
	start = i + scheme + 3;
	end = start + Run(t, start, IsUrlChar, MAX_URL);
	if (end == start)
		return false;
	for (k = start; k < end; k++)
		open += t->s[k] == '(' ? 1 : t->s[k] == ')' ? -1 : 0;
	/* trailing punctuation belongs to the sentence, an unbalanced ')' to the parentheses */
	while (end > start)
	{
		unsigned char c = t->s[end - 1];

		if (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?')
			end--;
		else if (c == ')' && open < 0)
		{
			end--;
			open++;
		}
		else
			break;
	}
	if (end == start)
		return false;
	auth_end = start;
	while (auth_end < end && t->s[auth_end] != '/' && t->s[auth_end] != '?' && t->s[auth_end] != '#')
		auth_end++;
	m->end = end;
	host = start;
	for (k = start; k < auth_end; k++)
		if (t->s[k] == '@')
			host = k + 1;
	if (host != start)
	{
		m->a = i;
		m->b = end;
		m->kind = FT_REDACT_URL;
		return true;
	}
	for (k = auth_end; k < end; k++)
		if (t->s[k] == '?' || t->s[k] == '#')
			break;
	if (k < end && SensitiveQuery(t, k + 1, end))
	{
		m->a = i;
		m->b = end;
		m->kind = FT_REDACT_URL;
		return true;
	}
	/* host as an IP literal: keep the URL, hide the address */
	if (At(t, host) == '[')
	{
		host_end = host + 1;
		while (host_end < auth_end && t->s[host_end] != ']')
			host_end++;
		if (host_end < auth_end && ValidIpv6(t, host + 1, host_end))
		{
			m->a = host;
			m->b = host_end + 1;
			m->kind = FT_REDACT_IP;
			return true;
		}
	}
	else if ((host_end = Ipv4End(t, host)) != 0 &&
			 (host_end == auth_end || t->s[host_end] == ':'))
	{
		m->a = host;
		m->b = host_end;
		m->kind = FT_REDACT_IP;
		return true;
	}
	m->a = m->b = end;
	m->kind = -1;
	return true;
}

/* ---------- secrets ---------- */

static bool
IsKeyChar(unsigned char c)
{
	return IsAlnum(c) || c == '_' || c == '-';
}

static bool
IsB64Char(unsigned char c)
{
	return IsAlnum(c) || c == '_' || c == '-' || c == '.' || c == '~' || c == '+' || c == '/';
}

static bool
HasDigit(const Text *t, size_t i, size_t end)
{
	for (; i < end; i++)
		if (IsDigit(t->s[i]))
			return true;
	return false;
}

/* A fixed prefix followed by at least min characters of class pred, ending at a boundary */
static size_t
PrefixedToken(const Text *t, size_t i, const char *prefix, bool (*pred) (unsigned char),
			  size_t min, size_t max, bool need_digit)
{
	size_t		p = strlen(prefix),
				r;

	if (!HasPrefix(t, i, prefix, false))
		return 0;
	r = Run(t, i + p, pred, max);
	if (r < min || (r == max && pred(At(t, i + p + r))))
		return 0;
	if (IsAlnum(At(t, i + p + r)))
		return 0;
	if (need_digit && !HasDigit(t, i + p, i + p + r))
		return 0;
	return i + p + r;
}

static bool
IsUpperDigit(unsigned char c)
{
	return IsUpper(c) || IsDigit(c);
}

/* A JSON Web Token: eyJ<header>.eyJ<payload>.<signature> */
static size_t
JwtEnd(const Text *t, size_t i)
{
	size_t		k = i,
				r;

	if (!HasPrefix(t, k, "eyJ", false))
		return 0;
	r = Run(t, k, IsKeyChar, MAX_TOKEN);
	if (r < 8 || At(t, k + r) != '.')
		return 0;
	k += r + 1;
	if (!HasPrefix(t, k, "eyJ", false))
		return 0;
	r = Run(t, k, IsKeyChar, MAX_TOKEN);
	if (r < 8 || At(t, k + r) != '.')
		return 0;
	k += r + 1;
	k += Run(t, k, IsKeyChar, MAX_TOKEN);
	return k;
}

/* Well-known API key shapes: OpenAI, Stripe, AWS, GitHub, GitLab, Slack, Google, JWT */
static size_t
KnownKeyEnd(const Text *t, size_t i)
{
	static const char *const github[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", NULL};
	static const char *const stripe[] = {"sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_", NULL};
	static const char *const slack[] = {"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xapp-", NULL};
	size_t		e;
	int			k;

	/* every shape starts with one of these letters; most words are rejected here */
	if (strchr("sAgrwxe", t->s[i]) == NULL)
		return 0;
	if ((e = PrefixedToken(t, i, "sk-", IsKeyChar, 20, MAX_TOKEN, true)) != 0)
		return e;
	if ((e = PrefixedToken(t, i, "AKIA", IsUpperDigit, 16, 16, false)) != 0 ||
		(e = PrefixedToken(t, i, "ASIA", IsUpperDigit, 16, 16, false)) != 0)
		return e;
	for (k = 0; github[k]; k++)
		if ((e = PrefixedToken(t, i, github[k], IsAlnum, 30, 255, false)) != 0)
			return e;
	if ((e = PrefixedToken(t, i, "github_pat_", IsKeyChar, 20, 255, false)) != 0 ||
		(e = PrefixedToken(t, i, "glpat-", IsKeyChar, 20, 255, false)) != 0)
		return e;
	for (k = 0; stripe[k]; k++)
		if ((e = PrefixedToken(t, i, stripe[k], IsAlnum, 16, 255, false)) != 0)
			return e;
	for (k = 0; slack[k]; k++)
		if ((e = PrefixedToken(t, i, slack[k], IsKeyChar, 10, 255, false)) != 0)
			return e;
	if ((e = PrefixedToken(t, i, "AIza", IsKeyChar, 35, 35, false)) != 0)
		return e;
	return JwtEnd(t, i);
}

/*
 * "Bearer <token>" / "Basic <base64>" and key=value pairs such as api_key=..., password: ...
 * The word before the secret is kept so that the text still reads naturally.
 */
static bool
MatchLabelledSecret(const Text *t, size_t i, Match *m)
{
	static const char *const labels[] = {
		"api_key", "api-key", "apikey", "access_token", "auth_token", "refresh_token", "id_token",
		"client_secret", "secret_key", "private_key", "password", "passwd", "token", "secret", NULL
	};
	size_t		v = 0,
				r;
	int			k;

	if (strchr("abcioprst", Lower(t->s[i])) == NULL)
		return false;
	if (HasPrefix(t, i, "bearer", true) && IsSpace(At(t, i + 6)))
		v = i + 6;
	else if (HasPrefix(t, i, "Basic", false) && IsSpace(At(t, i + 5)))
		v = i + 5;
	if (v)
	{
		while (At(t, v) == ' ' || At(t, v) == '\t')
			v++;
		r = Run(t, v, IsB64Char, MAX_TOKEN);
		while (At(t, v + r) == '=' && r < MAX_TOKEN)
			r++;
		if (r >= (t->s[i] == 'B' && t->s[i + 1] == 'a' ? 12u : 16u) && HasDigit(t, v, v + r) &&
			!IsWord(At(t, v + r)))
		{
			m->a = v;
			m->b = m->end = v + r;
			m->kind = FT_REDACT_SECRET;
			return true;
		}
		return false;
	}
	for (k = 0; labels[k]; k++)
	{
		size_t		l = strlen(labels[k]);

		if (!HasPrefix(t, i, labels[k], true) || IsWord(At(t, i + l)))
			continue;
		v = i + l;
		while (At(t, v) == ' ')
			v++;
		if (At(t, v) != '=' && At(t, v) != ':')
			return false;
		v++;
		while (At(t, v) == ' ')
			v++;
		if (At(t, v) == '"' || At(t, v) == '\'')
			v++;
		r = Run(t, v, IsB64Char, MAX_TOKEN);
		while (At(t, v + r) == '=' && r < MAX_TOKEN)
			r++;
		if (r < 8 || !HasDigit(t, v, v + r))
			return false;
		m->a = v;
		m->b = m->end = v + r;
		m->kind = FT_REDACT_SECRET;
		return true;
	}
	return false;
}

/* Any secret shape */
static bool
MatchSecret(const Text *t, size_t i, Match *m)
{
	size_t		e = KnownKeyEnd(t, i);

	if (e)
	{
		m->a = i;
		m->b = m->end = e;
		m->kind = FT_REDACT_SECRET;
		return true;
	}
	return MatchLabelledSecret(t, i, m);
}

/* ---------- IBAN ---------- */

/* Registered IBAN length of a country, 0 when unknown */
static int
IbanLength(unsigned char a, unsigned char b)
{
	static const char *const table =
		"AD24AE23AL28AT20AZ28BA20BE16BG22BH22BR29BY28CH21CR22CY28CZ24DE22DK18DO28EE20EG29"
		"ES24FI18FO18FR27GB22GE22GI23GL18GR27GT28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20"
		"LB28LC32LI21LT20LU20LV21MC27MD24ME22MK19MR27MT31MU30NL18NO15PK24PL28PS29PT25QA29"
		"RO24RS22SA24SC31SE24SI19SK24SM27ST25SV28TL23TN24TR26UA29VA22VG24XK20";
	size_t		k;

	for (k = 0; table[k]; k += 4)
		if ((unsigned char) table[k] == a && (unsigned char) table[k + 1] == b)
			return (table[k + 2] - '0') * 10 + (table[k + 3] - '0');
	return 0;
}

/* An IBAN of the registered length for its country, plain or in groups of four, mod-97 valid */
static bool
MatchIban(const Text *t, size_t i, Match *m)
{
	char		iban[40];
	int			want,
				got = 0,
				rem = 0,
				k;
	size_t		p = i;

	if (!IsUpper(t->s[i]) || !IsUpper(At(t, i + 1)) || !IsDigit(At(t, i + 2)) || !IsDigit(At(t, i + 3)))
		return false;
	want = IbanLength(t->s[i], t->s[i + 1]);
	if (want == 0)
		return false;
	while (got < want && p < t->n)
	{
		unsigned char c = t->s[p];

		if (IsDigit(c) || IsUpper(c))
		{
			iban[got++] = (char) c;
			p++;
		}
		else if (c == ' ' && got % 4 == 0 && got > 0 && IsAlnum(At(t, p + 1)))
			p++;
		else
			break;
	}
	if (got != want || IsAlnum(At(t, p)))
		return false;
	m->a = i;
	m->b = m->end = p;
	/* move the first four characters to the end, letters count as 10..35 */
	for (k = 0; k < want; k++)
	{
		char		c = iban[(k + 4) % want];

		if (IsDigit((unsigned char) c))
			rem = (rem * 10 + (c - '0')) % 97;
		else
			rem = (rem * 100 + (c - 'A' + 10)) % 97;
	}
	/* a full-length IBAN with wrong check digits is a typo, kept whole rather than half-matched */
	m->kind = rem == 1 ? FT_REDACT_IBAN : -1;
	return true;
}

/* ---------- numbers: SSN, card, phone ---------- */

typedef struct Number
{
	bool		plus;
	bool		paren;
	int			ngroups;
	int			ndigits;
	int			glen[MAX_GROUPS];
	size_t		gend[MAX_GROUPS];	/* end of each group */
	char		sep[MAX_GROUPS];	/* separator before group g (0 for none) */
	char		digits[32];
	size_t		end;
} Number;

/* Read digit groups separated by single spaces, dashes or dots, with optional (area) and + */
static void
ReadNumber(const Text *t, size_t i, Number *num)
{
	size_t		k = i;
	char		sep = 0;

	memset(num, 0, sizeof(*num));
	if (t->s[k] == '+')
	{
		num->plus = true;
		k++;
	}
	num->end = i;
	while (num->ngroups < MAX_GROUPS)
	{
		bool		paren = false;
		size_t		nd;
		size_t		d;

		if (At(t, k) == '(')
		{
			paren = true;
			k++;
		}
		nd = Run(t, k, IsDigit, 20);
		if (nd == 0 || (paren && At(t, k + nd) != ')') || num->ndigits + nd > 24)
			break;
		for (d = 0; d < nd; d++)
			num->digits[num->ndigits + d] = (char) t->s[k + d];
		num->ndigits += (int) nd;
		num->glen[num->ngroups] = (int) nd;
		num->sep[num->ngroups] = sep;
		k += nd + (paren ? 1 : 0);
		num->paren |= paren;
		num->gend[num->ngroups++] = k;
		num->end = k;
		sep = 0;
		if (At(t, k) == ' ' || At(t, k) == '-' || At(t, k) == '.')
		{
			sep = (char) t->s[k];
			if (!(IsDigit(At(t, k + 1)) || At(t, k + 1) == '('))
				break;
			k++;
		}
		else if (!(paren && IsDigit(At(t, k))))
			break;
	}
	num->digits[num->ndigits] = '\0';
}

/* Luhn checksum of a digit string */
static bool
LuhnOk(const char *d, int n)
{
	int			sum = 0,
				k;

	for (k = 0; k < n; k++)
	{
		int			v = d[n - 1 - k] - '0';

		if (k % 2 == 1)
		{
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* Does the number start like a card of a real network (Visa, Mastercard, Amex, ...)? */
static bool
CardPrefixOk(const char *d, int n)
{
	int			p2 = (d[0] - '0') * 10 + (d[1] - '0');
	int			p4 = p2 * 100 + (d[2] - '0') * 10 + (d[3] - '0');

	if (d[0] == '4')
		return n == 13 || n == 16 || n == 19;	/* Visa */
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
		return n == 16;			/* Mastercard */
	if (p2 == 34 || p2 == 37)
		return n == 15;			/* American Express */
	if (p2 == 36 || p2 == 38 || (p4 >= 3000 && p4 <= 3059))
		return n >= 14 && n <= 19;	/* Diners */
	if (p4 >= 3528 && p4 <= 3589)
		return n >= 16 && n <= 19;	/* JCB */
	if (d[0] == '6' || p2 == 50 || (p2 >= 56 && p2 <= 58))
		return n >= 13 && n <= 19;	/* Discover, UnionPay, Maestro */
	return false;
}

static bool
IsCard(const Number *num)
{
	int			g;
	char		sep = 0;

	if (num->plus || num->paren || num->ndigits < 13 || num->ndigits > 19)
		return false;
	for (g = 1; g < num->ngroups; g++)
	{
		if (num->sep[g] == '.' || (sep && num->sep[g] != sep))
			return false;
		sep = num->sep[g];
	}
	for (g = 0; g < num->ngroups && num->ngroups > 1; g++)
		if (num->glen[g] < 3 || num->glen[g] > 6)
			return false;
	return CardPrefixOk(num->digits, num->ndigits) && LuhnOk(num->digits, num->ndigits);
}

/* AAA-GG-SSSS; returns 1 valid SSN, 0 not this shape, -1 this shape but an invalid number */
static int
SsnShape(const Number *num)
{
	int			area,
				group,
				serial;

	if (num->plus || num->paren || num->ngroups != 3 || num->glen[0] != 3 || num->glen[1] != 2 ||
		num->glen[2] != 4 || num->sep[1] != '-' || num->sep[2] != '-')
		return 0;
	area = atoi((char[]) {num->digits[0], num->digits[1], num->digits[2], 0});
	group = (num->digits[3] - '0') * 10 + (num->digits[4] - '0');
	serial = atoi(num->digits + 5);
	if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
		return -1;
	if (strcmp(num->digits, "078051120") == 0 || strcmp(num->digits, "219099999") == 0)
		return -1;				/* numbers published in advertising */
	return 1;
}

/* Is the word before position i (within 32 bytes) one that announces a phone number? */
static bool
PhoneContext(const Text *t, size_t i)
{
	static const char *const words[] = {
		"phone", "tel", "call", "mobile", "cell", "whatsapp", "sms", "fax", "text me", "reach me",
		"contact", "number is", "ring", NULL
	};
	size_t		from = i > 32 ? i - 32 : 0,
				k;
	int			w;

	for (k = from; k < i; k++)
	{
		if (k > 0 && IsAlpha(t->s[k - 1]))
			continue;
		for (w = 0; words[w]; w++)
			if (k + strlen(words[w]) <= i && HasPrefix(t, k, words[w], true) &&
				!IsAlpha(At(t, k + strlen(words[w]))))
				return true;
	}
	return false;
}

/* Do the first three groups read as a date (d/m/yyyy or yyyy/m/d with one separator)? */
static bool
DateLike(const Number *num)
{
	if (num->ngroups < 3 || num->sep[1] != num->sep[2])
		return false;
	return (num->glen[0] <= 2 && num->glen[1] <= 2 && num->glen[2] == 4) ||
		(num->glen[0] == 4 && num->glen[1] <= 2 && num->glen[2] <= 2);
}

static bool
IsPhone(const Text *t, size_t i, const Number *num)
{
	int			g;
	bool		thousands = num->ngroups >= 3;

	if (num->plus)
		return num->ndigits >= 8 && num->ndigits <= 15 && num->digits[0] != '0';
	if (num->ndigits < 9 || num->ndigits > 12)
		return false;
	if (num->ngroups == 1)
		return num->ndigits <= 11 && PhoneContext(t, i);
	if (DateLike(num))
		return false;
	/* 1 234 567 890 is a big number, not a phone; Spanish mobiles 612 345 678 are the exception */
	for (g = 1; g < num->ngroups; g++)
		if (num->glen[g] != 3 || num->sep[g] == '-')
			thousands = false;
	if (thousands && !(num->ngroups == 3 && num->glen[0] == 3 && (num->digits[0] == '6' || num->digits[0] == '7')))
		return false;
	if (num->paren && t->s[i] == '(')
		return true;
	if (num->digits[0] == '0' || num->glen[0] == 3)
		return true;
	return num->glen[0] == 1 && num->digits[0] == '1' && num->glen[1] == 3;
}

/*
 * A number starting at i: an SSN, a card or a phone number. Numbers that are none of these are
 * skipped a group at a time so that a later group can still start a phone number.
 */
static bool
MatchNumber(const Text *t, size_t i, Match *m)
{
	Number		num;
	unsigned char next;
	int			ssn;

	if (!(IsDigit(t->s[i]) || ((t->s[i] == '+' || t->s[i] == '(') && IsDigit(At(t, i + 1)))))
		return false;
	ReadNumber(t, i, &num);
	if (num.ngroups == 0)
		return false;
	next = At(t, num.end);
	/* decimals, percentages, and numbers glued to letters are not findings */
	if (IsWord(next) || next == '%' || ((next == '.' || next == ',') && IsDigit(At(t, num.end + 1))))
	{
		m->a = m->b = m->end = num.gend[0];
		m->kind = -1;
		return true;
	}
	m->a = i;
	m->b = m->end = num.end;
	ssn = SsnShape(&num);
	if (ssn != 0)
	{
		m->kind = ssn > 0 ? FT_REDACT_SSN : -1;
		return true;
	}
	if (IsCard(&num))
		m->kind = FT_REDACT_CARD;
	else if (IsPhone(t, i, &num))
		m->kind = FT_REDACT_PHONE;
	else
	{
		m->a = m->b = m->end = num.gend[0];
		m->kind = -1;
	}
	return true;
}

/* ---------- the scan ---------- */

/* May a number start at i? Not after '.', '-', '/', '#', '$', ',' or inside a word */
static inline bool
NumberStartOk(const Text *t, size_t i)
{
	unsigned char p = i > 0 ? t->s[i - 1] : ' ';

	return !(IsWord(p) || p == '.' || p == '-' || p == '/' || p == '#' || p == '$' || p == ',' ||
			 p == '+' || p == '=' || p == '\\');
}

/* Try every matcher at a token start, most specific first */
static bool
MatchAt(const Text *t, size_t i, Match *m)
{
	unsigned char c = t->s[i];

	if (IsAlpha(c) && MatchUrl(t, i, m))
		return true;
	if (IsAlnum(c) && MatchSecret(t, i, m))
		return true;
	if (IsLocalChar(c) && MatchEmail(t, i, m))
		return true;
	if (IsUpper(c) && MatchIban(t, i, m))
		return true;
	if ((IsHex(c) || c == ':') && (!IsDigit(c) || NumberStartOk(t, i)) &&
		!(i > 0 && t->s[i - 1] == ':') && MatchIp(t, i, m))
		return true;
	if ((IsDigit(c) || c == '+' || c == '(') && NumberStartOk(t, i) && MatchNumber(t, i, m))
		return true;
	return false;
}

/* Redact a text; see redact.h */
char *
ft_redact_text(const char *in, size_t len, size_t *outlen, FtRedactCounts *counts)
{
	Text		t = {(const unsigned char *) in, len};
	OutBuf		o = {NULL, 0, 0, false};
	size_t		i = 0,
				copied = 0;

	o.buf = malloc(len + 16);
	if (o.buf == NULL)
		return NULL;
	o.cap = len + 16;
	while (i < len)
	{
		Match		m;

		if ((i == 0 || !IsWord(t.s[i - 1])) && t.s[i] < 0x80 && !IsSpace(t.s[i]) &&
			MatchAt(&t, i, &m) && m.end > i)
		{
			if (m.kind >= 0)
			{
				OutAppend(&o, in + copied, m.a - copied);
				OutAppend(&o, KindTokens[m.kind], strlen(KindTokens[m.kind]));
				copied = m.b;
				if (counts)
					counts->n[m.kind]++;
			}
			i = m.end;
			continue;
		}
		i++;
	}
	OutAppend(&o, in + copied, len - copied);
	if (o.failed)
	{
		free(o.buf);
		return NULL;
	}
	o.buf[o.len] = '\0';
	if (outlen)
		*outlen = o.len;
	return o.buf;
}

/* Total of all kinds */
int
ft_redact_total(const FtRedactCounts *counts)
{
	int			k,
				sum = 0;

	for (k = 0; k < FT_REDACT_NKINDS; k++)
		sum += counts->n[k];
	return sum;
}

/* Add b into a */
void
ft_redact_add(FtRedactCounts *a, const FtRedactCounts *b)
{
	int			k;

	for (k = 0; k < FT_REDACT_NKINDS; k++)
		a->n[k] += b->n[k];
}

/* Non-zero counts as a JSON object */
void
ft_redact_counts_json(const FtRedactCounts *counts, char *buf, size_t buflen)
{
	size_t		len = 0;
	int			k;

	if (buflen == 0)
		return;
	len += snprintf(buf, buflen, "{");
	for (k = 0; k < FT_REDACT_NKINDS && len < buflen; k++)
		if (counts->n[k] > 0)
			len += snprintf(buf + len, buflen - len, "%s\"%s\":%d", len > 1 ? "," : "",
							KindNames[k], counts->n[k]);
	if (len < buflen)
		snprintf(buf + len, buflen - len, "}");
}
