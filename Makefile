# iodine-py: `make demo` serves the example, `make test` runs every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PORT   ?= 3000
CC     ?= cc
CFLAGS_TEST := -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -Iext

.PHONY: all venv install demo test test-c test-py test-asan conformance bench clean fuzz

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

build/test_%: tests/c/test_%.c ext/%.c ext/%.h
	@mkdir -p build
	$(CC) $(CFLAGS_TEST) ext/$*.c $< -o $@

test-c: $(C_TESTS)
	@for t in $(C_TESTS); do \
	  ./$$t > $$t.log 2>&1; rc=$$?; printf '%s: ' "$$t"; tail -n 1 $$t.log; \
	  if [ $$rc -ne 0 ]; then cat $$t.log; exit 1; fi; \
	done

# The whole suite against a core built with ASan + UBSan.
# (the build is in place: editable install; rebuilt normally afterwards)
test-asan: install
	IODINE_SANITIZE=address,undefined $(PIP) install -q --no-build-isolation --no-deps -e .
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  $(PY) -m pytest -q -p no:cacheprovider; rc=$$?; \
	  $(PIP) install -q --no-build-isolation --no-deps -e .; exit $$rc

conformance: install
	$(PY) tests/conformance/run_corpus.py

bench: install
	bash bench/http.sh

clean:
	rm -rf build dist *.egg-info iodine_py/_native.* .pytest_cache
