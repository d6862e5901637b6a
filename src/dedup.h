/*
 * Near-duplicate detection and diversity (no PostgreSQL headers).
 *
 * A conversation's folded text is cut into words (an ideograph is a word of its own), word
 * pairs are the shingles, and a MinHash signature of FT_MINHASH_K 32-bit minima estimates the
 * Jaccard similarity of two shingle sets. Locality-sensitive hashing over bands of the signature
 * finds candidate pairs without comparing every pair.
 */
#ifndef FT_DEDUP_H
#define FT_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#define FT_MINHASH_K 128

typedef struct FtPair
{
	int32_t		a;				/* index of the earlier example */
	int32_t		b;				/* index of the later example (a < b) */
	float		similarity;		/* estimated Jaccard similarity */
} FtPair;

extern void FtMinHashInit(uint32_t *sig);
extern void FtMinHashAdd(uint32_t *sig, const char *folded, size_t len, uint64_t *prev_word);
extern double FtMinHashSimilarity(const uint32_t *a, const uint32_t *b);
extern int	FtLshRows(double threshold);
extern int	FtNearPairs(const uint32_t *sigs, int32_t n, double threshold, FtPair **pairs, size_t *npairs);
extern double FtMeanSimilarity(const uint32_t *sigs, int32_t n);
extern double FtLabelEntropy(const uint64_t *labels, int32_t n);
extern double FtDiversity(const uint32_t *sigs, const uint64_t *labels, int32_t n);

#endif
