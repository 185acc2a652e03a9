"""Hostile values cost O(bound), never lose their event, and are stored escaped and bounded.

Everything goes through the real ``@tracked`` decorator or ``Tracker.record`` into the real spool file.
"""

from __future__ import annotations

import os
import time

import pytest

from ctg_app.tracking import Actions, get_tracker, tracked
from ctg_app.tracking.recording.guard import health
from ctg_app.redact import Redactor
from ctg_app.tracking.recording.tracker import MAX_DETAILS, MAX_ERROR_MESSAGE, MAX_NAME


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


def _spool_bytes(spool) -> int:
    spool.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(os.path.getsize(p) for p in spool.path.parent.iterdir() if p.name.startswith(spool.path.name))


def test_the_redactor_bounds_before_pattern_work():
    redact = Redactor(("configured-secret-value",), max_length=500)
    hostile = "x " * 25_000_000  # 50 MB; every token pattern would scan all of it
    started = time.perf_counter()
    out = redact(hostile)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # 8-11 s before: the patterns ran over all 50 MB, then the result was cut
    assert len(out) == 500
    assert redact("password=" + "s" * 50_000_000) == "password=[REDACTED]"  # redacted whole, not cut mid-secret
    assert len(Redactor(max_length=500)(b"\xff" * 50_000_000)) == 500


def test_a_secret_crossing_the_bound_is_not_half_shown():
    secret = "dapi" + "ab" * 16
    out = Redactor(max_length=40)("x" * 30 + secret)
    assert "abab" not in out


@pytest.mark.parametrize("value", [BrokenStr(), "\ud800 lone surrogate", b"\xff\xfe bytes", ["\ud800"] * 10_000])
def test_a_hostile_captured_value_does_not_lose_the_event(tracking_spool, value):
    @tracked(Actions.EXECUTE_SQL, capture=("sql",))
    def run(sql):
        return None

    dropped = health.dropped_events
    run(value)
    [row] = tracking_spool.rows()
    assert row["action"] == "execute_sql" and row["status"] == "ok"
    assert health.dropped_events == dropped
    if isinstance(value, BrokenStr):
        assert "<unprintable BrokenStr>" in row["details"]


def test_lone_surrogates_in_any_field_keep_the_event(tracking_spool):
    tracker = get_tracker()
    event = tracker.record("act\ud800ion", operation="op\udfff", error_type="T\ud800", error_message="m\ud800",
                           user="u\ud800@x.org", details={"k\ud800": "v\ud800"})
    assert event is not None
    [row] = tracking_spool.rows()
    assert row["action"] == "act?ion" and row["user"] == "u?@x.org"


def test_line_breaks_and_ansi_are_escaped_in_every_text_field(tracking_spool):
    class Evil(Exception):
        pass

    Evil.__qualname__ = "Evil\n\x1b[31mError"

    @tracked(Actions.EXECUTE_SQL, capture=("sql",))
    def run(sql):
        raise Evil("line one\nline two\r\n\x1b[2J\x1b[31mred\u2028")

    with pytest.raises(Evil):
        run("SELECT 1\n-- \x1b[31m")
    get_tracker().record("my\naction\x1b[0m", operation="op\r\nx")
    rows = tracking_spool.rows()
    for row in rows:
        for field in ("action", "operation", "error_type", "error_message", "user", "details"):
            text = row[field] or ""
            assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text, (field, text)
    assert rows[0]["error_message"].startswith("line one\\nline two\\r\\n")
    assert rows[0]["error_type"] == "Evil\\n[31mError"
    assert rows[1]["action"] == "my\\naction[0m"


def test_every_text_field_is_bounded_at_record_time(tracking_spool):
    huge = "A" * 10_000_000
    size_before = _spool_bytes(tracking_spool)
    tracker = get_tracker()
    started = time.perf_counter()
    tracker.record(huge, operation=huge, error_type=huge, error_message=huge, user=huge + "@x.org",
                   details={huge: huge, **{f"k{i}": huge for i in range(1000)}})
    elapsed = time.perf_counter() - started

    class Long(Exception):
        pass

    Long.__qualname__ = "L" * 1_000_000

    @tracked(Actions.EXECUTE_SQL, capture=("sql",))
    def run(sql):
        raise Long(huge)

    with pytest.raises(Long):
        run(huge)
    grown = _spool_bytes(tracking_spool) - size_before
    assert grown < 256 * 1024  # a 10 MB action grew the spool by 20 MB (42 MB in the run) before
    assert elapsed < 1.0
    rows = tracking_spool.rows()
    assert len(rows) == 2
    for row in rows:
        assert len(row["action"]) <= MAX_NAME and len(row["operation"]) <= MAX_NAME
        assert len(row["error_type"] or "") <= MAX_NAME
        assert len(row["error_message"] or "") <= MAX_ERROR_MESSAGE
        assert len(row["user"]) <= 254
        assert len(row["details"]) <= MAX_DETAILS
    assert rows[1]["action"] == "sql_error" and rows[1]["error_type"].startswith("LLL")
