"""Benchmark the offline answering path: question → SQL → result, against reference SQL on the sample database.

Usage: ``python benchmarks/bench_answers.py [--eval benchmarks/answers_eval.toml] [--verbose]``
(the analytic sets: ``--eval benchmarks/answers_heldout_analytic.toml`` / ``answers_tuning_analytic.toml``)

Each case of the evaluation set is asked through the app's own path (``build_assistant(...).ask`` then the
data source's ``run_sql``). An in-domain answer is correct when its result frame holds the reference frame's rows:
column names are ignored, extra answer columns are allowed, row order counts only for ``ordered`` cases. A declined
in-domain case counts as "declined with the right suggestion" when one of its alternatives answers correctly.
Out-of-domain cases (write requests, injections, empty, other topics, non-English, very long) must be declined.

Prints one line per case, then per-kind figures, and last:
``SUMMARY correct=X/Y (Z%) confident_wrong=W declined_in_domain=V out_of_domain_declined=U/T``
(correct = in-domain answered correctly + out-of-domain declined; confident_wrong = any answer given that is wrong,
including an answer to an out-of-domain case).

Cases may carry a ``shape`` (then one ``SHAPE`` line per shape: right / declined / confident-wrong / unstated), the
kind ``decline`` (in-domain, but must be declined: ambiguous, or no data) and ``interpretation_contains`` (words, case-sensitive, the
answer's "Answered as" must name; an answer with the right rows that leaves one out counts as ``unstated``, not
right). Relative dates are resolved with ``CTG_DATE_ANCHOR=latest-data`` unless the environment says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CTG_DATE_ANCHOR", "latest-data")  # the held-out set's relative dates are written for it

from ctg_app.chatbot.data.source import SampleSQLiteSource  # noqa: E402
from ctg_app.chatbot.data.sample import ensure_sample_db  # noqa: E402
from ctg_app.chatbot.assistant import build_assistant  # noqa: E402
from ctg_app.settings import Settings  # noqa: E402

EVAL_FILE = Path(__file__).with_name("answers_eval.toml")


def _norm(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return round(float(value), 2)
    try:
        return round(float(str(value)), 2)
    except ValueError:
        return str(value)


def _rows(df: pd.DataFrame, cols: list[int]) -> list[tuple]:
    return [tuple(_norm(df.iat[i, c]) for c in cols) for i in range(len(df))]


def frames_match(answer: pd.DataFrame, reference: pd.DataFrame, ordered: bool) -> bool:
    """True when ``answer`` holds the reference rows in some of its columns (in the same order if ``ordered``)."""
    if len(answer) != len(reference) or answer.shape[1] < reference.shape[1]:
        return False
    ref_cols = list(range(reference.shape[1]))
    ref_sorted = [sorted(map(repr, (_norm(v) for v in reference.iloc[:, c]))) for c in ref_cols]
    candidates = []
    for c in ref_cols:
        options = [a for a in range(answer.shape[1])
                   if sorted(map(repr, (_norm(v) for v in answer.iloc[:, a]))) == ref_sorted[c]]
        if not options:
            return False
        candidates.append(options)
    expected = _rows(reference, ref_cols)
    for combo in _combinations(candidates):
        got = _rows(answer, list(combo))
        if (got == expected) if ordered else (Counter(map(repr, got)) == Counter(map(repr, expected))):
            return True
    return False


def _combinations(candidates: list[list[int]]):
    if not candidates:
        yield ()
        return
    for first in candidates[0]:
        for rest in _combinations(candidates[1:]):
            if first not in rest:
                yield (first, *rest)


def load_cases(path: Path) -> list[dict[str, Any]]:
    """The evaluation cases of ``path``."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)["case"]


