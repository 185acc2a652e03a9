"""The MERGE is bounded by the batch's earliest timestamp (exact: a duplicate has the event's own timestamp), and new
tables are liquid clustered by ``timestamp`` (issue 11, item 5)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ctg_app.tracking.delivery.databricks_sink import DatabricksSink, batch_since, cluster_table_sql, create_table_sql
from tests.flush.conftest import TABLE, make_events, warehouse_ids


def test_new_table_is_created_clustered_by_timestamp_with_the_spec_columns(settings, flush_env):
    with DatabricksSink(settings):
        pass
    create = [s for s in flush_env.statements if s.lstrip().upper().startswith("CREATE TABLE")]
    assert len(create) == 1
    assert "CREATE TABLE IF NOT EXISTS" in create[0] and create[0].rstrip().endswith("CLUSTER BY (`timestamp`)")
    for column in ("`timestamp` TIMESTAMP", "`app_name` STRING", "`user` STRING", "`action` STRING"):
        assert column in create[0]
    assert cluster_table_sql(TABLE) == f"ALTER TABLE {TABLE} CLUSTER BY (`timestamp`)"
    assert "CLUSTER BY" not in create_table_sql(TABLE, clustered=False)


def test_merge_carries_the_batch_minimum_as_its_time_bound_and_stays_exactly_once(settings, flush_env):
    old = make_events(3, start=datetime(2025, 1, 1), prefix="old")
    new = make_events(5, start=datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=1), prefix="new")
    with DatabricksSink(settings) as sink:
        assert sink.send(old).inserted == 3
        flush_env.reset_stats()
        assert sink.send(new).inserted == 5
        merge = [s for s in flush_env.statements if s.lstrip().startswith("MERGE")][0]
        assert "t.`timestamp` >= CAST(:since AS TIMESTAMP)" in merge
        # a re-sent batch (mixed old and new: the bound is the minimum, so the old ones are still seen) inserts nothing
        assert sink.send(new[:2] + old).inserted == 0
    ids = warehouse_ids(flush_env)
    assert sorted(ids) == sorted(e[0] for e in old + new)
    assert batch_since(new[2:] + new[:2]) == new[0][1].replace(" ", "T") + "Z"
