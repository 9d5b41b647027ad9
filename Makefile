# Two commands set up everything on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall whenever the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/ayni demo

# node_modules is rebuilt from the lock file whenever it changes (Hardhat, solc-js, OZ).
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# Debian's Chromium drives the web app's browser tests (Playwright, tests/test_web.py).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Two workers, one test file each at a time (loadfile keeps a module's shared node or server in
# one process); every test makes its own databases and ports, so files run side by side.
test: install node_modules/.package-lock.json $(CHROMIUM)
	npm run --silent test:contracts
	$(PY) -m pytest -n 2 --dist loadfile

bench: install node_modules/.package-lock.json
	$(VENV)/bin/ayni bench --scale full --out benchmarks/results

clean:
	rm -rf $(VENV) node_modules ayni-data .pytest_cache .hypothesis
