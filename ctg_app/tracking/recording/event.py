"""The event: one immutable value built once by the recorder and passed unchanged to spool, flusher and sink.

It is a ``NamedTuple`` rather than a frozen dataclass on purpose: it is immutable, and its field order is the spool's column
order, so the request path hands it to SQLite as the parameter tuple without copying (a frozen dataclass costs several
microseconds more per event, and the request path has a budget of a few microseconds above the insert itself).
"""

from __future__ import annotations

import itertools
import random
import time
from datetime import datetime, timezone
from typing import NamedTuple

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_INTERRUPTED = "interrupted"


class Event(NamedTuple):
    """One tracked action. The first five fields are the spec's table columns (plus the id); the rest are extensions."""

    event_id: str
    timestamp: str  # UTC, "YYYY-MM-DD HH:MM:SS.ffffff"
    app_name: str
    user: str
    action: str
    operation: str | None
    status: str
    error_type: str | None
    error_message: str | None
    duration_ms: float | None
    session_id: str | None
    details: str  # JSON object text, "{}" when empty


EVENT_COLUMNS: tuple[str, ...] = Event._fields

_counter = itertools.count()
# Per-millisecond cache (unix_ms, "tttttttt-tttt-7" id prefix, "YYYY-MM-DD HH:MM:SS" text of that second), replaced
# whole so that a thread never sees the parts of two different moments.
_clock_cache: tuple[int, str, str] = (-1, "", "")


def new_id_and_timestamp() -> tuple[str, str]:
    """A fresh event id and the matching spool timestamp, from one reading of the clock (``time.time_ns``, which
    freezegun controls).

    The id is a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds (time-ordered), a 12-bit process counter as ``rand_a``
    (ids made in one millisecond by one process sort in creation order) and 62 random bits. The random bits come from
    the ``random`` module, reseeded in every forked child, not ``os.urandom``: ids need uniqueness, not secrecy, and a
    system call here measurably slows the SQLite insert that follows. Text that changes only once per millisecond or
    second is cached; this function is on every tracked call's path.
    """
    global _clock_cache
    # Rounded to the nearest microsecond: freezegun's clock goes through a float, and truncating would turn
    # .654321 into .654320.
    micros = (time.time_ns() + 500) // 1000
    unix_ms = micros // 1000
    cached_ms, id_prefix, second_text = _clock_cache
    if unix_ms != cached_ms:
        id_prefix = "%08x-%04x-7" % (unix_ms >> 16 & 0xFFFFFFFF, unix_ms & 0xFFFF)
        second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_ms // 1000))
        _clock_cache = (unix_ms, id_prefix, second_text)
    rand_b = "%016x" % (0x8000000000000000 | random.getrandbits(62))  # variant 0b10 in the top bits
    event_id = f"{id_prefix}{next(_counter) & 0xFFF:03x}-{rand_b[:4]}-{rand_b[4:]}"
    return event_id, f"{second_text}.{micros % 1_000_000:06d}"


def utc_now() -> datetime:
    """The current time in UTC (through ``datetime.now`` so freezegun controls it)."""
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """``moment`` as the spool's UTC text form with microseconds: ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")
