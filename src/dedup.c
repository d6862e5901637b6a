/*
 * MinHash signatures over word-pair shingles, LSH banding for candidate pairs, and the dataset
 * diversity measure built on them (see dedup.h).
 */
#include "dedup.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lexicon_match.h"

/* In a bucket larger than this, a member is compared with the first anchors and a window of
 * its predecessors only, so a thousand copies of one text cost linear, not quadratic, work */
#define BUCKET_ANCHORS 8
#define BUCKET_WINDOW 56

static uint64_t HashA[FT_MINHASH_K];
static uint64_t HashB[FT_MINHASH_K];
static bool HashReady = false;

typedef struct BandEntry
{
	uint64_t	key;
	int32_t		index;
} BandEntry;

typedef struct PairSet
{
	uint64_t   *slots;			/* (a << 32 | b) + 1; 0 is empty */
	size_t		cap;
	size_t		used;
} PairSet;

/* splitmix64: the fixed pseudo-random constants of the hash family, and a good 64-bit mixer */
static inline uint64_t
Mix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* The K hash functions h_i(x) = high 32 bits of (a_i * x + b_i), a_i odd; fixed for reproducibility */
static void
InitHashes(void)
{
	uint64_t	seed = 0x5EEDF1E7ULL;

	for (int i = 0; i < FT_MINHASH_K; i++)
	{
		seed = Mix64(seed);
		HashA[i] = seed | 1;
		seed = Mix64(seed);
		HashB[i] = seed;
	}
	HashReady = true;
}

/* An empty signature (every minimum at its largest value) */
void
FtMinHashInit(uint32_t *sig)
{
	if (!HashReady)
		InitHashes();
	for (int i = 0; i < FT_MINHASH_K; i++)
		sig[i] = UINT32_MAX;
}

/* Word hash (FNV-1a), mixed so that similar words do not give similar shingle hashes */
static inline uint64_t
HashWord(const char *w, size_t len)
{
	uint64_t	h = 14695981039346656037ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char) w[i]) * 1099511628211ULL;
	return Mix64(h);
}

/*
 * Add the shingles of a piece of folded text to a signature. *prev_word carries the last word
 * across calls so a conversation can be added turn by turn; start with 0.
 */
void
FtMinHashAdd(uint32_t *sig, const char *folded, size_t len, uint64_t *prev_word)
{
	size_t		pos = 0,
				ws,
				wl;

	if (!HashReady)
		InitHashes();
	while (FtNextWord(folded, len, &pos, &ws, &wl))
	{
		uint64_t	w = HashWord(folded + ws, wl);
		uint64_t	x = Mix64(*prev_word * 0x9E3779B97F4A7C15ULL ^ w);

		for (int i = 0; i < FT_MINHASH_K; i++)
		{
			uint32_t	v = (uint32_t) ((HashA[i] * x + HashB[i]) >> 32);

			if (v < sig[i])
				sig[i] = v;
		}
		*prev_word = w;
	}
}

/* Estimated Jaccard similarity: the share of equal minima */
double
FtMinHashSimilarity(const uint32_t *a, const uint32_t *b)
{
	int			same = 0;

	for (int i = 0; i < FT_MINHASH_K; i++)
		same += a[i] == b[i];
	return (double) same / FT_MINHASH_K;
}

/*
 * Rows per LSH band for a threshold: the largest power of two whose S-curve midpoint
 * (1/bands)^(1/rows) lies at least 0.05 below the threshold, so that pairs at the threshold are
 * found with high probability (about 95% at rows 8, bands 16, similarity 0.8).
 */
int
FtLshRows(double threshold)
{
	int			best = 2;

	for (int r = 2; r <= 16; r *= 2)
		if (pow(1.0 / (FT_MINHASH_K / r), 1.0 / r) <= threshold - 0.05)
			best = r;
	return best;
}

