# The two quick-start targets create .venv themselves; nothing else needs installing.
# Dependencies install from requirements.lock, the exact set the tests passed with.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck unit-tests browser install lock lock-upgrade bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vipsync demo

# The README's test command: static checks first (they take seconds), then the suite.
test: check browser unit-tests

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check vipsync tests bench
	$(BIN)/ruff format --check vipsync tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit-tests: $(STAMP)
	$(BIN)/python -m pytest -q

# The dashboard's browser test drives Debian's Chromium through its chromedriver
# (tests/e2e/test_dashboard_browser.py): installed from the distribution when missing
# (CI runs `make test` as root), never downloaded by the test itself.
browser:
	@test -x /usr/bin/chromedriver || { apt-get update && apt-get install -y chromium chromium-driver; }

# Re-resolve requirements.lock from pyproject.toml after changing a dependency, keeping
# every other pin (`make lock`), or taking newer releases of everything
# (`make lock-upgrade`); then `make test`, then commit both files.
PIP_COMPILE = $(BIN)/pip-compile --quiet --extra test --strip-extras --no-emit-find-links \
	--no-emit-index-url --no-emit-trusted-host -o requirements.lock pyproject.toml

lock: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(PIP_COMPILE)
	rm -f $(STAMP)

lock-upgrade: $(STAMP)
	$(BIN)/pip install --quiet pip-tools
	$(PIP_COMPILE) --upgrade
	rm -f $(STAMP)

bench: $(STAMP)
	for b in bench/*_bench.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) data
