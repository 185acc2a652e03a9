"""The answer cache survives Streamlit reloading the chatbot's modules (what saving a file during `make run` does)."""

from __future__ import annotations

import dataclasses

import streamlit as st

from ctg_app.ui import operations
from ctg_app.chatbot.answering.answer import SqlAnswer


def test_cached_answers_survive_a_reload_of_the_class_definition():
    # After a module reload, objects made by the old class cannot be pickled, and st.cache_data pickles return values.
    stale_class = dataclasses.make_dataclass(
        "SqlAnswer", [(f.name, f.type, f) for f in dataclasses.fields(SqlAnswer)], frozen=True)
    stale_class.__module__ = SqlAnswer.__module__

    class Assistant:
        calls = 0

        def ask(self, question, previous=None):
            Assistant.calls += 1
            return stale_class(question=question, sql="SELECT 1", score=0.9)

    st.cache_data.clear()
    operations.clear_caches()
    vn = Assistant()
    first = operations._cached_answer("How many projects?", "key", vn)
    second = operations._cached_answer("How many projects?", "key", vn)
    assert isinstance(first, SqlAnswer) and first == second
    assert (first.sql, first.score, first.declined) == ("SELECT 1", 0.9, False)
    assert Assistant.calls == 1  # the second answer came from the cache
    operations.clear_caches()
