"""The offline engine: understand the question, compose SQL that honours every slot, or decline with alternatives.

Trained examples are instances of the engine's intents: when a question means exactly what a trained question
means (same intent and slot values), the trained SQL is returned verbatim; otherwise the SQL is composed from the
intent's template with the question's values. A question with anything the engine cannot honour — an unknown word,
a filter a measure does not have, a relative date, a negation — is declined, with questions it *can* answer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

import pandas as pd
import sqlglot

from ctg_app.chatbot.answering.answer import SqlAnswer
from ctg_app.chatbot.answering.compose import compose, interpretation, render_question
from ctg_app.chatbot.answering.lexicon import LexiconCache
from ctg_app.chatbot.answering.understanding import Anchor, Spec, parse
from ctg_app.settings import get_settings

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 400
SOURCE_DIALECT = "databricks"
OUT_OF_DOMAIN = ("That does not look like a question about the project-controlling data, so I will not guess a "
                 "query. Here are questions I can answer:")
UNSUPPORTED = "I will not guess a query for this, because I cannot honour {what}."
# the measure → the data whose date range decides whether a period has data at all
COVERED_BY = {"actual_cost": ("actual_cost",), "hours": ("hours",), "billable_share": ("hours",),
              "budget": ("budget",), "budget_vs_actual": ("budget", "actual_cost")}
COVERAGE_WORDS = {"actual_cost": "actual costs", "hours": "hours", "budget": "budgets", "ctg": "cost-to-go forecasts"}


def resolve_anchor(setting: str, latest: str | None, today: dt.date | None = None) -> Anchor:
    """The date relative dates count from, and how the answer says it: ``setting`` is ``latest-data`` (the latest
    posting or booking in the data; today when the data has none), ``today`` or an ISO date."""
    today = today or dt.date.today()
    if setting == "latest-data" and latest:
        day = dt.date.fromisoformat(latest)
        return day, f"relative to the latest data, {day.isoformat()}"
    if setting in ("today", "latest-data"):
        return today, f"relative to today, {today.isoformat()}"
    day = dt.date.fromisoformat(setting)
    return day, f"relative to the set date {day.isoformat()} (CTG_DATE_ANCHOR)"


def _to_dialect(sql: str, dialect: str) -> str:
    if dialect == SOURCE_DIALECT:
        return sql
    return sqlglot.transpile(sql, read=SOURCE_DIALECT, write=dialect, pretty=False)[0]


def merge_followup(previous: dict[str, Any], new: Spec) -> Spec:
    """The previous turn's slots with the new question's slots put in (a new value of a slot replaces the old)."""
    spec = Spec.from_dict(previous)
    if new.measure:
        spec.measure, spec.entity, spec.count = new.measure, None, False
    elif new.entity and new.entity != spec.entity and not spec.measure:
        spec.entity = new.entity
    for dim, values in new.filters.items():
        spec.filters[dim] = list(values)
        spec.exclude.pop(dim, None)
    for dim, values in new.exclude.items():  # "and without Engineering?"
        spec.exclude[dim] = list(values)
        spec.filters.pop(dim, None)
    if new.time:
        spec.time, spec.compare = new.time, new.compare
    if new.date_field:
        spec.date_field = new.date_field
    if new.groups:
        spec.groups = list(new.groups)
        if spec.top and not new.top:
            spec.top = None
    if new.top:
        spec.top = new.top
    if new.threshold:
        spec.threshold = new.threshold
    if new.billable is not None:
        spec.billable = new.billable
    spec.count = spec.count or new.count
    spec.unknown, spec.problems = list(new.unknown), list(new.problems)
    spec.corrections, spec.ambiguous = list(new.corrections), dict(new.ambiguous)
    spec.chart = new.chart
    spec.notes = list(new.notes)
    spec.agg = new.agg or spec.agg
    spec.share = new.share or spec.share
    spec.followup = True
    return spec


def _is_followup(spec: Spec) -> bool:
    says_something = bool(spec.measure or spec.filters or spec.exclude or spec.time or spec.groups or spec.top
                          or spec.threshold
                          or spec.billable is not None or spec.chart or spec.ambiguous or spec.date_field)
    return says_something and (spec.followup or (spec.measure is None and spec.entity is None))


class AnswerEngine:
    """Answers questions for one data source (its ``run_sql`` feeds the lexicon; SQL is written in its dialect)."""

    def __init__(self, run_sql: Callable[[str], pd.DataFrame] | None, dialect: str = "sqlite",
                 examples: Iterable[tuple[str, str]] = (), nearest: Callable[[str], list[str]] | None = None,
                 lexicon_ttl_s: float = 600.0, date_anchor: str | None = None) -> None:
        self.dialect = dialect
        self._date_anchor = date_anchor  # None: the CTG_DATE_ANCHOR setting
        self.lexicon = LexiconCache(run_sql, ttl_s=lexicon_ttl_s)
        self._examples: list[tuple[str, str]] = list(examples)
        self._trained: dict[tuple, tuple[str, str]] | None = None
        self._nearest = nearest or (lambda q: [])

    def trained(self) -> dict[tuple, tuple[str, str]]:
        """Spec key → (trained question, trained SQL) for every trained question the engine understands."""
        if self._trained is None:
            table: dict[tuple, tuple[str, str]] = {}
            lex = self.lexicon.get()
            for question, sql in self._examples:
                spec = parse(question, lex)
                if compose(spec).sql is None:
                    log.warning("trained question not understood by the offline engine: %s", question)
                    continue
                table.setdefault(spec.key(), (question, sql))
            self._trained = table
        return self._trained

    def anchor(self) -> Anchor:
        """The date relative dates ("last year", "YTD") count from, with the words the answer states it in."""
        setting = self._date_anchor
        if setting is None:
            setting = get_settings().date_anchor
        coverage = self.lexicon.get().coverage
        latest = max((coverage[f][1] for f in ("actual_cost", "hours") if f in coverage), default=None)
        return resolve_anchor(setting, latest)

    def problems(self, question: str) -> list[str]:
        """What keeps the engine from answering ``question`` on its own (empty when it can answer it)."""
        return compose(parse(question, self.lexicon.get(), self.anchor())).problems

    def understand(self, question: str, previous: dict[str, Any] | None = None) -> Spec:
        """The question's spec (merged into the previous turn's slots when it is a follow-up)."""
        spec = parse(question, self.lexicon.get(), self.anchor())
        if previous and previous.get("spec") and _is_followup(spec):
            spec = merge_followup(previous["spec"], spec)
        return spec

    def answer(self, question: str, previous: SqlAnswer | None = None) -> SqlAnswer:
        """SQL that honours every constraint of ``question``, or a decline with answerable alternatives."""
        text = (question or "").strip()
        if not text:
            return self._decline(question, "empty", "Please type a question about the project data.", Spec())
        if len(text) > MAX_QUESTION_CHARS:
            return self._decline(question, "too_long", f"That question is longer than {MAX_QUESTION_CHARS} "
                                 "characters; please ask one thing at a time, in a sentence or two.", Spec())
        context = previous.context if previous is not None and not previous.declined else None
        spec = self.understand(text, context)
        composed = compose(spec)
        if composed.sql is None:
            return self._decline_spec(text, spec, composed.problems)
        empty = self._no_data(spec)
        if empty:  # suggest the same question over the whole range that has data
            base = Spec.from_dict({**spec.to_dict(), "time": None, "compare": None})
            return self._decline(question, "no_data", empty, spec, self.alternatives(base))
        trained = self.trained().get(spec.key())
        sql = trained[1] if trained else _to_dialect(composed.sql, self.dialect)
        confident = (not spec.corrections and not (spec.top or {}).get("defaulted") and not spec.followup
                     and not spec.assumed)
        notes = []
        if spec.corrections:
            notes.append("read " + ", ".join(f"“{a}” as “{b}”" for a, b in spec.corrections))
        if (spec.top or {}).get("defaulted"):
            notes.append(f"showing the top {spec.top['n']}" if spec.top else "")
        message = f"Closest trained question: “{trained[0]}”" if trained else "Answered from the question's values."
        if notes:
            message += " (" + "; ".join(n for n in notes if n) + ")"
        return SqlAnswer(question=question, sql=sql, message=message, score=1.0 if confident else 0.7,
                         interpretation=interpretation(spec) + self._partial(spec), confidence="high" if confident else "medium",
                         intent=composed.intent, context={"spec": spec.to_dict(), "intent": composed.intent})

    def _partial(self, spec: Spec) -> str:
        """A note when a period reaches past the data ("2025 holds data only up to 2025-06-30"), else ""."""
        coverage = self.lexicon.get().coverage
        notes = []
        for window in (spec.time, spec.compare):
            if not window or window.get("open") == "end":
                continue
            for fact in COVERED_BY.get(spec.measure or "", ()):
                if fact not in coverage or fact == "budget":
                    continue
                last = coverage[fact][1]
                end = (dt.date.fromisoformat(window["end"]) - dt.timedelta(days=1)).isoformat()
                if window["start"] <= last < end:
                    notes.append(f"{window['text'].removeprefix('in ')} holds {COVERAGE_WORDS[fact]} only up to {last}")
        return (" (" + "; ".join(dict.fromkeys(notes)) + ")") if notes else ""

    def _no_data(self, spec: Spec) -> str:
        """Why the question's period has no data at all ("" when some of it has data, or the range is unknown)."""
        coverage = self.lexicon.get().coverage
        facts = COVERED_BY.get(spec.measure or "", ())
        if not facts or not spec.time or any(f not in coverage for f in facts):
            return ""
        windows = [w for w in (spec.time, spec.compare) if w]
        for window in windows:
            for fact in facts:
                first, last = coverage[fact]
                if window["start"] <= last and window["end"] > first:
                    break
            else:
                said = " and ".join(f"{COVERAGE_WORDS[f]} from {coverage[f][0][:7]} to {coverage[f][1][:7]}"
                                    for f in facts)
                return (f"There is no data {window['text']} for this question: the data holds {said}. "
                        "Ask about a period inside that range, for example:")
        return ""

    # ------------------------------------------------------------------------------------------------- declines
    def _decline(self, question: str, reason: str, message: str, spec: Spec,
                 alternatives: tuple[str, ...] = ()) -> SqlAnswer:
        nearest = tuple(self._nearest(question or "")[:3]) if (question or "").strip() else ()
        if len(nearest) < 3:
            nearest = tuple(q for q, _ in self._examples[:3])
        return SqlAnswer(question=question, sql=None, declined=True, message=message, nearest=nearest, score=0.0,
                         alternatives=alternatives, decline_reason=reason)

    def _decline_spec(self, question: str, spec: Spec, problems: list[str]) -> SqlAnswer:
        unknown_heavy = len(spec.unknown) >= 3 and spec.recognised <= 1
        if spec.recognised == 0 or unknown_heavy:
            return self._decline(question, "out_of_domain", OUT_OF_DOMAIN, spec)
        alternatives = self.alternatives(spec)
        message = UNSUPPORTED.format(what="; ".join(problems[:3]))
        message += (" Did you mean one of these?" if alternatives else
                    " Try rephrasing with the measure, the breakdown and the values you want. Questions I know:")
        reason = "ambiguous" if spec.ambiguous else "unsupported_constraint"
        return self._decline(question, reason, message, spec, alternatives)

    def alternatives(self, spec: Spec, limit: int = 3) -> tuple[str, ...]:
        """Questions close to ``spec`` that the engine can answer, with the user's values kept where they fit."""
        base = Spec.from_dict(spec.to_dict())
        if any(p.startswith("a negation") for p in spec.problems):
            base.filters = {}  # never suggest the very values the user wanted excluded
        candidates: list[Spec] = [] if spec.ambiguous else [base]
        for dim, values in spec.ambiguous.items():
            for value in values:
                variant = Spec.from_dict(base.to_dict())
                variant.filters[dim] = [value]
                candidates.append(variant)
        if spec.time and base.measure in (None, "contract_value", "duration"):
            for field_name in ("start", "end"):
                variant = Spec.from_dict(base.to_dict())
                variant.date_field = field_name
                if variant.measure is None and variant.entity is None:
                    variant.entity = "project"
                candidates.append(variant)
        if base.measure is None:
            for measure in ("actual_cost", "budget", "contract_value", "hours"):
                variant = Spec.from_dict(base.to_dict())
                variant.measure, variant.entity = measure, None
                if variant.top and not variant.groups:
                    variant.groups = [spec.entity or "project"]
                elif variant.entity is None and spec.entity and spec.entity not in variant.groups and variant.top:
                    variant.groups = [spec.entity]
                if spec.entity and spec.entity != "project" and not variant.groups:
                    variant.groups = [spec.entity]
                candidates.append(variant)
        for drop in ("time", "threshold", "top", "billable", "groups", *[f"filter:{d}" for d in spec.filters]):
            variant = Spec.from_dict(base.to_dict())
            if drop.startswith("filter:"):
                variant.filters.pop(drop[7:], None)
            elif drop == "groups":
                variant.groups = []
                variant.top = None
            else:
                setattr(variant, drop, None)
            candidates.append(variant)
        if base.measure and not base.groups:
            for dim in ("project", "department", "customer"):
                variant = Spec.from_dict(base.to_dict())
                variant.groups = [dim]
                candidates.append(variant)
        out: list[str] = []
        lex = self.lexicon.get()
        for candidate in candidates:
            if compose(candidate).sql is None:
                continue
            question = render_question(candidate)
            check = parse(question, lex)
            if compose(check).sql is None or check.key() != candidate.key() or question in out:
                continue
            out.append(question)
            if len(out) >= limit:
                break
        return tuple(out)


__all__ = ["AnswerEngine", "merge_followup"]
