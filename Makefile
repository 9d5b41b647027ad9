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

test: install
	@if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; fi
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/posting.py --out benchmarks/results/posting.json

clean:
	rm -rf $(VENV) node_modules ayni-data .pytest_cache .hypothesis
