EXTENSION = pg_finetune
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pg_finetune

# Pure algorithms: no PostgreSQL headers, unit-tested, fuzzed and benchmarked alone.
PURE_OBJS =

# PostgreSQL glue: fmgr functions, triggers, the worker.
GLUE_OBJS = \
	src/pg_finetune.o \
	src/settings.o \
	src/example_check.o

OBJS = $(PURE_OBJS) $(GLUE_OBJS)

# The install script is assembled from ordered parts so that each responsibility keeps its own file.
SCHEMA_PARTS = $(sort $(wildcard sql/schema/*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql)

PG_CPPFLAGS = -Isrc $(shell pkg-config --cflags libcurl jansson)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = $(shell pkg-config --libs libcurl jansson) -lm

# pg_regress: every sql/*.sql except the generated install script, against a throwaway instance
# that preloads the library (so the worker runs during the tests, as in production).
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/$(EXTENSION)--%,$(sort $(wildcard sql/*.sql))))
REGRESS_OPTS = --temp-instance=tmp_regress --temp-config=tests/pg_finetune.conf --encoding=UTF8 --no-locale

ISOLATION = $(patsubst tests/isolation/specs/%.spec,%,$(sort $(wildcard tests/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=tests/isolation --outputdir=output_iso --temp-instance=tmp_isolation \
	--temp-config=tests/pg_finetune.conf --encoding=UTF8 --no-locale

TAP_TESTS = 1
PROVE_TESTS = $(sort $(wildcard tests/t/*.pl))
PROVE_FLAGS = -I tests/t

EXTRA_CLEAN = tmp_regress tmp_isolation output_iso tests/unit/bin tests/fuzz/bin

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SCHEMA_PARTS) $(EXTENSION).control
	( echo '-- Generated from sql/schema/*.sql by make; edit those files, not this one.'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SCHEMA_PARTS); do echo; echo "-- ===== $$f"; cat $$f; done ) > $@

# Unit tests of the pure C parts: each tests/unit/test_*.c is linked with every pure object and
# prints TAP, so prove reads the results.
UNIT_SRCS = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS = $(patsubst tests/unit/%.c,tests/unit/bin/%,$(UNIT_SRCS))
PURE_SRCS = $(PURE_OBJS:.o=.c)
UNIT_CFLAGS = -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc -Itests/unit $(shell pkg-config --cflags jansson)

tests/unit/bin/%: tests/unit/%.c $(PURE_SRCS) $(wildcard src/*.h) tests/unit/unit.h
	@mkdir -p tests/unit/bin
	$(CC) $(UNIT_CFLAGS) -DFT_SHARE_DIR='"$(CURDIR)"' -o $@ $< $(PURE_SRCS) $(shell pkg-config --libs jansson) -lm

unitcheck: $(UNIT_BINS)
	cd $(CURDIR) && prove --exec '' $(UNIT_BINS)

.PHONY: unitcheck
