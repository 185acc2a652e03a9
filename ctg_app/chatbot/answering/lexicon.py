"""The vocabulary the offline engine understands: domain words, abbreviations and the data's own values.

A :class:`Lexicon` maps phrases (tuples of tokens) to meanings. Domain vocabulary is fixed here; slot values
(departments, statuses, customers, vendors, …) are read from the data source's distinct values of low-cardinality
columns through its ``run_sql``, so the same code works for the SQLite sample and for Databricks. A word that is not
known exactly is matched to the closest known word when it is at most a typo away (stdlib ``difflib``).
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

log = logging.getLogger(__name__)

# (table, column, dimension) of the low-cardinality columns whose values become slot values
VALUE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("departments", "department_name", "department"),
    ("departments", "business_unit", "business_unit"),
    ("customers", "customer_name", "customer"),
    ("customers", "industry", "industry"),
    ("customers", "country", "country"),
    ("customers", "segment", "segment"),
    ("projects", "status", "status"),
    ("projects", "project_type", "project_type"),
    ("projects", "project_manager", "project_manager"),
    ("projects", "project_code", "project"),
    ("projects", "project_name", "project_name"),
    ("budget_lines", "cost_category", "cost_category"),
    ("actual_costs", "vendor", "vendor"),
    ("hours", "employee_name", "employee"),
    ("hours", "role", "role"),
)
MAX_DISTINCT = 500
# function words a typo is never corrected to
NO_TYPO_TARGET = frozenset({"negation", "and", "or", "followup", "filler"})

Meaning = tuple  # ("measure", name) | ("dim", name) | ("value", dim, value) | ("word", name)

# domain vocabulary: phrase -> meaning. Phrases are matched longest first on the token stream.
MEASURES: dict[str, str] = {
    "budget": "budget", "budgets": "budget", "budgeted": "budget", "planned cost": "budget",
    "planned costs": "budget", "plan": "budget", "planned": "budget", "budget amount": "budget",
    "actual cost": "actual_cost", "actual costs": "actual_cost", "actuals": "actual_cost", "actual": "actual_cost",
    "cost": "actual_cost", "costs": "actual_cost", "spend": "actual_cost", "spent": "actual_cost",
    "spending": "actual_cost", "expenses": "actual_cost", "expense": "actual_cost", "expenditure": "actual_cost",
    "expenditures": "actual_cost", "burn": "actual_cost", "burned": "actual_cost", "burnt": "actual_cost",
    "pay": "actual_cost", "invoices": "actual_cost", "invoiced": "actual_cost", "invoice": "actual_cost",
    "postings": "actual_cost", "posted": "actual_cost", "incurred": "actual_cost", "paid": "actual_cost",
    "cost to go": "ctg", "costs to go": "ctg", "ctg": "ctg", "remaining cost": "ctg", "remaining costs": "ctg",
    "etc": "ctg", "estimate to complete": "ctg", "forecast to complete": "ctg", "cost to complete": "ctg",
    "costs to complete": "ctg", "cost left": "ctg", "costs left": "ctg", "forecast": "ctg", "forecasts": "ctg",
    "forecasted": "ctg",
    "eac": "eac", "estimate at completion": "eac", "estimated cost at completion": "eac", "fac": "eac",
    "forecast at completion": "eac", "estimates at completion": "eac", "final cost": "eac",
    "margin": "margin", "margins": "margin", "profit": "margin", "profits": "margin",
    "contract value": "contract_value", "contract values": "contract_value", "revenue": "contract_value",
    "revenues": "contract_value", "order value": "contract_value", "deal value": "contract_value",
    "turnover": "contract_value", "value of contracts": "contract_value", "value of the contracts": "contract_value",
    "contracts value": "contract_value", "contracted value": "contract_value", "sales": "contract_value",
    "contract volume": "contract_value",
    "hours": "hours", "hour": "hours", "timesheet": "hours", "timesheets": "hours", "time sheets": "hours",
    "effort": "hours", "time": "hours", "time booked": "hours", "time logged": "hours", "man hours": "hours",
    "work hours": "hours", "hrs": "hours",
    "duration": "duration", "durations": "duration", "how long": "duration", "length": "duration",
    "overrun": "overspend", "overruns": "overspend", "over budget": "overspend", "overspent": "overspend",
    "overspend": "overspend", "overspending": "overspend", "above budget": "overspend",
    "more than their budget": "overspend", "more than budget": "overspend", "more than the budget": "overspend",
    "exceeded their budget": "overspend", "exceeded the budget": "overspend", "exceeded budget": "overspend",
    "exceeding their budget": "overspend", "exceeding budget": "overspend", "exceed their budget": "overspend",
    "exceed budget": "overspend", "exceed the budget": "overspend", "exceeds the budget": "overspend",
    "exceeds its budget": "overspend", "exceeds budget": "overspend", "budget overrun": "overspend", "budget overruns": "overspend",
    "cost overrun": "overspend", "cost overruns": "overspend", "overbudget": "overspend",
    "remaining budget": "budget_vs_actual", "budget left": "budget_vs_actual", "budget remaining": "budget_vs_actual",
    "plan vs actual": "budget_vs_actual", "planned vs actual": "budget_vs_actual", "plan vs actuals": "budget_vs_actual",
    "planned vs actuals": "budget_vs_actual", "plan versus actual": "budget_vs_actual",
    "planned versus actual": "budget_vs_actual", "budget vs actual": "budget_vs_actual",
    "budget vs actuals": "budget_vs_actual", "budget versus actual": "budget_vs_actual",
    "variance": "variance", "variances": "variance", "budget variance": "variance",
}
DIMENSIONS: dict[str, str] = {
    "project": "project", "projects": "project", "job": "project", "jobs": "project", "programme": "project",
    "programmes": "project", "engagement": "project", "engagements": "project", "project code": "project",
    "customer": "customer", "customers": "customer", "client": "customer", "clients": "customer",
    "account": "customer", "accounts": "customer", "customer name": "customer",
    "department": "department", "departments": "department", "dept": "department", "depts": "department",
    "unit": "department", "units": "department", "team": "department", "teams": "department",
    "division": "department", "divisions": "department",
    "business unit": "business_unit", "business units": "business_unit", "bu": "business_unit",
    "bus": "business_unit", "business line": "business_unit", "business lines": "business_unit",
    "cost category": "cost_category", "cost categories": "cost_category", "category": "cost_category",
    "categories": "cost_category", "cost type": "cost_category", "cost types": "cost_category",
    "cost element": "cost_category", "cost elements": "cost_category",
    "vendor": "vendor", "vendors": "vendor", "supplier": "vendor", "suppliers": "vendor",
    "employee": "employee", "employees": "employee", "staff": "employee", "people": "employee",
    "person": "employee", "worker": "employee", "workers": "employee", "colleague": "employee",
    "colleagues": "employee", "resource": "employee", "resources": "employee", "team member": "employee",
    "team members": "employee", "employee name": "employee",
    "role": "role", "roles": "role", "job role": "role", "job roles": "role",
    "project manager": "project_manager", "project managers": "project_manager", "pm": "project_manager",
    "pms": "project_manager", "manager": "project_manager", "managers": "project_manager",
    "status": "status", "statuses": "status", "state": "status", "project status": "status",
    "project type": "project_type", "project types": "project_type", "type": "project_type",
    "types": "project_type", "contract type": "project_type", "contract types": "project_type",
    "industry": "industry", "industries": "industry", "sector": "industry", "sectors": "industry",
    "customer industry": "industry", "client industry": "industry", "customer industries": "industry",
    "country": "country", "countries": "country", "customer country": "country",
    "segment": "segment", "segments": "segment", "customer segment": "segment",
    "year": "year", "years": "year", "fiscal year": "year", "fiscal years": "year", "fy": "year",
    "yearly": "year", "annual": "year", "annually": "year", "per annum": "year", "calendar year": "year",
    "month": "month", "months": "month", "monthly": "month", "month by month": "month", "month over month": "month",
    "year by year": "year", "year over year": "year", "quarter by quarter": "quarter", "per month basis": "month",
    "quarter": "quarter", "quarters": "quarter", "quarterly": "quarter",
    "forecast date": "forecast_date", "forecast dates": "forecast_date", "snapshot": "forecast_date",
    "snapshots": "forecast_date", "over time": "forecast_date_trend", "trend": "forecast_date_trend",
    "developed": "forecast_date_trend", "development": "forecast_date_trend", "evolved": "forecast_date_trend",
    "evolution": "forecast_date_trend", "evolve": "forecast_date_trend", "develop": "forecast_date_trend",
    "developing": "forecast_date_trend", "trends": "forecast_date_trend", "history": "forecast_date_trend",
}
# adverbs that group by themselves ("monthly costs")
SELF_GROUPING = {"yearly", "annual", "annually", "per annum", "monthly", "quarterly", "month by month",
                 "month over month", "year by year", "year over year", "quarter by quarter"}

# value synonyms: phrase -> (dimension, canonical value as it appears in the data)
VALUE_SYNONYMS: dict[str, tuple[str, str]] = {
    "t&m": ("project_type", "Time & Material"), "t & m": ("project_type", "Time & Material"),
    "tm": ("project_type", "Time & Material"), "time and material": ("project_type", "Time & Material"),
    "time and materials": ("project_type", "Time & Material"), "time & materials": ("project_type", "Time & Material"),
    "fixed-price": ("project_type", "Fixed Price"), "fp": ("project_type", "Fixed Price"),
    "fixed price": ("project_type", "Fixed Price"),
    "ongoing": ("status", "Active"), "running": ("status", "Active"), "open": ("status", "Active"),
    "in progress": ("status", "Active"), "live": ("status", "Active"),
    "completed": ("status", "Completed"), "complete": ("status", "Completed"), "finished": ("status", "Completed"),
    "closed": ("status", "Completed"), "done": ("status", "Completed"),
    "paused": ("status", "On Hold"), "on-hold": ("status", "On Hold"), "suspended": ("status", "On Hold"),
    "onhold": ("status", "On Hold"), "upcoming": ("status", "Planned"), "pipeline": ("status", "Planned"),
    "future": ("status", "Planned"), "not started": ("status", "Planned"),
    "labor": ("cost_category", "Labour"), "material": ("cost_category", "Material"),
    "materials": ("cost_category", "Material"), "subcontractors": ("cost_category", "Subcontractor"),
    "subcontracting": ("cost_category", "Subcontractor"), "subcontracted": ("cost_category", "Subcontractor"),
    "travelling": ("cost_category", "Travel"), "traveling": ("cost_category", "Travel"),
    "pmo": ("department", "Project Management Office"),
    "d&a": ("department", "Data & Analytics"), "data and analytics": ("department", "Data & Analytics"),
    "mid market": ("segment", "Mid-Market"), "midmarket": ("segment", "Mid-Market"),
    "public sector": ("industry", "Public Sector"), "wurth": ("vendor", "Würth"), "wuerth": ("vendor", "Würth"),
    "engineers": ("role", "Engineer"), "senior engineers": ("role", "Senior Engineer"),
    "consultants": ("role", "Consultant"), "analysts": ("role", "Analyst"),
    "german": ("country", "Germany"), "dutch": ("country", "Netherlands"), "belgian": ("country", "Belgium"),
    "french": ("country", "France"), "swiss": ("country", "Switzerland"), "austrian": ("country", "Austria"),
    "danish": ("country", "Denmark"), "holland": ("country", "Netherlands"),
    "the netherlands": ("country", "Netherlands"),
}

# function words: they shape the question (count, rank, group, list) or carry nothing
WORDS: dict[str, str] = {
    "how many": "count", "number of": "count", "count": "count", "count of": "count", "amount of": "filler",
    "no of": "count", "nr of": "count", "#": "count", "how much": "how_much",
    "per": "group", "by": "group", "each": "group", "every": "group", "for each": "group", "for every": "group",
    "across": "group", "broken down by": "group", "break down by": "group", "breakdown by": "group",
    "split by": "group", "grouped by": "group", "group by": "group", "by each": "group", "breakdown": "group",
    "broken down": "group", "split": "group", "grouped": "group", "for all": "group_weak",
    "top": "top", "largest": "top", "biggest": "top", "highest": "top", "most": "top", "greatest": "top",
    "best": "top", "leading": "top", "major": "top", "maximum": "top", "max": "top",
    "lowest": "bottom", "smallest": "bottom", "least": "bottom", "fewest": "bottom", "bottom": "bottom",
    "worst": "bottom", "minimum": "bottom", "min": "bottom",
    "list": "list", "show": "filler", "which": "which", "what": "filler", "who": "who", "whose": "which",
    "share": "share", "percentage": "share", "percent": "share", "%": "share", "ratio": "share",
    "proportion": "share", "rate": "share", "fraction": "share",
    "billable": "billable", "non billable": "nonbillable", "non-billable": "nonbillable",
    "nonbillable": "nonbillable", "unbillable": "nonbillable",
    "compare": "compare", "comparison": "compare", "versus": "compare", "vs": "compare", "against": "compare",
    "compared": "compare", "compared to": "compare", "compared with": "compare",
    "average": "average", "avg": "average", "mean": "average",
    "started": "start", "start": "start", "starting": "start", "starts": "start", "began": "start",
    "begin": "start", "begins": "start", "kicked off": "start", "launched": "start", "start date": "start",
    "end": "end", "ends": "end", "ending": "end", "ended": "end", "end date": "end", "due": "end",
    "finish": "end", "finishes": "end", "finishing": "end", "deadline": "end",
    "chart": "chart", "graph": "chart", "plot": "chart", "visualise": "chart", "visualize": "chart",
    "instead": "followup", "only": "followup", "just": "filler", "also": "followup", "same": "followup",
    "again": "followup", "now": "followup", "then": "followup", "what about": "followup",
    "how about": "followup", "and": "and", "or": "or",
    "sorted": "rank", "sort": "rank", "ordered": "rank", "order by": "rank", "ranked": "rank", "rank": "rank",
    "ranking": "rank", "sorted by": "rank", "ranked by": "rank", "their": "their", "with their": "their",
    "in terms of": "group", "break down": "filler", "breakdown of": "filler", "split of": "filler",
    "distribution of": "filler", "kick off": "start", "kicks off": "start", "kicking off": "start",
    "on our books": "filler", "on the books": "filler", "on books": "filler",
    "typical": "average", "typically": "average", "over": "over",
    "left": "remaining", "remain": "remaining", "remains": "remaining", "remaining": "remaining",
    "still to come": "remaining", "outstanding": "remaining",
    "right now": "filler", "at the moment": "filler", "at present": "filler", "as of now": "filler",
    "got": "filler", "received": "filler", "receive": "filler", "receives": "filler",
    "longest": "top", "shortest": "bottom",
    "latest": "latest", "current": "latest", "most recent": "latest", "newest": "latest", "last forecast": "latest",
    "day": "days", "days": "days", "daily": "days", "in days": "days",
    "not": "negation", "no": "negation", "without": "negation", "except": "negation", "excluding": "negation",
    "exclude": "negation", "other than": "negation", "isn't": "negation", "aren't": "negation",
    "don't": "negation", "doesn't": "negation", "never": "negation", "neither": "negation", "nor": "negation",
}
# words that carry nothing for this domain (kept in one place so leftovers can be reported honestly)
FILLER = frozenset("""
a an the of in on at to for from with is are was were be been being do does did we our us you your i me my it its
this that these those there their they them please pls kindly can could would will shall should tell give get
find display show see view want need know how like let lets let's whats what's what're who's hey hi hello thanks thank
all total totals sum overall combined aggregate aggregated entire whole full complete cumulative summed
value values amount amounts figure figures number numbers data info information details detail overview summary
report table current currently so far far up have has had having as is are s ve re d ll m t just
lead leads led leading managed manage manages run runs handled handle booked book bookings logged log recorded
worked work working charged spent registered made make makes generated generate contracted
eur euro euros € money level levels take takes taking look looks responsible everything anything name go goes
went belong belongs belonging use used uses using much many some any
listing list overview view me give please
own exist exists existing available altogether together
category-wise wise
where whom
""".split()) - {"their"}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10, "twenty": 20, "fifteen": 15, "twelve": 12, "a dozen": 12}

TOKEN = re.compile(r"p-\d{4}-\d{4}|\d+(?:[.,]\d+)*[km]?|[a-z\u00c0-\u024f]+(?:'[a-z]+)?|&|%|#|[<>]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; a project code (``P-2024-0001``) and ``&`` stay tokens."""
    text = (text or "").lower().replace("\u2019", "'").replace("\u2018", "'")
    return TOKEN.findall(text)


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(tokenize(text))


