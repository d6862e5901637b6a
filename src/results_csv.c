/*
 * The result file of a fine-tuning job: CSV read by header name (providers disagree on column
 * names and order), given raw or base64-encoded (both have been seen from OpenAI).
 */
#include "provider.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum
{
	COL_STEP, COL_TRAIN_LOSS, COL_TRAIN_ACC, COL_VALID_LOSS, COL_VALID_ACC, COL_FULL_LOSS, COL_FULL_ACC, COL_OTHER
};

/* Which of our columns a header names */
static int
ColumnFor(const char *name, size_t len)
{
	static const struct
	{
		const char *name;
		int			col;
	}			names[] = {
		{"step", COL_STEP}, {"train_loss", COL_TRAIN_LOSS}, {"train_accuracy", COL_TRAIN_ACC},
		{"train_mean_token_accuracy", COL_TRAIN_ACC}, {"valid_loss", COL_VALID_LOSS},
		{"validation_loss", COL_VALID_LOSS}, {"valid_mean_token_accuracy", COL_VALID_ACC},
		{"validation_mean_token_accuracy", COL_VALID_ACC}, {"valid_accuracy", COL_VALID_ACC},
		{"full_valid_loss", COL_FULL_LOSS}, {"full_valid_mean_token_accuracy", COL_FULL_ACC}
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && strncmp(names[i].name, name, len) == 0)
			return names[i].col;
	return COL_OTHER;
}

/* Value of a base64 character, -1 for anything else */
static int
Base64Value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode text that is entirely base64 (white space allowed); NULL when it is not */
static char *
DecodeIfBase64(const char *text, size_t len, size_t *outlen)
{
	char	   *out = malloc(len / 4 * 3 + 4);
	unsigned int acc = 0;
	int			bits = 0;
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) text[i];
		int			v;

		if (isspace(c) || c == '=')
			continue;
		if ((v = Base64Value(c)) < 0)
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned int) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (char) ((acc >> bits) & 0xFF);
		}
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/* Parse one numeric cell; empty cells are NaN */
static double
Cell(const char *start, size_t len)
{
	char		buf[64];

	if (len == 0 || len >= sizeof(buf))
		return NAN;
	memcpy(buf, start, len);
	buf[len] = '\0';
	return strtod(buf, NULL);
}

/* Split one line into cells, calling back per cell */
static int
SplitLine(const char *line, size_t len, const char **cells, size_t *lens, int max)
{
	int			n = 0;
	size_t		start = 0;

	for (size_t i = 0; i <= len && n < max; i++)
	{
		if (i == len || line[i] == ',')
		{
			size_t		s = start,
						e = i;

			while (s < e && (line[s] == ' ' || line[s] == '"'))
				s++;
			while (e > s && (line[e - 1] == ' ' || line[e - 1] == '"' || line[e - 1] == '\r'))
				e--;
			cells[n] = line + s;
			lens[n++] = e - s;
			start = i + 1;
		}
	}
	return n;
}

/* A step cell that fits a long long (NaN, infinities and 1e300 do not: converting them is undefined) */
static bool
StepFits(double step)
{
	return step >= -9223372036854775808.0 && step < 9223372036854775808.0;
}

/* Calls row() for every data row; returns the number of rows, or -1 without a step column */
int
ft_parse_results_csv(const char *text, size_t len, void (*row) (void *arg, const FtMetricsRow *r), void *arg)
{
	size_t		decoded_len;
	char	   *decoded = memchr(text, ',', len) ? NULL : DecodeIfBase64(text, len, &decoded_len);
	const char *p = decoded ? decoded : text;
	const char *end = p + (decoded ? decoded_len : len);
	int			map[64];
	int			ncols = 0,
				rows = 0;
	bool		have_step = false;

	while (p < end)
	{
		const char *nl = memchr(p, '\n', end - p);
		size_t		linelen = (nl ? nl : end) - p;
		const char *cells[64];
		size_t		lens[64];
		int			n = SplitLine(p, linelen, cells, lens, 64);

		if (ncols == 0)
		{
			for (int i = 0; i < n; i++)
				have_step |= (map[i] = ColumnFor(cells[i], lens[i])) == COL_STEP;
			ncols = n;
			if (!have_step)
				break;
		}
		else if (linelen > 0)
		{
			double		v[COL_OTHER + 1];
			FtMetricsRow r;

			for (int i = 0; i <= COL_OTHER; i++)
				v[i] = NAN;
			for (int i = 0; i < n && i < ncols; i++)
				v[map[i]] = Cell(cells[i], lens[i]);
			if (StepFits(v[COL_STEP]))
			{
				r.step = (long long) v[COL_STEP];
				r.train_loss = v[COL_TRAIN_LOSS];
				r.train_accuracy = v[COL_TRAIN_ACC];
				r.valid_loss = v[COL_VALID_LOSS];
				r.valid_accuracy = v[COL_VALID_ACC];
				r.full_valid_loss = v[COL_FULL_LOSS];
				r.full_valid_accuracy = v[COL_FULL_ACC];
				row(arg, &r);
				rows++;
			}
		}
		p += linelen + 1;
	}
	free(decoded);
	return have_step ? rows : -1;
}
