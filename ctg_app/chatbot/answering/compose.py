"""Spec → SQL (Databricks dialect), a plain-language interpretation, and a canonical question.

:func:`compose` either returns SQL that applies every part of the spec, or the list of parts it cannot apply — it
never leaves one out. The canonical question (:func:`render_question`) is what the engine offers as a "did you mean"
alternative; it parses back to the same spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ctg_app.chatbot.answering.understanding import PROJECT_DIMS, Spec

DIM_LABEL = {
    "project": "project", "project_name": "project", "customer": "customer", "department": "department",
    "business_unit": "business unit",
    "status": "status", "project_type": "project type", "project_manager": "project manager", "industry": "industry",
    "country": "country", "segment": "segment", "cost_category": "cost category", "vendor": "vendor",
    "employee": "employee", "role": "role", "year": "year", "month": "month", "quarter": "quarter",
    "forecast_date": "forecast date", "trend": "month",
}
PLURAL = {"project": "projects", "customer": "customers", "department": "departments",
          "business_unit": "business units", "status": "statuses", "project_type": "project types",
          "project_manager": "project managers", "industry": "industries", "country": "countries",
          "segment": "segments", "cost_category": "cost categories", "vendor": "vendors", "employee": "employees",
          "role": "roles", "year": "years", "month": "months", "quarter": "quarters"}
PROJECT_COLS = {"project": ["p.project_code", "p.project_name"], "customer": ["c.customer_name"],
                "department": ["d.department_name"], "business_unit": ["d.business_unit"], "status": ["p.status"],
                "project_type": ["p.project_type"], "project_manager": ["p.project_manager"],
                "industry": ["c.industry"], "country": ["c.country"], "segment": ["c.segment"]}
FILTER_COL = {dim: cols[0] for dim, cols in PROJECT_COLS.items()}
FILTER_COL["project_name"] = "p.project_name"
LATEST_CTG = ("cost_to_go f JOIN (SELECT project_id, MAX(forecast_date) AS latest FROM cost_to_go GROUP BY project_id) l"
              " ON f.project_id = l.project_id AND f.forecast_date = l.latest")


@dataclass(frozen=True)
class Fact:
    """Where a measure comes from and which slots it can honour."""

    source: str
    value: str
    name: str
    label: str
    project_key: str | None = None        # join column to projects; None when the source is projects itself
    date: str | None = None               # date column for time windows and month/quarter/year groupings
    year: str | None = None               # integer year column (fiscal year) — whole years only
    own: dict[str, str] = field(default_factory=dict)   # dimension -> column on the source itself
    project_dims: bool = True             # project-level dimensions reachable
    where: tuple[str, ...] = ()


FACTS: dict[str, Fact] = {
    "budget": Fact("budget_lines b", "SUM(b.budget_amount)", "total_budget", "Total budget", "b.project_id",
                   year="b.fiscal_year", own={"cost_category": "b.cost_category"}),
    "actual_cost": Fact("actual_costs a", "SUM(a.amount)", "total_actual_cost", "Total actual costs", "a.project_id",
                        date="a.posting_date", own={"cost_category": "a.cost_category", "vendor": "a.vendor"}),
    "ctg": Fact(LATEST_CTG, "SUM(f.remaining_cost)", "cost_to_go", "Cost to go (latest forecast of each project)",
                "f.project_id", own={"cost_category": "f.cost_category"}),
    "ctg_series": Fact("cost_to_go f", "SUM(f.remaining_cost)", "total_cost_to_go",
                       "Total cost to go per forecast date", "f.project_id", date="f.forecast_date",
                       own={"cost_category": "f.cost_category", "forecast_date": "f.forecast_date"}),
    "hours": Fact("hours h", "SUM(h.hours)", "total_hours", "Total hours booked", "h.project_id", date="h.work_date",
                  own={"employee": "h.employee_name", "role": "h.role"}),
    "billable_share": Fact("hours h", "ROUND(100.0 * SUM(CASE WHEN h.billable THEN h.hours ELSE 0 END) / SUM(h.hours), 1)",
                           "billable_share_pct", "Share of billable hours (%)", "h.project_id", date="h.work_date",
                           own={"employee": "h.employee_name", "role": "h.role"}),
    "contract_value": Fact("projects p", "SUM(p.contract_value)", "total_contract_value", "Total contract value"),
    "avg_contract_value": Fact("projects p", "ROUND(AVG(p.contract_value), 2)", "avg_contract_value",
                               "Average contract value per project"),
    "duration": Fact("projects p", "ROUND(AVG(DATEDIFF(p.end_date, p.start_date)), 0)", "avg_duration_days",
                     "Average project duration in days"),
}
ENTITY_FACTS: dict[str, Fact] = {
    "project": Fact("projects p", "COUNT(*)", "project_count", "Number of projects"),
    "customer": Fact("customers c", "COUNT(*)", "customer_count", "Number of customers", project_dims=False,
                     own={"customer": "c.customer_name", "industry": "c.industry", "country": "c.country",
                          "segment": "c.segment"}),
    "department": Fact("departments d", "COUNT(*)", "department_count", "Number of departments", project_dims=False,
                       own={"department": "d.department_name", "business_unit": "d.business_unit"}),
    "employee": Fact("hours h", "COUNT(DISTINCT h.employee_name)", "employee_count", "Number of employees",
                     "h.project_id", date="h.work_date", own={"employee": "h.employee_name", "role": "h.role"}),
    "vendor": Fact("actual_costs a", "COUNT(DISTINCT a.vendor)", "vendor_count", "Number of external vendors",
                   "a.project_id", date="a.posting_date",
                   own={"vendor": "a.vendor", "cost_category": "a.cost_category"}, where=("a.vendor <> 'Internal'",)),
    "project_manager": Fact("projects p", "COUNT(DISTINCT p.project_manager)", "project_manager_count",
                            "Number of project managers"),
    "business_unit": Fact("departments d", "COUNT(DISTINCT d.business_unit)", "business_unit_count",
                          "Number of business units", project_dims=False, own={"business_unit": "d.business_unit"}),
    "cost_category": Fact("budget_lines b", "COUNT(DISTINCT b.cost_category)", "cost_category_count",
                          "Number of cost categories", project_dims=False, own={"cost_category": "b.cost_category"}),
    "role": Fact("hours h", "COUNT(DISTINCT h.role)", "role_count", "Number of roles", project_dims=False,
                 own={"role": "h.role"}),
    "industry": Fact("customers c", "COUNT(DISTINCT c.industry)", "industry_count", "Number of industries",
                     project_dims=False, own={"industry": "c.industry", "country": "c.country", "segment": "c.segment"}),
    "country": Fact("customers c", "COUNT(DISTINCT c.country)", "country_count", "Number of countries",
                    project_dims=False, own={"industry": "c.industry", "country": "c.country", "segment": "c.segment"}),
}
LIST_COLUMNS: dict[str, tuple[list[str], str, bool]] = {   # entity -> (columns, order by, distinct)
    "project": (["p.project_code", "p.project_name", "p.project_manager", "p.status", "p.start_date", "p.end_date"],
                "p.project_code", False),
    "customer": (["c.customer_name", "c.industry", "c.country", "c.segment"], "c.customer_name", False),
    "department": (["d.department_name", "d.business_unit", "d.cost_center"], "d.business_unit, d.department_name",
                   False),
    "employee": (["h.employee_name", "h.role"], "h.employee_name", True),
    "vendor": (["a.vendor"], "a.vendor", True),
    "project_manager": (["p.project_manager"], "p.project_manager", True),
    "business_unit": (["d.business_unit"], "d.business_unit", True),
    "cost_category": (["b.cost_category"], "b.cost_category", True),
    "role": (["h.role"], "h.role", True),
    "industry": (["c.industry"], "c.industry", True),
    "country": (["c.country"], "c.country", True),
}
DETAIL_COLUMNS = ["p.project_code", "p.project_name", "c.customer_name", "d.department_name", "p.project_manager",
                  "p.status", "p.project_type", "p.start_date", "p.end_date", "p.contract_value"]
DERIVED = {"eac", "margin", "variance", "budget_vs_actual", "overspend"}
DERIVED_LABEL = {
    "eac": "Estimate at completion (actual costs to date + latest cost to go)",
    "margin": "Margin (contract value − actual costs)",
    "variance": "Budget variance (budget − estimate at completion; negative = overrun)",
    "budget_vs_actual": "Budget versus actual costs",
    "overspend": "Projects whose actual costs exceed their budget",
}
SUB_ACTUAL = ("LEFT JOIN (SELECT project_id, SUM(amount) AS total_actual FROM actual_costs GROUP BY project_id) a "
              "ON p.project_id = a.project_id")
SUB_CTG = ("LEFT JOIN (SELECT f.project_id, SUM(f.remaining_cost) AS cost_to_go FROM " + LATEST_CTG +
           " GROUP BY f.project_id) g ON p.project_id = g.project_id")
SUB_BUDGET = ("LEFT JOIN (SELECT project_id, SUM(budget_amount) AS total_budget FROM budget_lines GROUP BY project_id) b "
              "ON p.project_id = b.project_id")
ACT, CTG, BUD = "COALESCE(a.total_actual, 0)", "COALESCE(g.cost_to_go, 0)", "COALESCE(b.total_budget, 0)"


def _q(value: str) -> str:
    # A Databricks string literal (this module writes Databricks SQL), from sqlglot: 'O\'Brien'. The SQL way 'O''Brien'
    # is two adjacent literals in Databricks ('O' 'Brien' = 'OBrien'), so a filter on such a value found nothing.
    from sqlglot import exp

    return exp.Literal.string(value).sql(dialect="databricks")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _in(col: str, values: list[str], negate: bool = False) -> str:
    if len(values) == 1:
        return f"{col} {'<>' if negate else '='} {_q(values[0])}"
    return f"{col} {'NOT IN' if negate else 'IN'} ({', '.join(_q(v) for v in sorted(values))})"


def _compare(expr: str, threshold: dict) -> str:
    """``expr`` compared with the threshold (``op`` one of > < >= <= between)."""
    if threshold["op"] == "between":
        return f"{expr} BETWEEN {_number(threshold['value'])} AND {_number(threshold['high'])}"
    return f"{expr} {threshold['op']} {_number(threshold['value'])}"


@dataclass
class Composed:
    """The SQL (when every slot could be honoured) or what could not be honoured."""

    sql: str | None
    problems: list[str]
    intent: str = ""


def _select(columns: list[str], source: str, joins: list[str], where: list[str], *, distinct: bool = False) -> str:
    """``SELECT columns FROM source``, its joins, and a WHERE of every condition (none: no WHERE)."""
    sql = f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(columns)} FROM {source}"
    if joins:
        sql += " " + " ".join(joins)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql


def _project_joins(dims: set[str], has_projects: bool, project_key: str | None) -> list[str]:
    joins = []
    if not has_projects and dims & set(PROJECT_DIMS):
        joins.append(f"JOIN projects p ON {project_key} = p.project_id")
    if dims & {"customer", "industry", "country", "segment"}:
        joins.append("JOIN customers c ON p.customer_id = c.customer_id")
    if dims & {"department", "business_unit"}:
        joins.append("JOIN departments d ON p.department_id = d.department_id")
    return joins


def _time_clause(spec: Spec, fact: Fact, problems: list[str]) -> list[str]:
    t = spec.time
    if not t:
        return []
    if fact.year and not fact.date:
        years = t.get("whole_years") or []
        if not years or not t["start"].endswith("-01-01") or not t["end"].endswith("-01-01"):
            problems.append(f"the period “{t['text']}” (budgets are planned per fiscal year)")
            return []
        return [f"{fact.year} = {years[0]}" if len(years) == 1 else f"{fact.year} BETWEEN {years[0]} AND {years[-1]}"]
    col = fact.date
    if fact.source == "projects p" and not fact.date:
        if spec.date_field == "start":
            col = "p.start_date"
        elif spec.date_field == "end":
            col = "p.end_date"
    if not col:
        problems.append(f"the period “{t['text']}” for {fact.label.lower()}"
                        + (" (say whether projects started or end then)" if fact.source == "projects p" else ""))
        return []
    clauses = []
    if t.get("open") != "start":
        clauses.append(f"{col} >= DATE'{t['start']}'")
    if t.get("open") != "end":
        clauses.append(f"{col} < DATE'{t['end']}'")
    return clauses


def _single_year(spec: Spec) -> bool:
    return bool(spec.time and len(spec.time.get("whole_years") or []) == 1)


def compose(spec: Spec) -> Composed:
    """SQL for ``spec`` that honours every slot, or the list of slots that cannot be honoured."""
    problems = list(spec.problems)
    if spec.unknown:
        problems.append("the word(s) " + ", ".join(f"“{w}”" for w in spec.unknown))
    for dim, values in spec.ambiguous.items():
        problems.append(f"which {DIM_LABEL.get(dim, dim)} you mean ({', '.join(values)})")
    if problems:
        return Composed(None, problems)
    if spec.measure in DERIVED:
        return _derived(spec)
    if spec.measure:
        name = spec.measure
        if name == "ctg" and spec.time and not ({"trend", "forecast_date"} & set(spec.groups)):
            return Composed(None, [f"the period “{spec.time['text']}” with the cost to go (it is a forecast "
                                   "snapshot; ask for the cost to go per forecast date)"])
        if name == "ctg" and ("trend" in spec.groups or "forecast_date" in spec.groups):
            name = "ctg_series"  # cost to go over time: every forecast snapshot, not only the latest
            spec = Spec(**{**spec.__dict__, "groups": ["forecast_date" if g == "trend" else g for g in spec.groups]})
        if name == "contract_value" and spec.average:
            name = "avg_contract_value"
        fact = FACTS[name]
        if spec.agg:
            fact, name = _agg_fact(spec.agg, name), f"{spec.agg}_{name}"
            if fact is None:
                return Composed(None, [f"the {AGG_WORD[spec.agg]} of {FACTS[spec.measure].label.lower()}"])
        if spec.compare:
            return _two_windows(spec, fact, name)
        return _aggregate(spec, fact, name)
    if spec.entity:
        if spec.compare or spec.agg:
            return Composed(None, [f"two periods or an average / minimum / maximum of "
                                   f"{PLURAL.get(spec.entity, spec.entity)}"])
        if spec.share:
            return _count_share(spec)
        if spec.count or spec.groups or spec.threshold:
            if spec.entity not in ENTITY_FACTS:
                return Composed(None, [f"counting {PLURAL.get(spec.entity, spec.entity)}"])
            return _aggregate(spec, ENTITY_FACTS[spec.entity], f"count_{spec.entity}")
        return _list(spec)
    if spec.recognised:
        return Composed(None, ["what to measure (e.g. budget, actual costs, cost to go, hours, contract value)"])
    return Composed(None, ["not about the project-controlling data"])


AGG_WORD = {"avg": "average", "min": "minimum", "max": "maximum"}


def _agg_fact(agg: str, name: str) -> Fact | None:
    """The measure ``name`` as an average / minimum / maximum per project instead of a total (None: not defined)."""
    base = FACTS[name]
    if name in ("contract_value", "duration") and agg in ("min", "max"):
        inner = "p.contract_value" if name == "contract_value" else "DATEDIFF(p.end_date, p.start_date)"
        word = "Highest" if agg == "max" else "Lowest"
        label = f"{word} contract value of a project" if name == "contract_value" else f"{word} project duration in days"
        return Fact("projects p", f"{agg.upper()}({inner})", f"{agg}_{base.name}", label)
    if agg == "avg" and base.project_key and base.value.startswith("SUM("):
        return Fact(base.source, f"ROUND({base.value} / COUNT(DISTINCT {base.project_key}), 2)",
                    f"avg_{base.name}_per_project", f"Average {base.label[0].lower()}{base.label[1:]} per project "
                    f"(over the projects that have {MEASURE_PHRASE[name].removeprefix('total ')})",
                    base.project_key, base.date, base.year, base.own, base.project_dims, base.where)
    return None


def _label(window: dict) -> str:
    return re.sub(r"\W+", "_", window["text"].removeprefix("in ")).strip("_").lower()


def _two_windows(spec: Spec, fact: Fact, name: str) -> Composed:
    """One measure in two time windows side by side, with the change and the % change (per group)."""
    problems: list[str] = []
    if not fact.value.startswith("SUM(") or spec.top or spec.threshold or spec.agg or spec.date_field or spec.share:
        problems.append(f"a comparison of two periods of {fact.label.lower()} with a ranking or other conditions")
    _check_dims(spec, fact, problems)
    first = _time_clause(spec, fact, problems)
    second = _time_clause(Spec(**{**spec.__dict__, "time": spec.compare}), fact, problems)
    if any(g in ("year", "month", "quarter", "trend") for g in spec.groups):
        problems.append("a comparison of two periods broken down by time")
    where = [w for w in _where(Spec(**{**spec.__dict__, "time": None}), fact, problems)]
    if problems:
        return Composed(None, problems)
    inner = fact.value[4:-1]
    a, b = f"{fact.name}_{_label(spec.time)}", f"{fact.name}_{_label(spec.compare)}"
    va = f"SUM(CASE WHEN {' AND '.join(first)} THEN {inner} ELSE 0 END)"
    vb = f"SUM(CASE WHEN {' AND '.join(second)} THEN {inner} ELSE 0 END)"
    select, group_by, _ = _group_columns(spec, fact)
    values = [f"{va} AS {a}", f"{vb} AS {b}", f"{vb} - {va} AS change",
              f"ROUND(100.0 * ({vb} - {va}) / NULLIF({va}, 0), 1) AS change_pct"]
    dims = set(spec.groups) | set(spec.filters) | set(spec.exclude)
    joins = _project_joins(dims, fact.source == "projects p", fact.project_key) if fact.project_dims else []
    where.append(f"(({' AND '.join(first)}) OR ({' AND '.join(second)}))")
    sql = _select(select + values, fact.source, joins, where)
    if group_by:
        sql += f" GROUP BY {', '.join(group_by)} ORDER BY {b} DESC"
    return Composed(sql, [], f"{name}.compare" + ("_by_" + "_".join(spec.groups) if spec.groups else ""))


def _check_dims(spec: Spec, fact: Fact, problems: list[str]) -> None:
    allowed = set(fact.own) | (set(PROJECT_DIMS) if fact.project_dims else set())
    for dim, values in [*spec.filters.items(), *spec.exclude.items()]:
        if dim not in allowed:
            problems.append(f"the {DIM_LABEL.get(dim, dim)} filter ({', '.join(values)}) on "
                            f"{fact.label.lower()}")
    for dim in spec.groups:
        if dim in ("year", "month", "quarter", "trend"):
            if dim == "year" and (fact.year or fact.date):
                continue
            if dim in ("month", "quarter", "trend") and fact.date:
                continue
            problems.append(f"a breakdown by {DIM_LABEL[dim]} of {fact.label.lower()}")
        elif dim not in allowed:
            problems.append(f"a breakdown by {DIM_LABEL.get(dim, dim)} of {fact.label.lower()}")
    if len(spec.groups) > 2:
        problems.append("more than two breakdowns at once")


def _group_columns(spec: Spec, fact: Fact) -> tuple[list[str], list[str], bool]:
    """(select expressions, group-by expressions, ordered by time)."""
    select: list[str] = []
    group: list[str] = []
    timed = False
    for dim in spec.groups:
        if dim in fact.own:
            cols = [fact.own[dim]]
            timed = timed or dim == "forecast_date"
        elif dim in PROJECT_COLS:
            cols = PROJECT_COLS[dim]
        elif dim == "year":
            cols = [f"{fact.year} AS fiscal_year"] if fact.year else [f"YEAR({fact.date}) AS year"]
            timed = True
        else:  # month, quarter, trend
            part = "QUARTER" if dim == "quarter" else "MONTH"
            cols = [] if _single_year(spec) else [f"YEAR({fact.date}) AS year"]
            cols.append(f"{part}({fact.date}) AS {part.lower()}")
            timed = True
        select.extend(cols)
        group.extend(c.split(" AS ")[0] for c in cols)
    return select, group, timed


def _where(spec: Spec, fact: Fact, problems: list[str]) -> list[str]:
    where = list(fact.where)
    for dim, values in spec.filters.items():
        col = fact.own.get(dim) or FILTER_COL.get(dim)
        if col:
            where.append(_in(col, values))
    for dim, values in spec.exclude.items():
        col = fact.own.get(dim) or FILTER_COL.get(dim)
        if col:
            where.append(_in(col, values, negate=True))
    if spec.billable is not None:
        if fact.source != "hours h":
            problems.append("“billable” on something other than hours")
        where.append("h.billable" if spec.billable else "NOT h.billable")
    where += _time_clause(spec, fact, problems)
    if (_internal_left_out(spec) and fact.own.get("vendor") and not fact.where
            and "Internal" not in spec.exclude.get("vendor", [])):
        where.append(f"{fact.own['vendor']} <> 'Internal'")
    return where


def _count_share(spec: Spec) -> Composed:
    """The percentage of projects that meet the question's one condition ("percentage of completed projects")."""
    (dim, values), = spec.filters.items()
    if spec.share != "count" or dim not in PROJECT_DIMS or spec.top or spec.threshold or spec.time:
        return Composed(None, ["a percentage of projects with a ranking, a period or a numeric comparison"])
    fact = Fact("projects p", f"ROUND(100.0 * SUM(CASE WHEN {_in(FILTER_COL[dim], values)} THEN 1 ELSE 0 END) "
                f"/ COUNT(*), 1)", "share_of_projects_pct", "Share of projects (%)")
    local = Spec(**{**spec.__dict__, "filters": {}, "share": None, "count": False})
    return _aggregate(local, fact, "share_project", extra_dims=frozenset({dim}))


