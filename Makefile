# batchd — build, test, run.
#
#   make            ./batchd (optimized)
#   make run        build, then serve on http://127.0.0.1:8080 with ./batchd.db
#   make test       every test, under AddressSanitizer and UBSan, then the
#                   dashboard's browser tests (headless Chromium), a minute
#                   of each fuzz target, and the install and container tests
#   make fuzz       the fuzz targets (tests/fuzz/), FUZZ_SECONDS each (60)
#   make valgrind   the integration tests against batchd under valgrind
#   make bench      the benchmark (bench/), not a test: docs/PERFORMANCE.md
#   make bench-deps install the peers the benchmark measures against
#   make deps       install the Debian packages the build and tests need
#   make deps-build install only those the build needs
#   make install    the binary, batchd(1), batchd.h and an example systemd
#                   unit under PREFIX (/usr/local), staged in DESTDIR
#   make docker-test  build the image and smoke-test it (podman or docker)
#   make clean
#
# Every library is found with pkg-config. `make run` installs what the build
# needs when it is missing (make deps-build), `make test` what the tests need
# too (make deps), so on a fresh Debian 12 machine these two commands are all
# the set-up there is.

VERSION := $(shell cat VERSION)
CC ?= cc
PKGS = libmicrohttpd libcjson sqlite3 libcurl
TEST_PKGS = cmocka

# Debian packages: what the build and the tests need.
DEB_BUILD = build-essential pkg-config libmicrohttpd-dev libcjson-dev \
	libsqlite3-dev libcurl4-openssl-dev
DEB_TEST = libcmocka-dev python3 curl procps chromium nodejs npm clang \
	libclang-rt-14-dev valgrind
# A Node.js from elsewhere (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm) is used as it is: Debian's pair only when none is there.
HAVE_NODE := $(shell command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && echo yes)
DEB_INSTALL = $(DEB_BUILD) $(filter-out $(if $(HAVE_NODE),nodejs npm),$(DEB_TEST))
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

LIB_SRC = lib/buf.c lib/clock.c lib/json.c lib/log.c lib/utf8.c lib/xalloc.c
WORKER_SRC = workers/frame.c workers/registry.c workers/builtin.c \
	workers/proc.c workers/command.c workers/persistent.c workers/worker.c
DB_SRC = db/store.c db/store_jobs.c db/store_tasks.c db/store_ckpt.c
SERVER_SRC = server/meter.c server/loop.c server/pool.c server/sched.c \
	server/sched_events.c server/sched_api.c \
	server/config.c server/http.c server/routes.c server/views.c \
	server/jobreq.c server/api_jobs.c server/api_tasks.c \
	server/api_progress.c server/api_system.c server/api_metrics.c \
	server/api_openapi.c server/api_throughput.c server/metrics.c \
	server/static.c server/ckpt.c server/serve.c server/client.c server/cli.c
MAIN_SRC = server/main.c
# Files the binary carries, turned into C by tools/embed.c: the dashboard
# (web/) and the OpenAPI description (docs/openapi.json).
GEN = build/gen
WEB_FILES := $(sort $(shell find web -type f ! -name '.*'))
WEB_DIRS := $(shell find web -type d)
WEB_GEN = $(GEN)/web_assets.c
OPENAPI_GEN = $(GEN)/openapi.c
CORE_SRC = $(LIB_SRC) $(WORKER_SRC) $(DB_SRC) $(SERVER_SRC) $(WEB_GEN) \
	$(OPENAPI_GEN)

# Quiet by default; V=1 shows the commands.
Q = $(if $(V),,@)
say = $(if $(V),,@echo "  $(1)	$@";)

R = build/release
A = build/asan
CORE_R = $(CORE_SRC:%.c=$(R)/%.o)
CORE_A = $(CORE_SRC:%.c=$(A)/%.o)

UNIT_TESTS = store jobreq frame meter config metrics sched cli worker clock views json
INTEGRATION_TESTS = api lifecycle cli metrics openapi ops web persistent \
	plugins examples abuse workers security crash storage results
