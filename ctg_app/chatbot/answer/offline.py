"""The offline answerer: the answering engine composes SQL that honours every constraint of the question.

When the question means exactly a trained question, the trained SQL is used verbatim; otherwise the engine
(:mod:`ctg_app.chatbot.answering`) composes SQL from the question's slots (measure, breakdown, filters, periods,
rankings), or declines with questions it can answer. The engine reads the data's own values (departments, customers, …) through the
guarded source. Summaries are sentences computed from the whole result; follow-ups are related trained questions.
No language model and no network are involved.
"""

from __future__ import annotations

import threading

import pandas as pd

from ctg_app.chatbot.answer.answerer import clean_followups
from ctg_app.chatbot.answer.retrieval import TfidfStore
from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.answering.engine import AnswerEngine
from ctg_app.chatbot.policy import GuardedSource
from ctg_app.chatbot.present.summary import summarize_frame

NEAREST = 3


class OfflineAnswerer:
    """An :class:`~ctg_app.chatbot.answer.answerer.Answerer` on the offline engine over ``store``'s trained pairs."""

    def __init__(self, store: TfidfStore, source: GuardedSource, date_anchor: str | None = None) -> None:
        self.store = store
        self.source = source
        self.date_anchor = date_anchor  # CTG_DATE_ANCHOR of the assistant's settings (None: read it from the env)
        self._engine: AnswerEngine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> AnswerEngine:
        """The answering engine over the guarded source and the trained pairs (built on first use)."""
        with self._lock:
            if self._engine is None:
                self._engine = AnswerEngine(
                    self.source.run, dialect=self.source.dialect, examples=self.store.pairs(),
                    nearest=lambda text: [q["question"] for _, q in self.store.rank_questions(text, NEAREST)],
                    date_anchor=self.date_anchor)
            return self._engine

    def answer(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL that honours every constraint of ``question`` (a follow-up of ``previous`` when given), or a decline."""
        return self.engine.answer(question, previous)

    def summarize(self, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
        """Deterministic sentences from the whole result."""
        return summarize_frame(df, question, interpretation)

    def followups(self, question: str, sql: str, df: pd.DataFrame, n: int = 4) -> list[str]:
        """Related trained questions (not the one just answered)."""
        return clean_followups(self.store.related_questions(question, sql, n), question, n)

    def questions(self) -> list[str]:
        """The trained questions."""
        return self.store.questions()
