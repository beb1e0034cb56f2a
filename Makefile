# Herald: two commands on a fresh machine. `make run` starts devhost; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: help run test unit setup lint typecheck bench bench-quick clean soak smoke openapi
.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: setup ## Set everything up and start devhost (Herald on http://localhost:7071)
	$(PY) -m devhost start

test: setup lint typecheck ## Set everything up, lint, type-check and run the whole suite
	HERALD_REQUIRE_CHECKOV=1 $(BIN)/pytest -q

# Tests that need neither Azurite nor a devhost process (tests/conftest.py marks the others): seconds.
unit: $(VENV)/.installed ## Run the tests that need no Azurite or devhost process (about a minute)
	$(BIN)/pytest -q -m "not azurite and not e2e"

setup: $(VENV)/.installed node_modules/.installed .venv-checkov/.installed ## Install what the tests and devhost need

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.infra-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Herald needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov pins many shared packages, so it lives in a virtualenv of its own.
.venv-checkov/.installed: requirements.checkov.txt
	test -d .venv-checkov || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements.checkov.txt
	touch $@

lint: setup ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The long reliability runs (docs/reliability.md): 10,000 events under five SIGKILLs and an Azurite
# restart, 1,000 notification recipients under provider faults. Figures land in .local/reliability/.
soak: setup ## The long reliability runs (docs/reliability.md)
	HERALD_SOAK=1 $(BIN)/pytest -q -s -m soak tests/reliability

typecheck: setup ## mypy --strict over the app, devhost and smoke
	$(BIN)/mypy function_app.py functions shared devhost smoke

# The committed OpenAPI document (docs/api.md); tests/contract fails when it differs from the served one.
openapi: $(VENV)/.installed ## Regenerate docs/openapi.json from the app
	$(PY) -m shared.api.openapi docs/openapi.json

# Benchmarks (bench/, docs/performance.md): each scenario beside the raw limit of this machine, in one run.
# They assert nothing; they write bench/results/latest.json and latest.md.
bench: setup ## All benchmarks beside this machine's raw limits (bench/results/latest.md)
	$(PY) -m bench

bench-quick: setup ## A shorter benchmark run
	$(PY) -m bench --quick

# The smoke test after deploying (docs/deploy.md): README's flow against any Herald, one line per step.
# make smoke URL=https://… TOKEN=… [ADMIN_TOKEN=…] [RESOURCE=urn:…] [ENDPOINT=https://…] [EMAIL=…] [WAIT=seconds]
# (@: the command line holds the tokens, so make does not echo it)
smoke: $(VENV)/.installed ## Smoke-test a deployed Herald: make smoke URL=… TOKEN=…
	@$(PY) -m smoke $(if $(URL),--url "$(URL)") $(if $(TOKEN),--token "$(TOKEN)") \
		$(if $(ADMIN_TOKEN),--admin-token "$(ADMIN_TOKEN)") $(if $(RESOURCE),--resource "$(RESOURCE)") \
		$(if $(ENDPOINT),--endpoint "$(ENDPOINT)") $(if $(EMAIL),--email "$(EMAIL)") $(if $(WAIT),--wait "$(WAIT)")

clean: ## Remove what make installed and the local state
	rm -rf $(VENV) .venv-checkov node_modules .local .pytest_cache .mypy_cache .ruff_cache
