"""``ctg-app check-training``: execute every trained SQL against the configured data source.

Each trained question must also be understood by the offline answering engine (it answers paraphrases of a trained
question with that question's SQL only when it can read the trained question's slots itself).

Exit status (:mod:`ctg_app.exit_codes`) 0 when all run, 1 when any fails (each failure is reported with its question
and error), 3 when the training file or data source settings cannot be used, 4 when the data source cannot be reached.
``--json`` prints ``{"source", "passed", "failed", "results": [...]}`` (or ``{"error", "exit_code"}``). An unreachable warehouse (or a rejected token) stops the check at the
first question that meets it, so the command takes one connection attempt (bounded by ``WAREHOUSE_TIMEOUT_S``), not
one per trained question.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from typing import TextIO

from ctg_app.chatbot.answering.engine import AnswerEngine
from ctg_app.chatbot.data.source import DataSource, make_data_source
from ctg_app.chatbot.data.training import load_training
from ctg_app.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one trained question."""

    question: str
    ok: bool
    rows: int = 0
    error: str = ""


# Exceptions meaning "the data source cannot be reached or refused the session" (transport, retries exhausted,
# HTTP 401/403): no later question can succeed, so the check stops. Matched by class path, as the error classifier does.
_UNREACHABLE = ("databricks.sql.exc.RequestError", "urllib3.exceptions", "requests.exceptions", "builtins.OSError")


class SourceUnreachable(RuntimeError):
    """The data source could not be reached; the check stopped at the first question that met it."""


def _is_unreachable(exc: BaseException) -> bool:
    paths = [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]
    return any(path == name or path.startswith(name + ".") for path in paths for name in _UNREACHABLE)


def check_training(settings: Settings | None = None, source: DataSource | None = None) -> list[CheckResult]:
    """Run every trained SQL (transpiled to the source's dialect) and collect the outcomes.

    Raises :class:`SourceUnreachable` at the first connection-level failure (see :data:`_UNREACHABLE`)."""
    settings = settings or get_settings()
    source = source or make_data_source(settings)
    results = []
    examples = load_training(dialect=source.dialect).examples
    engine = AnswerEngine(source.run_sql, dialect=source.dialect)
    for example in examples:
        try:
            df = source.run_sql(example.sql)
        except Exception as exc:  # report every failure, whatever raised it
            if _is_unreachable(exc):
                from ctg_app.warehouse.connection import describe_error

                raise SourceUnreachable(describe_error(exc, settings)) from exc
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            results.append(CheckResult(example.question, ok=False, error=f"{type(exc).__name__}: {first_line}"))
            continue
        problems = engine.problems(example.question)
        if problems:
            results.append(CheckResult(example.question, ok=False, rows=len(df),
                                       error="the offline engine cannot read this question: " + "; ".join(problems)))
        else:
            results.append(CheckResult(example.question, ok=True, rows=len(df)))
    return results


def main(verbose: bool = False, out: TextIO | None = None, as_json: bool = False) -> int:
    """Print a report (JSON with ``as_json``); exit status 0 all passed, 1 some failed, 3 could not check (settings),
    4 the data source is unreachable."""
    from ctg_app.exit_codes import EXIT_CONFIG, EXIT_UNAVAILABLE

    out = out or sys.stdout
    started = time.monotonic()
    try:
        source = make_data_source(get_settings())
        results = check_training(source=source)
    except SourceUnreachable as exc:
        message = (f"check-training: cannot reach the data source ({source.describe()}): {exc}; gave up after "
                   f"{time.monotonic() - started:.1f} s (WAREHOUSE_TIMEOUT_S bounds the wait)")
        return _fail(message, EXIT_UNAVAILABLE, out, as_json)
    except Exception as exc:
        return _fail(f"check-training: cannot check: {type(exc).__name__}: {exc}", EXIT_CONFIG, out, as_json)
    failures = [r for r in results if not r.ok]
    if as_json:
        json.dump({"source": source.describe(), "passed": len(results) - len(failures), "failed": len(failures),
                   "results": [asdict(r) for r in results]}, out, indent=2)
        print(file=out)
        return 1 if failures else 0
    print(f"Checking {len(results)} trained questions against {source.describe()}", file=out)
    for r in results:
        if not r.ok:
            print(f"FAIL  {r.question}\n      {r.error}", file=out)
        elif verbose:
            print(f"ok    {r.question} ({r.rows} rows)", file=out)
    print(f"{len(results) - len(failures)} passed, {len(failures)} failed", file=out)
    return 1 if failures else 0


def _fail(message: str, code: int, out: TextIO, as_json: bool) -> int:
    if as_json:
        json.dump({"error": message, "exit_code": code}, out, indent=2)
        print(file=out)
    else:
        print(message, file=out)
    return code
