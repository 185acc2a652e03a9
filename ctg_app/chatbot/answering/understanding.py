"""Question → :class:`Spec`: the measure, subject, groupings, filters, time window and shape a question states.

Nothing is dropped silently: every token is either understood (a domain word, a data value, a time expression, a
function word), known to carry nothing (filler), or reported in ``Spec.unknown`` / ``Spec.problems`` — the engine
declines a question with any of those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ctg_app.chatbot.answering.lexicon import FILLER, SELF_GROUPING, Lexicon, tokenize
from ctg_app.chatbot.answering.periods import Anchor, extract_threshold, extract_time

# status words that are also ordinary words: a status only next to "project(s)" ("running projects", not
# "which projects is Lukas Meyer running"; "forecast to complete" is no status at all)
PLURAL_WORD = {"project": "projects", "customer": "customers", "department": "departments", "vendor": "vendors",
               "employee": "employees", "project_manager": "project managers"}
VERB_LIKE_STATUS = {"running", "open", "live", "complete", "done", "finished", "closed", "ongoing", "in progress",
                    "paused", "suspended", "upcoming", "pipeline", "future", "current", "not started"}
DIM_WORD = {"project_manager": "project manager", "business_unit": "business unit", "cost_category": "cost category",
            "project_type": "project type"}
# a noun that owns a value of another dimension ("Energy customers", "Engineer employees")
OWNED = {"customer": ("industry", "country", "segment"), "department": ("business_unit",),
         "employee": ("role",)}
PROJECT_DIMS = ("project", "project_name", "customer", "department", "business_unit", "status", "project_type", "project_manager",
                "industry", "country", "segment")


# measures in the words of a decline (never the internal ids)
MEASURE_WORDS = {"budget": "budget", "actual_cost": "actual costs", "ctg": "cost to go", "eac": "estimate at completion",
                 "margin": "margin", "contract_value": "contract value", "hours": "hours", "duration": "duration",
                 "overspend": "overrun", "budget_vs_actual": "budget versus actual costs", "variance": "budget variance",
                 "billable_share": "billable share of hours"}


# what a ranked thing can be ranked within ("the top project per department", "the top vendor per cost category")
NESTED_IN = {
    "project": ("department", "business_unit", "customer", "status", "project_type", "project_manager", "industry",
                "country", "segment"),
    "customer": ("industry", "country", "segment"), "vendor": ("cost_category",), "employee": ("role",),
    "department": ("business_unit",), "project_manager": ("department", "business_unit"),
}



@dataclass
class Spec:
    """What a question asks, as JSON-able parts (``to_dict`` / ``from_dict`` round-trip)."""

    measure: str | None = None          # budget, actual_cost, ctg, ctg_series, eac, margin, variance, ...
    entity: str | None = None           # subject counted or listed when there is no measure (a dimension name)
    count: bool = False
    groups: list[str] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)
    time: dict[str, Any] | None = None  # {"start","end" (ISO, end exclusive), "text", "whole_years": [..]}
    date_field: str | None = None       # "start" / "end" for project dates
    top: dict[str, Any] | None = None   # {"n": int, "desc": bool, "defaulted": bool}
    threshold: dict[str, Any] | None = None  # {"op": ">"|"<"|">="|"<="|"between", "value": float, "high": float}
    billable: bool | None = None
    average: bool = False
    exclude: dict[str, list[str]] = field(default_factory=dict)  # dim -> values left out ("not Engineering")
    agg: str | None = None              # "avg" / "min" / "max" of a measure per group (instead of the total)
    compare: dict[str, Any] | None = None  # a second time window to set against ``time`` (delta and % change)
    share: str | None = None            # "total" (part of the total) / "count" (% of projects) / "spent" (% of budget)
    notes: list[str] = field(default_factory=list)  # choices the engine made that the answer must state
    chart: bool = False
    unknown: list[str] = field(default_factory=list)       # words not understood
    problems: list[str] = field(default_factory=list)      # understood but not answerable as stated
    corrections: list[tuple[str, str]] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)  # dim -> candidate values
    followup: bool = False
    assumed: bool = False               # the engine filled in something the question implies (said in the answer)
    recognised: int = 0                 # domain items recognised (0 = not about this data)

    def key(self) -> tuple:
        """What identifies the answer (not how it was worded)."""
        return (self.measure, self.entity, self.count, tuple(self.groups),
                tuple(sorted((k, tuple(sorted(v))) for k, v in self.filters.items())),
                (self.time or {}).get("start"), (self.time or {}).get("end"), self.date_field,
                (self.top or {}).get("n"), (self.top or {}).get("desc"),
                tuple(sorted((self.threshold or {}).items())), self.billable, self.average,
                tuple(sorted((k, tuple(sorted(v))) for k, v in self.exclude.items())), self.agg,
                (self.compare or {}).get("start"), (self.compare or {}).get("end"), self.share,
                (self.top or {}).get("per"))

    def to_dict(self) -> dict[str, Any]:
        """The slots the next turn can reuse (JSON-able)."""
        return {"measure": self.measure, "entity": self.entity, "count": self.count, "groups": list(self.groups),
                "filters": {k: list(v) for k, v in self.filters.items()}, "time": dict(self.time or {}) or None,
                "date_field": self.date_field, "top": dict(self.top or {}) or None,
                "threshold": dict(self.threshold or {}) or None, "billable": self.billable, "average": self.average,
                "exclude": {k: list(v) for k, v in self.exclude.items()}, "agg": self.agg,
                "compare": dict(self.compare or {}) or None, "share": self.share}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spec:
        """A spec from :meth:`to_dict` output (unknown keys ignored)."""
        spec = cls()
        for name in ("measure", "entity", "count", "date_field", "billable", "average", "agg", "share"):
            if name in data:
                setattr(spec, name, data[name])
        spec.groups = list(data.get("groups") or [])
        spec.filters = {k: list(v) for k, v in (data.get("filters") or {}).items()}
        spec.time = dict(data["time"]) if data.get("time") else None
        spec.top = dict(data["top"]) if data.get("top") else None
        spec.threshold = dict(data["threshold"]) if data.get("threshold") else None
        spec.exclude = {k: list(v) for k, v in (data.get("exclude") or {}).items()}
        spec.compare = dict(data["compare"]) if data.get("compare") else None
        spec.recognised = 1
        return spec




# ------------------------------------------------------------------------------------------------------------ parsing
@dataclass
class _Item:
    kind: str       # measure, dim, value, word, number, code
    payload: Any
    pos: int
    text: str
    prefix: bool = False  # a value named by the start of its name ("Digital" for "Digital Services")


# dimensions whose values may be named by their first word(s): few, distinct names (not project or people names)
PREFIX_DIMS = ("department", "business_unit", "customer", "industry", "segment", "country", "cost_category",
               "project_type", "vendor", "role", "status")


def _prefix_values(token: str, lex: Lexicon, dims: tuple[str, ...] = PREFIX_DIMS) -> list[tuple]:
    """The values whose name starts with ``token`` (a whole first word, or the start of a longer first word)."""
    if len(token) < 3 or not token.isalpha():
        return []
    found = []
    for dim in dims:
        for value in lex.values.get(dim, []):
            first = tokenize(value)[:1]
            if first and (first[0] == token or (len(token) >= 4 and first[0].startswith(token))):
                found.append(("value", dim, value))
    return found


def _items(tokens: list[str], lex: Lexicon, spec: Spec) -> list[_Item]:
    for i, tok in enumerate(tokens):  # typos first, so a phrase with a typo in it ("contract vaule") is found
        if not lex.known(tok) and not (tok.endswith("s") and lex.known(tok[:-1])):
            fixed = lex.correct(tok)
            if fixed is not None:
                spec.corrections.append((tok, fixed))
                tokens[i] = fixed
    items: list[_Item] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        length, meanings = lex.lookup(tokens, i)
        if not length and tok not in FILLER and len(tok) > 3 and tok.endswith("s"):
            length, meanings = lex.lookup([tok[:-1]], 0)
        if length:
            text = " ".join(tokens[i:i + length])
            values = [m for m in meanings if m[0] == "value"]
            others = [m for m in meanings if m[0] != "value"]
            if values and others and others[0][0] == "dim" and not any(
                    t in ("role", "roles") for t in tokens[max(0, i - 2):i + length + 2]):
                values = []  # "project manager" is the dimension unless the role is named
            if values:
                items.append(_Item("value", values, len(items), text))
            else:
                m = others[0]
                items.append(_Item(m[0], m[1], len(items), text))
            i += length
            continue
        if re.fullmatch(r"\d+", tok):
            items.append(_Item("number", int(tok), len(items), tok))
        elif tok in FILLER or tok in ("'s",):
            # "the Data department": a filler word is a value's first word only right before that value's noun
            noun_len, noun = lex.lookup(tokens, i + 1) if i + 1 < len(tokens) else (0, [])
            dims = tuple(m[1] for m in noun if m[0] == "dim" and m[1] in PREFIX_DIMS)
            found = _prefix_values(tok, lex, dims) if dims and tok not in ("the", "all", "our", "a", "an") else []
            if found:
                items.append(_Item("value", found, len(items), tok, prefix=True))
        else:
            found = _prefix_values(tok, lex)
            if found:
                items.append(_Item("value", found, len(items), tok, prefix=True))
            else:
                spec.unknown.append(tok)  # typos were corrected before the walk
        i += 1
    return items


# "across all projects": the total over every project, not a breakdown by project
ALL_PROJECTS = re.compile(r"\b(?:across|for|of|over|on|in)\s+(?:all|the\s+whole|the\s+entire)\s+(?:of\s+)?(?:our\s+|the\s+)?"
                          r"(?:projects|jobs|portfolio)\b")
# markers of an explanatory clause ("i.e. actual costs above budget"): the clause's own words are still read, so an
# explanation that says something else makes the question unanswerable instead of being ignored
EXPLAINS = re.compile(r"(?:\bi\.\s?e\.?|\be\.\s?g\.?|\bie\b|\bmeaning\b|\bnamely\b|\bin\s+other\s+words\b|"
                      r"\bthat\s+is\b|\bwhich\s+means\b|[()\[\]])")


def parse(question: str, lex: Lexicon, anchor: Anchor | None = None) -> Spec:
    """Understand ``question`` with the lexicon; see :class:`Spec`. Relative dates count from ``anchor``."""
    spec = Spec()
    text = " " + (question or "").lower().replace("\u2019", "'") + " "
    if ALL_PROJECTS.search(text):
        text = ALL_PROJECTS.sub(" ", text)
        spec.notes.append("all projects together")
    text = EXPLAINS.sub(" ", text)
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)   # cost-to-go, non-billable, mid-market
    text = re.sub(r"(?<=[a-z])'s\b", " ", text)          # "Sofia Rossi's projects"
    text = extract_time(text, spec, anchor)
    text = extract_threshold(text, spec)
    tokens = tokenize(text)
    items = _items(tokens, lex, spec)
    _interpret(items, spec, len(tokens))
    return spec


def _prev(items: list[_Item], idx: int) -> _Item | None:
    return items[idx - 1] if idx > 0 else None


@dataclass
class _Reading:
    """The state shared by the steps that read a question's items into a :class:`Spec`."""

    items: list[_Item]
    spec: Spec
    n_tokens: int
    words: list[str]
    measures: list[str] = field(default_factory=list)
    consumed: set[int] = field(default_factory=set)     # items already used (a noun absorbed by its value)
    absorbed: list[str] = field(default_factory=list)   # dimensions of the absorbed nouns
    top_words: list[_Item] = field(default_factory=list)
    free: list[_Item] = field(default_factory=list)     # dimension nouns that are neither a grouping nor absorbed
    by_count: bool = False
    explicit: list[str] = field(default_factory=list)   # breakdowns the question asked for (per / by / each)
    negated: dict[int, str] = field(default_factory=dict)  # item index -> dimension of a left-out value


