"""A deterministic synthetic project-controlling ("CTG") database.

Seven tables — departments, customers, projects, budget_lines, actual_costs, cost_to_go, hours — a few thousand
rows in all, generated from a seeded RNG so every machine builds the same data. :func:`ensure_sample_db` builds the
SQLite file on first use (atomically: a temporary file renamed into place) and rebuilds it when the schema version
changes. :func:`sample_tables` returns the same data as typed DataFrames (e.g. to load into a warehouse).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: the apostrophe vendor's postings (additions only)
SEED = 20240101

# table -> [(column, logical type)]; logical types: INT, STRING, DATE, DECIMAL, BOOLEAN
SCHEMA: dict[str, list[tuple[str, str]]] = {
    "departments": [
        ("department_id", "INT"),
        ("department_name", "STRING"),
        ("business_unit", "STRING"),
        ("cost_center", "STRING"),
    ],
    "customers": [
        ("customer_id", "INT"),
        ("customer_name", "STRING"),
        ("industry", "STRING"),
        ("country", "STRING"),
        ("segment", "STRING"),
    ],
    "projects": [
        ("project_id", "INT"),
        ("project_code", "STRING"),
        ("project_name", "STRING"),
        ("customer_id", "INT"),
        ("department_id", "INT"),
        ("project_manager", "STRING"),
        ("status", "STRING"),
        ("project_type", "STRING"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("contract_value", "DECIMAL"),
    ],
    "budget_lines": [
        ("budget_line_id", "INT"),
        ("project_id", "INT"),
        ("cost_category", "STRING"),
        ("fiscal_year", "INT"),
        ("budget_amount", "DECIMAL"),
    ],
    "actual_costs": [
        ("cost_id", "INT"),
        ("project_id", "INT"),
        ("cost_category", "STRING"),
        ("posting_date", "DATE"),
        ("amount", "DECIMAL"),
        ("vendor", "STRING"),
    ],
    "cost_to_go": [
        ("forecast_id", "INT"),
        ("project_id", "INT"),
        ("cost_category", "STRING"),
        ("forecast_date", "DATE"),
        ("remaining_cost", "DECIMAL"),
    ],
    "hours": [
        ("entry_id", "INT"),
        ("project_id", "INT"),
        ("employee_name", "STRING"),
        ("role", "STRING"),
        ("work_date", "DATE"),
        ("hours", "DECIMAL"),
        ("billable", "BOOLEAN"),
    ],
}

_SQLITE_TYPES = {"INT": "INTEGER", "STRING": "TEXT", "DATE": "TEXT", "DECIMAL": "REAL", "BOOLEAN": "INTEGER"}

DEPARTMENTS = [
    ("Engineering", "Industrial", "CC-100"),
    ("Construction", "Industrial", "CC-110"),
    ("Digital Services", "Technology", "CC-200"),
    ("Data & Analytics", "Technology", "CC-210"),
    ("Consulting", "Advisory", "CC-300"),
    ("Project Management Office", "Advisory", "CC-310"),
    ("Energy Transition", "Industrial", "CC-120"),
    ("Infrastructure", "Industrial", "CC-130"),
]
INDUSTRIES = ["Energy", "Manufacturing", "Public Sector", "Healthcare", "Transport", "Finance", "Retail"]
COUNTRIES = ["Germany", "Netherlands", "Belgium", "France", "Switzerland", "Austria", "Denmark"]
SEGMENTS = ["Enterprise", "Mid-Market", "Public"]
NAME_A = ["Nord", "Alpen", "Rhein", "Blue", "Green", "Iron", "Silver", "Delta", "Polar", "Sun", "Vector", "Orion"]
NAME_B = ["Energie", "Werke", "Logistics", "Health", "Systems", "Bank", "Mobility", "Foods", "Grid", "Steel"]
STATUSES = ["Active", "Active", "Active", "Completed", "Completed", "On Hold", "Planned"]
PROJECT_TYPES = ["Fixed Price", "Time & Material", "Internal"]
CATEGORIES = ["Labour", "Material", "Subcontractor", "Travel", "Equipment", "Overhead"]
VENDORS = ["Internal", "Siemens", "Bosch", "ABB", "Accenture", "Hilti", "Würth", "Lufthansa", "Dell", "Schneider"]
MANAGERS = ["Anna Keller", "Jonas Weber", "Sofia Rossi", "Lukas Meyer", "Emma de Vries", "Noah Jansen",
            "Mia Schmid", "Elias Dubois", "Lea Hoffmann", "Finn Nielsen"]
EMPLOYEES = [f"{first} {last}" for first in ("Alex", "Ben", "Clara", "Dana", "Eva", "Felix", "Greta", "Hugo")
             for last in ("Berg", "Koch", "Lang")]
ROLES = ["Engineer", "Senior Engineer", "Consultant", "Project Manager", "Analyst"]
PROJECT_WORDS = ["Grid Upgrade", "ERP Rollout", "Plant Retrofit", "Data Platform", "Bridge Renovation",
                 "Solar Park", "Process Audit", "Cloud Migration", "Wind Farm", "Depot Expansion", "Rail Signalling",
                 "Hydrogen Pilot"]

DATA_START = dt.date(2023, 1, 1)
DATA_END = dt.date(2025, 6, 30)

#: A vendor whose name holds an apostrophe: its postings are appended after every generated row (an addition only),
#: so a filter on such a value is exercised on every dialect (Databricks escapes ``'`` with a backslash; ``''`` there
#: is two adjacent literals).
APOSTROPHE_VENDOR = "O'Brien Scaffolding"
#: (amount, days after the project's start) of its postings, one on each of the first three active projects
APOSTROPHE_POSTINGS = ((12_500.00, 30), (8_750.50, 75), (4_200.00, 120))


def _rows(rng: random.Random) -> dict[str, list[tuple]]:
    """Generate every table's rows (pure function of the RNG)."""
    tables: dict[str, list[tuple]] = {name: [] for name in SCHEMA}
    for i, (name, unit, cc) in enumerate(DEPARTMENTS, start=1):
        tables["departments"].append((i, name, unit, cc))

    names: set[str] = set()
    while len(names) < 40:
        names.add(f"{rng.choice(NAME_A)} {rng.choice(NAME_B)}")
    for i, name in enumerate(sorted(names), start=1):
        tables["customers"].append((i, name, rng.choice(INDUSTRIES), rng.choice(COUNTRIES), rng.choice(SEGMENTS)))

    cost_id = budget_id = forecast_id = entry_id = 0
    for pid in range(1, 121):
        start = DATA_START + dt.timedelta(days=rng.randrange(0, 700))
        end = start + dt.timedelta(days=rng.randrange(120, 720))
        status = rng.choice(STATUSES)
        if status == "Planned":
            start = DATA_END + dt.timedelta(days=rng.randrange(1, 120))
            end = start + dt.timedelta(days=rng.randrange(120, 500))
        elif status == "Completed":
            end = min(end, DATA_END - dt.timedelta(days=rng.randrange(1, 90)))
            start = min(start, end - dt.timedelta(days=120))
        contract = round(rng.uniform(150_000, 4_000_000), -3)
        tables["projects"].append((
            pid, f"P-{2023 + (pid % 3)}-{pid:04d}", f"{rng.choice(PROJECT_WORDS)} {pid}", rng.randint(1, 40),
            rng.randint(1, len(DEPARTMENTS)), rng.choice(MANAGERS), status, rng.choice(PROJECT_TYPES),
            start.isoformat(), end.isoformat(), contract,
        ))
        weights = [rng.uniform(0.5, 3.0) for _ in CATEGORIES]
        total_w = sum(weights)
        planned_cost = contract * rng.uniform(0.7, 0.92)
        for year in range(start.year, end.year + 1):
            share = 1.0 / (end.year - start.year + 1)
            for cat, w in zip(CATEGORIES, weights):
                budget_id += 1
                tables["budget_lines"].append(
                    (budget_id, pid, cat, year, round(planned_cost * share * w / total_w, 2)))
        if status == "Planned":
            continue
        # actual costs: a posting roughly every three weeks, up to the end of the data window
        day = start + dt.timedelta(days=rng.randrange(0, 20))
        last = min(end, DATA_END)
        overrun = rng.uniform(0.8, 1.25)
        n_postings = max(1, (last - start).days // 21)
        while day <= last:
            cost_id += 1
            cat = rng.choices(CATEGORIES, weights=weights)[0]
            amount = round(planned_cost * overrun / n_postings * rng.uniform(0.4, 1.6), 2)
            vendor = "Internal" if cat in ("Labour", "Overhead") else rng.choice(VENDORS[1:])
            tables["actual_costs"].append((cost_id, pid, cat, day.isoformat(), amount, vendor))
            day += dt.timedelta(days=rng.randrange(14, 29))
        # cost-to-go forecasts: quarterly snapshots, per category, while the project is open
        snap = dt.date(start.year, ((start.month - 1) // 3) * 3 + 1, 1)
        while snap <= last:
            progress = min(1.0, max(0.0, (snap - start).days / max(1, (end - start).days)))
            for cat, w in zip(CATEGORIES, weights):
                if rng.random() < 0.35:
                    continue
                forecast_id += 1
                remaining = planned_cost * overrun * (w / total_w) * (1 - progress) * rng.uniform(0.9, 1.15)
                tables["cost_to_go"].append((forecast_id, pid, cat, snap.isoformat(), round(max(0.0, remaining), 2)))
            month = snap.month + 3
            snap = dt.date(snap.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
        # hours: a timesheet entry roughly every two weeks
        day = start
        team = rng.sample(EMPLOYEES, 4)
        while day <= last:
            entry_id += 1
            emp = rng.choice(team)
            role = ROLES[EMPLOYEES.index(emp) % len(ROLES)]
            billable = 0 if tables["projects"][-1][7] == "Internal" else int(rng.random() < 0.85)
            tables["hours"].append((entry_id, pid, emp, role, day.isoformat(), float(rng.choice(range(4, 41))), billable))
            day += dt.timedelta(days=rng.randrange(7, 21))
    return tables


def _append_additions(tables: dict[str, list[tuple]]) -> None:
    """Rows added after the generated ones (no RNG draw, so every generated row stays exactly as it was)."""
    active = [row for row in tables["projects"] if row[6] == "Active"][: len(APOSTROPHE_POSTINGS)]
    cost_id = max(row[0] for row in tables["actual_costs"])
    for project, (amount, offset) in zip(active, APOSTROPHE_POSTINGS):
        day = min(dt.date.fromisoformat(project[8]) + dt.timedelta(days=offset), DATA_END)
        cost_id += 1
        tables["actual_costs"].append((cost_id, project[0], "Subcontractor", day.isoformat(), amount, APOSTROPHE_VENDOR))


def generate() -> dict[str, list[tuple]]:
    """All rows of the sample database, identical on every call and every machine."""
    tables = _rows(random.Random(SEED))
    _append_additions(tables)
    return tables


def _write(path: Path, tables: dict[str, list[tuple]]) -> None:
    with sqlite3.connect(path) as conn:
        for table, columns in SCHEMA.items():
            cols = ", ".join(f"{name} {_SQLITE_TYPES[kind]}" for name, kind in columns)
            conn.execute(f"CREATE TABLE {table} ({cols})")
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", tables[table])
        conn.execute("CREATE TABLE _meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO _meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    conn.close()


def _is_current(path: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT value FROM _meta WHERE key = 'schema_version'").fetchone()
        conn.close()
        return row is not None and row[0] == str(SCHEMA_VERSION)
    except sqlite3.Error:
        return False


def ensure_sample_db(path: Path | str) -> Path:
    """Build the sample database at ``path`` unless a current one is already there; returns the path."""
    path = Path(path)
    if path.exists() and _is_current(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".ctg-sample-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        _write(tmp, generate())
        os.replace(tmp, path)  # atomic: concurrent builders each install a complete, identical file
        log.info("built the CTG sample database at %s", path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def sample_tables() -> dict[str, pd.DataFrame]:
    """The sample data as typed DataFrames (dates as ``datetime.date``, booleans as ``bool``)."""
    frames: dict[str, pd.DataFrame] = {}
    for table, rows in generate().items():
        columns = SCHEMA[table]
        df = pd.DataFrame(rows, columns=[name for name, _ in columns])
        for name, kind in columns:
            if kind == "DATE":
                df[name] = pd.to_datetime(df[name]).dt.date
            elif kind == "BOOLEAN":
                df[name] = df[name].astype(bool)
            elif kind == "DECIMAL":
                df[name] = df[name].astype(float)
            elif kind == "INT":
                df[name] = df[name].astype("int64")
        frames[table] = df
    return frames
