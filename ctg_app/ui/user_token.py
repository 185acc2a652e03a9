"""The signed-in user's Databricks access token, as Databricks Apps forwards it (on-behalf-of-user authorization).

With user authorization enabled for the app, every request to it carries ``X-Forwarded-Access-Token``: a short-lived
token of the signed-in user, scoped to what the app asked for (``sql``). Chat SQL run with it is subject to the user's
Unity Catalog grants, row filters and column masks, and the query history names the user
(see :func:`ctg_app.chatbot.data.source.acting_as` and ``CTG_QUERY_IDENTITY``). The value is a secret: it is passed
on, never logged, shown or recorded.
"""

from __future__ import annotations

from ctg_app.tracking.recording.identity import request_headers

#: The header Databricks Apps fills with the user's token.
USER_TOKEN_HEADER = "X-Forwarded-Access-Token"


def user_access_token() -> str | None:
    """The ``X-Forwarded-Access-Token`` of this session's request (Streamlit's ``st.context.headers``), or None when
    absent (outside Databricks Apps, user authorization off, or not under Streamlit)."""
    value = request_headers().get(USER_TOKEN_HEADER)
    return value.strip() or None if isinstance(value, str) else None