def _interpret(items: list[_Item], spec: Spec, n_tokens: int) -> None:
    words = [it.payload for it in items if it.kind == "word"]
    spec.followup = "followup" in words or (bool(items) and items[0].kind == "word" and items[0].payload == "and")
    spec.chart = "chart" in words
    r = _Reading(items, spec, n_tokens, words)
    _read_values(r)
    if any(it.kind == "word" and it.payload == "negation" and i not in r.consumed for i, it in enumerate(items)):
        spec.problems.append("a negation (not / without / except) of something other than a value (I can leave out "
                             "values, e.g. “not Engineering”, “excluding internal projects”)")
    _read_numbers(r)
    _read_groupings(r)
    _place_free_nouns(r)
    _finish(r)


def _read_values(r: _Reading) -> None:
    """Data values become filters; the dimension noun next to a value ("Engineering department") is absorbed."""
    items, spec, words = r.items, r.spec, r.words
    consumed, absorbed = r.consumed, r.absorbed
    for idx, it in enumerate(items):
        if it.kind != "value":
            continue
        if it.text in VERB_LIKE_STATUS and not any(
                0 <= j < len(items) and items[j].kind == "dim" and items[j].payload == "project" for j in (idx - 1, idx + 1)):
            continue  # "which projects is Lukas Meyer running": a verb here, not the status
        candidates = it.payload
        dims = {m[1] for m in candidates}
        near = {items[j].payload for j in (idx - 1, idx + 1) if 0 <= j < len(items) and items[j].kind == "dim"}
        chosen_dim = next((d for d in dims if d in near), None)
        if chosen_dim is None and {"project_type", "vendor"} <= dims:
            nouns = {x.payload for x in items if x.kind == "dim"}
            if "project" in nouns and "vendor" not in nouns:
                chosen_dim = "project_type"
            elif "vendor" not in nouns:
                spec.problems.append(f"whether “{it.text}” means the project type or the vendor (say “internal "
                                     "projects” or “vendor Internal”)")
                continue
        if chosen_dim is None and it.prefix and len(dims) > 1:
            # "engine" starts a department and a role: a guessed dimension is not a reading the answer can stand on
            names = sorted({m[2] for m in candidates})
            spec.problems.append(f"which value “{it.text}” means ({', '.join(names)})")
            continue
        if chosen_dim is None:
            if "vendor" in dims and any(x.kind == "dim" and x.payload == "vendor" for x in items):
                chosen_dim = "vendor"
            else:
                for pref in ("status", "project_type", "department", "cost_category", "industry", "segment",
                             "country", "business_unit", "role", "vendor", "customer", "project_manager", "employee",
                             "project", "project_name"):
                    if pref in dims:
                        chosen_dim = pref
                        break
        values = sorted({m[2] for m in candidates if m[1] == chosen_dim})
        for j in (idx - 1, idx + 1):
            if not (0 <= j < len(items) and items[j].kind == "dim") or items[j].payload == "project":
                continue  # "projects" stays the subject ("active projects")
            if items[j].payload == chosen_dim or chosen_dim in OWNED.get(items[j].payload, ()):
                consumed.add(j)  # "Engineering department", "Energy customers", "vendor Siemens"
                absorbed.append(items[j].payload)
        if len(values) > 1:
            spec.ambiguous[chosen_dim] = values
            continue
        negated = _negated(items, idx, consumed) or _chained(items, idx, chosen_dim, r.negated)
        if negated:
            r.negated[idx] = chosen_dim
        bucket = (spec.exclude if negated else spec.filters).setdefault(chosen_dim, [])
        if values[0] not in bucket:
            bucket.append(values[0])
        if it.prefix:
            spec.assumed = True  # said in the answer, and the answer's confidence is medium
            spec.notes.append(f"“{it.text}” read as {DIM_WORD.get(chosen_dim, chosen_dim.replace('_', ' '))} "
                              f"{values[0]}")
        spec.recognised += 1


