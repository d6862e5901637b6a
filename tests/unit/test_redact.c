/*
 * Unit tests of the redactor: what must be found, and look-alikes that must be left alone.
 */
#include "redact.h"
#include "unit.h"

static FtRedactCounts last;

/* Redact a C string; the result stays valid until the next call */
static const char *
R(const char *in)
{
	static char *prev = NULL;
	size_t		outlen = 0;

	free(prev);
	memset(&last, 0, sizeof(last));
	prev = ft_redact_text(in, strlen(in), &outlen, &last);
	if (prev && strlen(prev) != outlen)
		return "(length mismatch)";
	return prev;
}

/* The text must come back unchanged with nothing counted */
#define KEEP(in) \
	do { \
		IS_STR(R(in), in, "kept: %s", in); \
		IS_INT(ft_redact_total(&last), 0, "nothing counted: %s", in); \
	} while (0)

#define REDACTS(in, want, kind, cnt) \
	do { \
		IS_STR(R(in), want, "redacts: %s", in); \
		IS_INT(last.n[kind], cnt, "counted %s: %s", ft_redact_kind_name(kind), in); \
	} while (0)

static void
test_email(void)
{
	REDACTS("Write to john.doe@example.com today", "Write to [EMAIL] today", FT_REDACT_EMAIL, 1);
	REDACTS("a+tag@sub.example.co.uk, b_c@x.org.", "[EMAIL], [EMAIL].", FT_REDACT_EMAIL, 2);
	REDACTS("<maria.lopez@correo.es>", "<[EMAIL]>", FT_REDACT_EMAIL, 1);
	REDACTS("mailto:ann@example.com", "mailto:[EMAIL]", FT_REDACT_EMAIL, 1);
	REDACTS("Écrivez à zoë@example.fr svp", "Écrivez à zoë@example.fr svp", FT_REDACT_EMAIL, 0);
	REDACTS("é anna@example.fr", "é [EMAIL]", FT_REDACT_EMAIL, 1);
	KEEP("follow @handle on the app");
	KEEP("user@localhost is not an address we redact");
	KEEP("price: 3@4.50 each");
	KEEP("me@home.");
}

