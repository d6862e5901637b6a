/*
 * Multi-pattern phrase matching over folded text (no PostgreSQL headers).
 *
 * Phrases are folded exactly like the text they are matched against (ASCII case, Latin accents,
 * typographic punctuation, whitespace runs), compiled into one Aho-Corasick automaton, and
 * reported only where they start and end at word boundaries.
 */
#ifndef FT_LEXICON_MATCH_H
#define FT_LEXICON_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct FtLexicon FtLexicon;

/* Called for every match: pattern index (in order of FtLexiconAdd) and byte range in the folded text */
typedef void (*FtMatchFn) (void *arg, int pattern, size_t start, size_t end);

/* What FtFoldWide did with one non-ASCII character */
#define FT_FOLD_SPACE 0			/* whitespace: part of a run that folds to one space */
#define FT_FOLD_DROP 1			/* dropped (combining marks, soft hyphens...) */
#define FT_FOLD_EMIT 2			/* folded form written out */

extern size_t FtFold(const char *in, size_t len, char *out);
extern size_t FtFoldWide(const unsigned char *s, size_t len, char *out, size_t *olen, int *action);
extern uint64_t FtWordHash(const char *w, size_t len);
extern bool FtIsWordByte(unsigned char c);
extern bool FtNextWord(const char *text, size_t len, size_t *pos, size_t *start, size_t *wlen);
extern size_t FtCharCount(const char *text, size_t len);

extern FtLexicon *FtLexiconCreate(void);
extern int	FtLexiconAdd(FtLexicon *lex, const char *phrase, size_t len, int kind, float weight);
extern int	FtLexiconCompile(FtLexicon *lex);
extern void FtLexiconFree(FtLexicon *lex);
extern int	FtLexiconSize(const FtLexicon *lex);
extern int	FtLexiconKind(const FtLexicon *lex, int pattern);
extern float FtLexiconWeight(const FtLexicon *lex, int pattern);
extern void FtLexiconScan(const FtLexicon *lex, const char *folded, size_t len, FtMatchFn fn, void *arg);
extern size_t FtLexiconScanWords(const FtLexicon *lex, const char *folded, size_t len, FtMatchFn fn,
								 void *arg, uint64_t *hashes);

#endif
