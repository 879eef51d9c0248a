# The README names these targets; each sets up .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

HOST ?= 127.0.0.1
PORT ?= 8000
# Local use: webhooks and callbacks may go to public addresses and to receivers on this
# machine (127.0.0.1), which the service refuses by default (README, "Outbound calls").
# An environment value wins: APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS=public make run
APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS ?= public,127.0.0.1

run: $(STAMP)  ## serve on http://$(HOST):$(PORT) (make run PORT=8080 HOST=0.0.0.0); Ctrl-C stops it
	@APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS='$(APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS)' \
		$(BIN)/approvals serve --host $(HOST) --port $(PORT)

test: $(STAMP)  ## the whole test suite (PostgreSQL and browser tests need their variables)
	$(BIN)/pytest -n 3 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy approvals

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/resume.py
	$(BIN)/python bench/fanout.py

fuzz: $(STAMP)  ## schemathesis, 200 cases per operation, on SQLite (and PostgreSQL when set)
	APPROVALS_FUZZ_EXAMPLES=200 $(BIN)/pytest tests/test_fuzz.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
