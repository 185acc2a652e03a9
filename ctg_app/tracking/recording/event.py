"""The event: one immutable value built once by the recorder and passed unchanged to spool, flusher and sink.

Its fields are declared ONCE, in :data:`FIELDS` (name, Python type, spool type, Delta type, wire name); everything
else is derived from that declaration: the :class:`Event` tuple, the spool's column list and insert, the central
table's DDL and column order (:data:`TABLE_FIELDS`), the sink's wire names and the report columns. Adding a field is
one :class:`Field` here plus one spool migration (``spool.add_field_migration``); the central table gains the column
with ``flush-spool --migrate``.

It is a ``NamedTuple`` rather than a frozen dataclass on purpose: it is immutable, and its field order is the spool's
column order, so the request path hands it to SQLite as the parameter tuple without copying (a frozen dataclass costs
several microseconds more per event, and the request path has a budget of a few microseconds above the insert itself).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple, Optional

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_INTERRUPTED = "interrupted"

#: An event's delivery states in the spool, declared once (the spool, its salvage and the flush's verbs use these).
STATE_PENDING = "pending"  # waiting to be delivered
STATE_DELIVERED = "delivered"  # confirmed by the warehouse (kept for retention)
STATE_DEAD = "dead"  # refused by the warehouse for good (``--retry-dead`` replays it)
STATE_PARKED = "parked"  # in a segment file on the park volume (``delivery.park``), not yet known to be delivered
STATES: tuple[str, ...] = (STATE_PENDING, STATE_DELIVERED, STATE_DEAD, STATE_PARKED)


@dataclass(frozen=True)
class Field:
    """One event field: its name, Python type, spool column type (a ``sqlite_utils`` type), the central table's Delta
    type, its short JSON name on the wire, whether the spool requires it (NOT NULL) and whether it is one of the
    spec's four table columns (which come first in the central table)."""

    name: str
    python_type: Any
    spool_type: type
    delta_type: str
    wire: str
    required: bool = False
    spec: bool = False


#: The event's fields, in the event's (and the spool's) order. The single declaration of the event's shape.
FIELDS: tuple[Field, ...] = (
    Field("event_id", str, str, "STRING", "id", required=True),
    Field("timestamp", str, str, "TIMESTAMP", "ts", required=True, spec=True),  # UTC "YYYY-MM-DD HH:MM:SS.ffffff"
    Field("app_name", str, str, "STRING", "app", required=True, spec=True),
    Field("user", str, str, "STRING", "u", required=True, spec=True),
    Field("action", str, str, "STRING", "a", required=True, spec=True),
    Field("operation", Optional[str], str, "STRING", "op"),
    Field("status", str, str, "STRING", "st", required=True),
    Field("error_type", Optional[str], str, "STRING", "et"),
    Field("error_message", Optional[str], str, "STRING", "em"),
    Field("duration_ms", Optional[float], float, "DOUBLE", "ms"),
    Field("session_id", Optional[str], str, "STRING", "sid"),
    Field("details", str, str, "STRING", "d", required=True),  # JSON object text, "{}" when empty
)


def table_fields(fields: tuple[Field, ...] = FIELDS) -> tuple[Field, ...]:
    """The central table's column order: the spec's four columns first, then the extensions in event order."""
    return tuple(f for f in fields if f.spec) + tuple(f for f in fields if not f.spec)


#: One tracked action (generated from :data:`FIELDS`; the first five fields are the spec's columns plus the id).
Event = NamedTuple("Event", [(f.name, f.python_type) for f in FIELDS])  # type: ignore[misc]
Event.__doc__ = "One tracked action: the fields of :data:`FIELDS`, in that order."

EVENT_COLUMNS: tuple[str, ...] = Event._fields
#: The central table's columns in table order (a legacy table may have only the first four, :data:`SPEC_COLUMNS`).
TABLE_FIELDS: tuple[Field, ...] = table_fields()
TABLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in TABLE_FIELDS)
SPEC_COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.spec)

_COUNTER_MAX = 0xFFF
_id_lock = threading.Lock()
# (clock ms last read, ms written into the last id, its 12-bit counter, "tttttttt-tttt-7" prefix of that id ms,
#  clock second, "YYYY-MM-DD HH:MM:SS" text of that second)
_id_state: tuple[int, int, int, str, int, str] = (-1, -1, -1, "", -1, "")


def new_id_and_timestamp() -> tuple[str, str]:
    """A fresh event id and the matching spool timestamp, from one reading of the clock (``time.time_ns``, which
    freezegun controls).

    The id is a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter as ``rand_a`` and 62 random bits.
    The counter restarts at 0 each millisecond; should a process make more than 4,096 ids within one millisecond, the
    id's millisecond is advanced by one rather than the counter wrapping (RFC 9562, 6.2 method 1). So the ids one
    process makes sort in creation order, whatever it made before, as long as the system clock does not step back (it
    may run up to a few milliseconds ahead of the timestamp in such a burst). The random bits come from the ``random``
    module, reseeded in every forked child, not ``os.urandom``: ids need uniqueness, not secrecy, and a system call here
    measurably slows the SQLite insert that follows. Text that changes only once per millisecond or second is cached;
    this function is on every tracked call's path.
    """
    global _id_state
    # Rounded to the nearest microsecond: freezegun's clock goes through a float, and truncating would turn
    # .654321 into .654320.
    micros = (time.time_ns() + 500) // 1000
    clock_ms = micros // 1000
    second = clock_ms // 1000
    with _id_lock:
        last_clock, id_ms, counter, id_prefix, cached_second, second_text = _id_state
        if clock_ms > id_ms or clock_ms < last_clock:  # a new millisecond, or the clock stepped back
            id_ms, counter = clock_ms, 0
            id_prefix = ""
        elif counter < _COUNTER_MAX:
            counter += 1
        else:  # 4,096 ids in this millisecond already: borrow the next one rather than wrap
            id_ms, counter = id_ms + 1, 0
            id_prefix = ""
        if not id_prefix:
            id_prefix = "%08x-%04x-7" % (id_ms >> 16 & 0xFFFFFFFF, id_ms & 0xFFFF)
        if second != cached_second:
            second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        _id_state = (clock_ms, id_ms, counter, id_prefix, second, second_text)
    rand_b = "%016x" % (0x8000000000000000 | random.getrandbits(62))  # variant 0b10 in the top bits
    event_id = f"{id_prefix}{counter:03x}-{rand_b[:4]}-{rand_b[4:]}"
    return event_id, f"{second_text}.{micros % 1_000_000:06d}"


def utc_now() -> datetime:
    """The current time in UTC (through ``datetime.now`` so freezegun controls it)."""
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """``moment`` as the spool's UTC text form with microseconds: ``YYYY-MM-DD HH:MM:SS.ffffff``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")