def _internal_left_out(spec: Spec) -> bool:
    """A ranking or breakdown of vendors leaves out the vendor ``Internal`` (in-house costs) unless it is named."""
    return "vendor" in spec.groups and "vendor" not in spec.filters


def _aggregate(spec: Spec, fact: Fact, intent_name: str, extra_dims: frozenset[str] = frozenset()) -> Composed:
    problems: list[str] = []
    _check_dims(spec, fact, problems)
    if spec.date_field and fact.source != "projects p":
        problems.append(f"project {spec.date_field} dates with {fact.label.lower()}")
    where = _where(spec, fact, problems)
    groups = list(spec.groups)
    if spec.threshold and not groups and not spec.count:
        groups = ["project"] if fact.project_dims or fact.source == "projects p" else []
        if not groups:
            problems.append("a numeric comparison without a breakdown")
    if spec.top and not groups:
        problems.append("a ranking without saying of what (e.g. “top 5 projects by …”)")
    if spec.share and (spec.share != "total" or not groups or spec.threshold or not fact.value.startswith("SUM(")):
        problems.append("a share of the total without a breakdown, or with a numeric comparison")
    if problems:
        return Composed(None, problems)
    local = Spec(**{**spec.__dict__, "groups": groups})
    select, group_by, timed = _group_columns(local, fact)
    dims = set(groups) | set(spec.filters) | set(spec.exclude) | extra_dims
    joins = _project_joins(dims, fact.source == "projects p", fact.project_key) if fact.project_dims else []
    values = [f"{fact.value} AS {fact.name}"]
    if spec.share == "total":  # each group's part of the total of all groups shown
        values.append(f"ROUND(100.0 * {fact.value} / SUM({fact.value}) OVER (), 1) AS share_pct")
    per = (spec.top or {}).get("per")
    if per:
        _, per_group, _ = _group_columns(Spec(groups=[per]), fact)
        order = "DESC" if spec.top["desc"] else "ASC"
        values.append(f"ROW_NUMBER() OVER (PARTITION BY {', '.join(per_group)} ORDER BY {fact.value} {order}, "
                      f"{', '.join(group_by)}) AS rank_in_{per}")
    sql = _select(select + values, fact.source, joins, where)
    if group_by:
        sql += " GROUP BY " + ", ".join(group_by)
    if spec.threshold and group_by:
        sql += f" HAVING {_compare(fact.value, spec.threshold)}"
    if per:  # the top N of each group: rank within the group, keep the first N
        sql = (f"SELECT * FROM ({sql}) t WHERE rank_in_{per} <= {int(spec.top['n'])} ORDER BY 1, rank_in_{per}")
    elif spec.top:  # ties broken by the labels, so every warehouse returns the same rows
        sql += (f" ORDER BY {fact.name} {'DESC' if spec.top['desc'] else 'ASC'}, {', '.join(group_by)}"
                f" LIMIT {int(spec.top['n'])}")
    elif timed:
        sql += " ORDER BY " + ", ".join(group_by)
    elif group_by:
        sql += f" ORDER BY {fact.name} DESC"
    if spec.count and spec.threshold and group_by and spec.measure:
        sql = f"SELECT COUNT(*) AS {groups[0]}_count FROM ({sql}) t"
    elif not group_by and not fact.value.startswith("COUNT("):
        # one total over no rows is NULL, which reads as a number; no rows says "nothing matched" instead
        sql = f"SELECT * FROM ({sql}) t WHERE t.{fact.name} IS NOT NULL"
    return Composed(sql, [], _intent(spec, intent_name, groups))


