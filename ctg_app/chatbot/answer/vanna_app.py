"""The language-model answerer, and the one module that imports Vanna.

:func:`build_llm_answerer` assembles a Vanna legacy object — the :class:`TfidfStore` as its training store and the
provider's chat class (``LLM_PROVIDER``: ``openai``, ``azure_openai``, ``anthropic``, ``ollama``) — trains it from
``data/training.toml`` and wraps it in :class:`LlmAnswerer`. Provider modules are imported only here, when the
answerer is built; building never contacts a network (clients connect on the first prompt; Ollama's automatic model
pull at construction is disabled). The Vanna object never runs SQL itself: the answerer checks the model's SQL
through the :class:`~ctg_app.chatbot.policy.GuardedSource` it is given.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ctg_app.chatbot.answer.answerer import clean_followups
from ctg_app.chatbot.answer.llm_reply import build_messages, llm_failure, parse_reply, retry_message
from ctg_app.chatbot.answer.providers import DEFAULT_MODELS, LlmConfigError, import_extra, provider_name, require
from ctg_app.chatbot.answer.retrieval import TfidfStore, train
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.policy import GuardedSource
from ctg_app.chatbot.present.summary import aggregates_text
from ctg_app.errors import LlmError, SqlValidationError
from ctg_app.settings import Settings
from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.recording.classify import ErrorClassifier

log = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS = (
    "You summarise SQL query results for project controllers. You are given aggregates computed on the complete "
    "result (not a sample). Answer the user's question in two or three short sentences, using only these figures; "
    "write amounts in EUR with thousands separators.")


class _QuietVanna:
    """Mixin placed first in every assembled Vanna class."""

    def log(self, message: str, title: str = "Info") -> None:
        """Vanna's chatter (prompts may hold data) goes to DEBUG logging instead of stdout."""
        log.debug("%s: %s", title, message)


