"""Redaction: secrets never reach a log line, an exception text we store, a spool row or a command's output.

A :class:`Redactor` is a small policy object (swap it on the tracker): it removes configured secret values verbatim, then
anything shaped like a Databricks / OpenAI / Anthropic token, a bearer header, a JWT, a ``password=`` pair or a URL's
``user:password@``, neutralises control characters and bounds the length.

Hostile input costs O(bound), not O(input): a long string is cut to a window a little larger than the bound *before*
any pattern runs (the window's margin keeps a secret that straddles the bound from being half-matched), a value whose
``__str__`` raises becomes a placeholder, and lone surrogates become ``?``.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable

REDACTED = "[REDACTED]"

_TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Databricks personal access token, also when pasted against other text (no word boundary required).
    re.compile(r"dapi[0-9a-fA-F]{32}[0-9a-fA-F]*(?:-\d+)?"),
    re.compile(r"\bdose[0-9a-zA-Z]{20,}\b"),  # Databricks OAuth client secret
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI
    # JWT (OAuth access tokens); distinctive enough to need no word boundary, so "x<jwt>y" is caught too
    re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)\b(access_token|api[_-]?key|client_secret|password|passwd|pwd|secret|token)"
        r"(\"?\s*[:=]\s*\"?)[^\s\"',;&]{4,}"
    ),
    re.compile(r"(?i)\b(https?://)[^/\s:@]+:[^/\s@]+(@)"),  # credentials inside a URL
)
# Long runs that look like key material rather than words (used to refuse settings that end up in events, not to redact
# output, where a hash or an id may legitimately be this long): 32+ hex digits, or 32+ base64 characters mixing upper
# case, lower case and digits.
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{32,}={0,2}")
# C0/C1 control characters (ESC included: an ANSI sequence loses its power) are dropped; line breaks, tabs and the
# Unicode line/paragraph separators and bidi overrides are escaped so a stored value stays one visible line.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ESCAPED = re.compile(r"[\t\n\r\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_MARGIN = 4096  # characters kept beyond the bound before redaction, so a token crossing the bound is still seen whole

_container_repr = reprlib.Repr()
_container_repr.maxstring = _container_repr.maxother = 200
_container_repr.maxlist = _container_repr.maxtuple = _container_repr.maxdict = _container_repr.maxset = 50
_container_repr.maxlevel = 3


class Redactor:
    """Removes secrets from text, neutralises control characters and bounds its length.

    :param secrets: values removed verbatim wherever they appear (values shorter than 6 characters are ignored).
    :param max_length: the longest result (``None``: unbounded, as for a command's whole output).
    :param escape: neutralise control characters and escape line breaks (off for multi-line console output).
    """

    def __init__(self, secrets: Iterable[str] = (), max_length: int | None = 500, *, escape: bool = True) -> None:
        # Longest first, so a secret that contains another is removed whole; very short values would redact ordinary words.
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True))
        self.max_length = max_length
        self.escape = escape
        self._margin = max(_MARGIN, 2 * max(map(len, self.secrets), default=0))

    def __call__(self, value: object, limit: int | None = None) -> str:
        """``value`` as safe text: secrets removed, control characters neutralised, at most ``limit`` (default
        ``max_length``) characters. Never raises for a hostile value and never reads more of it than the bound needs."""
        limit = self.max_length if limit is None else limit
        text = as_text(value, None if limit is None else limit + self._margin)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(_replacement, text)
        if self.escape:
            text = _CONTROL.sub("", text)
            text = _ESCAPED.sub(_escape, text)
        if not text.isascii():
            text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be stored or printed
        if limit is not None and len(text) > limit:
            text = text[: limit - 1] + "…"
        return text


def contains_secret(text: str, secrets: Iterable[str] = ()) -> bool:
    """True when ``text`` holds one of ``secrets`` (values of 6 characters or more), something the redactor would
    remove (a token, bearer header, JWT, ``password=`` pair, URL credentials) or a long hex/base64 run."""
    if Redactor(secrets, max_length=None, escape=False)(text) != text:
        return True
    if _HEX_RUN.search(text):
        return True
    return any(re.search("[A-Z]", run) and re.search("[a-z]", run) and re.search("[0-9]", run)
               for run in (m.group(0) for m in _BASE64_RUN.finditer(text)))


def as_text(value: object, window: int | None = None) -> str:
    """``value`` as text, at most ``window`` characters when given, reading no more of a long str/bytes than that.

    Containers are shown through :mod:`reprlib` (bounded); a value whose ``__str__`` raises becomes
    ``<unprintable TypeName>`` instead of losing the event it belongs to."""
    try:
        if isinstance(value, str):
            text = value
        elif isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value[: window * 4]) if window is not None else bytes(value)
            text = raw.decode("utf-8", "replace")
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            text = _container_repr.repr(value)
        else:
            text = str(value)
            if type(text) is not str:  # a __str__ returning a str subclass with surprises
                text = str.__str__(text)
    except Exception:  # noqa: BLE001 - a broken __str__ must not cost the event
        text = f"<unprintable {type(value).__name__[:64]}>"
    return text if window is None or len(text) <= window else text[:window]


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _replacement(match: re.Match[str]) -> str:
    if match.re.groups >= 2 and match.group(2) == "@":  # https://user:password@host: keep the scheme and host
        return f"{match.group(1)}{REDACTED}@"
    if match.re.groups >= 2 and match.group(2) is not None:  # key=value: keep the key, hide the value
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    if match.re.groups == 1:  # "Bearer xyz"
        return f"{match.group(1)} {REDACTED}"
    return REDACTED