def _intent(spec: Spec, name: str, groups: list[str]) -> str:
    shape = "top" if spec.top else ("by_" + "_".join(groups) if groups else "total")
    return f"{name}.{shape}"


def _list(spec: Spec) -> Composed:
    entity = spec.entity or ""
    if entity not in LIST_COLUMNS:
        return Composed(None, [f"listing {PLURAL.get(entity, entity)}"])
    fact = ENTITY_FACTS[entity]
    problems: list[str] = []
    _check_dims(spec, fact, problems)
    if spec.top:
        problems.append(f"a ranking of {PLURAL.get(entity, entity)} without saying by what "
                        "(e.g. contract value, actual costs, hours)")
    if spec.date_field and fact.source != "projects p":
        problems.append(f"{spec.date_field} dates of {PLURAL.get(entity, entity)}")
    where = _where(spec, fact, problems)
    if problems:
        return Composed(None, problems)
    cols, order, distinct = LIST_COLUMNS[entity]
    cols = list(cols)
    join_dims = set(spec.filters) | set(spec.exclude)
    if entity == "project" and ({"project", "project_name"} & set(spec.filters)):
        cols = DETAIL_COLUMNS  # one named project: show all its attributes
        join_dims |= {"customer", "department"}
    if entity == "project" and spec.date_field and spec.time:
        order = "p.start_date" if spec.date_field == "start" else "p.end_date"
    joins = _project_joins(join_dims, fact.source == "projects p", fact.project_key) if fact.project_dims else []
    sql = _select(cols, fact.source, joins, where, distinct=distinct)
    sql += f" ORDER BY {order}"
    return Composed(sql, [], f"list_{entity}")


