# iodine-py: `make demo` serves the example, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 3000
CC     ?= cc
CFLAGS_TEST := -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Iext

.PHONY: docs all venv install demo test test-c test-py test-asan conformance bench clean fuzz format format-check

all: install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)

# The native build happens here, through setuptools' cffi_modules.
install: $(PY)
	$(PIP) install -q -e ".[test]"

demo: install
	$(VENV)/bin/iodine examples/chat.py -p $(PORT)

test: install test-c test-py

test-py:
	$(PY) -m pytest -q

# Each C unit test tests/c/test_X.c checks ext/X.c alone (no loop, no Python).
C_TESTS := $(patsubst tests/c/%.c,build/%,$(wildcard tests/c/test_*.c))

# (TEST_DEPS_X: the other ext/ files test_X needs: the one home of a fact)
TEST_DEPS_static := ext/http_facts.c ext/http1_parser.c
TEST_DEPS_reactor := ext/reactor_timer.c ext/reactor_stop.c ext/reactor_batch.c
TEST_DEPS_http_facts := ext/http1_parser.c
.SECONDEXPANSION:
build/test_%: tests/c/test_%.c ext/%.c ext/%.h tests/c/check.h $$(TEST_DEPS_$$*)
	@mkdir -p build
	$(CC) $(CFLAGS_TEST) ext/$*.c $(TEST_DEPS_$*) $< -o $@

# The HTTP core's state machines driven through a real socketpair and the
# real reactor: that needs the whole core (server.c aside: it is the
# Python-facing runner), so it is linked like the extension is.
# The WebSocket connection's (test_ws_state) is linked the same way: it is
# reached through a real HTTP upgrade.
HTTP_STATE_SRC := $(filter-out ext/server.c,$(wildcard ext/*.c))
build/test_http_state build/test_ws_state: build/test_%: tests/c/test_%.c tests/c/peer.h $(HTTP_STATE_SRC) $(wildcard ext/*.h)
	@mkdir -p build
	$(CC) $(CFLAGS_TEST) -DIODINE_TLS=1 $(HTTP_STATE_SRC) $< -o $@ -lssl -lcrypto -lpthread -lz

# pubsub.c against a fake protocol (its own up_ops) on the real reactor and
# dispatch queue: no protocol module is linked, which is the check that
# pubsub.c needs none.
PUBSUB_SRC := ext/pubsub.c ext/upgrade.c ext/reactor.c ext/reactor_timer.c \
  ext/reactor_stop.c ext/reactor_batch.c ext/dispatch.c ext/glob.c ext/history.c ext/psid.c
build/test_pubsub: tests/c/test_pubsub.c $(PUBSUB_SRC) $(wildcard ext/*.h) tests/c/check.h
	@mkdir -p build
	$(CC) $(CFLAGS_TEST) $(PUBSUB_SRC) $< -o $@ -lpthread

# pmd.c frames with ws_frame.c and inflates with the system zlib.
build/test_pmd: tests/c/test_pmd.c ext/pmd.c ext/pmd.h ext/ws_frame.c tests/c/check.h
	@mkdir -p build
	$(CC) $(CFLAGS_TEST) ext/pmd.c ext/ws_frame.c $< -o $@ -lz

test-c: $(C_TESTS)
	@for t in $(C_TESTS); do \
	  ./$$t > $$t.log 2>&1; rc=$$?; printf '%s: ' "$$t"; tail -n 1 $$t.log; \
	  if [ $$rc -ne 0 ]; then cat $$t.log; exit 1; fi; \
	done

# The whole suite against a core built with ASan + UBSan.
# (the build is in place: editable install; rebuilt normally afterwards)
# (with build isolation: the venv's own setuptools may be older than the
# build needs, setuptools>=77 for pyproject's license string)
# A 16 MiB quarantine (ASan's default is 256) keeps the memory ceilings of
# tests/hostile and tests/websocket meaningful. tests/browser is left out:
# Chromium does not start with libasan preloaded, and the C paths it drives
# are the ones tests/websocket and tests/sse drive.
test-asan: install
	IODINE_SANITIZE=address,undefined $(PIP) install -q --no-deps -e .
	ASAN_OPTIONS=detect_leaks=0:quarantine_size_mb=16 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  $(PY) -m pytest -q -p no:cacheprovider --ignore=tests/browser; rc=$$?; \
	  $(PIP) install -q --no-deps -e .; exit $$rc

# The C layout (.clang-format). `format` rewrites in place; `format-check`
# fails on any drift (tests/test_format.py runs it in `make test`). The
# formatter is the test extras' pinned clang-format: another release lays
# the same file out differently.
CLANG_FORMAT ?= $(VENV)/bin/clang-format
C_FILES = $(wildcard ext/*.[ch] tests/c/*.[ch] fuzz/*.[ch] iodine_py/*.c bench/*.c)
format:
	$(CLANG_FORMAT) -i $(C_FILES)
format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(C_FILES)

# libFuzzer targets fuzz/fuzz_X.c over ext/ alone (clang). Each runs
# FUZZ_SECONDS over its committed corpus fuzz/corpus/X; new inputs go to
# build/fuzz-work/X, a crashing input to build/fuzz-X-crash-*, and a crash
# (or a sanitizer report: none recovers) fails the target.
FUZZ_TARGETS := http1 ws_frame glob sse static resp psid pmd proxy ws_client
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iext
FUZZ_SRC_http1 := ext/http1_parser.c
FUZZ_SRC_ws_frame := ext/ws_frame.c
FUZZ_SRC_glob := ext/glob.c
FUZZ_SRC_sse := ext/sse.c ext/ws_frame.c ext/psid.c
FUZZ_SRC_static := ext/static.c ext/http_facts.c ext/http1_parser.c
FUZZ_SRC_resp := ext/resp.c
FUZZ_SRC_psid := ext/psid.c
FUZZ_SRC_pmd := ext/pmd.c ext/ws_frame.c
FUZZ_LIBS_pmd := -lz
FUZZ_SRC_proxy := ext/proxy.c
FUZZ_SRC_ws_client := ext/ws_client.c ext/ws_frame.c

build/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(wildcard ext/*.c ext/*.h)
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SRC_$*) $< -o $@ $(FUZZ_LIBS_$*)

fuzz: $(FUZZ_TARGETS:%=build/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz-work/$$t; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s over fuzz/corpus/$$t"; \
	  ./build/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz-$$t- build/fuzz-work/$$t fuzz/corpus/$$t \
	    > build/fuzz_$$t.log 2>&1 || { tail -n 40 build/fuzz_$$t.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units' build/fuzz_$$t.log; \
	done

# The shared HTTP corpus and its replayer live in ../shared/conformance beside
# the clone (CONFORMANCE=DIR to point elsewhere); the Autobahn WebSocket run
# is tests/conformance/autobahn.sh (it downloads its runner on first use).
CONFORMANCE ?= $(abspath ../shared/conformance)
conformance: install
	@test -f $(CONFORMANCE)/http_replay.py || { echo "make conformance: no $(CONFORMANCE)/http_replay.py (clone the shared material beside this one, or CONFORMANCE=DIR)"; exit 2; }
	CI=1 IODINE_CONFORMANCE_DIR=$(CONFORMANCE) $(PY) -m pytest -q tests/conformance/test_http_corpus.py

bench: install
	bash bench/http.sh

# The README's command-line reference, made from the parser.
docs: install
	$(PY) -c 'import iodine_py.cli as c; c.update_readme("README.md")'
	$(PY) docs/gen_config.py

clean:
	rm -rf build dist *.egg-info iodine_py/_native.* .pytest_cache
