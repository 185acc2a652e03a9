"""Who is acting: the user's email and the Streamlit session.

Precedence (spec: "User Identification"): a trusted proxy header, only when ``TRUSTED_USER_HEADER`` names one (Databricks
Apps sends ``X-Forwarded-Email``; anyone reaching the app directly could forge it, so it is ignored unless configured);
then ``st.user``'s email when the user logged in through Streamlit; then the configured default
(``ctg_chatbot_user@eleviogroup.com``). Outside a Streamlit script run (CLI, tests, threads) it is the default.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping

from ctg_app.settings import Settings, get_settings

MAX_USER_LENGTH = 254  # the longest valid email address
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\s]+")


def normalise_user(value: object, default: str) -> str:
    """Trimmed, lower-cased, without whitespace or control characters, at most 254 characters; ``default`` if empty."""
    text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value or "")
    text = _UNSAFE.sub("", text.strip()).lower()[:MAX_USER_LENGTH]
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text or default


@functools.lru_cache(maxsize=8)
def _default_user(default: str) -> str:
    return normalise_user(default, default)


def script_run_ctx():
    """The Streamlit script-run context of this thread, or None (cheap when Streamlit was never imported)."""
    if "streamlit" not in sys.modules:
        return None
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True)


def request_headers() -> Mapping[str, str]:
    """Headers of the browser's request for this session (empty outside Streamlit). Tests patch this function."""
    if script_run_ctx() is None:
        return {}
    import streamlit as st

    return st.context.headers


def _streamlit_user_email() -> str | None:
    if script_run_ctx() is None:
        return None
    import streamlit as st

    try:
        email = st.user.get("email")
    except Exception:  # no auth configured, or an older Streamlit: no logged-in user
        return None
    return email or None


def current_user(settings: Settings | None = None) -> str:
    """The acting user's normalised email (see the module docstring for the precedence)."""
    settings = settings or get_settings()
    default = _default_user(settings.default_user)
    if script_run_ctx() is None:
        return default
    if settings.trusted_user_header:
        value = request_headers().get(settings.trusted_user_header)
        if value:
            return normalise_user(value, default)
    return normalise_user(_streamlit_user_email(), default)


def current_session_id() -> str | None:
    """The Streamlit session id of this script run, or None outside Streamlit."""
    ctx = script_run_ctx()
    return getattr(ctx, "session_id", None) if ctx is not None else None
