# Two commands: `make dev` runs the main job, `make test` runs the tests.
# Each installs what it needs (a .venv with the project, `npm ci` for the chain tools)
# and does nothing more the second time unless pyproject.toml or the npm lock changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

.PHONY: dev test lint format contracts artifacts bench clean

dev: $(PY_STAMP) $(NPM_STAMP)
	$(BIN)/inftd dev

test: $(PY_STAMP) $(NPM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	"$$(scripts/foundry-bin forge)" test
	@# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
	@$(BIN)/pytest; code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$code

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(PY_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

contracts: $(NPM_STAMP)
	"$$(scripts/foundry-bin forge)" test

artifacts: $(NPM_STAMP)
	scripts/build-contracts

bench: $(PY_STAMP) $(NPM_STAMP)
	$(BIN)/python -m bench.backfill
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.mints
	$(BIN)/python -m bench.generation
	$(BIN)/python -m bench.chaos --seconds 120 --confirmations 4
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) node_modules out cache .pytest_cache .ruff_cache

$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "inftd needs Python 3.11+, found " + sys.version.split()[0] + " (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || \
		{ echo "inftd needs Node.js 20+, found $$(node --version)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@
