"""What the flusher ships to: the :class:`Sink` protocol, and the values that cross it (:class:`Batch`,
:class:`SendResult`).

A sink owns its destination and its wire form: it may name a SQL expression (:attr:`Sink.encoding_sql`) that the
spool evaluates for each claimed row, so the wire text is made in SQLite at claim time; the spool layer itself knows
no wire format. ``DatabricksSink`` is the one production sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Batch:
    """Rows claimed together, as parallel lists: sequence numbers, attempts so far, the events (tuples in
    ``EVENT_COLUMNS`` order) and, when claimed with the sink's ``encoding_sql``, each event's wire text."""

    seqs: list[int] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    texts: list[str] | None = None
    file_id: str | None = None  # the spool file the rows were claimed from (seqs mean nothing in another file)
    #: Legacy four-column table: each event's rank among the spool's events with the same (timestamp, app_name,
    #: user, action), so distinct events sharing that key are all inserted, and re-sends insert none.
    ordinals: list[int] | None = None
    #: Some rows may be in the table already without their event_id (sent to it in legacy mode before
    #: ``--migrate``, never acked): match those on the natural key too.
    legacy_resend: bool = False

    def __len__(self) -> int:
        return len(self.seqs)

    def part(self, start: int, stop: int) -> Batch:
        """The rows ``start:stop`` of this batch, as a batch (the flush splits a refused batch to find the culprit)."""
        return Batch(self.seqs[start:stop], self.attempts[start:stop], self.events[start:stop],
                     None if self.texts is None else self.texts[start:stop], self.file_id,
                     None if self.ordinals is None else self.ordinals[start:stop], self.legacy_resend)


@dataclass(frozen=True)
class SendResult:
    """The outcome of one :meth:`Sink.send`: rows new to the destination, statements sent, conflicts retried."""

    inserted: int
    statements: int
    conflicts: int = 0


@runtime_checkable
class Sink(Protocol):
    """A destination for event batches. ``send`` must be idempotent per event (a batch may be sent again after a
    crash between the destination's commit and the spool's ack) and raise on failure (the flusher classifies it)."""

    #: A trusted SQL expression over the spool's event columns giving one event's wire text, or None (then
    #: :meth:`send` encodes ``batch.events`` itself).
    encoding_sql: str | None

    def ensure_table(self, *, create: bool = True) -> str:
        """Connect and make sure the destination can take events (creating it when missing and ``create``).
        Returns its mode (e.g. ``"full"``, ``"legacy"``, ``"missing"``)."""

    def send(self, batch: Batch | Sequence[Sequence[Any]]) -> SendResult:
        """Deliver a batch (or a plain sequence of event tuples)."""

    def describe(self) -> dict[str, Any]:
        """What the destination is, for status and dry runs: at least ``table`` and ``mode``."""

    def migrate(self) -> list[str]:
        """Create the destination or add the columns it lacks; returns what was added."""

    def close(self) -> None:
        """Release the connection (never raises)."""
