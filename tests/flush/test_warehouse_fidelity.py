"""The product's code paths against the fake where it now behaves like Databricks (issue 21): liquid clustering
refused by an older runtime, a clustered table's DESCRIBE, and time-zone-aware TIMESTAMP values."""

from __future__ import annotations

import datetime as dt

from ctg_app.tracking.analytics.stats import get_usage_stats
from ctg_app.tracking.delivery.cli import EXIT_OK
from ctg_app.tracking.delivery.cli import main as flush_spool
from ctg_app.settings import reload_settings
from ctg_app.tracking.selftest import run_checks, selftest_app_name
from tests.flush.conftest import TABLE


def clustering_section(wh) -> list[tuple]:
    rows = wh.query(f"DESCRIBE TABLE {TABLE}")
    names = [r[0] for r in rows]
    return rows[names.index("# Clustering Information"):] if "# Clustering Information" in names else []


def test_a_new_table_is_liquid_clustered_by_timestamp(flush_env) -> None:
    assert flush_spool(["--migrate"]) == EXIT_OK
    assert clustering_section(flush_env)[2:] == [("timestamp", "timestamp", None)]
    assert '["timestamp"]' in str(flush_env.query(f"DESCRIBE DETAIL {TABLE}"))


def test_a_runtime_without_liquid_clustering_gets_the_table_without_it(flush_env, capsys) -> None:
    flush_env.cluster_by_supported = False  # as an older runtime: CLUSTER BY is a syntax error
    assert flush_spool(["--migrate"]) == EXIT_OK
    # the fallback ran (the fake used to accept and ignore CLUSTER BY, so it never did)
    assert "refused CLUSTER BY" in capsys.readouterr().err
    assert clustering_section(flush_env) == []
    creates = [s for s in flush_env.statements if s.lstrip().upper().startswith("CREATE TABLE")]
    assert len(creates) == 2 and "CLUSTER BY" in creates[0] and "CLUSTER BY" not in creates[1]


def test_aware_timestamps_from_the_warehouse(flush_env, tracking_spool) -> None:
    """Delivered events come back from the warehouse as aware datetimes (UTC), as Databricks returns them; selftest
    finds its event and the usage stats' first/last seen are the delivered instants."""
    checks = {c.name: c for c in run_checks()}
    assert checks["delivery to the warehouse"].status == "PASS", checks["delivery to the warehouse"]
    moment = flush_env.query(f"SELECT MAX(timestamp) FROM {TABLE}")[0][0]
    assert moment.utcoffset() == dt.timedelta(0)
    settings = reload_settings()
    stats = get_usage_stats(None, 1, source="warehouse", settings=settings.replace(app_name=selftest_app_name(settings)))
    assert stats.total_events >= 1  # the stats' contract: naive UTC, converted from the aware value
    assert stats.last_seen == moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