UNIT_BINS = $(UNIT_TESTS:%=$(A)/tests/unit/test_%)
INTEGRATION_BINS = $(INTEGRATION_TESTS:%=$(A)/tests/integration/test_%)
HARNESS = $(A)/tests/integration/harness.o
# Shell tests, each ending with "N passed, N failed". The container smoke
# test comes last: it is the slowest, and it skips (saying so) where
# neither podman nor docker can run.
SCRIPT_TESTS = tests/install/test.sh tests/docker/smoke.sh

# make install
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
INCLUDEDIR = $(PREFIX)/include
DATADIR = $(PREFIX)/share/batchd
INSTALL ?= install

BROWSER = tests/browser
BROWSER_DEPS = $(BROWSER)/node_modules/.package-lock.json
# npm trusts the system's certificate authorities too (a registry reached
# through a proxy with a local CA), not only those built into Node.js.
SYSTEM_CA = $(wildcard /etc/ssl/certs/ca-certificates.crt)

# Plugins the tests load, built as a user builds one (see
# examples/plugin/Makefile): no sanitizer runtime of their own. Loaded into
# the sanitized batchd, they call its allocator and its batchd_* functions.
TEST_PLUGINS = tplugin badabi nosym
TEST_PLUGIN_SOS = $(TEST_PLUGINS:%=$(A)/tests/plugins/%.so)
PLUGIN_CFLAGS = -std=c17 -Wall -Wextra -Werror -g -O2 -fPIC -shared
EXAMPLE_PLUGIN = examples/plugin/primes.so

.PHONY: all run test test-unit test-integration test-browser bench deps \
	check-deps check-build-deps deps-build browser-deps clean man install \
	uninstall docker-test screenshot \
	examples fuzz fuzz-build valgrind bench-build bench-deps check-bench-deps

all: batchd

batchd: $(CORE_R) $(R)/$(MAIN_SRC:.c=.o)
	$(call say,LINK)$(CC) -o $@ $^ $(LDFLAGS_BASE) $(LIBS)

$(R)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC)$(CC) $(RELEASE_CFLAGS) -c -o $@ $<

$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC-ASAN)$(CC) $(ASAN_CFLAGS) -c -o $@ $<

# Build tools, run here: plain flags, no sanitizer.
build/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(call say,CC)$(CC) -std=c17 -Wall -Wextra -Werror -O1 -o $@ $<

# Depends on the directories too, so that removing a file regenerates.
$(WEB_GEN): build/tools/embed $(WEB_FILES) $(WEB_DIRS)
	@mkdir -p $(dir $@)
	$(call say,EMBED)build/tools/embed web $@ $(WEB_FILES)

$(OPENAPI_GEN): docs/openapi.json build/tools/embed
	@mkdir -p $(dir $@)
	$(call say,EMBED)build/tools/embed -n openapi_json $@ docs/openapi.json

# The binary the integration tests start: the same program, sanitized.
$(A)/batchd: $(CORE_A) $(A)/$(MAIN_SRC:.c=.o)
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDFLAGS_BASE) $(LIBS)

$(A)/tests/unit/test_%: $(A)/tests/unit/test_%.o $(CORE_A)
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LDFLAGS_BASE) $(WRAP) $(LIBS) $$(pkg-config --libs $(TEST_PKGS))

# The scheduler's tests pretend to be the pool, and fail a store write.
$(A)/tests/unit/test_sched: WRAP = $(patsubst %,-Wl$(comma)--wrap=%,pool_size pool_info \
	pool_out pool_flush pool_pending pool_kill pool_accepts pool_memory_limit \
	pool_running store_task_finish)
comma = ,

$(A)/tests/integration/test_%: $(A)/tests/integration/test_%.o $(HARNESS) $(A)/lib/buf.o $(A)/lib/xalloc.o
	$(call say,LINK)$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS) $$(pkg-config --libs $(TEST_PKGS))

$(A)/tests/plugins/%.so: tests/plugins/%.c include/batchd.h
	@mkdir -p $(dir $@)
	$(call say,CC-SO)$(CC) $(PLUGIN_CFLAGS) -o $@ $<