def _pair_by_category(spec: Spec) -> Composed:
    """Budget and actual costs side by side where the cost category matters: both are booked per category, so the
    two sides are stacked (UNION ALL) and summed per group, not joined per project."""
    problems: list[str] = []
    dims = [*spec.groups, *spec.filters, *spec.exclude]
    if any(d not in PROJECT_DIMS and d != "cost_category" for d in dims) or len(spec.groups) > 1:
        problems.append("budget versus actual costs by that breakdown")
    years = (spec.time or {}).get("whole_years") or []
    if spec.time and not (years and spec.time["start"].endswith("-01-01") and spec.time["end"].endswith("-01-01")):
        problems.append(f"the period “{spec.time['text']}” with budget versus actual costs (whole fiscal years only)")
    if spec.top or spec.threshold or spec.date_field or spec.compare or spec.agg or spec.share:
        problems.append("extra conditions on budget versus actual costs by cost category")
    if problems:
        return Composed(None, problems)
    budget_where = f" WHERE fiscal_year BETWEEN {years[0]} AND {years[-1]}" if spec.time else ""
    actual_where = (f" WHERE posting_date >= DATE'{spec.time['start']}' AND posting_date < DATE'{spec.time['end']}'"
                    if spec.time else "")
    stacked = (f"(SELECT project_id, cost_category, budget_amount AS budget, 0 AS actual FROM budget_lines{budget_where}"
               f" UNION ALL SELECT project_id, cost_category, 0 AS budget, amount AS actual FROM actual_costs"
               f"{actual_where}) x")
    cols = {"cost_category": ["x.cost_category"], **PROJECT_COLS}
    select = [c for g in spec.groups for c in cols[g]]
    project_dims = {d for d in dims if d != "cost_category"}
    joins = ["JOIN projects p ON x.project_id = p.project_id"] + _project_joins(project_dims, True, None) \
        if project_dims else []
    where = []
    for dim, values in spec.filters.items():
        where.append(_in("x.cost_category" if dim == "cost_category" else FILTER_COL[dim], values))
    for dim, values in spec.exclude.items():
        where.append(_in("x.cost_category" if dim == "cost_category" else FILTER_COL[dim], values, negate=True))
    values = ["SUM(x.budget) AS total_budget", "SUM(x.actual) AS total_actual",
              "SUM(x.budget) - SUM(x.actual) AS remaining_budget"]
    sql = _select(select + values, stacked, joins, where)
    if select:
        sql += f" GROUP BY {', '.join(select)} ORDER BY remaining_budget ASC"
    return Composed(sql, [], "budget_vs_actual." + ("by_" + "_".join(spec.groups) if spec.groups else "total"))


