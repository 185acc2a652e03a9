"""The action names of the specification: the only strings ever written to the ``action`` column."""

from __future__ import annotations


class Actions:
    """Predefined constants for consistent action naming (spec: "Tracked Actions")."""

    # App lifecycle
    APP_START = "app_start"
    APP_ERROR = "app_error"
    # Query operations
    GENERATE_QUESTION = "generate_question"
    SQL_QUERY = "sql_query"
    EXECUTE_SQL = "execute_sql"
    EDIT_SQL = "edit_sql"
    # Data operations
    DOWNLOAD_RESULTS = "download_results"
    GENERATE_CHART = "generate_chart"
    GENERATE_SUMMARY = "generate_summary"
    # User interactions
    VIEW_RANDOM_QUESTIONS = "view_random_questions"
    SELECT_COLUMNS = "select_columns"
    ANSWER_FEEDBACK = "answer_feedback"
    # Error tracking
    DATABASE_ERROR = "database_error"
    LLM_ERROR = "llm_error"
    SQL_ERROR = "sql_error"
    CHART_ERROR = "chart_error"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        """Every action, in the order the spec lists them."""
        return tuple(v for k, v in vars(cls).items() if k.isupper())

    @classmethod
    def errors(cls) -> tuple[str, ...]:
        """The error actions (what a failed operation records)."""
        return (cls.DATABASE_ERROR, cls.LLM_ERROR, cls.SQL_ERROR, cls.CHART_ERROR, cls.APP_ERROR)
