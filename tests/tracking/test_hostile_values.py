"""Hostile values cost O(bound), never lose their event, and are stored escaped and bounded.

Everything goes through the real ``@tracked`` decorator or ``Tracker.record`` into the real spool file.
"""

from __future__ import annotations

import os

import pytest

from ctg_app import redact as redact_module
from ctg_app.tracking import Actions, get_tracker, tracked
from ctg_app.tracking.recording.guard import health
from ctg_app.redact import _MARGIN, Redactor
from ctg_app.tracking.recording.tracker import MAX_DETAIL_KEYS, MAX_DETAILS, MAX_ERROR_MESSAGE, MAX_NAME


class BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class _CountingPattern:
    """A redaction pattern that counts the characters it is asked to scan (the work, not the time it takes)."""

    def __init__(self, pattern, scanned: list[int]) -> None:
        self.pattern, self.scanned = pattern, scanned

    def sub(self, repl, text: str) -> str:
        self.scanned.append(len(text))
        return self.pattern.sub(repl, text)


@pytest.fixture
def scanned(monkeypatch) -> list[int]:
    """The length of every text the Redactor's token patterns scan, in order."""
    lengths: list[int] = []
    monkeypatch.setattr(redact_module, "_TOKEN_PATTERNS",
                        tuple(_CountingPattern(p, lengths) for p in redact_module._TOKEN_PATTERNS))
    return lengths


def _spool_bytes(spool) -> int:
    spool.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(os.path.getsize(p) for p in spool.path.parent.iterdir() if p.name.startswith(spool.path.name))


def test_the_redactor_bounds_before_pattern_work(scanned):
    redact = Redactor(("configured-secret-value",), max_length=500)
    hostile = "x " * 25_000_000  # 50 MB; every token pattern would scan all of it
    out = redact(hostile)
    assert len(out) == 500
    # 8-11 s before: the patterns ran over all 50 MB, then the result was cut
    assert scanned and max(scanned) <= 500 + _MARGIN, max(scanned)
    assert redact("password=" + "s" * 50_000_000) == "password=[REDACTED]"  # redacted whole, not cut mid-secret
    assert len(Redactor(max_length=500)(b"\xff" * 50_000_000)) == 500
    assert max(scanned) <= 500 + _MARGIN, max(scanned)


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


def test_every_text_field_is_bounded_at_record_time(tracking_spool, scanned):
    huge = "A" * 10_000_000
    size_before = _spool_bytes(tracking_spool)
    tracker = get_tracker()
    tracker.record(huge, operation=huge, error_type=huge, error_message=huge, user=huge + "@x.org",
                   details={huge: huge, **{f"k{i}": huge for i in range(1000)}})
    scanned_by_record = sum(scanned)

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
    # 10 GB of captured text: the redaction patterns read each field and detail only up to its bound (+ margin), and
    # at most MAX_DETAIL_KEYS of the 1,001 details
    assert scanned_by_record <= (6 + 2 * MAX_DETAIL_KEYS) * len(redact_module._TOKEN_PATTERNS) * (500 + _MARGIN), \
        scanned_by_record
    rows = tracking_spool.rows()
    assert len(rows) == 2
    for row in rows:
        assert len(row["action"]) <= MAX_NAME and len(row["operation"]) <= MAX_NAME
        assert len(row["error_type"] or "") <= MAX_NAME
        assert len(row["error_message"] or "") <= MAX_ERROR_MESSAGE
        assert len(row["user"]) <= 254
        assert len(row["details"]) <= MAX_DETAILS
    assert rows[1]["action"] == "sql_error" and rows[1]["error_type"].startswith("LLL")