def _chained(items: list[_Item], idx: int, dim: str, negated: dict[int, str]) -> bool:
    """True when the value at ``idx`` continues a list of left-out values: "excluding Engineering and Consulting"
    (after and/or), or "excluding Engineering, Consulting" (next to one of the same dimension)."""
    prev = items[idx - 1] if idx >= 1 else None
    if prev is not None and prev.kind == "word" and prev.payload in ("and", "or") and (idx - 2) in negated:
        return True
    return negated.get(idx - 1) == dim


def _negated(items: list[_Item], idx: int, consumed: set[int]) -> bool:
    """True when the value at ``idx`` follows a negation ("not Engineering", "excluding the department X"); the
    negation is consumed."""
    for j in (idx - 1, idx - 2):
        if j < 0:
            return False
        it = items[j]
        if it.kind == "word" and it.payload == "negation":
            consumed.add(j)
            return True
        if not (it.kind == "dim" and j == idx - 1):
            return False
    return False


def _read_numbers(r: _Reading) -> None:
    """A number next to a top/bottom word is the N of a ranking; any other number is reported."""
    items, spec, words = r.items, r.spec, r.words
    consumed = r.consumed
    top_words = [it for it in items if it.kind == "word" and it.payload in ("top", "bottom")]
    n = None
    for idx, it in enumerate(items):
        if it.kind not in ("number",):
            continue
        neighbours = [items[j] for j in (idx - 1, idx + 1) if 0 <= j < len(items)]
        if any(x.kind == "word" and x.payload in ("top", "bottom") for x in neighbours) or (
                top_words and idx + 1 < len(items) and items[idx + 1].kind == "dim"):
            n = it.payload
        elif idx + 1 < len(items) and items[idx + 1].kind == "dim" and not top_words:
            n = it.payload  # "the 5 projects with the highest …" handled by top word; otherwise a count word
            spec.problems.append(f"the number {it.text}")
        else:
            spec.problems.append(f"the number {it.text}")
        consumed.add(idx)
    if len({t.payload for t in top_words}) > 1:
        spec.problems.append("a ranking in both directions (top and bottom) at once")
    if top_words:
        desc = top_words[0].payload == "top"
        spec.top = {"n": n, "desc": desc, "defaulted": n is None}
    r.top_words = top_words


