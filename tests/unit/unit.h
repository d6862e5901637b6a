/*
 * Minimal TAP producer for the unit tests of the PostgreSQL-free C parts.
 * Each test binary prints "ok N - name" / "not ok N - name" and a plan, so prove reads it.
 */
#ifndef FT_UNIT_H
#define FT_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	unit_count = 0;
static int	unit_failed = 0;

/* Record one check; print the location when it fails */
#define OK(cond, ...) \
	do { \
		int unit_ok = (cond) ? 1 : 0; \
		unit_count++; \
		if (unit_ok) \
			printf("ok %d - ", unit_count); \
		else \
		{ \
			unit_failed++; \
			printf("not ok %d - ", unit_count); \
		} \
		printf(__VA_ARGS__); \
		printf("\n"); \
		if (!unit_ok) \
			printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} while (0)

/* Compare two integers and show both on failure */
#define IS_INT(got, want, ...) \
	do { \
		long long unit_g = (long long) (got), unit_w = (long long) (want); \
		OK(unit_g == unit_w, __VA_ARGS__); \
		if (unit_g != unit_w) \
			printf("#   got %lld, want %lld\n", unit_g, unit_w); \
	} while (0)

/* Compare two C strings and show both on failure */
#define IS_STR(got, want, ...) \
	do { \
		const char *unit_g = (got), *unit_w = (want); \
		int unit_eq = (unit_g && unit_w) ? strcmp(unit_g, unit_w) == 0 : unit_g == unit_w; \
		OK(unit_eq, __VA_ARGS__); \
		if (!unit_eq) \
			printf("#   got \"%s\"\n#  want \"%s\"\n", unit_g ? unit_g : "(null)", unit_w ? unit_w : "(null)"); \
	} while (0)

/* Print the plan and return the process exit status */
static inline int
unit_done(void)
{
	printf("1..%d\n", unit_count);
	return unit_failed == 0 ? 0 : 1;
}

#endif