def _derived(spec: Spec) -> Composed:
    m = spec.measure or ""
    if m == "budget_vs_actual" and "cost_category" in [*spec.groups, *spec.filters, *spec.exclude]:
        return _pair_by_category(spec)
    label = DERIVED_LABEL[m].lower()
    problems: list[str] = []
    if spec.compare or spec.agg:
        problems.append(f"two periods or an average / minimum / maximum of {label}")
    for dim in list(spec.filters) + list(spec.exclude) + list(spec.groups):
        if dim not in PROJECT_DIMS:
            problems.append(f"{DIM_LABEL.get(dim, dim)} with {label} (it is computed per project)")
    years = (spec.time or {}).get("whole_years") or []
    year_window = bool(years) and spec.time["start"].endswith("-01-01") and spec.time["end"].endswith("-01-01")
    if spec.time and not (m == "budget_vs_actual" and year_window):
        problems.append(f"the period “{spec.time['text']}” with {label} (it is computed over the whole project"
                        + (", or for whole fiscal years" if m == "budget_vs_actual" else "") + ")")
    if spec.date_field or spec.threshold:
        problems.append(f"extra conditions on {label}")
    if len(spec.groups) > 1:
        problems.append("more than one breakdown")
    groups = list(spec.groups)
    if spec.top and not groups:
        problems.append("a ranking without saying of what (e.g. “top 5 projects by …”)")
    if m == "overspend" and groups and groups != ["project"] and not spec.count and not spec.share:
        problems.append("overruns per group (ask “how many projects are over budget per …”)")
    if spec.share and (m, spec.share) not in (("overspend", "count"), ("budget_vs_actual", "spent")):
        problems.append(f"a share / percentage of {label}")
    if spec.share and (spec.top or groups == ["project"] and m == "overspend"):
        problems.append(f"a ranking or per-project share of {label}")
    if problems:
        return Composed(None, problems)
    joins = {"eac": [SUB_ACTUAL, SUB_CTG], "margin": [SUB_ACTUAL], "variance": [SUB_BUDGET, SUB_ACTUAL, SUB_CTG],
             "budget_vs_actual": [SUB_BUDGET, SUB_ACTUAL], "overspend": [SUB_BUDGET, SUB_ACTUAL]}[m]
    if spec.time:  # budget versus actual costs of whole fiscal years: both sides for the same years
        joins = [
            SUB_BUDGET.replace("FROM budget_lines GROUP BY",
                               f"FROM budget_lines WHERE fiscal_year BETWEEN {years[0]} AND {years[-1]} GROUP BY"),
            SUB_ACTUAL.replace("FROM actual_costs GROUP BY",
                               f"FROM actual_costs WHERE posting_date >= DATE'{spec.time['start']}' "
                               f"AND posting_date < DATE'{spec.time['end']}' GROUP BY")]
    dims = set(groups) | set(spec.filters) | set(spec.exclude)
    joins = joins + _project_joins(dims - {"project"}, True, None)
    where = [_in(FILTER_COL[d], v) for d, v in spec.filters.items()]
    where += [_in(FILTER_COL[d], v, negate=True) for d, v in spec.exclude.items()]
    if m == "margin" and groups == ["project"] and spec.top:
        where.append("a.total_actual IS NOT NULL")  # a project without actual costs has no margin to rank yet
    if m in ("eac", "variance"):
        where.append("p.status <> 'Planned'")
    if m == "overspend" and not spec.share:
        where.append(f"{ACT} > {BUD}")
    if spec.time:
        where.append("(b.total_budget IS NOT NULL OR a.total_actual IS NOT NULL)")
    per_project = groups == ["project"] or (m == "overspend" and not groups and not spec.count and not spec.share)
    if per_project:
        cols = {"eac": [f"{ACT} AS actual_to_date", f"{CTG} AS cost_to_go", f"{ACT} + {CTG} AS estimate_at_completion"],
                "margin": ["p.contract_value", f"{ACT} AS total_actual", f"p.contract_value - {ACT} AS margin"],
                "variance": [f"{BUD} AS total_budget", f"{ACT} + {CTG} AS estimate_at_completion",
                             f"{BUD} - ({ACT} + {CTG}) AS variance"],
                "budget_vs_actual": [f"{BUD} AS total_budget", f"{ACT} AS total_actual",
                                     f"{BUD} - {ACT} AS remaining_budget"],
                "overspend": [f"{BUD} AS total_budget", f"{ACT} AS total_actual", f"{ACT} - {BUD} AS overspend"]}[m]
        if spec.share == "spent":
            cols.append(f"ROUND(100.0 * {ACT} / NULLIF({BUD}, 0), 1) AS spent_pct")
        key = {"eac": "estimate_at_completion", "margin": "margin", "variance": "variance",
               "budget_vs_actual": "remaining_budget", "overspend": "overspend"}[m]
        sql = f"SELECT p.project_code, p.project_name, {', '.join(cols)} FROM projects p {' '.join(joins)}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if spec.top:
            sql += f" ORDER BY {key} {'DESC' if spec.top['desc'] else 'ASC'}, p.project_code LIMIT {int(spec.top['n'])}"
        else:
            sql += f" ORDER BY {key} {'ASC' if m == 'budget_vs_actual' else 'DESC'}"
        return Composed(sql, [], _intent(spec, m, ["project"]))
    select: list[str] = []
    group_by: list[str] = []
    for dim in groups:
        select += PROJECT_COLS[dim]
        group_by += PROJECT_COLS[dim]
    values = {"eac": [f"SUM({ACT} + {CTG}) AS estimate_at_completion"],
              "margin": [f"SUM(p.contract_value - {ACT}) AS margin"],
              "variance": [f"SUM({BUD} - ({ACT} + {CTG})) AS variance"],
              "budget_vs_actual": [f"SUM({BUD}) AS total_budget", f"SUM({ACT}) AS total_actual",
                                   f"SUM({BUD} - {ACT}) AS remaining_budget"],
              "overspend": ["COUNT(*) AS projects_over_budget"]}[m]
    if spec.share == "spent":  # the part of the budget spent
        values.append(f"ROUND(100.0 * SUM({ACT}) / NULLIF(SUM({BUD}), 0), 1) AS spent_pct")
    if m == "overspend" and spec.share:  # the share of projects over budget, with both counts
        over = f"SUM(CASE WHEN {ACT} > {BUD} THEN 1 ELSE 0 END)"
        values = [f"{over} AS projects_over_budget", "COUNT(*) AS projects",
                  f"ROUND(100.0 * {over} / COUNT(*), 1) AS pct_over_budget"]
    sql = f"SELECT {', '.join(select + values)} FROM projects p {' '.join(joins)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if group_by:
        sql += " GROUP BY " + ", ".join(group_by)
        key = values[-1].split(" AS ")[1]
        if spec.top:
            sql += f" ORDER BY {key} {'DESC' if spec.top['desc'] else 'ASC'}, {', '.join(group_by)} LIMIT {int(spec.top['n'])}"
        else:
            sql += f" ORDER BY {key} DESC"
    return Composed(sql, [], _intent(spec, m, groups))


