"""The trusted header's address is normalised (NFKC, casefold) and must be a plain ASCII address.

A Unicode look-alike of an address (Cyrillic letters, a fullwidth ``＠``) or a ``"quoted"`` local part used to be
stored as a distinct user; now it is rejected like any other unusable header value: identity falls through to the login
or the default, the rejection is counted and logged without the value, and no event carries it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ctg_app.settings import Settings
from ctg_app.tracking import Actions, current_user, reset_tracker, tracked
from ctg_app.tracking.recording import identity

HEADER = "X-Forwarded-Email"
DEFAULT = "ctg_chatbot_user@eleviogroup.com"


@pytest.fixture
def in_streamlit(monkeypatch):
    """Inside a Streamlit script run with the given request headers and st.user email; a fresh rejection counter."""
    state = {"headers": {}, "email": None}
    monkeypatch.setattr(identity, "script_run_ctx", lambda: SimpleNamespace(session_id="session-1"))
    monkeypatch.setattr(identity, "request_headers", lambda: state["headers"])
    monkeypatch.setattr(identity, "_streamlit_user_email", lambda: state["email"])
    monkeypatch.setattr(identity, "header_rejections", identity._Rejections())
    return state


LOOKALIKES = {
    "cyrillic a": "boss@eleviogr\u043eup.com",  # о (U+043E) for o
    "cyrillic local part": "b\u043ess@eleviogroup.com",
    "cyrillic capital": "\u0412oss@eleviogroup.com",  # В (U+0412) for B
    "greek omicron": "b\u03bfss@eleviogroup.com",
    "fullwidth at": "boss\uff20eleviogroup.com",  # ＠, which NFKC turns into @
    "fullwidth letters": "\uff42\uff4f\uff53\uff53@eleviogroup.com",  # ｂｏｓｓ
    "ligature": "\ufb01nance@eleviogroup.com",  # ﬁ, which NFKC turns into fi
    "quoted local part": '"boss"@eleviogroup.com',
    "quoted with at": '"boss@eleviogroup.com"@evil.example',
    "no domain": "boss",
    "no dot in the domain": "boss@localhost",
    "two ats": "boss@eleviogroup.com@evil.example",
}


@pytest.mark.parametrize("value", LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_a_lookalike_address_is_rejected_and_falls_through(in_streamlit, value, caplog):
    settings = Settings(trusted_user_header=HEADER)
    in_streamlit["headers"] = {HEADER: value}
    with caplog.at_level("WARNING", logger="ctg_app"):
        assert current_user(settings) == DEFAULT
    in_streamlit["email"] = "Login@Example.com"
    assert current_user(settings) == "login@example.com"
    assert identity.header_rejections.count == 2
    [record] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert value not in record.getMessage() and "eleviogroup" not in record.getMessage()


@pytest.mark.parametrize("value,expected", [
    ("Boss@ElevioGroup.COM", "boss@eleviogroup.com"),
    ("Anna.Keller-Schmidt+ctg@Sub.Elevio-Group.de", "anna.keller-schmidt+ctg@sub.elevio-group.de"),
    ("o'brien@eleviogroup.com", "o'brien@eleviogroup.com"),
])
def test_a_plain_address_becomes_its_casefolded_form(in_streamlit, value, expected):
    in_streamlit["headers"] = {HEADER: value}
    assert current_user(Settings(trusted_user_header=HEADER)) == expected
    assert identity.header_rejections.count == 0


def test_no_event_carries_a_lookalike_user(tracking_spool, in_streamlit, monkeypatch):
    monkeypatch.setenv("TRUSTED_USER_HEADER", HEADER)
    reset_tracker()

    @tracked(Actions.APP_START)
    def start() -> None:
        return None

    for value in ("Boss@ElevioGroup.com", *LOOKALIKES.values()):
        in_streamlit["headers"] = {HEADER: value}
        start()
    users = [row["user"] for row in tracking_spool.rows()]
    assert users == ["boss@eleviogroup.com"] + [DEFAULT] * len(LOOKALIKES)
