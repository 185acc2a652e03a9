"""``@tracked(action)``: the one public verb a developer needs to track a feature.

Each call of the decorated function records exactly one event, durably, before the call returns:

- success: ``action`` with status ``ok`` and the duration;
- an ``Exception``: the *classified* error action (``sql_error``, ``database_error``, ``llm_error``, ``chart_error`` or
  ``app_error``) with the operation that failed, the exception type and a bounded, redacted message; then the original
  exception is re-raised untouched;
- Streamlit's control flow (``st.stop()``, ``st.rerun()``): not an error; recorded as ``action`` with status ``ok`` and
  passed through;
- any other ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``, task cancellation): recorded as ``action`` with
  status ``interrupted`` and passed through.

Arguments are never recorded unless named in ``capture`` (questions and SQL may hold sensitive data).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ctg_app.tracking.recording.event import STATUS_INTERRUPTED, STATUS_OK
from ctg_app.tracking.recording.guard import absorb, fail_safe
from ctg_app.tracking.recording.tracker import get_tracker

F = TypeVar("F", bound=Callable[..., Any])
DetailsFn = Callable[[Any], "Mapping[str, Any] | None"]

_STREAMLIT_CONTROL_FLOW = ("StopException", "RerunException")


def _is_streamlit_control_flow(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("streamlit.") and type(exc).__name__ in _STREAMLIT_CONTROL_FLOW


def tracked(
    action: str,
    *,
    operation: str | None = None,
    capture: Iterable[str] = (),
    details: DetailsFn | None = None,
) -> Callable[[F], F]:
    """Decorate a function (sync or async, plain or method) so that every call records one usage event.

    :param action: the action recorded on success (an :class:`Actions` constant).
    :param operation: the operation name stored with the event (default: ``action``); errors are classified by it.
    :param capture: names of arguments to store, bounded and redacted, in the event's ``details``.
    :param details: a function of the return value giving extra ``details`` on success (e.g. ``{"rows": len(df)}``).

    Place it *above* ``@st.cache_data`` so cache hits are tracked too.
    """
    op = operation or action
    capture = tuple(capture)
    plain = not capture and details is None

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn) if capture else None

        @fail_safe("capture", fallback=None, events=0)
        def captured(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
            if signature is None:
                return None
            bound = signature.bind_partial(*args, **kwargs).arguments
            return {name: bound[name] for name in capture if name in bound}

        @fail_safe("details", fallback=None, events=0)
        def result_details(result: Any, base: dict[str, Any] | None) -> dict[str, Any] | None:
            extra = details(result)
            return {**(base or {}), **extra} if extra else base

        @fail_safe("track")
        def on_success(result: Any, started: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            info = captured(args, kwargs) if capture else None
            if details is not None:
                info = result_details(result, info)
            get_tracker().record_unguarded(action, operation=op, duration_ms=elapsed, details=info)

        @fail_safe("track")
        def on_exception(exc: BaseException, started: float, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            info = captured(args, kwargs) if capture else None
            tracker = get_tracker()
            if isinstance(exc, Exception):
                tracker.record_error(exc, operation=op, duration_ms=elapsed, details=info)
            elif _is_streamlit_control_flow(exc):
                tracker.record_unguarded(action, operation=op, status=STATUS_OK, duration_ms=elapsed, details=info)
            else:
                tracker.record_unguarded(action, operation=op, status=STATUS_INTERRUPTED,
                                         error_type=type(exc).__name__, duration_ms=elapsed, details=info)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    on_exception(exc, started, args, kwargs)
                    raise
                on_success(result, started, args, kwargs)
                return result

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(fn)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    on_exception(exc, started, args, kwargs)
                    raise
                if plain:  # the common case in as few steps as possible: it runs on every tracked call
                    try:
                        get_tracker().record_unguarded(action, op, STATUS_OK, None, None,
                                                       (time.perf_counter() - started) * 1000)
                    except Exception as exc:  # noqa: BLE001 - the guard, inlined
                        absorb("track", exc)
                else:
                    on_success(result, started, args, kwargs)
                return result

            wrapper = sync_wrapper

        wrapper.tracked_action = action  # introspection: which action a function records
        return wrapper  # type: ignore[return-value]

    return decorate