# ------------------------------------------------------------------------------------------------ words for people
MEASURE_PHRASE = {
    "budget": "total budget", "actual_cost": "total actual costs", "ctg": "latest cost to go",
    "hours": "total hours booked", "billable_share": "share of billable hours", "contract_value":
    "total contract value", "duration": "average project duration", "eac": "estimate at completion",
    "margin": "margin", "variance": "budget variance", "budget_vs_actual": "budget and actual costs",
    "overspend": "projects over budget",
}


def _filters_text(spec: Spec) -> str:
    parts = []
    for dim, values in spec.filters.items():
        label = "project" if dim == "project" else DIM_LABEL.get(dim, dim)
        parts.append(f"{label} {' or '.join(values)}")
    if spec.billable is not None:
        parts.append("billable entries only" if spec.billable else "non-billable entries only")
    text = (" for " + " and ".join(parts)) if parts else ""
    for dim, values in spec.exclude.items():
        text += f" excluding {DIM_LABEL.get(dim, dim)} {' and '.join(values)}"
    return text


def _time_text(spec: Spec) -> str:
    if not spec.time:
        return ""
    text = spec.time["text"]
    if spec.measure == "budget" and spec.time.get("whole_years") and text.startswith("in "):
        text = "for fiscal year " + text[3:]
    subject = "" if spec.entity == "project" and not spec.measure else " of projects"
    if spec.date_field == "start":
        return f"{subject} started {text}"
    if spec.date_field == "end":
        return f"{subject} ending {text}"
    return " " + text


