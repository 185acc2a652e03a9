"""What answers a question: the :class:`Answerer` protocol, which the offline engine and a language model implement.

An answerer turns a question (a follow-up of a previous answer when given) into a :class:`SqlAnswer`: SQL that the
assistant then runs through the read-only policy, or a decline. It also summarises a result, proposes follow-up
questions and lists the trained questions. Implementations: :class:`ctg_app.chatbot.answer.offline.OfflineAnswerer`
(no network) and :class:`ctg_app.chatbot.answer.vanna_app.LlmAnswerer` (a language model through Vanna).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import pandas as pd

from ctg_app.chatbot.answering.answer import SqlAnswer


class Answerer(Protocol):
    """Question → SQL (or a decline), summaries, follow-ups and the trained questions."""

    def answer(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL for ``question`` (a follow-up of ``previous`` when given), or a decline."""
        ...

    def summarize(self, question: str, df: pd.DataFrame, interpretation: str = "") -> str:
        """A short summary of the WHOLE result ``df`` that answers the question (Markdown)."""
        ...

    def followups(self, question: str, sql: str, df: pd.DataFrame, n: int = 4) -> list[str]:
        """Up to ``n`` follow-up questions to an answered question."""
        ...

    def questions(self) -> list[str]:
        """The trained questions (examples and suggestions)."""
        ...


def clean_followups(raw: Iterable[object] | None, question: str, n: int) -> list[str]:
    """Up to ``n`` distinct follow-up texts from ``raw`` (list markers stripped, the question itself left out)."""
    seen: list[str] = []
    for item in raw or []:
        text = str(item).strip().lstrip("-*• ").strip()
        if text and text not in seen and text != question:
            seen.append(text)
    return seen[:n]
