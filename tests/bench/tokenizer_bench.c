/*
 * Benchmark driver of the C tokenizer for tests/bench/tokenizer_bench.sh: loads both
 * encodings (reports load time and RSS), counts the tokens of every NUL-separated text of a
 * corpus single-threaded, writes one count per line to <counts-prefix>.<encoding>.
 *
 *   tokenizer_bench <encodings-dir> <corpus> <counts-prefix>
 */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on a monotonic clock */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Resident set size of this process in KiB, from /proc */
static long
RssKiB(void)
{
	FILE	   *f = fopen("/proc/self/status", "r");
	char		line[256];
	long		kb = -1;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f != NULL)
		fclose(f);
	return kb;
}

/* Whole file in memory */
static char *
Slurp(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		size;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	rewind(f);
	buf = malloc(size + 1);
	if (buf == NULL || fread(buf, 1, size, f) != (size_t) size)
	{
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	*len = size;
	return buf;
}

int
main(int argc, char **argv)
{
	static const char *names[2] = {"o200k_base", "cl100k_base"};
	FtEncoding *enc[2];
	char		path[4096];
	char		err[512];
	size_t		len;
	char	   *corpus;
	long		rss0;
	double		t0;
	int			e;

	if (argc != 4)
	{
		fprintf(stderr, "usage: %s <encodings-dir> <corpus> <counts-prefix>\n", argv[0]);
		return 2;
	}
	rss0 = RssKiB();
	t0 = Now();
	for (e = 0; e < 2; e++)
	{
		snprintf(path, sizeof(path), "%s/%s.tiktoken", argv[1], names[e]);
		if ((enc[e] = ft_encoding_load(path, names[e], err, sizeof(err))) == NULL)
		{
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	printf("C tokenizer load both encodings: %.0f ms, RSS %.1f MiB (+%.1f MiB; tables %.1f + %.1f MiB)\n",
		   (Now() - t0) * 1000, RssKiB() / 1024.0, (RssKiB() - rss0) / 1024.0,
		   ft_encoding_memory(enc[0]) / 1048576.0, ft_encoding_memory(enc[1]) / 1048576.0);

	corpus = Slurp(argv[2], &len);
	for (e = 0; e < 2; e++)
	{
		FILE	   *out;
		size_t		pos = 0;
		size_t		total = 0;
		double		secs;
		size_t		ntexts = 0;
		size_t	   *counts;
		size_t		i;

		for (i = 0; i < len; i++)
			ntexts += (corpus[i] == '\0');
		counts = malloc((ntexts + 1) * sizeof(size_t));
		ntexts = 0;

		t0 = Now();
		while (pos < len)
		{
			const char *text = corpus + pos;
			const char *end = memchr(text, '\0', len - pos);
			size_t		tlen = end ? (size_t) (end - text) : len - pos;
			size_t		n = ft_count_tokens(enc[e], text, tlen);

			counts[ntexts++] = n;
			total += n;
			pos += tlen + 1;
		}
		secs = Now() - t0;
		snprintf(path, sizeof(path), "%s.%s", argv[3], names[e]);
		out = fopen(path, "w");
		for (i = 0; out != NULL && i < ntexts; i++)
			fprintf(out, "%zu\n", counts[i]);
		if (out != NULL)
			fclose(out);
		free(counts);
		printf("C tokenizer %s: %zu tokens in %.2f s = %.2f M tokens/s, %.1f MiB/s\n",
			   names[e], total, secs, total / secs / 1e6, len / secs / 1048576.0);
		printf("RESULT c %s %zu %f\n", names[e], total, secs);
	}
	for (e = 0; e < 2; e++)
		ft_encoding_free(enc[e]);
	free(corpus);
	return 0;
}
