"""Assemble the Vanna object: training store + LLM + data source, trained from ``data/training.toml``.

:func:`build_vanna` returns a :class:`CTGVanna` (a vanna legacy ``VannaBase``) with ``run_sql``, ``run_sql_is_set``
and ``dialect`` set to match the configured data source. The extra methods the UI uses (``answer_question``,
``summarize``, ``followups``) behave the same for every provider.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ctg_app.chatbot.data_source import DataSource, make_data_source
from ctg_app.chatbot.llm import create_vanna
from ctg_app.chatbot.llm_answer import build_messages, llm_failure, parse_reply, retry_message
from ctg_app.chatbot.offline import SqlAnswer, TfidfStore
from ctg_app.chatbot.sql_policy import probe_sql, validate_chat_sql
from ctg_app.chatbot.training import load_training
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.recording.classify import ErrorClassifier
from ctg_app.tracking.recording.errors import LlmError, SqlValidationError

log = logging.getLogger(__name__)


class CTGVanna:
    """Mixin placed first in every assembled Vanna class."""

    data_source: DataSource
    sql_dialect: str = "sqlite"

    def log(self, message: str, title: str = "Info") -> None:
        """Vanna's chatter (prompts may hold data) goes to DEBUG logging instead of stdout."""
        log.debug("%s: %s", title, message)

    def validate_sql(self, sql: str, *, check_columns: bool = False) -> str:
        """The SQL to run for ``sql`` under the source's read-only policy (row cap applied); SqlValidationError else."""
        policy = self.data_source.sql_policy()
        return validate_chat_sql(sql, policy.with_columns_checked() if check_columns else policy)

    def is_sql_valid(self, sql: str) -> bool:
        """True when :meth:`validate_sql` accepts ``sql`` (Vanna's own flows call this)."""
        try:
            self.validate_sql(sql)
        except SqlValidationError:
            return False
        return True

    def run_chat_sql(self, sql: str) -> pd.DataFrame:
        """Validate and run ``sql`` (bound in time and rows by the source); installed as Vanna's ``run_sql``."""
        return self.data_source.run_sql(self.validate_sql(sql))

    def answer_question(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL for ``question`` (the offline model may decline instead)."""
        retrieve = getattr(self, "retrieve", None)
        if retrieve is not None:
            return retrieve(question)
        return self._answer_with_llm(question, previous)

    def _answer_with_llm(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """Ask the language model; its SQL must pass the policy (columns checked) and compile before it is returned.

        A reply whose SQL is refused or fails in the database gets one retry with the error text (self-correction);
        a second failure raises SqlValidationError. A reply without SQL, or a failed request, raises LlmError.
        """
        messages = build_messages(self, question, self.dialect, previous)  # type: ignore[attr-defined]
        reply = self._ask_llm(messages)
        parsed = parse_reply(reply)
        corrected = False
        error = self._sql_error(parsed.sql) if parsed.sql else None
        if error:
            log.info("the language model's SQL failed (%s); asking once more", error)
            messages += [self.assistant_message(str(reply)),  # type: ignore[attr-defined]
                         self.user_message(retry_message(parsed.sql, error))]  # type: ignore[attr-defined]
            reply = self._ask_llm(messages)
            parsed = parse_reply(reply)
            corrected = True
            error = self._sql_error(parsed.sql) if parsed.sql else None
            if error:
                raise SqlValidationError(f"the language model's SQL failed twice; last error: {error}")
        if not parsed.sql:
            return SqlAnswer(question=question, sql=None, declined=True,
                             message=f"The assistant cannot answer this from the CTG data: {parsed.decline}")
        return SqlAnswer(question=question, sql=parsed.sql, interpretation=parsed.interpretation,
                         confidence="low" if corrected else "medium")

    def _ask_llm(self, messages: list) -> str:
        try:
            return str(self.submit_prompt(messages) or "")  # type: ignore[attr-defined]
        except LlmError:
            raise
        except Exception as exc:  # noqa: BLE001 - any client error becomes one clear llm_error
            raise llm_failure(exc, getattr(self, "settings", None) or get_settings()) from exc

    def _sql_error(self, sql: str) -> str | None:
        """Why ``sql`` cannot run (policy with columns checked, then a LIMIT 0 probe), or None when it can."""
        try:
            checked = self.validate_sql(sql, check_columns=True)
        except SqlValidationError as exc:
            return str(exc)
        try:
            self.data_source.run_sql(probe_sql(checked, self.sql_dialect))
        except Exception as exc:  # noqa: BLE001 - only "the SQL is wrong" goes back to the model
            if ErrorClassifier().classify(exc) != Actions.SQL_ERROR:
                raise
            return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]
        return None

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
    vn.settings = settings
    vn.sql_dialect = source.dialect
    vn.dialect = source.display_dialect
    vn.run_sql = vn.run_chat_sql  # every query the chat runs passes the read-only policy first
    vn.run_sql_is_set = True
    train(vn, source.dialect)
    return vn
