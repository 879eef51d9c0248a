# The README names these targets; each sets up .venv first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench fuzz clean

SERVE_STAMP := $(VENV)/.installed-serve

# `make run` needs only the service; `make test` and the rest add the development extras.
$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(SERVE_STAMP)

$(STAMP): $(SERVE_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Where to serve: HOST and PORT when given (make run PORT=9000), else APPROVALS_URL when it
# names this machine (the CLI and the SDK read the same variable), else 127.0.0.1:8000.
HOST ?=
PORT ?=
# Local use: webhooks and callbacks may go to public addresses and to receivers on this
# machine (127.0.0.1), which the service refuses by default (docs/security.md, "Outbound calls").
# An environment value wins: APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS=public make run
APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS ?= public,127.0.0.1

run: $(SERVE_STAMP)  ## serve on http://127.0.0.1:8000 (make run PORT=8080 HOST=0.0.0.0); Ctrl-C stops it
	@APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS='$(APPROVALS_WEBHOOK_ALLOWED_DESTINATIONS)' \
		$(BIN)/approvals serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

# The TypeScript SDK (clients/typescript): its packages and build, when Node.js is here (its
# tests skip, saying so, when it is not). .ci/run installs nodejs and npm on CI machines.
NPM := $(shell command -v npm 2>/dev/null)
TS_STAMP := clients/typescript/node_modules/.installed

$(TS_STAMP): clients/typescript/package-lock.json
	npm ci --prefix clients/typescript --no-audit --no-fund
	npm run build --prefix clients/typescript
	touch $(TS_STAMP)

test: $(STAMP) $(if $(NPM),$(TS_STAMP))  ## the whole test suite (PostgreSQL and browser tests need their variables)
	$(BIN)/pytest -n 3 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy approvals
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/resume.py
	$(BIN)/python bench/fanout.py

# The PostgreSQL variants run when APPROVALS_TEST_POSTGRES_URL is set (as in CI); without
# it they are reported as skipped.
fuzz: $(STAMP)  ## schemathesis (200 cases per operation) and the Hypothesis surface properties
	APPROVALS_FUZZ_EXAMPLES=200 $(BIN)/pytest tests/test_fuzz.py tests/test_fuzz_surfaces.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
