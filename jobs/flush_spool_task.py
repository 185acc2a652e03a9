"""The flush/park-drain job's entry point on Databricks (``resources/jobs.yml``): ``flush-spool`` with its settings.

A serverless job task cannot set environment variables, and ``flush-spool`` reads its settings from them. So the
task's parameters are ``NAME=value`` settings (only names the app's settings define), then ``--`` and the
``flush-spool`` arguments::

    flush_spool_task.py TRACKING_TABLE=c.s.t DATABRICKS_WAREHOUSE_ID=abc -- --json

No secret is passed this way: on Databricks the job authenticates as its run-as identity.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence


def split_arguments(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``(settings, flush-spool arguments)`` from ``NAME=value ... -- args``; an unknown name or a setting marked
    secret is refused (``SystemExit`` with a message naming it, never its value)."""
    from ctg_app.settings import Settings

    fields = {f.metadata["env"]: f for f in dataclasses.fields(Settings)}
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    settings: dict[str, str] = {}
    for item in argv[:cut]:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            raise SystemExit(f"flush_spool_task: not a setting: {name!r} (give NAME=value, then -- and the arguments)")
        if fields[name].metadata["secret"]:
            raise SystemExit(f"flush_spool_task: {name} is a secret and must not be a job parameter")
        settings[name] = value
    return settings, argv[cut + 1:]


def main(argv: Sequence[str] | None = None) -> int:
    """Set the given settings in the environment and run ``flush-spool``; returns its exit code."""
    settings, arguments = split_arguments(sys.argv[1:] if argv is None else argv)
    os.environ.update(settings)
    from ctg_app.tracking.delivery.cli import main as flush_spool

    return flush_spool(arguments)


if __name__ == "__main__":
    sys.exit(main())
