"""Redacted console output for the command-line tools (``ctg-app …``, ``flush-spool``).

A setting may hold a secret by mistake (a token pasted into ``TRACKING_TABLE``) and then echo in an error message, a
``--json`` document or a traceback. So a command's whole stdout and stderr go through one :class:`Redactor` that knows
every configured secret value and the token shapes: :func:`redacted_console` swaps ``sys.stdout``/``sys.stderr`` for
line-buffered redacting writers while the command runs, and turns an unexpected exception into a redacted traceback
and exit status 1.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ctg_app.redact import Redactor

EXIT_UNEXPECTED = 1


def console_redactor() -> Redactor:
    """A redactor for command output: every secret value the settings (or, if they do not parse, the environment)
    hold, the token shapes, no length bound, line breaks kept."""
    from ctg_app.settings import Settings, SettingsError, get_settings

    try:
        secrets: tuple[str, ...] = get_settings().secret_values()
    except SettingsError:  # a broken setting must not hide the secrets of the others
        names = [f.metadata["env"] for f in dataclasses.fields(Settings) if f.metadata.get("secret")]
        secrets = tuple(os.environ[name].strip() for name in names if os.environ.get(name, "").strip())
    return Redactor(secrets, max_length=None, escape=False)


class RedactingStream:
    """A text stream that redacts each complete line before passing it on (a partial line waits for its end or a
    ``flush()``, so a secret split across two ``write`` calls is still seen whole)."""

    def __init__(self, stream: TextIO, redact: Callable[[str], str]) -> None:
        self._stream = stream
        self._redact = redact
        self._pending = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; write out every complete line, redacted."""
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._stream.write(self._redact(complete + "\n"))
        return len(text)

    def flush(self) -> None:
        """Write out a partial line too (a progress bar's ``\\r`` update), redacted, and flush."""
        if self._pending:
            self._stream.write(self._redact(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding …: the real stream's
        return getattr(self._stream, name)


@contextmanager
def redacted_console(redact: Callable[[str], str] | None = None) -> Iterator[Callable[[str], str]]:
    """Route ``sys.stdout`` and ``sys.stderr`` through ``redact`` (default :func:`console_redactor`) until the block
    ends; yields the redactor."""
    redact = redact or console_redactor()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(saved[0], redact), RedactingStream(saved[1], redact)
    # A log handler made before the swap (``ctg-app``'s own stderr handler) holds the real stream: its warnings
    # (e.g. the park step quoting TRACKING_PARK_VOLUME) would bypass the redactor, so point it at ours meanwhile.
    rerouted = _reroute_log_handlers({id(saved[0]): sys.stdout, id(saved[1]): sys.stderr})
    try:
        yield redact
    finally:
        for handler, stream in rerouted:
            handler.setStream(stream)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe must not mask the command's own outcome
                pass
        sys.stdout, sys.stderr = saved


def _reroute_log_handlers(targets: dict[int, TextIO]) -> list[tuple[logging.StreamHandler, TextIO]]:
    """Point every stream handler writing to one of the streams in ``targets`` (keyed by ``id``) at its replacement;
    returns ``(handler, original stream)`` pairs to restore."""
    loggers = [logging.getLogger(), *(logger for logger in list(logging.Logger.manager.loggerDict.values())
                                      if isinstance(logger, logging.Logger))]
    rerouted: list[tuple[logging.StreamHandler, TextIO]] = []
    seen: set[int] = set()
    for logger in loggers:
        for handler in list(logger.handlers):
            if (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
                    and id(handler) not in seen and id(handler.stream) in targets):
                seen.add(id(handler))
                rerouted.append((handler, handler.stream))
                handler.setStream(targets[id(handler.stream)])
    return rerouted


def run_redacted(command: Callable[[], int]) -> int:
    """Run ``command`` with redacted console output; an unexpected exception becomes a redacted traceback on stderr
    and :data:`EXIT_UNEXPECTED`."""
    with redacted_console():
        try:
            return int(command() or 0)
        except Exception:  # noqa: BLE001 - last resort of a console script: never print the raw traceback
            traceback.print_exc(file=sys.stderr)  # sys.stderr redacts it
            return EXIT_UNEXPECTED