def interpretation(spec: Spec) -> str:
    """A plain-language restatement of what the SQL answers, with the filled values."""
    if spec.measure:
        name = spec.measure
        if name == "ctg" and (spec.time or "trend" in spec.groups or "forecast_date" in spec.groups):
            label = "Total cost to go per forecast date"
        elif name in DERIVED:
            label = DERIVED_LABEL[name]
        elif name == "contract_value" and spec.average:
            label = FACTS["avg_contract_value"].label
        else:
            label = FACTS[name].label
        if spec.count and name == "overspend":
            label = "Number of projects whose actual costs exceed their budget"
        if spec.agg:
            fact = _agg_fact(spec.agg, "avg_contract_value" if name == "contract_value" and spec.average else name)
            label = fact.label if fact else label
    elif spec.entity and (spec.count or spec.groups or spec.threshold):
        label = ENTITY_FACTS[spec.entity].label
    elif spec.entity == "project" and ({"project", "project_name"} & set(spec.filters)):
        label = "Details"
    else:
        label = PLURAL.get(spec.entity or "", spec.entity or "").capitalize()
    if spec.measure and spec.count and spec.threshold and spec.groups:
        what = PLURAL.get(spec.groups[0], spec.groups[0])
        label = f"Number of {what} whose {label[0].lower() + label[1:]}"
    if spec.share == "spent":
        label = "Budget versus actual costs, with the share of the budget spent (actual costs as % of budget)"
    elif spec.share == "count" and spec.measure == "overspend":
        label = "Percentage of projects whose actual costs exceed their budget"
    elif spec.share == "count" and spec.filters:
        (dim, values), = spec.filters.items()
        label = f"Percentage of projects with {DIM_LABEL.get(dim, dim)} {' or '.join(values)}"
        if spec.groups:
            label += f" (of each {DIM_LABEL.get(spec.groups[0], spec.groups[0])}'s projects)"
        else:
            label += " (of all projects)" if not spec.exclude and not spec.time else " (of the projects in scope)"
        spec = Spec(**{**spec.__dict__, "filters": {}})
    text = label + _filters_text(spec) + _time_text(spec)
    groups = [g for g in spec.groups]
    if spec.compare:
        text += f" and {spec.compare['text']} side by side, with the change and the % change"
    if spec.threshold:
        op = {">": "above", "<": "below", ">=": "at least", "<=": "at most", "between": "between"}[spec.threshold["op"]]
        amount = f"{spec.threshold['value']:,.0f}" + (f" and {spec.threshold['high']:,.0f}"
                                                       if spec.threshold["op"] == "between" else "")
        if spec.count and spec.entity and not spec.measure:
            op = {">": "more than", "<": "fewer than"}.get(spec.threshold["op"], op)
            text += f", only those with {op} {amount} {PLURAL.get(spec.entity, spec.entity)}"
        else:
            text += f" is {op} {amount}" if spec.count else f", only those {op} {amount}"
    if spec.measure and spec.count and spec.threshold and spec.groups:
        return text + _choices(spec)
    if spec.share == "total":
        text += ", with each one's share of the total (%)"
    if spec.top and spec.top.get("per"):
        per, ranked = groups[0], groups[1]
        if spec.top["n"] == 1:
            text += (f", the {DIM_LABEL.get(ranked, ranked)} with the {'highest' if spec.top['desc'] else 'lowest'} "
                     f"value in each {DIM_LABEL.get(per, per)}")
        else:
            text += (f", {'top' if spec.top['desc'] else 'bottom'} {spec.top['n']} {PLURAL.get(ranked, ranked)} "
                     f"in each {DIM_LABEL.get(per, per)}")
    elif spec.top:
        group = groups[0] if groups else "project"
        if spec.top["n"] == 1:
            text += f", the {DIM_LABEL.get(group, group)} with the {'highest' if spec.top['desc'] else 'lowest'} value"
        else:
            text += f", {'top' if spec.top['desc'] else 'bottom'} {spec.top['n']} {PLURAL.get(group, group)}"
    elif groups:
        text += ", by " + " and ".join(DIM_LABEL.get(g, g) for g in groups)
    return text + _choices(spec)


