# batchd — build, test, run.
#
#   make            ./batchd (optimized)
#   make run        build, then serve on http://127.0.0.1:8080 with ./batchd.db
#   make test       every test, under AddressSanitizer and UBSan
#   make bench      the benchmark (bench/), not a test: docs/PERFORMANCE.md
#   make deps       install the Debian packages the build and tests need
#   make bench-deps install the peers the benchmark measures against
#   make clean
#
# Every library is found with pkg-config. `make run` and `make test` install
# missing packages first (make deps), so on a fresh Debian 12 machine these
# two commands are all the set-up there is.

VERSION := $(shell cat VERSION)
CC ?= cc
PKGS = libmicrohttpd libcjson sqlite3 libcurl
TEST_PKGS = cmocka

# Debian packages: what the build and the tests need.
DEB_BUILD = build-essential pkg-config libmicrohttpd-dev libcjson-dev \
	libsqlite3-dev libcurl4-openssl-dev
DEB_TEST = libcmocka-dev python3 curl procps
# The benchmark's peers and tools; the tests never need them.
DEB_BENCH = python3 python3-tqdm parallel wrk nginx-light
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
WARN = -std=c17 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-Wformat=2 -Wno-format-nonliteral
DEFS = -D_GNU_SOURCE -DBATCHD_VERSION='"$(VERSION)"'
CFLAGS_BASE = $(WARN) $(DEFS) -g -MMD -MP $(PKG_CFLAGS)
# Plugins call back into the binary: export the plugin API's symbols.
LDFLAGS_BASE = -Wl,--export-dynamic-symbol=batchd_*
LIBS = $(PKG_LIBS) -ldl -lm

RELEASE_CFLAGS = $(CFLAGS_BASE) -O2
ASAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
ASAN_CFLAGS = $(CFLAGS_BASE) -O1 $(ASAN_FLAGS)

LIB_SRC = lib/buf.c lib/clock.c lib/log.c lib/utf8.c
WORKER_SRC = workers/frame.c workers/registry.c workers/builtin.c \
	workers/command.c workers/worker.c
DB_SRC = db/store.c
SERVER_SRC = server/meter.c server/loop.c server/pool.c server/sched.c \
	server/config.c server/http.c server/routes.c server/views.c \
	server/jobreq.c server/api_jobs.c server/api_tasks.c \
	server/api_progress.c server/api_system.c server/serve.c \
	server/client.c server/cli.c
MAIN_SRC = server/main.c
CORE_SRC = $(LIB_SRC) $(WORKER_SRC) $(DB_SRC) $(SERVER_SRC)

# Quiet by default; V=1 shows the commands.
Q = $(if $(V),,@)
say = $(if $(V),,@echo "  $(1)	$@";)

R = build/release
A = build/asan
CORE_R = $(CORE_SRC:%.c=$(R)/%.o)
CORE_A = $(CORE_SRC:%.c=$(A)/%.o)

UNIT_TESTS = store jobreq frame meter config
INTEGRATION_TESTS = api lifecycle cli
UNIT_BINS = $(UNIT_TESTS:%=$(A)/tests/unit/test_%)
INTEGRATION_BINS = $(INTEGRATION_TESTS:%=$(A)/tests/integration/test_%)
HARNESS = $(A)/tests/integration/harness.o

.PHONY: all run test test-unit test-integration bench bench-build bench-deps \
	check-bench-deps deps check-deps clean

all: batchd

batchd: $(CORE_R) $(R)/$(MAIN_SRC:.c=.o)
	$(call say,LINK)$(CC) -o $@ $^ $(LDFLAGS_BASE) $(LIBS)

$(R)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC)$(CC) $(RELEASE_CFLAGS) -c -o $@ $<

$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC-ASAN)$(CC) $(ASAN_CFLAGS) -c -o $@ $<

# The binary the integration tests start: the same program, sanitized.
$(A)/batchd: $(CORE_A) $(A)/$(MAIN_SRC:.c=.o)
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDFLAGS_BASE) $(LIBS)

$(A)/tests/unit/test_%: $(A)/tests/unit/test_%.o $(CORE_A)
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDFLAGS_BASE) $(LIBS) $$(pkg-config --libs $(TEST_PKGS))

$(A)/tests/integration/test_%: $(A)/tests/integration/test_%.o $(HARNESS) $(A)/lib/buf.o
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS) $$(pkg-config --libs $(TEST_PKGS))

# Installs what is missing, only when something is.
check-deps:
	@pkg-config --exists $(PKGS) $(TEST_PKGS) && command -v python3 >/dev/null \
		&& command -v curl >/dev/null || $(MAKE) --no-print-directory deps

deps:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		$(DEB_BUILD) $(DEB_TEST)

run: check-deps
	@$(MAKE) --no-print-directory batchd
	./batchd serve --listen 127.0.0.1:8080 --db ./batchd.db

test: check-deps
	@$(MAKE) --no-print-directory test-build
	@tests/run $(UNIT_BINS) $(INTEGRATION_BINS)

test-build: $(A)/batchd $(UNIT_BINS) $(INTEGRATION_BINS)

# The benchmark (bench/run.py): the release binary and two helpers, the raw
# posix_spawn rate and a plugin that stamps when a task starts.
B = build/bench

bench: check-deps check-bench-deps
	@$(MAKE) --no-print-directory batchd bench-build
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)

bench-build: $(B)/spawn $(B)/stamp.so

$(B)/spawn: bench/spawn.c
	@mkdir -p $(dir $@)
	$(call say,CC)$(CC) $(WARN) $(DEFS) -O2 -o $@ $<

$(B)/stamp.so: bench/stamp.c include/batchd.h
	@mkdir -p $(dir $@)
	$(call say,CC)$(CC) $(WARN) $(DEFS) -O2 -shared -fPIC -o $@ $<

check-bench-deps:
	@/usr/bin/python3 -c 'import tqdm' 2>/dev/null && command -v parallel >/dev/null \
		&& command -v wrk >/dev/null \
		&& { command -v nginx || test -x /usr/sbin/nginx; } >/dev/null \
		|| $(MAKE) --no-print-directory bench-deps

bench-deps:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		$(DEB_BENCH)
	@# Optional: perf, for profiles of the hot path (not in every kernel's image).
	-DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		linux-perf

clean:
	rm -rf build batchd

-include $(shell find build -name '*.d' 2>/dev/null)
