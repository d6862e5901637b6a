EXTENSION = pg_finetune
EXTVERSION = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/p" $(EXTENSION).control)

MODULE_big = pg_finetune

# META.json must describe the version the control file installs.
META_VERSION = $(shell sed -n 's/^   "version": "\(.*\)",/\1/p' META.json)
ifneq ($(META_VERSION),$(EXTVERSION))
$(error META.json version "$(META_VERSION)" differs from $(EXTENSION).control version "$(EXTVERSION)")
endif

# Pure algorithms: no PostgreSQL headers, unit-tested, fuzzed and benchmarked alone.
PURE_OBJS = \
	src/redact.o \
	src/transcript.o \
	src/lexicon_match.o \
	src/score.o \
	src/dedup.o \
	src/sha256.o \
	src/jsonl_write.o \
	src/tokenizer.o \
	src/unicode_categories.o \
	src/http_policy.o \
	src/http.o \
	src/provider_openai.o \
	src/provider_azure.o \
	src/provider_together.o \
	src/provider_fireworks.o \
	src/provider_mistral.o \
	src/provider_replicate.o \
	src/results_csv.o

# PostgreSQL glue: fmgr functions, triggers, the worker.
GLUE_OBJS = \
	src/ingest_sql.o \
	src/score_sql.o \
	src/dedup_sql.o \
	src/dataset.o \
	src/dataset_sql.o \
	src/pg_finetune.o \
	src/tokenizer_sql.o \
	src/token_columns.o \
	src/settings.o \
	src/example_check.o \
	src/worker_shmem.o \
	src/worker_db.o \
	src/worker.o \
	src/job_steps.o \
	src/doctor.o

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
	--temp-config=tests/isolation/pg_finetune.conf --encoding=UTF8 --no-locale

PROVE_TESTS = $(sort $(wildcard tests/t/*.pl))
PROVE_FLAGS = -I tests/t

EXTRA_CLEAN = tmp_regress tmp_isolation output_iso tests/unit/bin tests/fuzz/bin

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies; a struct changed in a header must rebuild its users.
$(OBJS): $(wildcard src/*.h)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SCHEMA_PARTS) $(EXTENSION).control
	( echo '-- Generated from sql/schema/*.sql by make; edit those files, not this one.'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SCHEMA_PARTS); do echo; echo "-- ===== $$f"; cat $$f; done ) > $@

# Unit tests of the pure C parts: each tests/unit/test_*.c is linked with every pure object and
# prints TAP, so prove reads the results.
UNIT_SRCS = $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS = $(patsubst tests/unit/%.c,tests/unit/bin/%,$(UNIT_SRCS))
PURE_SRCS = $(PURE_OBJS:.o=.c)
UNIT_CFLAGS = -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Isrc -Itests/unit $(shell pkg-config --cflags libcurl jansson)

# Pure objects are compiled once for all unit tests (without -fPIC or PostgreSQL flags).
UNIT_OBJS = $(patsubst src/%.c,tests/unit/bin/obj/%.o,$(PURE_SRCS))

tests/unit/bin/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p tests/unit/bin/obj
	$(CC) $(UNIT_CFLAGS) -c -o $@ $<

tests/unit/bin/%: tests/unit/%.c $(UNIT_OBJS) tests/unit/unit.h
	$(CC) $(UNIT_CFLAGS) -DFT_SHARE_DIR='"$(CURDIR)"' -o $@ $< $(UNIT_OBJS) $(shell pkg-config --libs libcurl jansson) -lm

unitcheck: $(UNIT_BINS)
	cd $(CURDIR) && prove --exec '' $(UNIT_BINS)

.PHONY: unitcheck tapcheck

# TAP tests of the worker (PostgreSQL::Test::Cluster); each starts its own nodes.
tapcheck:
	$(prove_installcheck)

# BPE rank files of the tokenizer (OpenAI's .tiktoken files), read at run time from
# <sharedir>/pg_finetune/ unless ft.tokenizer_dir says otherwise.
ENCODING_FILES = $(wildcard src/encodings/*.tiktoken)

install: install-encodings

install-encodings:
	$(MKDIR_P) '$(DESTDIR)$(datadir)/$(EXTENSION)'
	$(INSTALL_DATA) $(ENCODING_FILES) '$(DESTDIR)$(datadir)/$(EXTENSION)/'

uninstall: uninstall-encodings

uninstall-encodings:
	rm -f $(addprefix '$(DESTDIR)$(datadir)/$(EXTENSION)'/,$(notdir $(ENCODING_FILES)))

.PHONY: install-encodings uninstall-encodings
