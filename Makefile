# make demo / make test build .venv from a Python >= 3.12 found on PATH or in pyenv, then run. The venv also gets the
# bytecode of `python` and `python -O` (.pyc, .opt-1.pyc: with PYTHONDONTWRITEBYTECODE nothing else writes it), which
# every gwsvcr process and the serving commands (under -O: cli/entry.py) load instead of compiling at each start.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PEERS := tests/peers
STAMP := $(VENV)/.installed
# What `make demo` needs: gwsvcr and its own dependencies, none of the test, bench and load extras.
DEMO_STAMP := $(VENV)/.installed-demo
NPM_STAMP := $(PEERS)/node_modules/.installed

.PHONY: demo test check lint e2e bench soak venv peers clean haproxy

demo: $(DEMO_STAMP)
	$(VENV)/bin/gwsvcr demo

PYTEST := $(PY) -m pytest -q -p no:randomly
# Parallel workers of make check (pytest-xdist): auto is one per core.
CHECK_JOBS ?= auto

# make test, as CI runs it: the venv and the npm peers side by side, then the lint beside the unit tier (each one's
# output whole when it ends), then the end-to-end tier.
test:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(NPM_STAMP)
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint check
	@$(MAKE) --no-print-directory e2e

# The unit and in-process tests, in parallel: under a minute, for use between edits. The end-to-end folders are
# not even collected (tests/conftest.py says which tests are e2e).
check: $(STAMP)
	$(PYTEST) -m "not e2e" -n $(CHECK_JOBS) --ignore=tests/e2e --ignore=tests/conformance --ignore=tests/reliability

# ruff, mypy and the import layers (import-linter's contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check gwsvcr addons cli tests bench scripts
	$(VENV)/bin/mypy gwsvcr addons cli
	$(PY) scripts/lint-imports

# The end-to-end tier (processes, Node peers, a browser), in parallel too: a module's tests on one worker, the
# conformance package on one (it writes docs/CONFORMANCE.md), a browser test alone (tests/conftest.py). A test that
# fails there runs once more, alone (--last-failed): a timing check beside another test's processes on two cores
# can miss its tolerance; one that fails alone as well fails make e2e. Both verdicts are printed.
E2E_JOBS ?= auto
e2e: $(STAMP) $(NPM_STAMP) haproxy
	@failed=$$(mktemp); trap 'rm -f $$failed' EXIT; \
	GWSVCR_FAILED_FILE=$$failed $(PYTEST) -m e2e -n $(E2E_JOBS) --dist loadscope || { status=$$?; \
	  [ $$status = 1 ] && [ -s $$failed ] || exit $$status; \
	  echo "make e2e: the $$(wc -l < $$failed) test(s) that failed above run again, one at a time:"; \
	  $(PYTEST) -m e2e $$(cat $$failed); }

# gwsvcr replay --workers and the multi-host tests need HAProxy; their tests skip loudly without it (fail under CI).
haproxy:
	@command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || [ -x /usr/local/sbin/haproxy ] || \
	 if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; \
	 else echo "HAProxy not found: install it (sudo apt-get install haproxy) for the --workers tests" >&2; fi

bench: $(STAMP) $(NPM_STAMP)
	$(PY) bench/run.py

# make soak [SOAK_MINUTES=10] [SOAK_CLIENTS=200]: bounded, stops by itself, prints its figures.
SOAK_MINUTES ?= 10
SOAK_CLIENTS ?= 200
soak: $(STAMP) $(NPM_STAMP)
	$(PY) -m pytest -q -p no:randomly tests/soak --soak --soak-minutes $(SOAK_MINUTES) --soak-clients $(SOAK_CLIENTS)

venv: $(STAMP)

# install(EXTRAS): the venv (made once), the package editable with those extras (by uv from pip's own indexes, else
# pip: scripts/pip-install), and the bytecode of python and python -O, compiled on every core.
install = py=$$(scripts/find-python) || exit 1; \
	 [ -x $(PY) ] || $$py -m venv $(VENV); \
	 scripts/pip-install $(PY) -e '.$(1)' && \
	 { $(PY) -m compileall -q -j0 -o 0 -o 1 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	   gwsvcr addons cli >/dev/null || true; }

EVERYTHING := [test,bench,load]
$(STAMP): pyproject.toml
	@$(call install,$(EVERYTHING)) && touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml
	@$(call install,) && touch $@

peers: $(NPM_STAMP)

$(NPM_STAMP): $(PEERS)/package.json $(PEERS)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 + npm for the CometD JS / Faye peers" >&2; exit 1; }
	cd $(PEERS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed

clean:
	rm -rf $(VENV) $(PEERS)/node_modules
