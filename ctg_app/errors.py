"""Exceptions the app raises on purpose so that tracking classifies them precisely."""

from __future__ import annotations


class SqlValidationError(ValueError):
    """Generated or edited SQL is not valid (classified as ``sql_error``)."""


class ChartError(RuntimeError):
    """A chart could not be built (classified as ``chart_error``)."""


class LlmError(RuntimeError):
    """The language model could not answer (classified as ``llm_error``)."""


class DatabaseUnavailableError(RuntimeError):
    """The database did not become available in time, e.g. a SQL warehouse still starting (``database_error``)."""
