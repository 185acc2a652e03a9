"""``ctg-app``: the command-line entry point.

Each subcommand is registered by one small function ``add_<name>(subparsers)`` that adds its parser and sets
``func`` (and ``passthrough=True`` if it accepts unknown arguments, given to it as ``args.streamlit_args``); add a
command by writing such a function and listing it in :data:`COMMANDS`.

Every command takes ``--version`` and ``--profile NAME`` (Databricks unified auth: a ``~/.databrickscfg`` profile,
used when no ``DATABRICKS_*`` credentials are set) and exits with the codes of :mod:`ctg_app.exit_codes`.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(extra: Sequence[str] = ()) -> list[str]:
    """The command line that serves the app: the launcher ``python -m ctg_app.serve`` (starts usage shipping with the
    server and drains it at shutdown, then runs ``streamlit run`` headless, without usage statistics), plus
    passthrough arguments for streamlit."""
    return [sys.executable, "-m", "ctg_app.serve", *extra]


def _run(args: argparse.Namespace) -> int:
    extra = [a for a in args.streamlit_args if a != "--"]
    env = dict(os.environ)
    root = str(APP_PATH.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = streamlit_command(extra)
    if os.name == "posix":  # become the server: signals reach it directly and no orphan is left behind
        os.execve(command[0], command, env)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130


def add_run(subparsers: argparse._SubParsersAction) -> None:
    """``ctg-app run [streamlit args…]``: serve the chatbot."""
    parser = subparsers.add_parser("run", help="start the chatbot (Streamlit); extra arguments go to streamlit run")
    parser.set_defaults(func=_run, passthrough=True)  # unknown arguments are passed to streamlit, e.g. --server.port


def _check_training(args: argparse.Namespace) -> int:
    from ctg_app.chatbot.data.training_check import main as check_main

    return check_main(verbose=args.verbose, as_json=args.json)


def add_check_training(subparsers: argparse._SubParsersAction) -> None:
    """``ctg-app check-training``: run every trained SQL against the configured data source."""
    parser = subparsers.add_parser("check-training", help="run every trained SQL against the configured data source")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every question, not only failures")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    parser.set_defaults(func=_check_training)


def add_selftest(subparsers: argparse._SubParsersAction) -> None:
    """``ctg-app selftest``: tracking checklist for this environment (ctg_app.tracking.selftest)."""
    from ctg_app.tracking.selftest import add_selftest as add

    add(subparsers)


def add_usage_report(subparsers: argparse._SubParsersAction) -> None:
    """``ctg-app usage-report``: usage statistics and named reports (ctg_app.tracking.analytics.cli)."""
    from ctg_app.tracking.analytics.cli import add_usage_report as add

    add(subparsers)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [add_run, add_check_training, add_selftest,
                                                               add_usage_report]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand (each with ``--version``, ``--profile`` and the exit code
    table in its help)."""
    from ctg_app.exit_codes import EXIT_CODES_HELP
    from ctg_app.tracking.delivery.cli import add_common_options

    parser = argparse.ArgumentParser(prog="ctg-app", description="CTG chatbot with usage tracking",
                                     epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(subparsers)
    for name, sub in subparsers.choices.items():
        if name != "run":  # run passes unknown arguments to streamlit; --version and --profile are the app's own
            add_common_options(sub)
            sub.epilog, sub.formatter_class = EXIT_CODES_HELP, argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.streamlit_args = unknown
    from ctg_app.tracking.delivery.cli import apply_profile

    if getattr(args, "profile", None):
        apply_profile(args)
        from ctg_app.settings import reload_settings

        reload_settings()
    root = logging.getLogger()
    handler = None
    if not root.handlers:  # a console script: log to stderr; in-process callers (tests) keep their own logging
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    # The connector logs every HTTP round trip at INFO; our commands say what matters themselves.
    quiet = [logging.getLogger(name) for name in ("databricks", "urllib3")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        if args.command == "run":  # becomes streamlit: its output is its own
            return int(args.func(args) or 0)
        from ctg_app.console import run_redacted

        # Every other command's stdout, stderr and any traceback pass through the redactor: a secret pasted into a
        # setting must not echo in an error message.
        return run_redacted(lambda: args.func(args))
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
        if handler is not None:
            root.removeHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
