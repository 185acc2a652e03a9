"""The "Answer quality" panel of the usage page: the figures of :func:`ctg_app.chatbot.answer_quality.answer_quality`."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ctg_app.chatbot.answer_quality import AnswerQuality, answer_quality


def _percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def render_answer_quality(events: pd.DataFrame | None, container: Any = None) -> AnswerQuality:
    """The "Answer quality" panel for the usage page (into ``container``, default the page); returns the figures."""
    target = container if container is not None else st
    quality = answer_quality(events)
    target.subheader("Answer quality")
    cols = target.columns(4)
    cols[0].metric("Feedback", f"{quality.feedback:,}", help=f"👍 {quality.helpful:,} · 👎 {quality.unhelpful:,}")
    cols[1].metric("Helpful rate", _percent(quality.helpful_rate))
    cols[2].metric("Decline rate", _percent(quality.decline_rate),
                   help=f"{quality.questions_declined:,} of {quality.questions_answered + quality.questions_declined:,}"
                        " questions")
    cols[3].metric("Edited after answer", _percent(quality.edit_after_answer_rate),
                   help=f"{quality.answers_edited:,} of {quality.questions_answered:,} answers")
    if quality.intents.empty:
        target.caption("No answer was marked unhelpful or edited yet.")
    else:
        target.caption("Intents most often marked unhelpful or edited")
        target.dataframe(quality.intents.rename(columns=str.capitalize), hide_index=True)
    return quality