@dataclass
class Lexicon:
    """Phrase → meanings, with typo-tolerant lookup of single words."""

    phrases: dict[tuple[str, ...], list[Meaning]] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)  # dimension -> canonical values from the data
    coverage: dict[str, tuple[str, str]] = field(default_factory=dict)  # fact -> (first, last) ISO date with data
    max_len: int = 1
    _single: list[str] = field(default_factory=list)
    _known: frozenset[str] = frozenset()

    def add(self, phrase: str | tuple[str, ...], meaning: Meaning) -> None:
        """Register one phrase (text or tokens) with a meaning."""
        key = _phrase(phrase) if isinstance(phrase, str) else phrase
        if not key:
            return
        bucket = self.phrases.setdefault(key, [])
        if meaning not in bucket:
            bucket.append(meaning)
        self.max_len = max(self.max_len, len(key))
        self._single = []

    def lookup(self, tokens: list[str], start: int) -> tuple[int, list[Meaning]]:
        """Longest exact phrase at ``start``: (token count, meanings), or (0, [])."""
        for length in range(min(self.max_len, len(tokens) - start), 0, -1):
            meanings = self.phrases.get(tuple(tokens[start:start + length]))
            if meanings:
                return length, meanings
        return 0, []

    def known(self, token: str) -> bool:
        """True when ``token`` is part of some known phrase or carries nothing (filler)."""
        return token in FILLER or token in self._tokens()

    def _tokens(self) -> frozenset[str]:
        if not self._single:
            # every word of a phrase that means something (not negations or conjunctions: "nord" must not become
            # "not"), so a typo inside a phrase ("contract vaule") is found too
            self._single = sorted({tok for key, meanings in self.phrases.items() for tok in key
                                   if any(m[0] != "word" or m[1] not in NO_TYPO_TARGET for m in meanings)})
            self._known = frozenset(tok for key in self.phrases for tok in key)
        return self._known

    def correct(self, token: str) -> str | None:
        """The known word ``token`` is one typo away from (None when there is none or it is too short)."""
        if len(token) < 4 or not token.isalpha():
            return None
        self._tokens()
        # a typo rarely hits the first letter; requiring it keeps "headcount" from becoming "account"
        pool = [w for w in self._single if w[0] == token[0] and len(w) >= 3]
        for word in pool:  # two neighbouring letters swapped ("yaer", "projetcs")
            if len(word) == len(token) and sorted(word) == sorted(token) and sum(
                    a != b for a, b in zip(word, token)) == 2:
                return word
        cutoff = 0.85 if len(token) <= 5 else (0.8 if len(token) < 7 else 0.75)
        matches = difflib.get_close_matches(token, pool, n=1, cutoff=cutoff)
        return matches[0] if matches else None


