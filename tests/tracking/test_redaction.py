"""Secrets never reach a spool row, an exception text we store, or a log line."""

from __future__ import annotations

import logging

import pytest

from ctg_app.settings import Settings, reload_settings
from ctg_app.tracking import Actions, Redactor, reset_tracker, track_error, tracked
from ctg_app.redact import REDACTED

DATABRICKS_PAT = "dapi0123456789abcdef0123456789abcdef-2"
OPENAI_KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"connect failed with token {DATABRICKS_PAT}", DATABRICKS_PAT),
        (f"Incorrect API key provided: {OPENAI_KEY}", OPENAI_KEY),
        ("anthropic key sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"),
        ("Authorization: Bearer abc.def-ghi_jkl123456", "abc.def-ghi_jkl123456"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "eyJhbGciOiJIUzI1NiJ9"),
        ('{"password": "hunter2hunter2"}', "hunter2hunter2"),
        ("https://host/sql?access_token=s3cr3tvalue&x=1", "s3cr3tvalue"),
        ("client_secret=dose0123456789abcdefghijklmn", "dose0123456789abcdefghijklmn"),
    ],
)
def test_token_shapes_are_redacted(text, secret):
    cleaned = Redactor()(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_configured_secret_values_are_removed_verbatim_whatever_their_shape():
    redact = Redactor(secrets=["plain-looking-value-123"])
    assert redact("error: plain-looking-value-123 rejected") == f"error: {REDACTED} rejected"


def test_redaction_drops_control_characters_and_bounds_length():
    redact = Redactor(max_length=50)
    out = redact("a\x00b\x1bc" + "x" * 1000)
    assert out.startswith("abc") and len(out) == 50


def test_no_secret_reaches_the_spool_file_or_the_logs(tracking_spool, monkeypatch, caplog):
    monkeypatch.setenv("DATABRICKS_ACCESS_TOKEN", "my-odd-shaped-workspace-token")
    monkeypatch.setenv("DEBUG_LOGGING", "true")
    reset_tracker()

    @tracked(Actions.EXECUTE_SQL, capture=("sql",))
    def run(sql):
        raise RuntimeError(f"401 for token my-odd-shaped-workspace-token and {DATABRICKS_PAT}")

    with caplog.at_level(logging.DEBUG, logger="ctg_app"):
        with pytest.raises(RuntimeError):
            run(f"SELECT '{OPENAI_KEY}'")
        track_error("a@b.c", Actions.LLM_ERROR, f"bad key {OPENAI_KEY}")

    from ctg_app.tracking import get_tracker

    spool = get_tracker().spool
    assert len(spool.rows()) == 2
    spool.close()
    raw = b"".join(p.read_bytes() for p in spool.path.parent.iterdir())
    for secret in ("my-odd-shaped-workspace-token", DATABRICKS_PAT, OPENAI_KEY):
        assert secret.encode() not in raw
        assert secret not in caplog.text
    assert "tracked" in caplog.text  # debug logging really was on


def test_settings_repr_hides_secrets():
    settings = Settings(databricks_access_token=DATABRICKS_PAT, openai_api_key=OPENAI_KEY)
    assert DATABRICKS_PAT not in repr(settings) and OPENAI_KEY not in repr(settings)
    assert set(settings.secret_values()) == {DATABRICKS_PAT, OPENAI_KEY}


def test_reload_settings_reads_the_environment(monkeypatch):
    monkeypatch.setenv("TRACKING_APP_NAME", "other-app")
    assert reload_settings().app_name == "other-app"
