"""Run INSIDE a venv built the way Databricks Apps builds one (see ``venvs.py``), as a plain script, never by pytest.

The fake warehouse runs in the calling test's process (its Thrift server needs a recent connector); this script is the
app's side only, with whatever versions the venv ended up with. Reads the fake's OAuth variables from the
environment. Steps, each raising on failure:

1. the app's first page under AppTest with ``LLM_PROVIDER=azure_openai`` (what app.yaml sets: needs the ``openai``
   extra), then on the offline default a question answered with its table (``st.dataframe(width="stretch")``) and
   its Plotly chart;
2. OAuth M2M through databricks-sdk to the fake warehouse: ``SELECT 1``;
3. a flush of the events step 1 recorded, through the same service principal.

Prints one JSON line: the installed versions and what happened.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import version
from pathlib import Path

PACKAGES = ("databricks-sdk", "databricks-sql-connector", "streamlit", "plotly", "openai", "pandas", "ctg-app")


def _app_path() -> str:
    import ctg_app

    return str(Path(ctg_app.__file__).resolve().parent / "app.py")


def first_page() -> dict:
    """The app's first page on app.yaml's provider, then one answered question on the offline default."""
    from streamlit.testing.v1 import AppTest

    from ctg_app.settings import reload_settings
    from ctg_app.tracking import reset_tracker

    os.environ.update(LLM_PROVIDER="azure_openai", LLM_MODEL="gpt-4o-mini", OPENAI_API_KEY="sk-placeholder",
                      AZURE_OPENAI_ENDPOINT="https://127.0.0.1:9/")
    reload_settings()
    reset_tracker()
    at = AppTest.from_file(_app_path(), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    texts = " ".join(str(e.value) for e in (*at.error, *at.warning, *at.markdown))
    assert "extra" not in texts, texts[:500]
    assert at.chat_input, "the chat page has no chat input"

    os.environ["LLM_PROVIDER"] = "offline"
    reload_settings()
    reset_tracker()
    at = AppTest.from_file(_app_path(), default_timeout=60).run()
    at.chat_input[0].set_value("How many clients per country?").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe and "customer_count" in at.dataframe[0].value.columns
    assert at.get("plotly_chart"), "no chart"
    return {"rows_shown": len(at.dataframe[0].value)}


def oauth_select_1() -> dict:
    """OAuth M2M (the app's service principal) to the warehouse."""
    from ctg_app.warehouse.connection import connect
    from ctg_app.settings import reload_settings

    with connect(reload_settings()) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall()[0][0] == 1
    return {"select_1": True}


def flush() -> dict:
    """Ship what the spool holds to the central table."""
    from ctg_app.settings import reload_settings
    from ctg_app.tracking.delivery.flush import Flusher

    report = Flusher(reload_settings()).run(ignore_backoff=True)
    assert report.outcome == "ok", report.error
    return {"delivered": report.delivered}


def main() -> int:
    result: dict = {"versions": {}}
    for name in PACKAGES:
        try:
            result["versions"][name] = version(name)
        except Exception:  # noqa: BLE001 - not installed
            result["versions"][name] = None
    result.update(first_page())
    result.update(oauth_select_1())
    result.update(flush())
    print("CLIENT-RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