def _read_groupings(r: _Reading) -> None:
    """Measures, and dimensions after per/by/each (or self-grouping adverbs) become breakdowns."""
    items, spec, words = r.items, r.spec, r.words
    measures, consumed = r.measures, r.consumed
    for it in items:
        if it.kind == "measure" and it.payload not in measures:
            measures.append(it.payload)
    # dimensions: grouping (after per/by/each, or self-grouping adverb), absorbed, or free nouns
    free: list[_Item] = []
    grouped: set[int] = set()
    for idx, it in enumerate(items):
        if it.kind != "dim" or idx in consumed:
            continue
        prev = _prev(items, idx)
        chained = (prev is not None and prev.kind == "word" and prev.payload in ("and", "group") and idx >= 2
                   and (idx - 2) in grouped)  # "per industry and country"
        grouping_word = prev is not None and prev.kind == "word" and (
            prev.payload == "group" or (prev.payload == "over" and it.payload in ("forecast_date", "month", "year",
                                                                                  "quarter")))
        if grouping_word and it.payload == "project" and not any(x.kind == "measure" for x in items) and not any(
                x.kind == "word" and x.payload in ("share", "billable", "nonbillable") for x in items):
            grouping_word = False  # "split of projects across statuses": projects are what is counted
        if it.text in SELF_GROUPING or chained or grouping_word:
            dim = "trend" if it.payload == "forecast_date_trend" else it.payload
            if dim not in spec.groups:
                spec.groups.append(dim)
            grouped.add(idx)
            spec.recognised += 1
        elif it.payload == "forecast_date_trend":
            if "trend" not in spec.groups:
                spec.groups.append("trend")
            spec.recognised += 1
        elif it.payload == "year" and spec.time is not None:
            pass  # "the year 2024"
        else:
            free.append(it)
    for idx, it in enumerate(items):
        if it.kind == "word" and it.payload == "group":
            nxt = items[idx + 1] if idx + 1 < len(items) else None
            if nxt is None or nxt.kind not in ("dim", "measure", "value", "number", "word") or (
                    nxt.kind == "word" and nxt.payload not in ("group", "top", "bottom", "billable", "nonbillable",
                                                               "start", "end")):
                spec.problems.append(f"“{it.text}” without saying by what")
    if "trend" in spec.groups and set(spec.groups) & {"forecast_date", "month", "year", "quarter"}:
        spec.groups.remove("trend")
    r.free = free
    r.explicit = list(spec.groups)


