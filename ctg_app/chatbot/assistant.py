"""The assistant: the one object the chat page talks to (question → answer → policy → run → present).

:class:`Assistant` composes an :class:`~ctg_app.chatbot.answer.answerer.Answerer` (offline engine or a language
model), the :class:`~ctg_app.chatbot.policy.GuardedSource` every query runs through, and the presenters (chart,
summary). It holds no Streamlit and records nothing: the page's operations (:mod:`ctg_app.ui.operations`) record one
usage event per user action around these calls. :func:`build_assistant` assembles it from the settings.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from ctg_app.chatbot.answer.answerer import Answerer
from ctg_app.chatbot.answer.offline import OfflineAnswerer
from ctg_app.chatbot.answer.providers import provider_name
from ctg_app.chatbot.answer.retrieval import TfidfStore, train
from ctg_app.chatbot.answer.vanna_app import build_llm_answerer
from ctg_app.chatbot.answer.write_requests import MESSAGE as WRITE_MESSAGE
from ctg_app.chatbot.answer.write_requests import is_write_request
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.data.source import DataSource, make_data_source
from ctg_app.chatbot.policy import GuardedSource
from ctg_app.chatbot.present.charts import build_chart
from ctg_app.settings import Settings, get_settings


class Assistant:
    """Answers questions and runs SQL for the chat, always through the read-only policy.

    ``cache_key`` names this assistant's configuration (the page keys its caches by it)."""

    def __init__(self, answerer: Answerer, source: GuardedSource, cache_key: str = "") -> None:
        self.answerer = answerer
        self.source = source
        self.cache_key = cache_key or f"assistant-{id(self)}"

    @property
    def data_source(self) -> DataSource:
        """The data source behind the policy."""
        return self.source.source

    @property
    def dialect(self) -> str:
        """The data source's dialect as people know it (``SQLite``, ``Databricks SQL``)."""
        return self.source.display_dialect

    @property
    def sql_dialect(self) -> str:
        """The data source's sqlglot dialect (``sqlite``, ``databricks``)."""
        return self.source.dialect

    def ask(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL for ``question`` — a follow-up of ``previous`` when given — or a decline.

        Write and admin requests are declined in every mode before any model is asked. The SQL is not yet checked:
        :meth:`validate` says whether it may run, :meth:`run` checks it again and runs it."""
        if is_write_request(question):
            return SqlAnswer(question=question, sql=None, declined=True, message=WRITE_MESSAGE,
                             decline_reason="write_request", score=0.0)
        return self.answerer.answer(question, previous)

    def validate(self, sql: str) -> str:
        """The SQL that would run for ``sql`` (row cap applied); SqlValidationError with the reason otherwise."""
        return self.source.validate(sql)

    def run(self, sql: str) -> pd.DataFrame:
        """Validate ``sql`` (generated or edited) and run it on the data source, bounded in time and rows."""
        return self.source.run(sql)

    def summarize(self, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
        """A short summary of the WHOLE result ``df`` that answers the question."""
        return self.answerer.summarize(question, df, interpretation)

    def chart(self, df: pd.DataFrame, title: str | None = None) -> go.Figure:
        """A Plotly chart of the result (ChartError when the data cannot be charted)."""
        return build_chart(df, title=title)

    def followups(self, question: str, sql: str, df: pd.DataFrame) -> list[str]:
        """Follow-up questions to an answered question."""
        return self.answerer.followups(question, sql, df)

    def questions(self) -> list[str]:
        """The trained questions (welcome examples and suggestions)."""
        return self.answerer.questions()

    def describe_source(self) -> str:
        """A short description of the data source (no secrets)."""
        return self.source.describe()


def build_assistant(settings: Settings | None = None, data_source: DataSource | None = None,
                    cache_key: str = "") -> Assistant:
    """The trained assistant for the settings (no network I/O; raises LlmConfigError / DataSourceConfigError)."""
    settings = settings or get_settings()
    source = GuardedSource(data_source or make_data_source(settings))
    answerer: Answerer
    if provider_name(settings) == "offline":
        store = TfidfStore()
        train(store, source.dialect)
        answerer = OfflineAnswerer(store, source, date_anchor=settings.date_anchor)
    else:
        answerer = build_llm_answerer(settings, source)
    return Assistant(answerer, source, cache_key)
