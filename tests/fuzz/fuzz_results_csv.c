/*
 * libFuzzer target for what the worker reads from a provider besides JSON: the result CSV (raw
 * or base64, src/results_csv.c), the Retry-After header and the host allow-list
 * (src/http_policy.c).
 *
 * Input: the first byte chooses what to test; the rest is
 *   0: the result file, given as exactly its bytes (no NUL after them, so reading past the end
 *      is caught);
 *   1: a Retry-After value;
 *   2: allow-list \n host \n port (the port as a decimal number; missing parts are empty);
 *   3: all of the above on the same bytes, plus ft_classify_response with the bytes as error code.
 * Checks, besides the sanitizers: the returned count is the number of row callbacks,
 * Retry-After is -1 or a non-negative delay, the refusal text is NUL-terminated in its buffer.
 *
 * Build and run from the repository root (or use tests/fuzz/run.sh):
 *   mkdir -p tests/fuzz/bin
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc $(pkg-config --cflags jansson) \
 *     -o tests/fuzz/bin/fuzz_results_csv tests/fuzz/fuzz_results_csv.c src/results_csv.c \
 *     src/http_policy.c $(pkg-config --libs jansson) -lm
 *   tests/fuzz/bin/fuzz_results_csv -max_total_time=300 -detect_leaks=1 tests/fuzz/corpus/results_csv
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_policy.h"
#include "provider.h"

typedef struct Seen
{
	int			rows;
	double		sum;
} Seen;

/* Count the rows and read their values */
static void
OnRow(void *arg, const FtMetricsRow *r)
{
	Seen	   *seen = arg;

	seen->rows++;
	/* read every field, so a row built from uninitialised or freed memory is reported */
	seen->sum += (double) r->step + r->train_loss + r->train_accuracy + r->valid_loss + r->valid_accuracy +
		r->full_valid_loss + r->full_valid_accuracy;
}

/* The CSV parser on exactly these bytes */
static void
FuzzCsv(const uint8_t *data, size_t size)
{
	char	   *exact = malloc(size ? size : 1);
	Seen		seen = {0};
	int			n;

	memcpy(exact, data, size);
	n = ft_parse_results_csv(exact, size, OnRow, &seen);
	if (n != -1 && n != seen.rows)
		abort();
	/* base64 decodes 4 bytes to 3, so the decoded text never has more lines than raw bytes */
	if (n > 0 && (size_t) n > size)
		abort();
	if (n == -1 && seen.rows != 0)
		abort();
	free(exact);
}

/* Retry-After on a NUL-terminated copy */
static void
FuzzRetryAfter(const char *value)
{
	long		ms = ft_parse_retry_after(value, 1714557630L);

	if (ms < -1)
		abort();
	ms = ft_parse_retry_after(value, 0);
	if (ms < -1)
		abort();
}

/* allow-list \n host \n port */
static void
FuzzHost(char *text)
{
	char	   *host = strchr(text, '\n');
	char	   *port_text = NULL;
	long		port = 443;
	char		why[256];
	char		tiny[4];

	if (host)
	{
		*host++ = '\0';
		port_text = strchr(host, '\n');
		if (port_text)
		{
			*port_text++ = '\0';
			port = strtol(port_text, NULL, 10);
		}
	}
	else
		host = "api.openai.com";
	memset(why, 'x', sizeof(why));
	if (!ft_host_allowed(text, host, port, why, sizeof(why)))
		if (memchr(why, '\0', sizeof(why)) == NULL)
			abort();
	if (!ft_host_allowed(text, host, port, tiny, sizeof(tiny)))
		if (memchr(tiny, '\0', sizeof(tiny)) == NULL)
			abort();
	(void) ft_host_is_loopback(host);
	/* the list is also what an administrator types; the host may be any URL's host */
	(void) ft_host_allowed(host, text, port, why, sizeof(why));
	(void) ft_host_allowed(NULL, host, port, why, sizeof(why));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text;
	int			mode;

	if (size == 0)
		return 0;
	mode = data[0] & 3;
	data++;
	size--;
	if (mode == 0 || mode == 3)
		FuzzCsv(data, size);
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (mode == 1 || mode == 3)
		FuzzRetryAfter(text);
	if (mode == 3)
	{
		FtOutcome	o = ft_classify_response(size % 2, (long) (size * 37 % 700), text);

		if (o != FT_OUTCOME_OK && o != FT_OUTCOME_RETRY && o != FT_OUTCOME_FAIL)
			abort();
		if (ft_backoff_ms((int) (size % 40), (double) (size % 101) / 100.0, 600000) < 0)
			abort();
	}
	if (mode == 2 || mode == 3)
		FuzzHost(text);
	free(text);
	return 0;
}