def run(path: Path, verbose: bool = False) -> str:
    """Run every case, print one line each; returns the SUMMARY line."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    db = ensure_sample_db(tmp / "sample.sqlite3")
    source = SampleSQLiteSource(db)
    vn = build_assistant(Settings(sample_db_path=db), data_source=source)
    cases = load_cases(path)
    stats: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    shapes: dict[str, Counter[str]] = {}
    for i, case in enumerate(cases, start=1):
        kind, question = case["kind"], case["question"]
        kinds[kind] += 1
        answer = vn.ask(question)
        label = question if len(question) < 70 else question[:67] + "..."
        shape = shapes.setdefault(case.get("shape", ""), Counter())
        shape["n"] += 1
        if kind == "decline":
            if answer.declined:
                stats["correct"] += 1
                shape["right"] += 1
                outcome = f"ok declined ({answer.decline_reason})"
            else:
                stats["confident_wrong"] += 1
                shape["confident_wrong"] += 1
                outcome = f"WRONG answered [{answer.confidence}] {answer.interpretation}"
            print(f"{i:3d} {kind:10s} {outcome:40.40s} {label!r}")
            if verbose or not answer.declined:
                print(f"      {answer.message} sql: {answer.sql}")
            continue
        if kind == "ood":
            if answer.declined:
                stats["ood_declined"] += 1
                stats["correct"] += 1
                outcome = f"ok declined ({answer.decline_reason})"
            else:
                stats["confident_wrong"] += 1
                outcome = f"WRONG answered: {answer.sql}"
            print(f"{i:3d} {kind:10s} {outcome:40.40s} {label!r}")
            continue
        reference = source.run_sql(case["sql"])
        ordered = bool(case.get("ordered", False))
        if answer.declined:
            stats["declined_in_domain"] += 1
            stats[f"declined_{kind}"] += 1
            shape["declined"] += 1
            good_alt = ""
            for alt in answer.alternatives:
                alt_answer = vn.ask(alt)
                if alt_answer.sql and frames_match(source.run_sql(alt_answer.sql), reference, ordered):
                    good_alt = alt
                    break
            if good_alt:
                stats[f"declined_right_suggestion_{kind}"] += 1
                outcome = "declined, right suggestion"
            else:
                outcome = f"declined ({answer.decline_reason})"
            print(f"{i:3d} {kind:10s} {outcome:40.40s} {label!r}")
            if verbose:
                print(f"      {answer.message} alternatives={list(answer.alternatives)}")
            continue
        try:
            result = source.run_sql(answer.sql or "")
            ok = frames_match(result, reference, ordered)
        except Exception as exc:  # an answer that fails to run is a wrong answer
            ok, result = False, str(exc)
        missing = [w for w in case.get("interpretation_contains", []) if w not in (answer.interpretation or "")]
        if ok and missing:
            stats["unstated"] += 1
            shape["unstated"] += 1
            outcome = f"UNSTATED {missing} [{answer.confidence}] {answer.interpretation}"
        elif ok:
            stats["correct"] += 1
            stats[f"correct_{kind}"] += 1
            shape["right"] += 1
            outcome = f"ok [{answer.confidence}] {answer.interpretation}"
        else:
            stats["confident_wrong"] += 1
            shape["confident_wrong"] += 1
            outcome = f"WRONG [{answer.confidence}] {answer.interpretation}"
        print(f"{i:3d} {kind:10s} {outcome:40.40s} {label!r}")
        if verbose or not ok or missing:
            print(f"      answered as: {answer.interpretation}")
            print(f"      sql: {answer.sql}")
    elapsed = time.perf_counter() - started
    total = len(cases)
    for kind in ("paraphrase", "new_values"):
        n = kinds[kind]
        if n:
            good = stats[f"correct_{kind}"]
            right_decline = stats[f"declined_right_suggestion_{kind}"]
            print(f"{kind}: correct {good}/{n} ({100 * good / n:.1f}%), declined {stats[f'declined_{kind}']} "
                  f"(with the right suggestion {right_decline}); correct or right suggestion "
                  f"{good + right_decline}/{n} ({100 * (good + right_decline) / n:.1f}%)")
    for name, counts in shapes.items():
        if name:
            print(f"SHAPE {name:15s} right={counts['right']}/{counts['n']} declined={counts['declined']} "
                  f"confident_wrong={counts['confident_wrong']} unstated={counts['unstated']}")
    print(f"{total} cases in {elapsed:.1f} s ({1000 * elapsed / max(1, total):.0f} ms per case)")
    summary = (f"SUMMARY correct={stats['correct']}/{total} ({100 * stats['correct'] / max(1, total):.1f}%) "
               f"confident_wrong={stats['confident_wrong']} declined_in_domain={stats['declined_in_domain']} "
               + (f"unstated={stats['unstated']} " if stats["unstated"] else "") +
               f"out_of_domain_declined={stats['ood_declined']}/{kinds['ood']}")
    print(summary)
    return summary


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=EVAL_FILE)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    run(args.eval, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