def _place_free_nouns(r: _Reading) -> None:
    """A dimension noun that is not a breakdown is the subject, a ranking's breakdown, or a problem."""
    items, spec, words = r.items, r.spec, r.words
    measures, free, top_words = r.measures, r.free, r.top_words
    has_which = any(it.kind == "word" and it.payload in ("which", "who") for it in items)
    has_measure = bool(measures) or "share" in words or "billable" in words or "nonbillable" in words
    # "most projects" ranks by a count; "top 5 projects" ranks projects by something not said
    by_count = "count" in words or any(t.text in ("most", "fewest", "least") for t in top_words)
    ranked_count = (not has_measure and (spec.top is not None or has_which or spec.threshold is not None)
                    and len(free) >= 2
                    and any(f.payload == "project" for f in free) and (spec.top is None or by_count))
    if ranked_count:
        # "which department has the most projects": count projects per department, ranked
        spec.entity, spec.count = "project", True
        for it in free:
            spec.recognised += 1
            if it.payload != "project" and it.payload not in spec.groups:
                spec.groups.append(it.payload)
        free_groups = [f for f in free if f.payload != "project"]
        if len(free_groups) > 1:
            spec.problems.append("more than one thing to rank")
        free = free_groups
    else:
        for it in free:
            spec.recognised += 1
            prev = _prev(items, it.pos)
            ranking = (spec.top is not None or (prev is not None and prev.kind == "word" and prev.payload in ("which", "who"))
                       or bool({"rank", "list"} & set(words)) or ("their" in words and "count" not in words))
            if has_measure:
                by_measure = (it.pos + 2 < len(items) and items[it.pos + 1].kind == "word"
                              and items[it.pos + 1].payload == "group" and items[it.pos + 2].kind == "measure")
                if it.payload == "project" and not ranking and not has_which and not by_measure:
                    continue  # "the costs of projects": projects is the generic subject
                if ranking or by_measure or spec.threshold or (has_which and it.payload != "year"):
                    if it.payload not in spec.groups:
                        spec.groups.append(it.payload)
                    continue
                spec.problems.append(f"“{it.text}” — say “per {DIM_WORD.get(it.payload, it.payload)}” for a breakdown, "
                                     "or name one")
            else:
                if spec.entity is None:
                    spec.entity = it.payload
                elif it.payload not in spec.groups and it.payload != spec.entity:
                    if spec.entity == "department" and it.payload == "business_unit":
                        continue  # "departments and their business units"
                    if spec.entity == "employee" and it.payload == "role":
                        continue
                    if it.payload == "project" and spec.entity in ("employee", "vendor", "project_manager"):
                        continue  # "employees who worked on Engineering projects"
                    if spec.entity == "project" and "project" in spec.filters and it.payload in PROJECT_DIMS:
                        continue  # "the status of project P-2024-0001": the project's details show it
                    if it.payload == "project" and "project" in spec.filters and spec.entity in PROJECT_DIMS:
                        spec.entity = "project"
                        continue
                    spec.problems.append(f"“{it.text}” next to “{DIM_WORD.get(spec.entity, spec.entity)}”")
    r.free, r.by_count = free, by_count


