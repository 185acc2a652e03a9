"""The answer to one question: SQL with its interpretation and confidence, or a decline with alternatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SqlAnswer:
    """What SQL generation produced: SQL, or a decline with the nearest questions that can be answered.

    ``context`` is JSON-able state (intent and slot values) a follow-up question reuses; it survives a
    ``dataclasses.asdict`` round trip."""

    question: str
    sql: str | None
    declined: bool = False
    message: str = ""
    nearest: tuple[str, ...] = ()
    score: float | None = None
    interpretation: str = ""
    confidence: str = ""
    intent: str | None = None
    alternatives: tuple[str, ...] = ()
    decline_reason: str = ""
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # asdict() turns tuples into lists; keep the frozen answer hashable-friendly and equal after a round trip
        object.__setattr__(self, "nearest", tuple(self.nearest or ()))
        object.__setattr__(self, "alternatives", tuple(self.alternatives or ()))
        object.__setattr__(self, "context", dict(self.context or {}))