/* Order band entries by key, then by example */
static int
CompareEntries(const void *x, const void *y)
{
	const BandEntry *a = x,
			   *b = y;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (a->index > b->index) - (a->index < b->index);
}

/* Order pairs by the later example, then the earlier one */
static int
ComparePairs(const void *x, const void *y)
{
	const FtPair *a = x,
			   *b = y;

	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	return (a->a > b->a) - (a->a < b->a);
}

/* Insert a pair into the set of pairs already considered; 1 if new, 0 if seen, -1 on OOM */
static int
PairSetAdd(PairSet *set, int32_t a, int32_t b)
{
	uint64_t	key = (((uint64_t) (uint32_t) a << 32) | (uint32_t) b) + 1;
	size_t		mask;

	if ((set->used + 1) * 2 > set->cap)
	{
		size_t		cap = set->cap ? set->cap * 2 : 1024;
		uint64_t   *slots = calloc(cap, sizeof(uint64_t));

		if (slots == NULL)
			return -1;
		for (size_t i = 0; i < set->cap; i++)
			if (set->slots[i] != 0)
			{
				size_t		j = Mix64(set->slots[i]) & (cap - 1);

				while (slots[j] != 0)
					j = (j + 1) & (cap - 1);
				slots[j] = set->slots[i];
			}
		free(set->slots);
		set->slots = slots;
		set->cap = cap;
	}
	mask = set->cap - 1;
	for (size_t j = Mix64(key) & mask;; j = (j + 1) & mask)
	{
		if (set->slots[j] == key)
			return 0;
		if (set->slots[j] == 0)
		{
			set->slots[j] = key;
			set->used++;
			return 1;
		}
	}
}

typedef struct PairList
{
	FtPair	   *items;
	size_t		n;
	size_t		cap;
} PairList;

/* Consider one candidate pair: verify it on the full signatures once */
static int
Consider(const uint32_t *sigs, int32_t x, int32_t y, double threshold, PairSet *seen, PairList *out)
{
	int32_t		a = x < y ? x : y,
				b = x < y ? y : x;
	int			added = PairSetAdd(seen, a, b);
	double		sim;

	if (added <= 0)
		return added;
	sim = FtMinHashSimilarity(sigs + (size_t) a * FT_MINHASH_K, sigs + (size_t) b * FT_MINHASH_K);
	if (sim < threshold)
		return 0;
	if (out->n == out->cap)
	{
		size_t		cap = out->cap ? out->cap * 2 : 256;
		FtPair	   *grown = realloc(out->items, cap * sizeof(FtPair));

		if (grown == NULL)
			return -1;
		out->items = grown;
		out->cap = cap;
	}
	out->items[out->n].a = a;
	out->items[out->n].b = b;
	out->items[out->n].similarity = (float) sim;
	out->n++;
	return 1;
}

/* Candidate pairs of one bucket (entries s..e-1, same key), bounded as described above */
static int
ScanBucket(const uint32_t *sigs, const BandEntry *entries, size_t s, size_t e, double threshold,
		   PairSet *seen, PairList *out)
{
	for (size_t p = s + 1; p < e; p++)
	{
		size_t		window_start = p - s > BUCKET_WINDOW ? p - BUCKET_WINDOW : s;

		for (size_t q = s; q < p && q < s + BUCKET_ANCHORS; q++)
			if (Consider(sigs, entries[q].index, entries[p].index, threshold, seen, out) < 0)
				return -1;
		for (size_t q = window_start > s + BUCKET_ANCHORS ? window_start : s + BUCKET_ANCHORS; q < p; q++)
			if (Consider(sigs, entries[q].index, entries[p].index, threshold, seen, out) < 0)
				return -1;
	}
	return 0;
}

/*
 * Pairs of signatures (n of them, FT_MINHASH_K each, back to back) whose estimated similarity
 * is at least threshold, found by LSH banding. *pairs (malloc'd, caller frees) is sorted by
 * the later example. Returns 0, or -1 when out of memory.
 */
