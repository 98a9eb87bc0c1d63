# Obeya: `make run` to try it, `make test` to prove it. Nothing else is required.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OBEYA_DATA_DIR ?= $(CURDIR)/.obeya-data
PYTEST_WORKERS ?= 4

# Exact versions, with hashes: a fresh clone installs what CI tested. `make lock` refreshes them.
LOCK_RUN := requirements/run.txt
LOCK_DEV := requirements/dev.txt
LOCK_FLAGS := --universal --python-version 3.11 --generate-hashes -q

.PHONY: run test test-sqlite test-postgres lint bench chaos install install-dev lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml $(LOCK_RUN) | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r $(LOCK_RUN)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK_DEV) | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r $(LOCK_DEV)
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-run

## lock: resolve pyproject.toml's dependencies anew into the lock files (newest allowed versions)
lock: | $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) --upgrade -o $(LOCK_RUN)
	$(BIN)/uv pip compile pyproject.toml --extra dev -c $(LOCK_RUN) $(LOCK_FLAGS) --upgrade -o $(LOCK_DEV)

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

## run: install, migrate, load the demo and serve on http://127.0.0.1:8000
run: install
	OBEYA_DATA_DIR=$(OBEYA_DATA_DIR) $(BIN)/obeya migrate
	OBEYA_DATA_DIR=$(OBEYA_DATA_DIR) $(BIN)/obeya demo --serve

## test: lint, then the whole suite on SQLite, and again on PostgreSQL when OBEYA_TEST_POSTGRES_URL is set
test: install-dev lint test-sqlite test-postgres

test-sqlite: install-dev
	@data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; \
	OBEYA_DATA_DIR=$$data OBEYA_DATABASE_URL= $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal -p no:cacheprovider

test-postgres: install-dev
	@if [ -z "$$OBEYA_TEST_POSTGRES_URL" ]; then \
	  echo "== PostgreSQL pass skipped: OBEYA_TEST_POSTGRES_URL is not set =="; \
	else \
	  data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; \
	  echo "== PostgreSQL pass on $$OBEYA_TEST_POSTGRES_URL (tests that start their own obeya"; \
	  echo "   processes run on SQLite whatever the pass, so they ran in the first one) =="; \
	  OBEYA_DATA_DIR=$$data OBEYA_DATABASE_URL=$$OBEYA_TEST_POSTGRES_URL \
	    $(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal -p no:cacheprovider -m "not browser and not e2e"; \
	fi

lint: install-dev
	$(BIN)/ruff check src tests bench
	OBEYA_DATA_DIR=$$(mktemp -d) $(BIN)/lint-imports --no-cache
	@data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; OBEYA_DATA_DIR=$$data $(BIN)/mypy

bench: install-dev
	@data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; \
	OBEYA_DATA_DIR=$$data $(BIN)/python -m bench

## chaos: kill -9 a real obeya serve 200 times mid-pipeline, checking runs, jobs, logs (SEED=, KILLS=)
chaos: install-dev
	$(BIN)/python -m tests.chaos --kills $(or $(KILLS),200) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) .obeya-data .mypy_cache .ruff_cache .pytest_cache
