"""Load the training data file (``data/training.toml``) and transpile its SQL to a target dialect.

The file holds ``ddl`` (list of CREATE TABLE statements), ``documentation`` (list of short texts) and ``examples``
(array of tables with ``question`` and ``sql``). SQL is written in the Databricks dialect.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import sqlglot

TRAINING_FILE = Path(__file__).parent / "training.toml"
SOURCE_DIALECT = "databricks"


@dataclass(frozen=True)
class Example:
    """One trained question and its SQL."""

    question: str
    sql: str


@dataclass(frozen=True)
class TrainingData:
    """Everything the retrieval store is trained with."""

    ddl: tuple[str, ...]
    documentation: tuple[str, ...]
    examples: tuple[Example, ...]


def transpile(sql: str, dialect: str) -> str:
    """Translate one Databricks-dialect statement to ``dialect`` (a sqlglot dialect name)."""
    if dialect == SOURCE_DIALECT:
        return sql.strip()
    return sqlglot.transpile(sql, read=SOURCE_DIALECT, write=dialect, pretty=False)[0]


def load_training(path: Path | str = TRAINING_FILE, dialect: str = SOURCE_DIALECT) -> TrainingData:
    """Read the training file; SQL and DDL are transpiled to ``dialect``. Raises ValueError on a malformed file."""
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    examples = []
    for i, item in enumerate(raw.get("examples", [])):
        question, sql = item.get("question"), item.get("sql")
        if not isinstance(question, str) or not isinstance(sql, str) or not question.strip() or not sql.strip():
            raise ValueError(f"{path}: examples[{i}] needs a non-empty question and sql")
        examples.append(Example(question.strip(), transpile(sql, dialect)))
    ddl = tuple(transpile(stmt, dialect) if dialect != SOURCE_DIALECT else stmt.strip() for stmt in raw.get("ddl", []))
    return TrainingData(ddl=ddl, documentation=tuple(raw.get("documentation", [])), examples=tuple(examples))