def base_lexicon() -> Lexicon:
    """The domain vocabulary without any data values."""
    lex = Lexicon()
    for phrase, name in MEASURES.items():
        lex.add(phrase, ("measure", name))
    for phrase, name in DIMENSIONS.items():
        lex.add(phrase, ("dim", name))
    for phrase, name in WORDS.items():
        lex.add(phrase, ("word", name))
    for phrase, n in NUMBER_WORDS.items():
        lex.add(phrase, ("number", n))
    for phrase, (dim, value) in VALUE_SYNONYMS.items():
        lex.add(phrase, ("value", dim, value))
    return lex


def add_values(lex: Lexicon, dim: str, values: list[str]) -> None:
    """Register the data's values of one dimension (each value, and its singular/plural variant)."""
    lex.values[dim] = sorted(values)
    for value in values:
        key = _phrase(value)
        if not key:
            continue
        lex.add(key, ("value", dim, value))
        if dim in ("status", "cost_category", "industry", "segment", "project_type", "role", "department"):
            last = key[-1]
            variant = last[:-1] if last.endswith("s") and len(last) > 3 else last + "s"
            lex.add(key[:-1] + (variant,), ("value", dim, value))
        if dim in ("project_manager", "employee") and len(key) == 2:
            lex.add(key[-1:], ("value", dim, value))  # surname alone ("Keller")


