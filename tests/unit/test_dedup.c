/*
 * Unit tests of MinHash, LSH candidate search and the diversity measure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dedup.h"
#include "lexicon_match.h"
#include "unit.h"

static const char *const Words[] = {
	"apple", "river", "garden", "engine", "silver", "window", "market", "forest", "coffee", "planet",
	"ticket", "doctor", "school", "bridge", "summer", "winter", "guitar", "camera", "pocket", "island",
	"rabbit", "butter", "candle", "mirror", "yellow", "purple", "basket", "jacket", "rocket", "pillow",
	"castle", "dragon", "carpet", "hammer", "lemon", "orange", "violet", "tunnel", "harbor", "meadow"
};

/* Deterministic pseudo-random numbers */
static uint64_t RandState = 42;

static uint32_t
Rand(void)
{
	RandState = RandState * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t) (RandState >> 33);
}

/* A random sentence of n words */
static void
RandomText(char *buf, int n)
{
	buf[0] = '\0';
	for (int i = 0; i < n; i++)
	{
		strcat(buf, Words[Rand() % 40]);
		strcat(buf, " ");
	}
}

/* Signature of a C string */
static void
Sign(const char *text, uint32_t *sig)
{
	char	   *folded = malloc(strlen(text) + 1);
	size_t		len = FtFold(text, strlen(text), folded);
	uint64_t	prev = 0;

	FtMinHashInit(sig);
	FtMinHashAdd(sig, folded, len, &prev);
	free(folded);
}

static void
TestSimilarity(void)
{
	uint32_t	a[FT_MINHASH_K],
				b[FT_MINHASH_K],
				c[FT_MINHASH_K];
	double		s;

	Sign("the quick brown fox jumps over the lazy dog near the river bank today", a);
	Sign("The quick brown fox jumps over the lazy dog near the river bank today!", b);
	Sign("completely different words about coffee and a silver guitar in winter", c);
	OK(FtMinHashSimilarity(a, b) == 1.0, "case and punctuation do not matter");
	OK(FtMinHashSimilarity(a, c) < 0.1, "unrelated texts: %.3f", FtMinHashSimilarity(a, c));
	Sign("the quick brown fox jumps over the lazy cat near the river bank today", b);
	/* 14 shingles each, 12 shared: Jaccard 12/16 = 0.75 */
	s = FtMinHashSimilarity(a, b);
	OK(s > 0.6 && s < 0.9, "one word changed: estimate %.3f near 0.75", s);
	Sign("\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD", a);
	Sign("\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD\xE3\x80\x82", b);
	OK(FtMinHashSimilarity(a, b) == 1.0, "ideographs are words: trailing punctuation ignored");
	IS_INT(FtLshRows(0.8), 8, "threshold 0.8: 16 bands of 8");
	IS_INT(FtLshRows(0.5), 4, "threshold 0.5: 32 bands of 4");
}

static void
TestNearPairs(void)
{
	int			n = 5000;
	uint32_t   *sigs = malloc((size_t) n * FT_MINHASH_K * sizeof(uint32_t));
	char		buf[1024];
	FtPair	   *pairs;
	size_t		npairs;
	int			planted_found = 0,
				wrong = 0;

	/* every 100th text is a near copy (one word of 30 changed) of the text 37 places earlier */
	for (int i = 0; i < n; i++)
	{
		if (i % 100 == 99)
		{
			char		copy[1024];
			char	   *space;

			RandState = 1000 + i - 37;
			RandomText(copy, 30);
			space = strchr(copy, ' ');
			snprintf(buf, sizeof(buf), "zebra%s", space);
			RandState = 77777 + i;
		}
		else
		{
			RandState = 1000 + i;
			RandomText(buf, 30);
		}
		Sign(buf, sigs + (size_t) i * FT_MINHASH_K);
	}
	IS_INT(FtNearPairs(sigs, n, 0.8, &pairs, &npairs), 0, "near pairs computed");
	for (size_t k = 0; k < npairs; k++)
	{
		if (pairs[k].b % 100 == 99 && pairs[k].a == pairs[k].b - 37)
			planted_found++;
		else
			wrong++;
		if (k > 0 && (pairs[k].b < pairs[k - 1].b || (pairs[k].b == pairs[k - 1].b && pairs[k].a <= pairs[k - 1].a)))
			wrong += 1000;
	}
	OK(planted_found >= 48, "LSH found %d of 50 planted near-duplicates", planted_found);
	IS_INT(wrong, 0, "no other pairs, sorted by the later example");
	free(pairs);
	free(sigs);
}

static void
TestManyCopies(void)
{
	int			n = 1000;
	uint32_t   *sigs = malloc((size_t) n * FT_MINHASH_K * sizeof(uint32_t));
	FtPair	   *pairs;
	size_t		npairs;
	int			with_first = 0;

	for (int i = 0; i < n; i++)
		Sign("the same reply again and again for every single user", sigs + (size_t) i * FT_MINHASH_K);
	IS_INT(FtNearPairs(sigs, n, 0.9, &pairs, &npairs), 0, "copies computed");
	for (size_t k = 0; k < npairs; k++)
		with_first += pairs[k].a == 0;
	IS_INT(with_first, n - 1, "every copy is paired with the first one");
	OK(npairs < (size_t) n * 70, "bounded work: %zu pairs, not %d", npairs, n * (n - 1) / 2);
	free(pairs);
	free(sigs);
}

static void
TestDiversity(void)
{
	uint32_t   *varied = malloc(50 * FT_MINHASH_K * sizeof(uint32_t));
	uint32_t   *repetitive = malloc(200 * FT_MINHASH_K * sizeof(uint32_t));
	uint64_t	labels_varied[50],
				labels_rep[200];
	char		buf[1024];
	double		dv,
				dr;

	for (int i = 0; i < 50; i++)
	{
		RandState = 5000 + i;
		RandomText(buf, 20);
		Sign(buf, varied + (size_t) i * FT_MINHASH_K);
		labels_varied[i] = i % 6;
	}
	for (int i = 0; i < 200; i++)
	{
		snprintf(buf, sizeof(buf), "hi there how are you doing today my friend number %d", i);
		Sign(buf, repetitive + (size_t) i * FT_MINHASH_K);
		labels_rep[i] = 1;
	}
	dv = FtDiversity(varied, labels_varied, 50);
	dr = FtDiversity(repetitive, labels_rep, 200);
	OK(dv > 0.8, "fifty varied examples: %.3f", dv);
	OK(dr < 0.3, "two hundred repetitive ones: %.3f", dr);
	OK(FtLabelEntropy(labels_rep, 200) == 0.0, "one label: entropy 0");
	OK(FtDiversity(varied, labels_varied, 1) == 0.0, "one example: diversity 0");
	free(varied);
	free(repetitive);
}

int
main(void)
{
	TestSimilarity();
	TestNearPairs();
	TestManyCopies();
	TestDiversity();
	return unit_done();
}
