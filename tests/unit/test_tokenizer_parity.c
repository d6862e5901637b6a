/*
 * Parity of the C tokenizer with OpenAI's tiktoken on shared/data/tokenizer_parity.jsonl:
 * 5,858 texts with the ids @dqbd/tiktoken (OpenAI's Rust core in WebAssembly) gives them.
 * The corpus (6.4 MB) is not committed: it is read from $FT_SHARED_DIR/data, else from
 * ../shared/data next to the repository, and its absence fails the test.
 */
#include "tokenizer.h"
#include "unicode_categories.h"
#include "unit.h"

#include <jansson.h>

#define MAX_SHOWN 5

/* Locate the corpus; NULL if missing */
static FILE *
OpenCorpus(char *path, size_t size)
{
	const char *dir = getenv("FT_SHARED_DIR");
	FILE	   *f;

	if (dir != NULL && *dir != '\0')
	{
		snprintf(path, size, "%s/data/tokenizer_parity.jsonl", dir);
		if ((f = fopen(path, "r")) != NULL)
			return f;
		snprintf(path, size, "%s/tokenizer_parity.jsonl", dir);
		if ((f = fopen(path, "r")) != NULL)
			return f;
	}
	snprintf(path, size, "%s/../shared/data/tokenizer_parity.jsonl", FT_SHARE_DIR);
	return fopen(path, "r");
}

/* Print a short, escaped prefix of a text as a TAP comment */
static void
ShowText(const char *text, size_t len)
{
	size_t		i;

	printf("#   text: \"");
	for (i = 0; i < len && i < 80; i++)
	{
		unsigned char c = (unsigned char) text[i];

		if (c < 0x20 || c == 0x7F)
			printf("\\x%02X", c);
		else
			putchar(c);
	}
	printf("%s\" (%zu bytes)\n", len > 80 ? "…" : "", len);
}

/* Compare our ids with the expected array; prints the first difference */
static int
SameIds(const uint32_t *got, size_t n, json_t *want, int show)
{
	size_t		m = json_array_size(want);
	size_t		i;

	for (i = 0; i < n && i < m; i++)
		if (got[i] != (uint32_t) json_integer_value(json_array_get(want, i)))
			break;
	if (i == n && n == m)
		return 1;
	if (show)
		printf("#   %zu ids, want %zu; first difference at %zu: got %u, want %lld\n", n, m, i,
			   i < n ? got[i] : 0, i < m ? (long long) json_integer_value(json_array_get(want, i)) : -1LL);
	return 0;
}

int
main(void)
{
	static const char *names[2] = {"o200k_base", "cl100k_base"};
	FtEncoding *enc[2];
	int			mismatches[2] = {0, 0};
	int			count_mismatches[2] = {0, 0};
	int			lines = 0;
	char		path[4096];
	char		err[512];
	FILE	   *f;
	char	   *line = NULL;
	size_t		cap = 0;
	size_t		idcap = 1 << 16;
	uint32_t   *ids = malloc(idcap * sizeof(uint32_t));
	int			e;

	printf("# Unicode tables: %s\n", FT_UNICODE_VERSION);
	for (e = 0; e < 2; e++)
	{
		snprintf(path, sizeof(path), "%s/src/encodings/%s.tiktoken", FT_SHARE_DIR, names[e]);
		enc[e] = ft_encoding_load(path, names[e], err, sizeof(err));
		if (enc[e] == NULL)
		{
			printf("Bail out! %s\n", err);
			return 1;
		}
	}
	f = OpenCorpus(path, sizeof(path));
	if (f == NULL)
	{
		printf("Bail out! parity corpus tokenizer_parity.jsonl not found (last tried %s); set FT_SHARED_DIR\n", path);
		return 1;
	}
	printf("# corpus: %s\n", path);
	while (getline(&line, &cap, f) > 0)
	{
		json_error_t jerr;
		json_t	   *obj = json_loads(line, 0, &jerr);
		json_t	   *text = json_object_get(obj, "text");
		const char *s;
		size_t		len;

		if (obj == NULL || !json_is_string(text))
		{
			printf("Bail out! line %d of %s is not a parity record\n", lines + 1, path);
			return 1;
		}
		lines++;
		s = json_string_value(text);
		len = json_string_length(text);
		for (e = 0; e < 2; e++)
		{
			json_t	   *want = json_object_get(obj, names[e]);
			size_t		n = ft_encode(enc[e], s, len, ids, idcap);

			if (n > idcap)
			{
				printf("Bail out! more than %zu tokens in one text\n", idcap);
				return 1;
			}
			if (!SameIds(ids, n, want, mismatches[e] < MAX_SHOWN))
			{
				if (mismatches[e] < MAX_SHOWN)
				{
					printf("# %s mismatch on line %d\n", names[e], lines);
					ShowText(s, len);
				}
				mismatches[e]++;
			}
			if (ft_count_tokens(enc[e], s, len) != json_array_size(want))
				count_mismatches[e]++;
		}
		json_decref(obj);
	}
	fclose(f);
	OK(lines >= 5000, "parity corpus has %d texts", lines);
	for (e = 0; e < 2; e++)
	{
		IS_INT(mismatches[e], 0, "%s: ids of all %d texts equal tiktoken's", names[e], lines);
		IS_INT(count_mismatches[e], 0, "%s: ft_count_tokens equals the number of tiktoken ids", names[e]);
		ft_encoding_free(enc[e]);
	}
	free(line);
	free(ids);
	return unit_done();
}