# The examples that are built: the C plugin, with its own one-line Makefile.
examples: $(EXAMPLE_PLUGIN)

$(EXAMPLE_PLUGIN): examples/plugin/primes.c include/batchd.h
	$(call say,MAKE)$(MAKE) --no-print-directory -s -C examples/plugin

# Installs what is missing, only when something is.
# What `make run` needs: the libraries and a compiler.
check-build-deps:
	@pkg-config --exists $(PKGS) && command -v cc >/dev/null \
		|| $(MAKE) --no-print-directory deps-build

# What `make test` needs besides: cmocka, Chromium and Node.js for the
# browser tests, clang's libFuzzer, python3 and curl for test helpers.
check-deps:
	@pkg-config --exists $(PKGS) $(TEST_PKGS) && command -v python3 >/dev/null \
		&& command -v curl >/dev/null && command -v node >/dev/null \
		&& command -v npm >/dev/null && [ -x /usr/bin/chromium ] \
		&& command -v clang >/dev/null \
		&& [ -e "$$(clang -print-runtime-dir)/libclang_rt.fuzzer-x86_64.a" ] \
		|| $(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory browser-deps

# playwright-core, as pinned by the lockfile; it drives /usr/bin/chromium
# and never downloads a browser of its own.
browser-deps: $(BROWSER_DEPS)

$(BROWSER_DEPS): $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
		NODE_EXTRA_CA_CERTS=$${NODE_EXTRA_CA_CERTS:-$(SYSTEM_CA)} \
		npm ci --no-audit --no-fund


# Fuzz targets: libFuzzer with ASan and UBSan, built by clang from the same
# sources. Seeds in tests/fuzz/corpus_*; see tests/fuzz/run.
FUZZ_SECONDS ?= 60
# What make test gives each target: a short run from the seeds, to keep
# the whole of make test well under CI's 10 minutes; make fuzz goes longer.
FUZZ_TEST_SECONDS ?= 15
FUZZ_CC = clang
FUZZ_CFLAGS = $(WARN) $(DEFS) -g -O1 $(PKG_CFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
F = build/fuzz
FUZZ_BINS = $(F)/fuzz_jobreq $(F)/fuzz_frame $(F)/fuzz_coproc
FUZZ_JOBREQ_SRC = tests/fuzz/fuzz_jobreq.c server/jobreq.c $(LIB_SRC) $(WORKER_SRC)
FUZZ_FRAME_SRC = tests/fuzz/fuzz_frame.c workers/frame.c lib/buf.c lib/xalloc.c
# The co-process target includes workers/persistent.c, whose line reading
# is static, and records what it would send the server and the log.
FUZZ_COPROC_SRC = tests/fuzz/fuzz_coproc.c $(LIB_SRC) \
	$(filter-out workers/persistent.c,$(WORKER_SRC))
FUZZ_COPROC_WRAP = $(patsubst %,-Wl$(comma)--wrap=%,batchd_progress \
	batchd_task_job batchd_task_index batchd_task_attempt log_emit)

$(F)/fuzz_jobreq: $(FUZZ_JOBREQ_SRC) $(wildcard */*.h) tests/fuzz/check_json.h
	@mkdir -p $(dir $@)
	$(call say,FUZZ)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_JOBREQ_SRC) $(LIBS)

$(F)/fuzz_frame: $(FUZZ_FRAME_SRC) $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZ)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_FRAME_SRC)

$(F)/fuzz_coproc: $(FUZZ_COPROC_SRC) workers/persistent.c $(wildcard */*.h) tests/fuzz/check_json.h
	@mkdir -p $(dir $@)
	$(call say,FUZZ)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_COPROC_SRC) $(FUZZ_COPROC_WRAP) $(LIBS)

fuzz-build: $(FUZZ_BINS)

# The integration tests against a debug build of batchd (no sanitizers)
# run under valgrind's memcheck; see tests/valgrind/batchd. Not part of
# make test: it takes a long while.
D = build/debug
CORE_D = $(CORE_SRC:%.c=$(D)/%.o)
DEBUG_CFLAGS = $(CFLAGS_BASE) -O0

$(D)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC-DEBUG)$(CC) $(DEBUG_CFLAGS) -c -o $@ $<