def _choices(spec: Spec) -> str:
    """The choices the engine made for ``spec`` that the question did not state (exclusions, defaults, anchors)."""
    notes = [f"read “{a}” as “{b}”" for a, b in spec.corrections] + list(spec.notes)
    if spec.followup:
        notes.append("the previous question's values kept")
    if _internal_left_out(spec) and "Internal" not in spec.exclude.get("vendor", []):
        notes.append("the vendor “Internal” (in-house costs) is left out, so only external vendors are listed")
    if spec.measure == "margin" and spec.groups == ["project"] and spec.top:
        notes.append("only projects with actual costs (a project without any has no margin yet)")
    if spec.measure in ("eac", "variance"):
        notes.append("planned projects are left out")
    if spec.threshold and spec.threshold["op"] in ("<", "<=") and spec.groups:
        notes.append(f"{PLURAL.get(spec.groups[0], spec.groups[0])} without any "
                     f"{PLURAL.get(spec.entity, spec.entity) if spec.count and spec.entity else 'data'} are not listed")
    if spec.top and spec.top.get("defaulted"):
        notes.append(f"the top {spec.top['n']} was assumed")
    for window in (spec.time, spec.compare):
        if window and window.get("anchor"):
            notes.append(window["anchor"])
    return (" (" + "; ".join(notes) + ")") if notes else ""


def render_question(spec: Spec) -> str:
    """A canonical question for ``spec`` that the engine understands (used for "did you mean" alternatives)."""
    filters = ""
    for dim, values in spec.filters.items():
        noun = "project" if dim == "project" else DIM_LABEL.get(dim, dim)
        filters += f" for {noun} {' or '.join(values)}"
    time = _time_text(spec)
    if spec.measure:
        phrase = MEASURE_PHRASE.get(spec.measure, spec.measure)
        if spec.measure == "contract_value" and spec.average:
            phrase = "average contract value"
        if spec.billable is not None:
            phrase = "total billable hours" if spec.billable else "total non-billable hours"
        if spec.top and spec.groups and spec.top["n"] == 1:
            extreme = "highest" if spec.top["desc"] else "lowest"
            return f"Which {DIM_LABEL.get(spec.groups[0], spec.groups[0])} has the {extreme} {phrase}{filters}{time}?"
        if spec.top and spec.groups:
            word = "top" if spec.top["desc"] else "bottom"
            return f"What are the {word} {spec.top['n']} {PLURAL.get(spec.groups[0], spec.groups[0])} by {phrase}{filters}{time}?"
        groups = "".join(f" per {DIM_LABEL.get(g, g)}" for g in spec.groups)
        if spec.measure == "overspend":
            lead = "How many projects are over budget" if spec.count else "Which projects are over budget"
            return f"{lead}{filters}{groups}?"
        verb = "are" if phrase.endswith(("costs", "hours")) else "is"
        return f"What {verb} the {phrase}{filters}{time}{groups}?"
    entity = spec.entity or "project"
    plural = PLURAL.get(entity, entity)
    groups = "".join(f" per {DIM_LABEL.get(g, g)}" for g in spec.groups)
    if spec.count or spec.groups:
        return f"How many {plural} are there{filters}{time}{groups}?"
    return f"List the {plural}{filters}{time}"
