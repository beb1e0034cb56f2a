# Herald: two commands on a fresh machine. `make run` starts devhost; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
CHROMIUM := /usr/bin/chromium

.PHONY: help run test unit setup lint typecheck bench bench-quick clean soak smoke openapi console-vendor console-screenshots
.DEFAULT_GOAL := help

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: setup ## Set everything up and start devhost (Herald on http://localhost:7071)
	$(PY) -m devhost start

# The installs are independent and mostly wait on the network, so they run side by side.
test: ## Set everything up, lint, type-check and run the whole suite
	@$(MAKE) --no-print-directory -j4 $(SETUP) $(CHROMIUM)
	@$(MAKE) --no-print-directory -j2 lint typecheck
	HERALD_REQUIRE_CHECKOV=1 $(BIN)/pytest -q

# Tests that need neither Azurite nor a devhost process (tests/conftest.py marks the others): seconds.
unit: $(VENV)/.installed ## Run the tests that need no Azurite or devhost process (about a minute)
	$(BIN)/pytest -q -m "not azurite and not e2e"

SETUP := $(VENV)/.installed node_modules/.installed .venv-checkov/.installed
setup: ## Install what the tests and devhost need
	@$(MAKE) --no-print-directory -j3 $(SETUP)

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements.infra-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Herald needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The console's browser tests (tests/console/test_browser.py) drive Debian's Chromium with the playwright
# package's driver (requirements-dev.txt); Playwright's own browser download is never used. Installed with
# apt-get when missing, as root or through sudo; make stops, saying so, when it cannot be installed.
$(CHROMIUM):
	@command -v apt-get >/dev/null 2>&1 || { echo "The console's browser tests need Chromium at $@; this machine has no apt-get: install it by hand"; exit 1; }
	@if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	echo "Installing chromium with apt-get (the console's browser tests)"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
		|| { echo "Could not install chromium with apt-get: the console's browser tests need it at $@"; exit 1; }
	@test -x $@ || { echo "apt-get installed chromium, but $@ is not there: the console's browser tests need it"; exit 1; }

# checkov pins many shared packages, so it lives in a virtualenv of its own.
.venv-checkov/.installed: requirements.checkov.txt
	test -d .venv-checkov || $(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet -r requirements.checkov.txt
	touch $@

lint: $(VENV)/.installed ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The long reliability runs (docs/reliability.md): 10,000 events under five SIGKILLs and an Azurite
# restart, 1,000 notification recipients under provider faults. Figures land in .local/reliability/.
soak: setup ## The long reliability runs (docs/reliability.md)
	HERALD_SOAK=1 $(BIN)/pytest -q -s -m soak tests/reliability

typecheck: $(VENV)/.installed ## mypy --strict over the app, devhost and smoke
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

# The console's front-end libraries (docs/architecture.md, "The console"), pinned in package.json and
# copied into console/vendor/, which is committed: the deployment package is the repository folder and
# its Python requirements, with no npm step, and the console loads nothing from a CDN.
# tests/console/test_vendored.py checks the copies equal node_modules'.
VENDOR := console/vendor
node_version = $(shell node -p "require('./node_modules/$(1)/package.json').version")
console-vendor: node_modules/.installed ## Copy the console's front-end libraries into console/vendor
	mkdir -p $(VENDOR)
	cp node_modules/htm/preact/standalone.module.js $(VENDOR)/htm-preact.mjs
	cp node_modules/uplot/dist/uPlot.esm.js $(VENDOR)/uplot.mjs
	cp node_modules/uplot/dist/uPlot.min.css $(VENDOR)/uplot.min.css
	cp node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js $(VENDOR)/oidc-client-ts.min.js
	for name in htm uplot oidc-client-ts jwt-decode; do cp node_modules/$$name/LICENSE $(VENDOR)/$$name.LICENSE.txt; done
	@{ \
	echo "# Vendored front-end libraries"; \
	echo; \
	echo "Written by \`make console-vendor\` from node_modules (versions pinned in package.json); do not edit."; \
	echo "They are committed because the deployment package is this folder as it is, with only pip run on it"; \
	echo "(no npm step), and the console loads nothing from a CDN at run time: its Content-Security-Policy"; \
	echo "allows scripts and styles from Herald's own origin only."; \
	echo; \
	echo "| File | Package | Version | Licence |"; \
	echo "|---|---|---|---|"; \
	echo "| htm-preact.mjs | htm (preact/standalone.module.js: htm with Preact 10 bundled) | $(call node_version,htm) | Apache-2.0 (htm.LICENSE.txt); Preact: MIT |"; \
	echo "| uplot.mjs, uplot.min.css | uplot (dist/uPlot.esm.js, dist/uPlot.min.css) | $(call node_version,uplot) | MIT (uplot.LICENSE.txt) |"; \
	echo "| oidc-client-ts.min.js | oidc-client-ts (dist/browser, the global \`oidc\`) | $(call node_version,oidc-client-ts) | Apache-2.0 (oidc-client-ts.LICENSE.txt); bundles jwt-decode $(call node_version,jwt-decode), MIT (jwt-decode.LICENSE.txt) |"; \
	} > $(VENDOR)/README.md

# The console's screenshots in docs/console/ (docs/console.md), taken by its browser tests as they go.
console-screenshots: setup $(CHROMIUM) ## Write the console's screenshots into docs/console/ (its browser tests take them)
	HERALD_CONSOLE_SCREENSHOTS=docs/console $(BIN)/pytest -q -p no:cacheprovider tests/console/test_browser.py

# The smoke test after deploying (docs/deploy.md): README's flow against any Herald, one line per step.
# make smoke URL=https://… TOKEN=… [ADMIN_TOKEN=…] [RESOURCE=urn:…] [ENDPOINT=https://…] [EMAIL=…] [WAIT=seconds]
# (@: the command line holds the tokens, so make does not echo it)
smoke: $(VENV)/.installed ## Smoke-test a deployed Herald: make smoke URL=… TOKEN=…
	@$(PY) -m smoke $(if $(URL),--url "$(URL)") $(if $(TOKEN),--token "$(TOKEN)") \
		$(if $(ADMIN_TOKEN),--admin-token "$(ADMIN_TOKEN)") $(if $(RESOURCE),--resource "$(RESOURCE)") \
		$(if $(ENDPOINT),--endpoint "$(ENDPOINT)") $(if $(EMAIL),--email "$(EMAIL)") $(if $(WAIT),--wait "$(WAIT)")

clean: ## Remove what make installed and the local state
	rm -rf $(VENV) .venv-checkov node_modules .local .pytest_cache .mypy_cache .ruff_cache