$(D)/batchd: $(CORE_D) $(D)/$(MAIN_SRC:.c=.o)
	$(call say,LINK)$(CC) -o $@ $^ $(LDFLAGS_BASE) $(LIBS)

valgrind: check-deps
	@command -v valgrind >/dev/null || $(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory test-build $(D)/batchd
	rm -rf build/valgrind
	@BATCHD_BIN=tests/valgrind/batchd TEST_TIMEOUT=3600 tests/run $(INTEGRATION_BINS); \
	status=$$?; tests/valgrind/check && exit $$status

fuzz: check-deps
	@$(MAKE) --no-print-directory fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run

deps:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		$(DEB_INSTALL)

deps-build:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends \
		$(DEB_BUILD)

run: check-build-deps
	@$(MAKE) --no-print-directory batchd
	./batchd serve --listen 127.0.0.1:8080 --db ./batchd.db

# Every test, then each fuzz target for FUZZ_TEST_SECONDS (15): CI runs this.
test: check-deps
	@$(MAKE) --no-print-directory test-build fuzz-build
	@FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) tests/run $(UNIT_BINS) $(INTEGRATION_BINS) \
		$(BROWSER)/run tests/fuzz/run $(SCRIPT_TESTS)

# The browser tests alone (they need the sanitized batchd).
test-browser: check-deps
	@$(MAKE) --no-print-directory $(A)/batchd
	@tests/run $(BROWSER)/run

# Retakes the README's screenshot (docs/img/dashboard.png) with the browser
# test that stages running jobs.
screenshot: check-deps
	@$(MAKE) --no-print-directory $(A)/batchd
	@BATCHD_SCREENSHOT=1 tests/run "$(BROWSER)/run"

# A plugin the reliability tests load, with cJSON of its own.
$(A)/tests/plugins/testhandlers.so: tests/plugins/testhandlers.c include/batchd.h
	@mkdir -p $(dir $@)
	$(call say,CC-SO)$(CC) $(PLUGIN_CFLAGS) -D_GNU_SOURCE -o $@ $< $$(pkg-config --cflags --libs libcjson)

test-build: $(A)/batchd $(UNIT_BINS) $(INTEGRATION_BINS) $(TEST_PLUGIN_SOS) \
	$(A)/tests/plugins/testhandlers.so $(EXAMPLE_PLUGIN)

# Builds the image from the Dockerfile and runs it (see tests/docker/).
docker-test:
	@tests/run tests/docker/smoke.sh

# The man page is written from the binary's own --help texts.
man: build/batchd.1

build/batchd.1: batchd tools/mkman.sh
	@mkdir -p $(dir $@)
	$(call say,MAN)tools/mkman.sh ./batchd >$@.tmp && mv $@.tmp $@

install: batchd build/batchd.1
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(DATADIR)
	$(INSTALL) -m 755 batchd $(DESTDIR)$(BINDIR)/batchd
	$(INSTALL) -m 644 build/batchd.1 $(DESTDIR)$(MANDIR)/man1/batchd.1
	$(INSTALL) -m 644 include/batchd.h $(DESTDIR)$(INCLUDEDIR)/batchd.h
	sed 's|@BINDIR@|$(BINDIR)|g' dist/batchd.service >$(DESTDIR)$(DATADIR)/batchd.service
	chmod 644 $(DESTDIR)$(DATADIR)/batchd.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/batchd $(DESTDIR)$(MANDIR)/man1/batchd.1 \
		$(DESTDIR)$(INCLUDEDIR)/batchd.h $(DESTDIR)$(DATADIR)/batchd.service
	-rmdir $(DESTDIR)$(DATADIR) 2>/dev/null

# The benchmark (bench/run.py): the release binary and two helpers, the raw
# posix_spawn rate and a plugin that stamps when a task starts.
B = build/bench

bench: check-build-deps check-bench-deps
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
	rm -rf build batchd $(EXAMPLE_PLUGIN)

-include $(shell find build -name '*.d' 2>/dev/null)
