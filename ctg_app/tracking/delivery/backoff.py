"""One backoff policy for every retry in delivery: exponential, capped, with a jitter factor.

Used by the spool's retry times (:meth:`Delivery.release`), the background flusher's pause after failed runs and
the sink's retries of conflicting ``MERGE``s; each holds its own :class:`Backoff` values, the arithmetic is here only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_DOUBLINGS = 30  # 2**30 times any base is far past every cap; bounds the arithmetic


@dataclass(frozen=True)
class Backoff:
    """``delay(n) = min(cap, base * 2**n) * jitter`` seconds, ``n`` the number of doublings (0 for the first retry)
    and ``jitter`` uniform in ``[jitter_low, jitter_high)`` ("equal jitter" by default: half to all of the ceiling)."""

    base: float
    cap: float
    jitter_low: float = 0.5
    jitter_high: float = 1.0

    def ceiling(self, doublings: int) -> float:
        """The delay before jitter: ``min(cap, base * 2**doublings)``."""
        return min(self.cap, self.base * (2 ** max(0, min(int(doublings), MAX_DOUBLINGS))))

    def jitter(self, rng: random.Random | None = None) -> float:
        """One jitter factor (multiply a ceiling by it)."""
        return self.jitter_low + (self.jitter_high - self.jitter_low) * (rng or random).random()

    def delay(self, doublings: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``doublings`` doublings, jitter included."""
        return self.ceiling(doublings) * self.jitter(rng)

    def sql(self, doublings_column: str) -> str:
        """The same ceiling as a SQLite expression over a column (``:backoff_base``/``:backoff_cap`` parameters, see
        :meth:`sql_params`), so one UPDATE can give every row its own retry time."""
        return (f"min(:backoff_cap, :backoff_base * (1 << min(max({doublings_column}, 0), {MAX_DOUBLINGS})))")

    def sql_params(self, rng: random.Random | None = None) -> dict[str, float]:
        """Parameters for :meth:`sql`, with one jitter factor for the whole statement (``:backoff_jitter``)."""
        return {"backoff_base": self.base, "backoff_cap": self.cap, "backoff_jitter": self.jitter(rng)}


#: Retry times of released spool rows: base 2 s, cap 10 min.
SPOOL_RETRY = Backoff(base=2.0, cap=600.0)
