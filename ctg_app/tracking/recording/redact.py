"""Redaction: secrets never reach a log line, an exception text we store, or a spool row.

A :class:`Redactor` is a small policy object (swap it on the tracker): it removes configured secret values verbatim, then
anything shaped like a Databricks / OpenAI / Anthropic token, a bearer header, a JWT or a ``password=`` pair, drops control
characters and bounds the length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

_TOKEN_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bdapi[0-9a-fA-F]{32}(?:-\d+)?\b"),  # Databricks personal access token
    re.compile(r"\bdose[0-9a-zA-Z]{20,}\b"),  # Databricks OAuth client secret
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT (OAuth access tokens)
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(
        r"(?i)\b(access_token|api[_-]?key|client_secret|password|passwd|pwd|secret|token)"
        r"(\"?\s*[:=]\s*\"?)[^\s\"',;&]{4,}"
    ),
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class Redactor:
    """Removes secrets from text and bounds its length."""

    def __init__(self, secrets: Iterable[str] = (), max_length: int = 500) -> None:
        # Longest first, so a secret that contains another is removed whole; very short values would redact ordinary words.
        self.secrets = tuple(sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True))
        self.max_length = max_length

    def __call__(self, value: object) -> str:
        """``value`` as safe text: stringified, secrets removed, control characters dropped, at most ``max_length``."""
        text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(_replacement, text)
        text = _CONTROL.sub("", text)
        text = text.encode("utf-8", "replace").decode("utf-8")
        if len(text) > self.max_length:
            text = text[: self.max_length - 1] + "…"
        return text


def _replacement(match: re.Match[str]) -> str:
    if match.re.groups >= 2 and match.group(2) is not None:  # key=value: keep the key, hide the value
        return f"{match.group(1)}{match.group(2)}{REDACTED}"
    if match.re.groups == 1:  # "Bearer xyz"
        return f"{match.group(1)} {REDACTED}"
    return REDACTED
