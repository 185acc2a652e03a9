"""current_user(): trusted header only when configured, then st.user, then the default; normalised."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, current_session_id, current_user, tracked
from ctg_app.tracking.recording import identity


@pytest.fixture
def in_streamlit(monkeypatch):
    """Pretend to be inside a Streamlit script run with given request headers and st.user email."""
    state = {"headers": {}, "email": None}
    monkeypatch.setattr(identity, "script_run_ctx", lambda: SimpleNamespace(session_id="session-123"))
    monkeypatch.setattr(identity, "request_headers", lambda: state["headers"])
    monkeypatch.setattr(identity, "_streamlit_user_email", lambda: state["email"])
    return state


def test_outside_streamlit_the_default_user():
    assert current_user(Settings()) == "ctg_chatbot_user@eleviogroup.com"
    assert current_session_id() is None


def test_default_user_is_configurable():
    assert current_user(Settings(default_user="  Ops@Example.COM ")) == "ops@example.com"


def test_a_forged_header_is_ignored_when_trust_is_off(in_streamlit):
    in_streamlit["headers"] = {"X-Forwarded-Email": "ceo@eleviogroup.com"}
    assert current_user(Settings()) == "ctg_chatbot_user@eleviogroup.com"


def test_the_trusted_header_wins_when_configured(in_streamlit):
    in_streamlit["headers"] = {"X-Forwarded-Email": "  Alice@ElevioGroup.com "}
    in_streamlit["email"] = "bob@example.com"
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "alice@eleviogroup.com"


def test_streamlit_login_when_no_trusted_header(in_streamlit):
    in_streamlit["email"] = "Bob@Example.com"
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "bob@example.com"
    assert current_user(Settings()) == "bob@example.com"


def test_an_empty_header_falls_through(in_streamlit):
    in_streamlit["headers"] = {"X-Forwarded-Email": "   "}
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "ctg_chatbot_user@eleviogroup.com"


def test_normalisation_bounds_and_strips(in_streamlit):
    in_streamlit["headers"] = {"X-Forwarded-Email": "A\x00B\tC@x.org" + "z" * 1000}
    user = current_user(Settings(trusted_user_header="X-Forwarded-Email"))
    assert user.startswith("abc@x.org")
    assert len(user) == 254


def test_events_carry_the_user_and_the_session(tracking_spool, in_streamlit, monkeypatch):
    monkeypatch.setenv("TRUSTED_USER_HEADER", "X-Forwarded-Email")
    from ctg_app.tracking import reset_tracker

    reset_tracker()
    in_streamlit["headers"] = {"X-Forwarded-Email": "carol@eleviogroup.com"}

    @tracked(Actions.APP_START)
    def start():
        return None

    start()
    from ctg_app.tracking import get_tracker

    [row] = get_tracker().spool.rows()
    assert row["user"] == "carol@eleviogroup.com"
    assert row["session_id"] == "session-123"