int
FtNearPairs(const uint32_t *sigs, int32_t n, double threshold, FtPair **pairs, size_t *npairs)
{
	int			rows = FtLshRows(threshold);
	int			bands = FT_MINHASH_K / rows;
	BandEntry  *entries = n > 0 ? malloc((size_t) n * sizeof(BandEntry)) : NULL;
	PairSet		seen = {NULL, 0, 0};
	PairList	out = {NULL, 0, 0};
	int			rc = 0;

	*pairs = NULL;
	*npairs = 0;
	if (n < 2)
		return 0;
	if (entries == NULL)
		return -1;
	for (int band = 0; band < bands && rc == 0; band++)
	{
		size_t		s = 0;

		for (int32_t i = 0; i < n; i++)
		{
			const uint32_t *sig = sigs + (size_t) i * FT_MINHASH_K + (size_t) band * rows;
			uint64_t	key = (uint64_t) band;

			for (int r = 0; r < rows; r++)
				key = Mix64(key ^ sig[r]);
			entries[i].key = key;
			entries[i].index = i;
		}
		qsort(entries, n, sizeof(BandEntry), CompareEntries);
		for (size_t e = 1; e <= (size_t) n && rc == 0; e++)
			if (e == (size_t) n || entries[e].key != entries[s].key)
			{
				if (e - s > 1)
					rc = ScanBucket(sigs, entries, s, e, threshold, &seen, &out);
				s = e;
			}
	}
	free(entries);
	free(seen.slots);
	if (rc < 0)
	{
		free(out.items);
		return -1;
	}
	if (out.n > 1)
		qsort(out.items, out.n, sizeof(FtPair), ComparePairs);
	*pairs = out.items;
	*npairs = out.n;
	return 0;
}

/* Mean estimated similarity over all pairs (0 when there are fewer than two signatures) */
double
FtMeanSimilarity(const uint32_t *sigs, int32_t n)
{
	double		sum = 0;
	double		count = 0;

	for (int32_t i = 0; i < n; i++)
		for (int32_t j = i + 1; j < n; j++)
		{
			sum += FtMinHashSimilarity(sigs + (size_t) i * FT_MINHASH_K, sigs + (size_t) j * FT_MINHASH_K);
			count++;
		}
	return count > 0 ? sum / count : 0.0;
}

/* Order label hashes */
static int
CompareU64(const void *x, const void *y)
{
	uint64_t	a = *(const uint64_t *) x,
				b = *(const uint64_t *) y;

	return (a > b) - (a < b);
}

/*
 * Shannon entropy of the labels (category and pattern type), normalised by log(min(n, 16)):
 * n examples spread evenly over sixteen or more labels score 1.
 */
double
FtLabelEntropy(const uint64_t *labels, int32_t n)
{
	uint64_t   *sorted;
	double		h = 0;
	int32_t		run = 1;
	double		norm;

	if (n < 2)
		return 0.0;
	sorted = malloc((size_t) n * sizeof(uint64_t));
	if (sorted == NULL)
		return 0.0;
	memcpy(sorted, labels, (size_t) n * sizeof(uint64_t));
	qsort(sorted, n, sizeof(uint64_t), CompareU64);
	for (int32_t i = 1; i <= n; i++)
	{
		if (i < n && sorted[i] == sorted[i - 1])
		{
			run++;
			continue;
		}
		h -= ((double) run / n) * log((double) run / n);
		run = 1;
	}
	free(sorted);
	norm = log(n < 16 ? (double) n : 16.0);
	h /= norm;
	return h > 1.0 ? 1.0 : h;
}

/* Diversity in [0,1]: 0.8 * (1 - mean pairwise similarity) + 0.2 * label entropy */
double
FtDiversity(const uint32_t *sigs, const uint64_t *labels, int32_t n)
{
	if (n < 2)
		return 0.0;
	return 0.8 * (1.0 - FtMeanSimilarity(sigs, n)) + 0.2 * FtLabelEntropy(labels, n);
}
