"""The exit codes of every command line (``ctg-app <command>`` and ``flush-spool``): one meaning per code.

The table is written once, here; ``--help`` of each command prints :data:`EXIT_CODES_HELP`, and README /
``docs/flush-spool.md`` copy it (``tests/test_exit_codes.py`` checks they agree).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNAVAILABLE = 4
EXIT_PARTIAL = 5

#: code -> meaning, in order.
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success (or nothing to do)",
    EXIT_FAILED: "a check failed (selftest, check-training), or an unexpected internal error",
    EXIT_USAGE: "bad command line (unknown option, --days -1, unknown report)",
    EXIT_CONFIG: "configuration error: missing/invalid settings, credentials rejected (401/403), unusable table, "
                 "spool or park volume not found",
    EXIT_UNAVAILABLE: "warehouse unreachable or unavailable: nothing was done, try again later",
    EXIT_PARTIAL: "partial: some events delivered, then a failure; or refused events dead-lettered (flush-spool)",
}

EXIT_CODES_HELP = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items()) + "\n"


__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_CONFIG", "EXIT_UNAVAILABLE", "EXIT_PARTIAL", "EXIT_CODES",
           "EXIT_CODES_HELP"]
