"""Keyword arguments that work on every Streamlit the app supports (the Databricks Apps runtime may be older than
the newest release): full-width elements and wrapped code blocks, asked of the installed version's signatures."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


@functools.lru_cache(maxsize=None)
def _parameters(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def stretch(fn: Callable[..., Any]) -> dict[str, Any]:
    """Full container width for ``st.dataframe`` / ``st.plotly_chart``: newer Streamlit stretches by default
    (``width="stretch"``) and deprecates ``use_container_width``; older ones need ``use_container_width=True``."""
    width = _parameters(fn).get("width")
    if width is not None and width.default == "stretch":
        return {}
    return {"use_container_width": True}


def code_kwargs() -> dict[str, Any]:
    """``wrap_lines=True`` for ``st.code`` where supported (long SQL lines wrap instead of running off the edge)."""
    import streamlit as st

    return {"wrap_lines": True} if "wrap_lines" in _parameters(st.code) else {}
