"""Assemble the Vanna object: training store + LLM + data source, trained from ``data/training.toml``.

:func:`build_vanna` returns a :class:`CTGVanna` (a vanna legacy ``VannaBase``) with ``run_sql``, ``run_sql_is_set``
and ``dialect`` set to match the configured data source. The extra methods the UI uses (``answer_question``,
``summarize``, ``followups``) behave the same for every provider.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ctg_app.chatbot.data.source import DataSource, make_data_source
from ctg_app.chatbot.answer.providers import create_vanna
from ctg_app.chatbot.answer.llm_reply import build_messages, llm_failure, parse_reply, retry_message
from ctg_app.chatbot.answer.retrieval import SqlAnswer, TfidfStore
from ctg_app.chatbot.policy import probe_sql, validate_chat_sql
from ctg_app.chatbot.present.summary import aggregates_text, summarize_frame
from ctg_app.chatbot.data.training import load_training
from ctg_app.chatbot.answer.write_requests import MESSAGE as WRITE_MESSAGE
from ctg_app.chatbot.answer.write_requests import is_write_request
from ctg_app.settings import Settings, get_settings
from ctg_app.tracking.recording.actions import Actions
from ctg_app.tracking.recording.classify import ErrorClassifier
from ctg_app.errors import LlmError, SqlValidationError

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
        """SQL for ``question`` — a follow-up of ``previous`` when given; write and admin requests are declined in
        every mode before any model is asked (the offline engine may also decline)."""
        if is_write_request(question):
            return SqlAnswer(question=question, sql=None, declined=True, message=WRITE_MESSAGE,
                             decline_reason="write_request", score=0.0)
        retrieve = getattr(self, "retrieve", None)
        if retrieve is not None:
            return retrieve(question, previous)
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
                             message=f"The assistant cannot answer this from the CTG data: {parsed.decline}",
                             decline_reason="out_of_domain")
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
        return self._ask_llm(prompt)

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
