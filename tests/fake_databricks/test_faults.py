"""One test per fault mode: what the real connector shows its caller when the warehouse misbehaves."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import urllib3.exceptions
from databricks import sql
from databricks.sql.exc import Error, RequestError, ServerOperationError

from fake_databricks import FakeWarehouse

T = "c.s.events"
MERGE = f"""MERGE INTO {T} AS t
USING (SELECT inline(from_json(:events, 'ARRAY<STRUCT<event_id: STRING, n: INT>>'))) AS s
ON t.event_id = s.event_id
WHEN NOT MATCHED THEN INSERT (event_id, n) VALUES (s.event_id, s.n)"""


@pytest.fixture
def wh(fake_warehouse: FakeWarehouse) -> FakeWarehouse:
    fake_warehouse.query(f"CREATE TABLE IF NOT EXISTS {T} (event_id STRING, n INT) USING DELTA")
    return fake_warehouse


def _count(wh: FakeWarehouse) -> int:
    return wh.query(f"SELECT COUNT(*) FROM {T}")[0][0]


def _timed(fn):
    t0 = time.monotonic()
    try:
        fn()
        return None, time.monotonic() - t0
    except BaseException as e:  # noqa: BLE001 - the exception is the observation
        return e, time.monotonic() - t0


def test_port_closed_then_restarted_on_same_port(wh: FakeWarehouse) -> None:
    conn = sql.connect(**wh.connect_kwargs())
    port = wh.port
    wh.stop()
    err, took = _timed(lambda: conn.cursor().execute(f"INSERT INTO {T} VALUES ('a', 1)"))
    assert isinstance(err, urllib3.exceptions.MaxRetryError) and not isinstance(err, Error)
    assert took < 5
    err, _ = _timed(lambda: sql.connect(**wh.connect_kwargs()))
    assert err is not None
    wh.start()
    assert wh.port == port
    with conn.cursor() as cur:  # the old session survives the outage
        cur.execute(f"INSERT INTO {T} VALUES ('a', 1)")
        assert cur.rowcount == 1
    conn.close()
    assert _count(wh) == 1


def test_503_with_retry_after_is_retried_then_succeeds(wh: FakeWarehouse) -> None:
    with sql.connect(**wh.connect_kwargs(_retry_stop_after_attempts_duration=10)) as conn, conn.cursor() as cur:
        wh.faults.next(1, method="ExecuteStatement", http_status=503, retry_after=1)
        err, took = _timed(lambda: cur.execute(f"INSERT INTO {T} VALUES ('a', 1)"))
    assert err is None
    assert 4.5 <= took < 9  # the client waits at least _retry_delay_max (floor 5 s)
    assert wh.method_counts["ExecuteStatement"] == 2 and _count(wh) == 1


@pytest.mark.parametrize(("fault", "max_seconds"), [
    pytest.param({"count": 5, "http_status": 503, "retry_after": 1}, 2, id="persistent-503-short-retry-budget"),
    pytest.param({"count": 1, "http_status": 429, "retry_after": 1}, 2, id="429-short-retry-budget"),
    pytest.param({"count": 1, "http_status": 500}, 1, id="500-at-once"),
])
def test_http_error_on_execute_fails_fast_and_runs_nothing(wh: FakeWarehouse, fault: dict, max_seconds: float) -> None:
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
        fault = dict(fault)
        wh.faults.next(fault.pop("count"), method="ExecuteStatement", **fault)
        err, took = _timed(lambda: cur.execute(f"INSERT INTO {T} VALUES ('a', 1)"))
    assert isinstance(err, RequestError) and took < max_seconds
    assert wh.statement_count == 0 and _count(wh) == 0


def test_500_on_open_session_is_retried(wh: FakeWarehouse) -> None:
    wh.faults.next(1, method="OpenSession", http_status=500)
    err, took = _timed(lambda: sql.connect(**wh.connect_kwargs()))
    assert isinstance(err, RequestError) and took < 1  # short budget: the >=5 s retry wait does not fit
    wh.faults.next(1, method="OpenSession", http_status=500)
    err, took = _timed(lambda: sql.connect(**wh.connect_kwargs(_retry_stop_after_attempts_duration=10)).close())
    assert err is None and took < 9  # longer budget: retried, then connected
    assert wh.method_counts["OpenSession"] == 3


def test_hang_times_out_without_executing(wh: FakeWarehouse) -> None:
    with sql.connect(**wh.connect_kwargs(_socket_timeout=1)) as conn:
        wh.faults.next(10, method="ExecuteStatement", hang=True)
        err, took = _timed(lambda: conn.cursor().execute(f"INSERT INTO {T} VALUES ('a', 1)"))
        wh.faults.clear()
    assert isinstance(err, urllib3.exceptions.MaxRetryError) and not isinstance(err, Error)
    assert 1 <= took < 6
    assert wh.statement_count == 0 and _count(wh) == 0


def test_slow_reply_makes_the_client_resend_and_insert_twice(wh: FakeWarehouse) -> None:
    with sql.connect(**wh.connect_kwargs(_socket_timeout=1)) as conn, conn.cursor() as cur:
        wh.faults.next(1, method="ExecuteStatement", delay=2)
        err, took = _timed(lambda: cur.execute(f"INSERT INTO {T} VALUES ('a', 1)"))
        assert err is None and cur.rowcount == 1  # the client reports success ...
    assert wh.statement_count == 2 and _count(wh) == 2  # ... but the INSERT ran twice


def test_connection_dropped_after_commit_double_insert_but_merge_is_exactly_once(wh: FakeWarehouse) -> None:
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
        wh.faults.next(1, method="ExecuteStatement", drop_after_execute=True)
        cur.execute(f"INSERT INTO {T} VALUES ('a', 1)")
        assert _count(wh) == 2 and wh.statement_count == 2  # plain INSERT: duplicated
        wh.faults.next(1, method="ExecuteStatement", drop_after_execute=True)
        batch = json.dumps([{"event_id": str(uuid.uuid4()), "n": i} for i in range(10)])
        cur.execute(MERGE, {"events": batch})
        assert cur.rowcount == 0  # the re-sent MERGE found everything already there
    assert _count(wh) == 12 and wh.statement_count == 4


def test_injected_concurrent_append_conflict(wh: FakeWarehouse) -> None:
    with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
        wh.faults.next(1, method="ExecuteStatement", conflict=True)
        batch = json.dumps([{"event_id": "e1", "n": 1}])
        with pytest.raises(ServerOperationError, match="ConcurrentAppendException"):
            cur.execute(MERGE, {"events": batch})
        cur.execute(MERGE, {"events": batch})  # the caller's retry
        assert cur.rowcount == 1


def test_concurrent_writers_with_retry(wh: FakeWarehouse) -> None:
    errors: list[BaseException] = []
    conflicts = []

    def writer(k: int) -> None:
        try:
            with sql.connect(**wh.connect_kwargs()) as conn, conn.cursor() as cur:
                for b in range(5):
                    batch = json.dumps([{"event_id": f"w{k}-b{b}-{i}", "n": i} for i in range(200)])
                    for _attempt in range(20):
                        try:
                            cur.execute(MERGE, {"events": batch})
                            break
                        except ServerOperationError as e:
                            assert "ConcurrentAppendException" in str(e)
                            conflicts.append(k)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert _count(wh) == 4 * 5 * 200
    print(f"\nconflicts seen and retried: {len(conflicts)}")