# fact -> (table, date column) of the data's date range; budgets are planned per fiscal year (an integer column)
COVERAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "actual_cost": ("actual_costs", "posting_date"), "hours": ("hours", "work_date"),
    "ctg": ("cost_to_go", "forecast_date"), "budget": ("budget_lines", "fiscal_year"),
}
COVERAGE = "coverage:"  # the dim of the date-range rows in the lexicon's one round trip


def _coverage_selects() -> list[str]:
    # `|| ''` makes every value text in SQLite and Databricks alike (dates, years and names in one column)
    return [f"SELECT '{COVERAGE}{edge}:{fact}' AS dim, {edge.upper()}({col}) || '' AS value FROM {table}"
            for fact, (table, col) in COVERAGE_COLUMNS.items() for edge in ("min", "max")]


def coverage_of(values: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """Fact → (first, last) ISO date with data, from the coverage rows of :func:`distinct_values` (a fiscal year
    reads as its 1 January / 31 December)."""
    out: dict[str, tuple[str, str]] = {}
    for fact in COVERAGE_COLUMNS:
        first, last = values.get(f"{COVERAGE}min:{fact}"), values.get(f"{COVERAGE}max:{fact}")
        if not first or not last:
            continue
        a, b = str(first[0])[:10], str(last[0])[:10]
        if fact == "budget":
            a, b = f"{int(float(a))}-01-01", f"{int(float(b))}-12-31"
        out[fact] = (a, b)
    return out


def distinct_values(run_sql: Callable[[str], pd.DataFrame]) -> dict[str, list[str]]:
    """Distinct values of the low-cardinality columns, read through the data source (one round trip; column by
    column when that fails, so one missing table costs only its own values)."""
    union = " UNION ALL ".join(
        f"SELECT '{dim}' AS dim, {column} AS value FROM "
        f"(SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT {MAX_DISTINCT + 1}) t{i}"
        for i, (table, column, dim) in enumerate(VALUE_COLUMNS))
    union = " UNION ALL ".join([union, *_coverage_selects()])
    try:
        df = run_sql(union)
    except Exception as exc:
        log.info("lexicon: one-query read failed (%s); reading column by column", type(exc).__name__)
    else:
        grouped: dict[str, list[str]] = {}
        for dim, value in zip(df.iloc[:, 0].tolist(), df.iloc[:, 1].tolist()):
            if value is not None and str(value).strip():
                grouped.setdefault(str(dim), []).append(str(value))
        return {dim: values for dim, values in grouped.items() if len(values) <= MAX_DISTINCT}
    out: dict[str, list[str]] = {}
    for table, column, dim in VALUE_COLUMNS:
        try:
            df = run_sql(f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL LIMIT {MAX_DISTINCT + 1}")
        except Exception as exc:  # a missing table must not break answering
            log.warning("lexicon: cannot read %s.%s: %s", table, column, type(exc).__name__)
            continue
        values = [str(v) for v in df.iloc[:, 0].tolist() if str(v).strip()]
        if len(values) <= MAX_DISTINCT:
            out[dim] = values
    for select in _coverage_selects():
        try:
            df = run_sql(select)
        except Exception as exc:  # only the "no data for …" check and the latest-data anchor need it
            log.warning("lexicon: cannot read the data's date range: %s", type(exc).__name__)
            continue
        if len(df) and df.iat[0, 1] is not None:
            out[str(df.iat[0, 0])] = [str(df.iat[0, 1])]
    return out


class LexiconCache:
    """Builds the lexicon from the data source and rebuilds it after ``ttl_s`` so new values are picked up."""

    def __init__(self, run_sql: Callable[[str], pd.DataFrame] | None, ttl_s: float = 600.0) -> None:
        self.run_sql = run_sql
        self.ttl_s = ttl_s
        self._lex: Lexicon | None = None
        self._built = 0.0

    def get(self) -> Lexicon:
        """The current lexicon (built on first use, refreshed after the TTL)."""
        if self._lex is None or time.monotonic() - self._built > self.ttl_s:
            lex = base_lexicon()
            if self.run_sql is not None:
                values = distinct_values(self.run_sql)
                for dim, dim_values in values.items():
                    if not dim.startswith(COVERAGE):
                        add_values(lex, dim, dim_values)
                lex.coverage = coverage_of(values)
            self._lex, self._built = lex, time.monotonic()
        return self._lex

    def invalidate(self) -> None:
        """Forget the lexicon (the next question rebuilds it)."""
        self._lex = None
