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
    # st.user's email and the default are normalised (the trusted header is rejected instead: see below)
    in_streamlit["email"] = "A\x00B\tC@x.org" + "z" * 1000
    user = current_user(Settings(trusted_user_header="X-Forwarded-Email"))
    assert user.startswith("abc@x.org")
    assert len(user) == 254


ADMIN = "boss@eleviogroup.com"


@pytest.mark.parametrize(
    "value",
    [
        "bo ss@eleviogroup.com",  # a space inside
        "bo ss@\televiogroup.com",  # space and tab inside
        "boss\xa0@eleviogroup.com",  # no-break space
        "boss@eleviogroup.com\u2003",  # em space (not HTTP whitespace, so not trimmed)
        "boss\u200b@eleviogroup.com",  # zero-width space
        "bo\x00ss@eleviogroup.com",  # NUL
        "boss@eleviogroup.com\x1b[0m",  # ANSI
        "boss@eleviogroup.com, eve@example.com",  # a list
        "boss@eleviogroup.com;eve@example.com",
        "boss@eleviogroup.com" + "z" * 300,  # longer than any address
    ],
)
def test_a_trusted_header_with_hidden_characters_or_several_values_is_rejected(in_streamlit, value, caplog):
    before = identity.header_rejections.count
    in_streamlit["headers"] = {"X-Forwarded-Email": value}
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "ctg_chatbot_user@eleviogroup.com"
    in_streamlit["email"] = "Login@Example.com"  # falls through to the login as if the header were absent
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "login@example.com"
    assert identity.header_rejections.count == before + 2


class _TwoLines(dict):
    """Headers as Streamlit exposes them (``st.context.headers``): ``get`` gives the first line, ``get_all`` every one."""

    def get_all(self, key):
        return ["boss@eleviogroup.com", "eve@example.com"] if key == "X-Forwarded-Email" else []


def test_two_header_lines_are_rejected_not_first_wins(in_streamlit):
    in_streamlit["headers"] = _TwoLines({"X-Forwarded-Email": "boss@eleviogroup.com"})
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == "ctg_chatbot_user@eleviogroup.com"


def test_a_rejection_is_logged_once_and_never_shows_the_value(in_streamlit, caplog, monkeypatch):
    monkeypatch.setattr(identity, "header_rejections", identity._Rejections())
    settings = Settings(trusted_user_header="X-Forwarded-Email")
    with caplog.at_level("WARNING", logger="ctg_app"):
        for value in ("a b@x.org", "c\td@x.org", "e,f@x.org"):
            in_streamlit["headers"] = {"X-Forwarded-Email": value}
            current_user(settings)
    assert identity.header_rejections.count == 3
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert "x.org" not in record.getMessage()
    assert "X-Forwarded-Email" in record.getMessage()


def test_surrounding_http_whitespace_is_trimmed(in_streamlit):
    in_streamlit["headers"] = {"X-Forwarded-Email": " \tBoss@ElevioGroup.com \t"}
    assert current_user(Settings(trusted_user_header="X-Forwarded-Email")) == ADMIN


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
