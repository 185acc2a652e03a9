# Two commands do everything on a fresh machine with Python 3.11:
#   make run   - the CTG chatbot on the embedded offline default (sample data, local spool, no API keys)
#   make test  - the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: run test bench flush clean lock floors

$(STAMP): setup.cfg pyproject.toml tools/fake_databricks/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e tools/fake_databricks
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ctg-app run --server.address 127.0.0.1

test: $(STAMP)
	$(BIN)/python -m pytest

# requirements.txt for Databricks Apps: exact pins + the LLM_PROVIDER extra of app.yaml (commit the result)
lock:
	scripts/lock-apps-requirements.sh

# setup.cfg's lower bounds, held down in a fresh venv, run the app's runtime checks against the fake warehouse
floors: $(STAMP)
	scripts/check-floors.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tracking.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
