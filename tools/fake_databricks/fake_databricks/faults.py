"""Scriptable fault injection for the fake warehouse.

A test arms faults with :meth:`FaultPlan.next`; each incoming Thrift call (optionally only calls of one
method, e.g. ``"ExecuteStatement"``) consumes one armed fault, in the order they were armed::

    wh.faults.next(2, http_status=503, retry_after=1)           # two 503 replies, then normal service
    wh.faults.next(1, method="ExecuteStatement", delay=3)        # run it, but reply after 3 s
    wh.faults.next(1, method="ExecuteStatement", drop_after_execute=True)  # commit, then drop the socket
    wh.faults.next(1, hang=True)                                  # never reply until wh.faults.release()
    wh.faults.next(1, method="ExecuteStatement", conflict=True)  # ConcurrentAppendException error
    wh.faults.next(1, method="ExecuteStatement", server_error=("INTERNAL_ERROR", "XX000"))  # any error class
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Optional

logger = logging.getLogger(__name__)


@dataclass
class Fault:
    """One armed fault. Exactly one behaviour is normally set.

    - ``http_status``: answer with this HTTP status before doing anything (``retry_after`` adds a header).
    - ``hang``: read the request, then send nothing until :meth:`FaultPlan.release` or ``hang_timeout``;
      the connection is then closed without a reply. The statement is NOT executed.
    - ``delay``: execute normally, then wait ``delay`` seconds before replying (a reply slower than the
      client's ``_socket_timeout`` makes it re-send: the statement runs twice).
    - ``drop_after_execute``: execute (and commit), then close the connection without any reply.
    - ``conflict``: fail an ExecuteStatement with a Databricks-like ConcurrentAppendException (no execution).
    - ``server_error``: fail an ExecuteStatement with this ``(error_class, sqlstate)`` (no execution).
    """

    method: Optional[str] = None
    http_status: Optional[int] = None
    retry_after: Optional[float] = None
    hang: bool = False
    hang_timeout: float = 30.0
    delay: float = 0.0
    drop_after_execute: bool = False
    conflict: bool = False
    remaining: int = 1
    server_error: Optional[tuple[str, str]] = None


@dataclass
class FaultHit:
    """Record of a fault that fired: the Thrift method it hit and the fault itself."""

    method: str
    fault: Fault


class FaultPlan:
    """Thread-safe queue of armed faults, consumed by the HTTP handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._release = threading.Event()
        self.hits: list[FaultHit] = []

    def next(
        self,
        count: int = 1,
        *,
        method: Optional[str] = None,
        http_status: Optional[int] = None,
        retry_after: Optional[float] = None,
        hang: bool = False,
        hang_timeout: float = 30.0,
        delay: float = 0.0,
        drop_after_execute: bool = False,
        conflict: bool = False,
        server_error: Optional[tuple[str, str]] = None,
    ) -> Fault:
        """Arm a fault for the next ``count`` matching calls (``method=None`` matches every call)."""
        f = Fault(method, http_status, retry_after, hang, hang_timeout, delay, drop_after_execute, conflict, count,
                  server_error)
        with self._lock:
            self._faults.append(f)
            if hang:
                self._release.clear()
        return f

    def take(self, method: str) -> Optional[Fault]:
        """Consume and return the first armed fault matching ``method`` (used by the server)."""
        with self._lock:
            for f in self._faults:
                if f.remaining > 0 and (f.method is None or f.method == method):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._faults.remove(f)
                    self.hits.append(FaultHit(method, f))
                    logger.info("fault fired on %s: %s", method, f)
                    return f
        return None

    def wait_released(self, timeout: float) -> bool:
        """Block a hung request until :meth:`release` (True) or ``timeout`` (False)."""
        return self._release.wait(timeout)

    def release(self) -> None:
        """Let every hung request go (their connections are then closed without a reply)."""
        self._release.set()

    def clear(self) -> None:
        """Disarm all pending faults and release hung requests."""
        with self._lock:
            self._faults.clear()
        self.release()

    @property
    def pending(self) -> int:
        """Number of fault firings still armed."""
        with self._lock:
            return sum(f.remaining for f in self._faults)