def _finish(r: _Reading) -> None:
    """Defaults and inferences that need the whole question, then the checks that make a spec unanswerable."""
    items, spec, words = r.items, r.spec, r.words
    measures, absorbed, free, by_count, n_tokens = r.measures, r.absorbed, r.free, r.by_count, r.n_tokens
    if spec.compare and not ({"compare", "and"} & set(words)):
        spec.problems.append(f"two time windows ({spec.time['text']}, {spec.compare['text']}) without saying to "
                             "compare them (e.g. “2025 vs 2024”)")
    extreme = [t for t in r.top_words if t.text in ("max", "maximum", "min", "minimum")]
    if spec.top is not None and spec.top["n"] is None and extreme and r.explicit:
        spec.agg, spec.top = ("max" if spec.top["desc"] else "min"), None  # "maximum contract value per customer"
    if spec.count and spec.entity and spec.threshold and spec.groups and not measures:
        # "departments with more than 15 projects": the comparison is on the count per group
        if "count" in words:
            spec.problems.append(f"counting the {PLURAL_WORD.get(spec.groups[0], spec.groups[0] + 's')} that have "
                                 f"that many projects (ask for the {PLURAL_WORD.get(spec.groups[0], 'groups')} "
                                 "themselves)")
    # a top word without a number: top 1 for a singular noun ("which customer"), else the top 10
    if spec.top is not None and spec.top["n"] is None:
        nouns = [it for it in free if it.payload in spec.groups]
        singular = bool(nouns) and not nouns[0].text.endswith("s") and nouns[0].text not in ("staff", "people")
        spec.top["n"] = 1 if singular else 10
        spec.top["defaulted"] = not singular

    if (not measures and spec.entity in PROJECT_DIMS and spec.entity != "project"
            and ({"project", "project_name"} & set(spec.filters))
            and not spec.count and not spec.groups):
        spec.entity = "project"  # "the status of P-2024-0001": show the project's details
    if spec.top is not None and not spec.groups and "who" in words and set(measures) == {"hours"}:
        spec.groups = ["employee"]  # "who booked the most hours"
        if spec.top.get("defaulted"):
            spec.top["n"], spec.top["defaulted"] = 1, False
    if (not measures and spec.entity is None and not absorbed and spec.filters
            and set(spec.filters) <= {"status", "project_type", "project_manager", "project", "project_name"}):
        spec.entity = "project"  # "show me everything that is on hold": the projects
    if (not measures and spec.top is not None and not spec.groups and not spec.count
            and spec.entity in ("vendor", "employee", "role")):
        # vendors only have costs and employees only hours: "top 3 vendors for equipment" ranks by spend
        measures.append("actual_cost" if spec.entity == "vendor" else "hours")
        spec.notes.append(f"ranked by {'actual costs' if spec.entity == 'vendor' else 'hours'} (the only measure "
                          f"{PLURAL_WORD.get(spec.entity, spec.entity)} have)")
        spec.groups, spec.entity, spec.assumed = [spec.entity], None, True
    if not measures and spec.entity is None and absorbed and not spec.groups:
        spec.entity = absorbed[0]  # "the Energy customers" with nothing measured: list them
    spec.recognised += len(measures)
    _resolve_measure(measures, words, spec)
    if "start" in words:
        spec.date_field = "start"
    elif "end" in words:
        spec.date_field = "end"
    if "count" in words and (spec.measure in (None, "overspend") or spec.threshold):
        spec.count = True  # "how many hours" asks for the hours, not a count
    if spec.threshold and not spec.groups and spec.measure and spec.measure not in ("overspend",):
        spec.groups = ["project"]  # "projects with contract value over 2 million": the comparison is per project
    if spec.top is not None and not spec.measure and not by_count:
        spec.problems.append(f"a ranking of {PLURAL_WORD.get(spec.entity or 'project', 'projects')} without saying "
                             "by what (e.g. contract value, actual costs, hours)")
    if spec.top is not None and len(spec.groups) == 2:
        per = [g for g in spec.groups if g in r.explicit]
        ranked = [g for g in spec.groups if g not in r.explicit]
        if len(per) == 1 and len(ranked) == 1 and per[0] in NESTED_IN.get(ranked[0], ()):
            spec.top["per"] = per[0]  # "the top project per department": a ranking within each department
            spec.groups = [per[0], ranked[0]]
    if spec.top is not None and len(spec.groups) > 1 and not spec.top.get("per"):
        spec.problems.append("a ranking within a breakdown (e.g. the top projects of each department)")
    if spec.threshold and not spec.measure and not (spec.count and spec.entity):
        spec.problems.append(f"the comparison with {spec.threshold['value']:,.0f} without saying of what "
                             "(e.g. contract value, actual costs, hours)")
    if "days" in words and spec.measure != "duration":
        spec.problems.append("a breakdown or period in days")
    if "latest" in words and spec.measure not in ("ctg", "eac", "variance"):
        spec.problems.append("“latest” / “current” (only the cost to go has forecasts to take the latest of)")
    if n_tokens == 1 and not spec.time and not spec.threshold and items and items[0].kind in ("measure", "dim", "value"):
        spec.problems.append(f"what to show about “{items[0].text}” (ask a question, e.g. a total, a list or a "
                             "breakdown)")