class LlmAnswerer:
    """An :class:`~ctg_app.chatbot.answer.answerer.Answerer` that asks a language model (through ``vanna``).

    The model's SQL must pass the policy with columns checked and compile on the database (``LIMIT 0``) before it is
    returned; a failure gets one retry with the error text (self-correction)."""

    def __init__(self, vanna: Any, source: GuardedSource, settings: Settings) -> None:
        self.vanna = vanna
        self.source = source
        self.settings = settings

    def answer(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL from the model for ``question``, checked; a reply without SQL is a decline.

        A second failing reply raises SqlValidationError; a failed request or a reply that is no answer, LlmError."""
        vn = self.vanna
        messages = build_messages(vn, question, self.source.display_dialect, previous, self.settings)
        reply = self._ask(messages)
        parsed = parse_reply(reply)
        corrected = False
        error = self._sql_error(parsed.sql) if parsed.sql else None
        if error:
            log.info("the language model's SQL failed (%s); asking once more", error)
            messages += [vn.assistant_message(str(reply)), vn.user_message(retry_message(parsed.sql, error))]
            reply = self._ask(messages)
            parsed = parse_reply(reply)
            corrected = True
            error = self._sql_error(parsed.sql) if parsed.sql else None
            if error:
                raise SqlValidationError(f"the language model's SQL failed twice; last error: {error}")
        if not parsed.sql:
            return SqlAnswer(question=question, sql=None, declined=True,
                             message=f"The assistant cannot answer this from the CTG data: {parsed.decline}",
                             decline_reason="out_of_domain")
        return SqlAnswer(question=question, sql=parsed.sql, interpretation=parsed.interpretation,
                         confidence="low" if corrected else "medium")

    def _ask(self, messages: list) -> str:
        try:
            return str(self.vanna.submit_prompt(messages) or "")
        except LlmError:
            raise
        except Exception as exc:  # noqa: BLE001 - any client error becomes one clear llm_error
            raise llm_failure(exc, self.settings) from exc

    def _sql_error(self, sql: str) -> str | None:
        """Why ``sql`` cannot run (policy with columns checked, then a LIMIT 0 probe), or None when it can."""
        try:
            self.source.probe(sql)
        except SqlValidationError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - only "the SQL is wrong" goes back to the model
            if ErrorClassifier().classify(exc) != Actions.SQL_ERROR:
                raise
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        return None

    def summarize(self, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
        """The model summarises aggregates computed on the full frame (row count, totals, extremes, time span), never
        a truncated sample of rows."""
        vn = self.vanna
        prompt = [
            vn.system_message(SUMMARY_INSTRUCTIONS),
            vn.user_message(f"Question: {question}\n"
                            + (f"Interpreted as: {interpretation}\n" if interpretation else "")
                            + f"Aggregates of the full result:\n{aggregates_text(df)}"),
        ]
        return self._ask(prompt)

    def followups(self, question: str, sql: str, df: pd.DataFrame, n: int = 4) -> list[str]:
        """Up to ``n`` follow-up questions from the model (it sees the first 25 rows)."""
        return clean_followups(self.vanna.generate_followup_questions(question, sql, df.head(25), n_questions=n),
                               question, n)

    def questions(self) -> list[str]:
        """The trained questions."""
        return [q for q in self.vanna.generate_questions() if q]


def build_llm_answerer(settings: Settings, source: GuardedSource) -> LlmAnswerer:
    """The trained language-model answerer for ``settings`` (no network I/O; raises LlmConfigError)."""
    vanna = create_vanna(settings, {"dialect": source.display_dialect})
    train(vanna, source.dialect)
    return LlmAnswerer(vanna, source, settings)


def create_vanna(settings: Settings, base_config: dict[str, Any]) -> Any:
    """The Vanna object ``class(_QuietVanna, TfidfStore, <provider's chat class>)`` (no network I/O)."""
    name = provider_name(settings)
    config = dict(base_config)
    if name == "offline":
        raise LlmConfigError("LLM_PROVIDER=offline answers without a language model.")

    if name in ("openai", "azure_openai"):
        openai = import_extra("openai", "openai")
        chat_module = import_extra("vanna.legacy.openai.openai_chat", "openai")
        key = require(settings.openai_api_key, "Set OPENAI_API_KEY to use the OpenAI / Azure OpenAI provider.")
        limits = {"timeout": settings.llm_timeout_s, "max_retries": settings.llm_max_retries}
        if name == "openai":
            extra = {"base_url": settings.openai_base_url} if settings.openai_base_url else {}
            client = openai.OpenAI(api_key=key, **extra, **limits)
            config["model"] = settings.llm_model or DEFAULT_MODELS["openai"]
        else:
            endpoint = require(settings.azure_openai_endpoint, "Set AZURE_OPENAI_ENDPOINT for LLM_PROVIDER=azure_openai.")
            config["model"] = require(settings.llm_model, "Set LLM_MODEL to your Azure OpenAI deployment name.")
            client = openai.AzureOpenAI(api_key=key, azure_endpoint=endpoint,
                                        api_version=settings.azure_openai_api_version, **limits)
        llm_cls = chat_module.OpenAI_Chat
        config.setdefault("temperature", 0.0)

        class OpenAIVanna(_QuietVanna, TfidfStore, llm_cls):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any]) -> None:
                TfidfStore.__init__(self, config=config)
                llm_cls.__init__(self, client=client, config=config)

        return OpenAIVanna(config)

    if name == "anthropic":
        anthropic = import_extra("anthropic", "anthropic")
        chat_module = import_extra("vanna.legacy.anthropic.anthropic_chat", "anthropic")
        key = require(settings.anthropic_api_key, "Set ANTHROPIC_API_KEY to use the Anthropic provider.")
        client = anthropic.Anthropic(api_key=key, timeout=settings.llm_timeout_s,
                                     max_retries=settings.llm_max_retries)
        config["model"] = settings.llm_model or DEFAULT_MODELS["anthropic"]
        config.setdefault("temperature", 0.0)
        llm_cls = chat_module.Anthropic_Chat

        class AnthropicVanna(_QuietVanna, TfidfStore, llm_cls):  # type: ignore[misc, valid-type]
            def __init__(self, config: dict[str, Any]) -> None:
                TfidfStore.__init__(self, config=config)
                llm_cls.__init__(self, client=client, config=config)

        return AnthropicVanna(config)

    # ollama
    import_extra("ollama", "ollama")
    ollama_module = import_extra("vanna.legacy.ollama.ollama", "ollama")
    config["model"] = settings.llm_model or DEFAULT_MODELS["ollama"]
    config["ollama_host"] = settings.ollama_host
    config["ollama_timeout"] = settings.llm_timeout_s  # vanna's default is 240 s
    llm_cls = ollama_module.Ollama

    class OllamaVanna(_QuietVanna, TfidfStore, llm_cls):  # type: ignore[misc, valid-type]
        # vanna's Ollama constructor lists (and may pull) models on the server; never at start-up here
        _Ollama__pull_model_if_ne = staticmethod(lambda client, model: None)

        def __init__(self, config: dict[str, Any]) -> None:
            TfidfStore.__init__(self, config=config)
            llm_cls.__init__(self, config=config)

    return OllamaVanna(config)
