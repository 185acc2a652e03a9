"""The language-model side of the Vanna object, chosen by ``LLM_PROVIDER``.

``offline`` (default) is the retrieval model in :mod:`ctg_app.chatbot.answer.retrieval`. ``openai``, ``azure_openai``,
``anthropic`` and ``ollama`` use vanna's legacy classes. Provider modules are imported only here, when the Vanna
object is built; building never contacts a network (clients connect on the first prompt; Ollama's automatic model
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


def _require(value: Any, message: str) -> Any:
    if not value:
        raise LlmConfigError(message)
    return value


def _import(module: str, extra: str) -> Any:
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


def create_vanna(settings: Settings, mixin: type, store: type, base_config: dict[str, Any]) -> Any:
    """Build the Vanna object ``class(mixin, store, <LLM class>)`` for the configured provider (no network I/O)."""
    name = provider_name(settings)
    config = dict(base_config)
    if name == "offline":
        from ctg_app.chatbot.answer.retrieval import RetrievalLLM

        class OfflineVanna(mixin, store, RetrievalLLM):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any]) -> None:
                store.__init__(self, config=config)
                RetrievalLLM.__init__(self, config=config)

        return OfflineVanna(config)

    if name in ("openai", "azure_openai"):
        openai = _import("openai", "openai")
        chat_module = _import("vanna.legacy.openai.openai_chat", "openai")
        key = _require(settings.openai_api_key, "Set OPENAI_API_KEY to use the OpenAI / Azure OpenAI provider.")
        limits = {"timeout": settings.llm_timeout_s, "max_retries": settings.llm_max_retries}
        if name == "openai":
            extra = {"base_url": settings.openai_base_url} if settings.openai_base_url else {}
            client = openai.OpenAI(api_key=key, **extra, **limits)
            config["model"] = settings.llm_model or DEFAULT_MODELS["openai"]
        else:
            endpoint = _require(settings.azure_openai_endpoint, "Set AZURE_OPENAI_ENDPOINT for LLM_PROVIDER=azure_openai.")
            config["model"] = _require(settings.llm_model, "Set LLM_MODEL to your Azure OpenAI deployment name.")
            client = openai.AzureOpenAI(api_key=key, azure_endpoint=endpoint,
                                        api_version=settings.azure_openai_api_version, **limits)
        llm_cls = chat_module.OpenAI_Chat
        config.setdefault("temperature", 0.0)

        class OpenAIVanna(mixin, store, llm_cls):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any]) -> None:
                store.__init__(self, config=config)
                llm_cls.__init__(self, client=client, config=config)

        return OpenAIVanna(config)

    if name == "anthropic":
        anthropic = _import("anthropic", "anthropic")
        chat_module = _import("vanna.legacy.anthropic.anthropic_chat", "anthropic")
        key = _require(settings.anthropic_api_key, "Set ANTHROPIC_API_KEY to use the Anthropic provider.")
        client = anthropic.Anthropic(api_key=key, timeout=settings.llm_timeout_s,
                                     max_retries=settings.llm_max_retries)
        config["model"] = settings.llm_model or DEFAULT_MODELS["anthropic"]
        config.setdefault("temperature", 0.0)
        llm_cls = chat_module.Anthropic_Chat

        class AnthropicVanna(mixin, store, llm_cls):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any]) -> None:
                store.__init__(self, config=config)
                llm_cls.__init__(self, client=client, config=config)

        return AnthropicVanna(config)

    # ollama
    _import("ollama", "ollama")
    ollama_module = _import("vanna.legacy.ollama.ollama", "ollama")
    config["model"] = settings.llm_model or DEFAULT_MODELS["ollama"]
    config["ollama_host"] = settings.ollama_host
    config["ollama_timeout"] = settings.llm_timeout_s  # vanna's default is 240 s
    llm_cls = ollama_module.Ollama

    class OllamaVanna(mixin, store, llm_cls):  # type: ignore[misc, valid-type]
        # vanna's Ollama constructor lists (and may pull) models on the server; never at start-up here
        _Ollama__pull_model_if_ne = staticmethod(lambda client, model: None)

        def __init__(self, config: dict[str, Any]) -> None:
            store.__init__(self, config=config)
            llm_cls.__init__(self, config=config)

    return OllamaVanna(config)