def _read_share(ms: set[str], spec: Spec) -> None:
    """What a share / percentage is of: each group's part of a total, the share of projects meeting a condition,
    or the part of the budget spent."""
    if ms == {"budget_vs_actual"}:
        spec.share = "spent"          # "share of budget spent": actual costs as % of budget
    elif ms == {"overspend"}:
        spec.share, spec.count = "count", False   # "% of projects over budget"
    elif not ms and spec.entity in (None, "project") and len(spec.filters) == 1 and not spec.count:
        spec.entity, spec.share = "project", "count"  # "percentage of completed projects": the filter is the condition
    elif len(ms) == 1 and ms <= {"budget", "actual_cost", "hours", "contract_value"} and spec.groups:
        spec.share = "total"          # "share of actual costs by cost category"
    else:
        spec.problems.append("a share / percentage of something I cannot tell (ask e.g. for the share of actual "
                             "costs per department, the percentage of projects over budget, or the share of the "
                             "budget spent)")


def _resolve_measure(measures: list[str], words: list[str], spec: Spec) -> None:
    ms = set(measures)
    if "remaining" in words:
        if ms == {"budget"}:
            ms = {"budget_vs_actual"}  # "how much budget is left": budget minus actual costs
        elif not ms or not ms <= {"ctg", "eac", "budget_vs_actual"}:
            spec.problems.append("“left” / “remaining” (only the cost to go and the remaining budget are known)")
    if "overspend" in ms and "how_much" in words:
        ms = (ms - {"overspend", "budget", "actual_cost"}) | {"budget_vs_actual"}  # "how much over budget is …"
    if "overspend" in ms:
        ms -= {"budget", "actual_cost"}
    if "variance" in ms:
        ms -= {"budget"}
    if "eac" in ms:
        ms -= {"ctg", "actual_cost"}
    if "margin" in ms:
        ms -= {"contract_value", "actual_cost"}
    if ms == {"budget", "actual_cost"}:
        ms = {"budget_vs_actual"}
    if "budget_vs_actual" in ms:
        ms -= {"budget", "actual_cost"}  # "plan vs actual costs": the pair already holds both
    if "hours" in ms and ("billable" in words or "nonbillable" in words):
        if "share" in words:
            ms = (ms - {"hours"}) | {"billable_share"}
        else:
            spec.billable = "nonbillable" not in words
    elif ("billable" in words or "nonbillable" in words) and not ms:
        if "share" in words:
            ms = {"billable_share"}
        else:
            ms = {"hours"}
            spec.billable = "nonbillable" not in words
    elif "billable" in words or "nonbillable" in words:
        spec.problems.append("“billable” only applies to hours")
    elif "share" in words:
        _read_share(ms, spec)
    if "average" in words:
        if ms <= {"duration", "contract_value"} and ms and "project" in spec.groups and len(spec.groups) > 1:
            spec.groups.remove("project")  # "average contract value per project by department": per department
        if ms == {"duration"}:
            pass
        elif ms == {"contract_value"}:
            spec.average = True
        elif len(ms) == 1 and ms <= {"budget", "actual_cost", "hours"} and "project" in spec.groups:
            spec.agg = "avg"  # "average actual costs per project (by department)": the total over its projects
            spec.groups.remove("project")
        else:
            spec.problems.append("an average (of contract value or project duration, or of budget, actual costs or "
                                 "hours per project)")
    if spec.agg in ("min", "max") and not ms <= {"contract_value", "duration"}:
        spec.problems.append("a minimum / maximum (only of contract value and project duration)")
    if "compare" in words and ms != {"budget_vs_actual"} and not spec.groups and not spec.compare:
        spec.problems.append("a comparison (only budget versus actual costs can be compared)")
    if len(ms) > 1:
        spec.problems.append("several measures at once (" + ", ".join(MEASURE_WORDS.get(m, m.replace("_", " "))
                                                                   for m in sorted(ms)) + ")")
    if ms:
        spec.measure = sorted(ms)[0] if len(ms) > 1 else next(iter(ms))
