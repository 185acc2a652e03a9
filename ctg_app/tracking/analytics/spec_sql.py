"""The specification's SQL, character for character (``docs/usage-tracking-spec.md``): its CREATE TABLE and its four
example queries. One copy for the whole project: the reports run these verbatim, the tests run them against the fake
warehouse, and ``tests/analytics`` checks them against the specification document itself.
"""

from __future__ import annotations

SPEC_CREATE_TABLE = """CREATE TABLE IF NOT EXISTS elevio_group___rag_pilot.rag_core_blocks.central_app_usage (
  timestamp TIMESTAMP,
  app_name STRING,
  user STRING,
  action STRING
)
USING DELTA;"""

#: The four example queries, keyed by the named report each one equals (``ctg_app.tracking.analytics.reports``).
SPEC_QUERIES: dict[str, str] = {
    "daily_active_users": """SELECT DATE(timestamp) as date, COUNT(DISTINCT user) as active_users
FROM elevio_group___rag_pilot.rag_core_blocks.central_app_usage
WHERE app_name = 'elevio-ctg-chatbot-vanna'
GROUP BY DATE(timestamp)
ORDER BY date DESC;""",
    "popular_actions": """SELECT action, COUNT(*) as count
FROM elevio_group___rag_pilot.rag_core_blocks.central_app_usage
WHERE app_name = 'elevio-ctg-chatbot-vanna'
  AND timestamp >= CURRENT_DATE - INTERVAL 7 DAY
GROUP BY action
ORDER BY count DESC;""",
    "sql_editing": """SELECT action, COUNT(*) as count
FROM elevio_group___rag_pilot.rag_core_blocks.central_app_usage
WHERE app_name = 'elevio-ctg-chatbot-vanna'
  AND action IN ('sql_query', 'edit_sql', 'execute_sql')
  AND timestamp >= CURRENT_DATE - INTERVAL 7 DAY
GROUP BY action
ORDER BY count DESC;""",
    "error_analysis": """SELECT action, COUNT(*) as error_count
FROM elevio_group___rag_pilot.rag_core_blocks.central_app_usage
WHERE app_name = 'elevio-ctg-chatbot-vanna'
  AND action LIKE '%_error%'
  AND timestamp >= CURRENT_DATE - INTERVAL 1 DAY
GROUP BY action
ORDER BY error_count DESC;""",
}
