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
from ctg_app.chatbot.training import load_training
from ctg_app.chatbot.write_requests import MESSAGE as WRITE_MESSAGE
from ctg_app.chatbot.write_requests import is_write_request
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

    def answer_question(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL for ``question`` — a follow-up of ``previous`` when given; write and admin requests are declined in
        every mode before any model is asked (the offline engine may also decline)."""
        if is_write_request(question):
            return SqlAnswer(question=question, sql=None, declined=True, message=WRITE_MESSAGE,
                             decline_reason="write_request", score=0.0)
        retrieve = getattr(self, "retrieve", None)
        if retrieve is not None:
            return retrieve(question, previous)
        asked = question
        if previous is not None and previous.sql:
            # the LLM sees the previous turn so "and for 2023?" can be resolved
            asked = (f"Previous question: {previous.question}\nPrevious SQL: {previous.sql}\n"
                     f"Follow-up question: {question}")
        sql = self.generate_sql(asked, allow_llm_to_see_data=False)  # type: ignore[attr-defined]
        return SqlAnswer(question=question, sql=sql)

    def summarize(self, question: str, df: pd.DataFrame) -> str:
        """A short summary of the result (the LLM sees at most 100 rows)."""
        return str(self.generate_summary(question, df.head(100)))  # type: ignore[attr-defined]

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
