"""Who is acting: the user's email and the Streamlit session.

Precedence (spec: "User Identification"): a trusted proxy header, only when ``TRUSTED_USER_HEADER`` names one (Databricks
Apps sends ``X-Forwarded-Email``; anyone reaching the app directly could forge it, so it is ignored unless configured);
then ``st.user``'s email when the user logged in through Streamlit; then the configured default
(``ctg_chatbot_user@eleviogroup.com``). Outside a Streamlit script run (CLI, tests, threads) it is the default.

The trusted header is taken only when it is unambiguous: exactly one header line holding one value, without whitespace,
control characters or other invisible characters inside (``"bo ss@\t…"`` or a no-break space must not turn into
somebody else's address by normalisation). It is then normalised (NFKC, casefold) and must be a plain ASCII address
(``local@domain``, a dot-atom local part): a Unicode look-alike (Cyrillic ``а`` for Latin ``a``, a fullwidth ``＠``,
which NFKC would quietly turn into ``@``) or a ``"quoted"`` local part would otherwise be stored as a distinct user.
Anything else is rejected: identity falls through as if the header were absent, and the rejection is counted
(:data:`header_rejections`) and logged once, without the value.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import unicodedata
from collections.abc import Mapping

from ctg_app.settings import Settings, get_settings

log = logging.getLogger("ctg_app.tracking")

MAX_USER_LENGTH = 254  # the longest valid email address
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\s]+")
_HTTP_OWS = " \t"  # optional whitespace around a header value (RFC 9110), the only whitespace trimmed from it
_LIST_SEPARATORS = (",", ";")
# A plain address after casefolding: a dot-atom local part (RFC 5322, no quoted string) and a host name of LDH labels.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


class _Rejections:
    """How many trusted-header values were rejected, by reason (thread-safe); the first is logged."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.by_reason: dict[str, int] = {}

    def add(self, header: str, reason: str) -> None:
        with self._lock:
            self.count += 1
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
            first = self.count == 1
        if first:  # once per process: a misbehaving proxy must not flood the log; the value itself is never logged
            log.warning("trusted header %s rejected (%s); identity falls back to the login or the default user "
                        "(further rejections are counted, not logged)", header, reason)


header_rejections = _Rejections()


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


def trusted_header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The single, clean value of header ``name`` in ``headers``, or None when it is absent or rejected.

    Rejected (counted in :data:`header_rejections`): several header lines, a list (``,`` or ``;``), whitespace, control,
    format or other non-printable characters inside the value, a value longer than an email address can be, and
    anything that is not a plain ASCII address (:func:`plain_address`). Only the surrounding spaces/tabs HTTP allows
    are trimmed; the result is NFKC-normalised and casefolded.
    """
    get_all = getattr(headers, "get_all", None)
    values = list(get_all(name)) if callable(get_all) else [headers.get(name)]
    values = [v for v in values if v is not None]
    if not values:
        return None
    if len(values) > 1:
        return _reject(name, "several header lines")
    value = values[0]
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    value = str(value).strip(_HTTP_OWS)
    if not value:
        return None
    if len(value) > MAX_USER_LENGTH:
        return _reject(name, "longer than an email address")
    if any(sep in value for sep in _LIST_SEPARATORS):
        return _reject(name, "several values")
    if not value.isprintable() or any(char.isspace() for char in value):
        return _reject(name, "whitespace or invisible characters inside")
    return plain_address(name, value)


def plain_address(name: str, value: str) -> str | None:
    """``value`` normalised (NFKC, casefold) when it is a plain ASCII address, else None (rejected and counted).

    A value that NFKC changes (fullwidth or other compatibility characters) or that is not ASCII afterwards (a
    Cyrillic or Greek look-alike) is a look-alike of some other address, not that address: it is rejected."""
    normalised = unicodedata.normalize("NFKC", value)
    if normalised != value or not normalised.isascii():
        return _reject(name, "non-ASCII or look-alike characters")
    folded = normalised.casefold()
    if not _PLAIN_ADDRESS.fullmatch(folded):
        return _reject(name, "not a plain email address")
    return folded


def _reject(name: str, reason: str) -> None:
    header_rejections.add(name, reason)
    return None


def current_user(settings: Settings | None = None) -> str:
    """The acting user's normalised email (see the module docstring for the precedence)."""
    settings = settings or get_settings()
    default = _default_user(settings.default_user)
    if script_run_ctx() is None:
        return default
    if settings.trusted_user_header:
        value = trusted_header_value(request_headers(), settings.trusted_user_header)
        if value:
            return value
    return normalise_user(_streamlit_user_email(), default)


def current_session_id() -> str | None:
    """The Streamlit session id of this script run, or None outside Streamlit."""
    ctx = script_run_ctx()
    return getattr(ctx, "session_id", None) if ctx is not None else None
