# Two commands for a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
CHROMIUM := /usr/bin/chromium

.PHONY: run test lint bench clean browser screenshots

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/run_dev.py

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .

test: lint browser
	$(BIN)/pytest

# tests/browser drives Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Installed once, with apt-get as root; if that
# is impossible, `make test` stops here and says why.
browser:
	@test -x $(CHROMIUM) || { \
	  echo "make test: installing chromium (apt-get) for the browser tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	} || { \
	  echo "make test: could not install chromium; tests/browser needs" \
	    "$(CHROMIUM) (apt-get install -y chromium, as root)" >&2; exit 1; }
	@test -x $(CHROMIUM) || { echo "make test: $(CHROMIUM) is missing" >&2; exit 1; }

# The README's screenshots, written by the browser tests.
screenshots: $(STAMP) browser
	IIILOG_SCREENSHOTS=docs $(BIN)/pytest -q tests/browser

# `make bench` also runs the engine of an older commit (BEFORE: the start of
# the performance work) beside this one, for the before/after tables.
BEFORE ?= fc32952
BEFORE_TREE := $(or $(TMPDIR),/tmp)/iiilog-before-$(BEFORE)

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/state_set.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/replay.py --records 1000000
	$(BIN)/python bench/http_load.py
	$(BIN)/python bench/todo_job.py
	$(BIN)/python bench/cluster.py
	rm -rf $(BEFORE_TREE) && mkdir -p $(BEFORE_TREE) bench/results/before
	git archive $(BEFORE) | tar -x -C $(BEFORE_TREE)
	echo "commit $(BEFORE)" > bench/results/before/LABEL
	$(BIN)/python bench/todo_job.py --tree $(BEFORE_TREE) \
	  --systems iiilog iiilog-otel-off iiilog-node --out bench/results/before
	$(BIN)/python bench/profile_todo.py --tree $(BEFORE_TREE) --label before
	$(BIN)/python bench/profile_todo.py --label after
	rm -rf $(BEFORE_TREE)
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) data build *.egg-info
