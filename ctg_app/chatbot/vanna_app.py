"""Assemble the Vanna object: training store + LLM + data source, trained from ``data/training.toml``.

:func:`build_vanna` returns a :class:`CTGVanna` (a vanna legacy ``VannaBase``) with ``run_sql``, ``run_sql_is_set``
and ``dialect`` set to match the configured data source. The extra methods the UI uses (``answer_question``,
``summarize``, ``followups``) behave the same for every provider.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from ctg_app.chatbot.data_source import DataSource, make_data_source
from ctg_app.chatbot.llm import create_vanna
from ctg_app.chatbot.offline import SqlAnswer, TfidfStore
from ctg_app.chatbot.summary import aggregates_text, summarize_frame
from ctg_app.chatbot.training import load_training
from ctg_app.settings import Settings, get_settings

log = logging.getLogger(__name__)


class CTGVanna:
    """Mixin placed first in every assembled Vanna class."""

    data_source: DataSource
    sql_dialect: str = "sqlite"

    def log(self, message: str, title: str = "Info") -> None:
        """Vanna's chatter (prompts may hold data) goes to DEBUG logging instead of stdout."""
        log.debug("%s: %s", title, message)

    def is_sql_valid(self, sql: str) -> bool:
        """Exactly one read-only query (SELECT / WITH … SELECT / set operation) that parses in the source dialect."""
        if not sql or not sql.strip():
            return False
        try:
            statements = [s for s in sqlglot.parse(sql, read=self.sql_dialect) if s is not None]
        except sqlglot.errors.ParseError:
            return False
        return len(statements) == 1 and isinstance(statements[0], exp.Query)

    def answer_question(self, question: str) -> SqlAnswer:
        """SQL for ``question`` (the offline model may decline instead)."""
        retrieve = getattr(self, "retrieve", None)
        if retrieve is not None:
            return retrieve(question)
        sql = self.generate_sql(question, allow_llm_to_see_data=False)  # type: ignore[attr-defined]
        return SqlAnswer(question=question, sql=sql)

    def summarize(self, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
        """A short summary of the WHOLE result that answers the question.

        Offline: deterministic sentences from the full frame. With an LLM: the model summarises aggregates computed
        on the full frame (row count, totals, extremes, time span), never a truncated sample of rows."""
        if getattr(self, "retrieve", None) is not None:  # the offline retrieval model
            return summarize_frame(df, question, interpretation)
        prompt = [
            self.system_message(  # type: ignore[attr-defined]
                "You summarise SQL query results for project controllers. You are given aggregates computed on the "
                "complete result (not a sample). Answer the user's question in two or three short sentences, using "
                "only these figures; write amounts in EUR with thousands separators."),
            self.user_message(  # type: ignore[attr-defined]
                f"Question: {question}\n"
                + (f"Interpreted as: {interpretation}\n" if interpretation else "")
                + f"Aggregates of the full result:\n{aggregates_text(df)}"),
        ]
        return str(self.submit_prompt(prompt))  # type: ignore[attr-defined]

    def followups(self, question: str, sql: str, df: pd.DataFrame, n: int = 4) -> list[str]:
        """Up to ``n`` follow-up questions."""
        raw = self.generate_followup_questions(question, sql, df.head(25), n_questions=n)  # type: ignore[attr-defined]
        seen: list[str] = []
        for item in raw or []:
            text = str(item).strip().lstrip("-*• ").strip()
            if text and text not in seen and text != question:
                seen.append(text)
        return seen[:n]


def train(vn: Any, dialect: str) -> None:
    """Load the training file (transpiled to ``dialect``) into the store."""
    data = load_training(dialect=dialect)
    for ddl in data.ddl:
        vn.add_ddl(ddl)
    for doc in data.documentation:
        vn.add_documentation(doc)
    for example in data.examples:
        vn.add_question_sql(question=example.question, sql=example.sql)


def build_vanna(settings: Settings | None = None, data_source: DataSource | None = None) -> CTGVanna:
    """The trained Vanna object for the settings (no network I/O; raises LlmConfigError / DataSourceConfigError)."""
    settings = settings or get_settings()
    source = data_source or make_data_source(settings)
    vn = create_vanna(settings, CTGVanna, TfidfStore, {"dialect": source.display_dialect})
    vn.data_source = source
    vn.sql_dialect = source.dialect
    vn.dialect = source.display_dialect
    vn.run_sql = source.run_sql
    vn.run_sql_is_set = True
    train(vn, source.dialect)
    return vn
