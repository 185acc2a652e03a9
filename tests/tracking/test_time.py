"""Timestamps are UTC with microseconds, and event ids are time-ordered UUIDv7s matching them."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from freezegun import freeze_time

from ctg_app.tracking import Actions, tracked, track_user_action_simple
from ctg_app.tracking.recording.event import new_id_and_timestamp


def _id_millis(event_id: str) -> int:
    return uuid.UUID(event_id).int >> 80


def test_timestamp_is_utc_with_microseconds_under_freezegun(tracking_spool):
    with freeze_time("2026-03-29 01:59:59.123456"):  # a DST change night in Europe: UTC is unaffected
        track_user_action_simple("a@b.c", Actions.APP_START)
    with freeze_time(datetime(2026, 3, 29, 3, 0, 0, 654321, tzinfo=timezone.utc)):
        track_user_action_simple("a@b.c", Actions.APP_START)
    first, second = tracking_spool.rows()
    assert first["timestamp"] == "2026-03-29 01:59:59.123456"
    assert second["timestamp"] == "2026-03-29 03:00:00.654321"
    expected_ms = int(datetime(2026, 3, 29, 1, 59, 59, 123456, tzinfo=timezone.utc).timestamp() * 1000)
    assert _id_millis(first["event_id"]) == expected_ms


def test_tz_offset_of_the_host_does_not_leak_into_timestamps(tracking_spool):
    with freeze_time("2026-07-01 12:00:00", tz_offset=5):
        @tracked(Actions.EXECUTE_SQL)
        def run():
            return 1

        run()
    assert tracking_spool.rows()[0]["timestamp"] == "2026-07-01 12:00:00.000000"


def test_event_ids_are_unique_rfc9562_v7_and_ordered_by_time():
    ids = []
    for second in range(3):
        with freeze_time(f"2026-01-01 00:00:0{second}"):
            ids.extend(new_id_and_timestamp()[0] for _ in range(1000))
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    millis = [_id_millis(i) for i in ids]
    assert millis == sorted(millis)
    assert ids[:1000] == sorted(ids[:1000])  # same millisecond: the counter keeps creation order


def test_ids_within_one_millisecond_keep_creation_order_past_the_12_bit_counter():
    # Whatever ran before (any counter state), 5,000 ids made within one frozen millisecond - more than the 4,096
    # the 12-bit counter holds - are unique and sort in creation order: the id's millisecond advances, never wraps.
    for _ in range(1234):
        new_id_and_timestamp()
    with freeze_time("2026-01-01 00:00:05.000123"):
        ids = [new_id_and_timestamp()[0] for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert _id_millis(ids[0]) == int(datetime(2026, 1, 1, 0, 0, 5, tzinfo=timezone.utc).timestamp() * 1000)


def test_id_order_holds_in_a_fresh_process_too():
    import subprocess
    import sys

    code = ("from freezegun import freeze_time\n"
            "from ctg_app.tracking.recording.event import new_id_and_timestamp\n"
            "with freeze_time('2026-01-01 00:00:00'):\n"
            "    ids = [new_id_and_timestamp()[0] for _ in range(4500)]\n"
            "assert ids == sorted(ids) and len(set(ids)) == 4500, 'out of order'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
