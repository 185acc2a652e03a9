#!/usr/bin/env bash
# Prove setup.cfg's lower bounds: a fresh venv gets `.[openai]` with databricks-sdk, databricks-sql-connector,
# streamlit and plotly held at their floors (`>=X` read as `==X`); in it the app's first page and a question run under
# AppTest, OAuth M2M logs in to the fake warehouse (running in this checkout's venv) and a flush delivers the events.
# The suite runs the same check (tests/runtime/test_apps_runtime.py); this is the by-hand form:
#
#   scripts/check-floors.sh                      # every floor from setup.cfg       -> RESULT: OK
#   scripts/check-floors.sh streamlit==1.48.1    # the release below a floor        -> RESULT: FAILED
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.runtime.venvs floors "$@"
