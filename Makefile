# One entry point for people and CI. `make` alone bootstraps .venv from the lock file.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
LOCK    := requirements/dev.lock
STAMP   := $(VENV)/.synced
UV      := $(BIN)/uv
PORT    ?= 8000
PYTEST_ARGS ?=

.PHONY: all venv web demo serve test test-fast lint fmt bench lock clean

all: venv

venv: $(STAMP) web

# The web app (web/, TypeScript + Vite) is built into the package, which the API serves at `/`.
# npm installs from web/package-lock.json (no registry address recorded: web/.npmrc).
WEB_OUT  := src/tradesignals/web/index.html
WEB_MODS := web/node_modules/.package-lock.json
WEB_SRC  := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/postbuild.mjs

web: $(WEB_OUT)

$(WEB_MODS): web/package-lock.json web/package.json
	@command -v npm >/dev/null || { echo "make: npm (Node.js 20) is needed to build the web app"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_OUT): $(WEB_MODS) $(WEB_SRC)
	cd web && npm run --silent build

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(UV) pip sync --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

demo: venv
	$(BIN)/tradesignals demo --port $(PORT)

serve: venv
	TS_MODE=server $(BIN)/tradesignals serve --port $(PORT)

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not slow and not realdata" -x -q $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

fmt: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: venv
	$(BIN)/tradesignals bench --json

# Re-pin every dependency (with hashes, no index address recorded).
lock: venv
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o $(LOCK)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache web/node_modules src/tradesignals/web
