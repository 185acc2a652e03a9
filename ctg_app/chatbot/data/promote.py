"""Promote a reviewed question → SQL pair into the chatbot's training file (``ctg_app/chatbot/data/training.toml``).

An admin reviews a declined or 👎 question (:mod:`ctg_app.tracking.analytics.problems`), writes or corrects its SQL
and promotes it on the usage page. The curation of the training file is the chatbot's: it needs the chat's SQL
policy and training loader, which analytics (a layer below the chatbot) must not import. Before anything is
written the pair is checked:

- the question is non-empty text and not already trained (case- and space-insensitive);
- the SQL parses with sqlglot as exactly one Databricks query and passes the chat's SQL policy
  (:func:`ctg_app.chatbot.policy.validate_chat_sql`): read-only, only the training schema's tables and columns
  (taken from the file's own ``ddl``);
- the new file still loads (:func:`ctg_app.chatbot.data.training.load_training`).

The pair is appended as one ``[[examples]]`` table in the file's own format and the file is replaced atomically.
From a shell::

    python -m ctg_app.chatbot.data.promote --question "How many projects are on hold?" \\
        --sql "SELECT COUNT(*) AS project_count FROM projects WHERE status = 'On Hold'"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from ctg_app.chatbot.policy import SqlPolicy, validate_chat_sql
from ctg_app.chatbot.data.training import SOURCE_DIALECT, TRAINING_FILE, load_training
from ctg_app.errors import SqlValidationError

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500


class PromotionError(ValueError):
    """The pair was not promoted; ``str()`` says why, in words an admin can act on."""


@dataclass(frozen=True)
class Promoted:
    """A pair written to the training file."""

    question: str
    sql: str
    path: Path
    examples: int  # examples in the file afterwards


def training_policy(path: Path | str = TRAINING_FILE) -> SqlPolicy:
    """The chat SQL policy for the training file's schema: its ``ddl`` tables and columns, Databricks dialect,
    unknown columns refused."""
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    tables: dict[str, frozenset[str]] = {}
    for statement in raw.get("ddl", []):
        tree = sqlglot.parse_one(statement, read=SOURCE_DIALECT)
        schema = tree.this if isinstance(tree, exp.Create) else None
        if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
            continue
        columns = frozenset(c.name.lower() for c in schema.expressions if isinstance(c, exp.ColumnDef))
        tables[schema.this.name.lower()] = columns
    return SqlPolicy(SOURCE_DIALECT, tables, check_columns=True)


def _key(question: str) -> str:
    return " ".join(question.lower().split())


def _toml_string(value: str) -> str:
    """A TOML string for ``value``: a multi-line literal (as the file writes SQL) when it can hold it, else a basic
    string (JSON's escapes are TOML's)."""
    if "'''" not in value and "\r" not in value and not value.endswith("'") and all(
            ch in "\n\t" or ord(ch) >= 0x20 and ord(ch) != 0x7F for ch in value):
        return f"'''{value}'''" if "\n" in value else json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def check_pair(question: str, sql: str, path: Path | str = TRAINING_FILE) -> tuple[str, str]:
    """The pair as it would be written (question trimmed, SQL trimmed of a final ``;``); raises
    :class:`PromotionError` when the question is empty, too long or already trained, or the SQL is refused."""
    question = " ".join((question or "").split())
    if not question:
        raise PromotionError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise PromotionError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    sql = (sql or "").strip().rstrip(";").strip()
    try:
        validate_chat_sql(sql, training_policy(path))
    except SqlValidationError as exc:
        raise PromotionError(f"the SQL was refused: {exc}") from None
    trained = {_key(e.question) for e in load_training(path).examples}
    if _key(question) in trained:
        raise PromotionError(f"the training file already has the question {question!r}")
    return question, sql


def promote_to_training(question: str, sql: str, path: Path | str | None = None) -> Promoted:
    """Append the reviewed pair to the training file ``path`` (default: the shipped ``training.toml``) after
    :func:`check_pair`; the file is replaced atomically and only when it still loads. Raises :class:`PromotionError`."""
    path = Path(path) if path is not None else TRAINING_FILE
    question, sql = check_pair(question, sql, path)
    text = path.read_text(encoding="utf-8")
    block = f"\n[[examples]]\nquestion = {_toml_string(question)}\nsql = {_toml_string(sql)}\n"
    new_text = (text if text.endswith("\n") else text + "\n") + block
    try:
        parsed = tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as exc:  # a bug in the quoting above, never the admin's input
        raise PromotionError(f"the pair could not be written as TOML: {exc}") from None
    if parsed["examples"][-1] != {"question": question, "sql": sql}:
        raise PromotionError("the pair did not read back as written")
    fd, tmp = tempfile.mkstemp(prefix=".training-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_text)
        load_training(tmp)  # the whole file still loads and transpiles
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("promoted a question to %s", path)
    return Promoted(question, sql, path, len(parsed["examples"]))


def main(argv: list[str] | None = None) -> int:
    """``python -m ctg_app.chatbot.data.promote --question Q --sql S [--file PATH]``: 0 promoted, 2 refused."""
    parser = argparse.ArgumentParser(description="Append a reviewed question → SQL pair to the training file.")
    parser.add_argument("--question", required=True)
    parser.add_argument("--sql", required=True)
    parser.add_argument("--file", default=str(TRAINING_FILE), help="the training file (default: the shipped one)")
    args = parser.parse_args(argv)
    try:
        done = promote_to_training(args.question, args.sql, args.file)
    except PromotionError as exc:
        print(f"not promoted: {exc}")  # noqa: T201 - command-line output
        return 2
    print(f"promoted to {done.path} ({done.examples} examples)")  # noqa: T201 - command-line output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
