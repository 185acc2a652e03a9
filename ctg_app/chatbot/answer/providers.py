"""The language-model provider, chosen by ``LLM_PROVIDER``: its name, its configuration errors, its optional extra.

``offline`` (default) answers with the offline engine (:mod:`ctg_app.chatbot.answer.offline`). ``openai``,
``azure_openai``, ``anthropic`` and ``ollama`` use vanna's legacy classes, assembled in
:mod:`ctg_app.chatbot.answer.vanna_app`. Provider modules are imported only there, when the answerer is built
(:func:`import_extra`); building never contacts a network (clients connect on the first prompt; Ollama's automatic model
pull at construction is disabled). Every client waits at most ``LLM_TIMEOUT_S`` per request and retries
``LLM_MAX_RETRIES`` times (the clients' own retry of 429 / 5xx / timeouts; Ollama, a local server, is not retried) —
never the libraries' 600 s default. A missing key or package raises :class:`LlmConfigError` with a message meant for
the UI.
"""

from __future__ import annotations

import logging
from typing import Any

from ctg_app.settings import Settings
from ctg_app.errors import LlmError

log = logging.getLogger(__name__)

PROVIDERS = ("offline", "openai", "azure_openai", "anthropic", "ollama")
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-sonnet-latest", "ollama": "llama3.1"}


class LlmConfigError(LlmError):
    """The configured LLM provider cannot be used; the message says what to set (never a secret's value)."""


def require(value: Any, message: str) -> Any:
    """``value``, or LlmConfigError with ``message`` when it is empty."""
    if not value:
        raise LlmConfigError(message)
    return value


def import_extra(module: str, extra: str) -> Any:
    """Import ``module`` of the optional ``extra``; LlmConfigError saying what to install when it is missing."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise LlmConfigError(
            f"LLM_PROVIDER needs the '{extra}' extra: pip install 'ctg-app[{extra}]' ({exc.name} is not installed)."
        ) from None


def provider_name(settings: Settings) -> str:
    """The normalised provider name; raises :class:`LlmConfigError` for an unknown one."""
    name = (settings.llm_provider or "offline").strip().lower().replace("-", "_")
    if name == "azure":
        name = "azure_openai"
    if name not in PROVIDERS:
        raise LlmConfigError(f"Unknown LLM_PROVIDER {settings.llm_provider!r}; use one of: {', '.join(PROVIDERS)}.")
    return name