static void
test_phone(void)
{
	REDACTS("Call me at +1 (415) 555-2671 tomorrow", "Call me at [PHONE] tomorrow", FT_REDACT_PHONE, 1);
	REDACTS("UK office: +44 20 7946 0958.", "UK office: [PHONE].", FT_REDACT_PHONE, 1);
	REDACTS("Mobile +33612345678", "Mobile [PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("+49 (0)30 1234567", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("(415) 555-2671", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("415-555-2671 or 415.555.2671", "[PHONE] or [PHONE]", FT_REDACT_PHONE, 2);
	REDACTS("1 800 555 1234", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("020 7946 0958", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("07700 900123", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("06 12 34 56 78", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("06.12.34.56.78", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("612 345 678", "[PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("my number is 4155552671", "my number is [PHONE]", FT_REDACT_PHONE, 1);
	REDACTS("call 07700900123 after 5", "call [PHONE] after 5", FT_REDACT_PHONE, 1);
	REDACTS("born 1990, 415-555-2671", "born 1990, [PHONE]", FT_REDACT_PHONE, 1);
	/* look-alikes */
	KEEP("It costs $1,299.99 or 1 299 €");
	KEEP("We grew from 1 234 567 to 2 345 678 users");
	KEEP("Order 4155552671 has shipped");
	KEEP("order #123456789012");
	KEEP("ORD-2024-000123456");
	KEEP("On 2024-01-15 10:30 we met");
	KEEP("On 05-01-2024 10:30 we met");
	KEEP("15.01.2024 and 15/01/2024");
	KEEP("in 2019 2020 2021 sales rose 12.5%");
	KEEP("version 2.10.4 and 10.0.19041.1");
	KEEP("pi is 3.14159265358979");
	KEEP("ISBN 978-3-16-148410-0");
	KEEP("555-1234");
	KEEP("+5");
	KEEP("score 3-2-1");
}

static void
test_card(void)
{
	REDACTS("card 4111 1111 1111 1111 exp 12/26", "card [CARD] exp 12/26", FT_REDACT_CARD, 1);
	REDACTS("4111-1111-1111-1111", "[CARD]", FT_REDACT_CARD, 1);
	REDACTS("5555555555554444", "[CARD]", FT_REDACT_CARD, 1);
	REDACTS("Amex 3782 822463 10005.", "Amex [CARD].", FT_REDACT_CARD, 1);
	REDACTS("6011111111111117", "[CARD]", FT_REDACT_CARD, 1);
	REDACTS("2223003122003222", "[CARD]", FT_REDACT_CARD, 1);
	/* Luhn fails, or not a card network, or mixed separators */
	KEEP("4111 1111 1111 1112");
	KEEP("tracking 1234567890123456");
	KEEP("9111111111111111");
	KEEP("4111-1111 1111-1111");
}

static void
test_iban(void)
{
	REDACTS("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN] please", FT_REDACT_IBAN, 1);
	REDACTS("DE89370400440532013000", "[IBAN]", FT_REDACT_IBAN, 1);
	REDACTS("GB82 WEST 1234 5698 7654 32", "[IBAN]", FT_REDACT_IBAN, 1);
	REDACTS("FR14 2004 1010 0505 0001 3M02 606", "[IBAN]", FT_REDACT_IBAN, 1);
	REDACTS("NO9386011117947", "[IBAN]", FT_REDACT_IBAN, 1);
	KEEP("DE89 3704 0044 0532 0130 01");	/* check digits wrong */
	KEEP("DE89370400440532013000X");
	KEEP("ZZ12 3456 7890 1234");
	KEEP("AB12 is a model number");
}

static void
test_ssn(void)
{
	REDACTS("SSN 123-45-6789.", "SSN [SSN].", FT_REDACT_SSN, 1);
	REDACTS("ssn: 536-22-1234", "ssn: [SSN]", FT_REDACT_SSN, 1);
	KEEP("000-12-3456");
	KEEP("666-12-3456");
	KEEP("912-12-3456");
	KEEP("123-00-4567");
	KEEP("123-45-0000");
	KEEP("078-05-1120");
}

static void
test_ip(void)
{
	REDACTS("server 192.168.1.20 is down", "server [IP] is down", FT_REDACT_IP, 1);
	REDACTS("dns 8.8.8.8.", "dns [IP].", FT_REDACT_IP, 1);
	REDACTS("v6 2001:db8::8a2e:370:7334 ok", "v6 [IP] ok", FT_REDACT_IP, 1);
	REDACTS("loopback ::1", "loopback [IP]", FT_REDACT_IP, 1);
	REDACTS("fe80::1 and 2001:0db8:0000:0000:0000:ff00:0042:8329", "[IP] and [IP]", FT_REDACT_IP, 2);
	REDACTS("::ffff:192.0.2.128", "[IP]", FT_REDACT_IP, 1);
	REDACTS("http://10.0.0.5:8080/admin", "http://[IP]:8080/admin", FT_REDACT_IP, 1);
	REDACTS("http://[2001:db8::1]/x", "http://[IP]/x", FT_REDACT_IP, 1);
	KEEP("256.1.1.1");
	KEEP("1.2.3.4.5");
	KEEP("v1.2.3.4");
	KEEP("at 10:30:45 sharp");
	KEEP("MAC 00:1A:2B:3C:4D:5E");
	KEEP("std::vector<int>");
	KEEP("ratio 3:2");
	KEEP("01.02.03.04");
}

static void
test_url(void)
{
	REDACTS("see https://bob:hunter2@example.com/x", "see [URL]", FT_REDACT_URL, 1);
	REDACTS("https://example.com/reset?token=abc123&x=1.", "[URL].", FT_REDACT_URL, 1);
	REDACTS("(https://api.example.com/v1?api_key=XYZ)", "([URL])", FT_REDACT_URL, 1);
	REDACTS("https://s3.amazonaws.com/b/k?X-Amz-Signature=abcd&X-Amz-Credential=a",
			"[URL]", FT_REDACT_URL, 1);
	REDACTS("https://cdn.example.com/f.png?sig=ff00", "[URL]", FT_REDACT_URL, 1);
	REDACTS("https://x.com/cb#access_token=ya29.abc", "[URL]", FT_REDACT_URL, 1);
	REDACTS("https://x.com/unsubscribe?email=ann@example.com", "[URL]", FT_REDACT_URL, 1);
	KEEP("Docs at https://www.postgresql.org/docs/15/sql-createtrigger.html.");
	KEEP("https://example.com/search?q=shoes&page=2");
	KEEP("https://example.com/order/4155552671");
	KEEP("(see https://en.wikipedia.org/wiki/Foo_(bar))");
	KEEP("ftp://");
}

static void
test_secret(void)
{
	REDACTS("key sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD ok", "key [SECRET] ok", FT_REDACT_SECRET, 1);
	REDACTS("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("AKIAIOSFODNN7EXAMPLE", "[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("Authorization: Bearer abcdef0123456789ABCDEF", "Authorization: Bearer [SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
			"token [SECRET] end", FT_REDACT_SECRET, 1);
	REDACTS("api_key=9f8e7d6c5b4a3210", "api_key=[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("password: hunter22!", "password: [SECRET]!", FT_REDACT_SECRET, 1);
	REDACTS("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("xoxb-1234567890-abcdefghij", "[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[SECRET]", FT_REDACT_SECRET, 1);
	REDACTS("AIzaSyA1234567890abcdefghijklmnopqrstuv", "[SECRET]", FT_REDACT_SECRET, 1);
	KEEP("the sk-ier went skiing");
	KEEP("sk-learn is a library");
	KEEP("a bearer of good news arrived");
	KEEP("Basic understanding required");
	KEEP("Forgot your password: click reset");
	KEEP("AKIA is not enough");
	KEEP("token: none");
}

static void
test_mixed(void)
{
	const char *in = "Hi, I'm Ana (ana@mail.com, +34 612 345 678). Card 4111111111111111, IBAN ES9121000418450200051332.";

	IS_STR(R(in), "Hi, I'm Ana ([EMAIL], [PHONE]). Card [CARD], IBAN [IBAN].", "mixed sentence");
	IS_INT(ft_redact_total(&last), 4, "four findings");
	{
		char		buf[160];

		ft_redact_counts_json(&last, buf, sizeof(buf));
		IS_STR(buf, "{\"email\":1,\"phone\":1,\"card\":1,\"iban\":1}", "counts as JSON");
		memset(&last, 0, sizeof(last));
		ft_redact_counts_json(&last, buf, sizeof(buf));
		IS_STR(buf, "{}", "no counts");
	}
	KEEP("");
	KEEP("Привет! Как дела? 😀 日本語のテキスト");
	KEEP("Meeting at 3pm, room 101, floor 2, total 45.50 EUR, 20% off, year 2023.");
	/* embedded NUL and bytes past it are handled by length, not by terminator */
	{
		const char	raw[] = "a\0b 8.8.8.8";
		size_t		outlen;
		char	   *o = ft_redact_text(raw, sizeof(raw) - 1, &outlen, NULL);

		IS_INT(outlen, 8, "length-driven with embedded NUL");
		OK(o && memcmp(o, "a\0b [IP]", 8) == 0, "embedded NUL kept");
		free(o);
	}
}

int
main(void)
{
	test_email();
	test_phone();
	test_card();
	test_iban();
	test_ssn();
	test_ip();
	test_url();
	test_secret();
	test_mixed();
	return unit_done();
}
