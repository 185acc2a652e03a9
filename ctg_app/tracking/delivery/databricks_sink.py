"""The Databricks sink: the central table's DDL and the exactly-once batched ``MERGE`` (the wire call of the flush).

One statement per batch carries the whole batch as ONE JSON ``STRING`` parameter, expanded server-side with
``inline(from_json(...))``, and inserts only rows whose key is not in the table yet (insert-only ``MERGE``). So:

- a statement the connector silently re-sends (slow reply, dropped connection), or a batch re-sent after a crash
  between the warehouse's commit and the spool's ack, inserts nothing the second time;
- a batch stays far inside Databricks' 255-parameter limit (one marker) and is split by bytes to stay under the
  1 MB parameter-value limit;
- concurrent ``MERGE``s on one Delta table may conflict (``ConcurrentAppendException``): retried here with jitter.

Each ``MERGE`` also bounds the target by the batch's earliest timestamp (``t.timestamp >= :since``): a duplicate of an
event always carries the event's own timestamp, so the bound is exact, and on a table clustered by ``timestamp``
(new tables are created ``CLUSTER BY (timestamp)``) Delta skips every file older than the batch - the ``MERGE`` costs
what the batch costs, not what the table holds (``benchmarks/bench_flush.py``).

The key is ``event_id``. A pre-existing table with only the spec's four columns (other apps write to it) is used as
it is until ``flush-spool --migrate`` adds the nullable extension columns: until then only the four columns are
delivered by an insert-only statement that counts rather than matches (:func:`legacy_insert_sql`): an event ranked
``n`` among the spool's events sharing ``(timestamp, app_name, user, action)`` is inserted while the table holds
fewer than ``n`` rows with that key - distinct events are never collapsed, re-sends insert nothing. After the
migration, batches that may have been committed in legacy mode without being acked are matched on ``event_id`` OR
the natural key of a row without ``event_id`` (:func:`merge_sql` with ``legacy_rows``), so they are not duplicated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from ctg_app.settings import Settings, get_settings
from ctg_app.warehouse.connection import connect, is_conflict, is_missing_table, validate_table_name, warehouse_errors
from ctg_app.warehouse.errors import EventTooLarge, TableSchemaError
from ctg_app.tracking.delivery.backoff import Backoff
from ctg_app.tracking.delivery.sink import Batch, SendResult
from ctg_app.tracking.recording.event import EVENT_COLUMNS, FIELDS, SPEC_COLUMNS, TABLE_FIELDS, Field

log = logging.getLogger(__name__)

#: The central table's (name, Delta type) in table order: the spec's four, then the nullable extensions (from
#: ``event.FIELDS``).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = tuple((f.name, f.delta_type) for f in TABLE_FIELDS)
NATURAL_KEY = SPEC_COLUMNS
#: Databricks allows 1 MiB (1,048,576 bytes) of parameter values per statement; keep a margin.
MAX_PARAM_BYTES = 1_000_000
CONFLICT_RETRIES = 6
#: Pause before retrying a ``MERGE`` that lost a Delta write conflict: 0.2 s doubling up to 5 s, jitter 0.5-1.5.
CONFLICT_BACKOFF = Backoff(base=0.2, cap=5.0, jitter_low=0.5, jitter_high=1.5)

#: Short JSON field names on the wire: a batch's bytes, not its rows, decide how many fit in one 1 MB statement.
WIRE_NAMES: dict[str, str] = {f.name: f.wire for f in FIELDS}


def event_json_sql(fields: tuple[Field, ...] = FIELDS) -> str:
    """The wire text of one spool row as a SQLite expression (the sink's ``encoding_sql``): nulls left out by
    ``json_patch``, the timestamp as ISO 8601 UTC. Equivalent to :func:`encode_event`."""
    return "json_patch('{}', json_object(" + ", ".join(
        f"'{f.wire}', " + ("replace(timestamp, ' ', 'T') || 'Z'" if f.name == "timestamp" else f'"{f.name}"')
        for f in fields
    ) + "))"


EVENT_JSON_SQL = event_json_sql()

_TYPES = dict(TABLE_COLUMNS)
_INDEX = {name: i for i, name in enumerate(EVENT_COLUMNS)}


#: Column types the table may have for each type this code writes (Databricks' DESCRIBE names, lower case).
_COMPATIBLE_TYPES = {"STRING": {"string", "varchar", "char"}, "TIMESTAMP": {"timestamp", "timestamp_ntz"},
                     "DOUBLE": {"double", "float", "decimal"}}


def _compatible(described: str, kind: str) -> bool:
    return described.split("(")[0] in _COMPATIBLE_TYPES.get(kind, {kind.lower()})


#: Liquid clustering on the time column: the MERGE's time bound and the reports' time filters skip older files.
CLUSTER_SQL = "CLUSTER BY (`timestamp`)"


def create_table_sql(table: str, fields: tuple[Field, ...] = FIELDS, *, clustered: bool = True) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the central table (the spec's four columns + nullable extensions), liquid
    clustered by ``timestamp`` unless ``clustered=False`` (for warehouses without liquid clustering)."""
    from ctg_app.tracking.recording.event import table_fields

    columns = ",\n  ".join(f"`{f.name}` {f.delta_type}" for f in table_fields(fields))
    cluster = f" {CLUSTER_SQL}" if clustered else ""
    return f"CREATE TABLE IF NOT EXISTS {validate_table_name(table)} (\n  {columns}\n) USING DELTA{cluster}"


def cluster_table_sql(table: str) -> str:
    """``ALTER TABLE ... CLUSTER BY (timestamp)`` for an existing central table (documented; run once by an owner)."""
    return f"ALTER TABLE {validate_table_name(table)} {CLUSTER_SQL}"


def batch_since(events: Sequence[Sequence[Any]]) -> str:
    """The earliest timestamp of a batch in the wire form (``2026-01-02T03:04:05.123456Z``): the MERGE's exact lower
    bound on the target (a duplicate of an event has the event's own timestamp)."""
    earliest = min(str(event[_INDEX["timestamp"]]) for event in events)
    return earliest.replace(" ", "T") + "Z"


def merge_sql(table: str, columns: Sequence[str], key: Sequence[str], *, legacy_rows: bool = False) -> str:
    """The insert-only ``MERGE`` for a batch passed as the JSON parameter ``:events`` (only ``columns``, keyed on
    ``key``), the target bounded by the batch's earliest timestamp ``:since`` (see :func:`batch_since`).
    ``legacy_rows``: also match a row without ``event_id`` on the natural key (rows a legacy-mode send committed
    before the table was migrated)."""
    struct = ", ".join(f"{WIRE_NAMES[name]}: {_TYPES[name]}" for name in columns)
    on = " AND ".join(f"t.`{name}` = s.{WIRE_NAMES[name]}" for name in key)
    if legacy_rows:
        natural = " AND ".join(f"t.`{name}` = s.{WIRE_NAMES[name]}" for name in NATURAL_KEY)
        on = f"{on} OR (t.`event_id` IS NULL AND {natural})"
    names = ", ".join(f"`{name}`" for name in columns)
    values = ", ".join(f"s.{WIRE_NAMES[name]}" for name in columns)
    # The time bound is exact (see the module docstring) and lets Delta skip files older than the batch.
    on = f"({on}) AND t.`timestamp` >= CAST(:since AS TIMESTAMP)"
    return (
        f"MERGE INTO {validate_table_name(table)} AS t\n"
        f"USING (SELECT inline(from_json(:events, 'ARRAY<STRUCT<{struct}>>'))) AS s\n"
        f"ON {on}\n"
        f"WHEN NOT MATCHED THEN INSERT ({names})\nVALUES ({values})"
    )


def legacy_insert_sql(table: str) -> str:
    """The legacy four-column table's insert: each event of ``:events`` carries its rank ``n`` among the spool's
    events with the same natural key, and is inserted only while the table holds fewer than ``n`` such rows."""
    table = validate_table_name(table)
    struct = ", ".join(f"{WIRE_NAMES[name]}: {_TYPES[name]}" for name in NATURAL_KEY) + ", n: INT"
    same = " AND ".join(f"x.`{name}` = s.{WIRE_NAMES[name]}" for name in NATURAL_KEY)
    return (
        f"INSERT INTO {table} ({', '.join(f'`{name}`' for name in NATURAL_KEY)})\n"
        f"SELECT {', '.join(f's.{WIRE_NAMES[name]}' for name in NATURAL_KEY)}\n"
        f"FROM (SELECT inline(from_json(:events, 'ARRAY<STRUCT<{struct}>>'))) AS s\n"
        f"WHERE s.n > (SELECT COUNT(*) FROM {table} AS x WHERE {same})"
    )


def encode_event(event: Sequence[Any]) -> str:
    """One event (a tuple in ``EVENT_COLUMNS`` order) as the JSON object the ``MERGE`` expects: nulls left out, the
    timestamp as ISO 8601 UTC (``2026-01-02T03:04:05.123456Z``). The spool can produce the same text in SQL."""
    obj = {WIRE_NAMES[name]: value for name, value in zip(EVENT_COLUMNS, event) if value is not None}
    obj["ts"] = str(obj["ts"]).replace(" ", "T") + "Z"
    return json.dumps(obj, separators=(",", ":"))


def chunk_texts(texts: Sequence[str], max_bytes: int) -> list[str]:
    """JSON arrays of the given JSON objects, each at most ``max_bytes`` bytes of UTF-8."""
    chunks: list[str] = []
    current: list[str] = []
    size = 2  # the brackets
    for text in texts:
        n = len(text.encode()) + 1  # the comma
        if n + 2 > max_bytes:
            raise EventTooLarge(f"one event is {n} bytes as JSON, over the {max_bytes}-byte parameter limit")
        if current and size + n > max_bytes:
            chunks.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(text)
        size += n
    if current:
        chunks.append("[" + ",".join(current) + "]")
    return chunks


def dedupe(events: Sequence[Sequence[Any]], key: Sequence[str]) -> list[int]:
    """Indexes of ``events`` without repeats of ``key`` (the first occurrence wins)."""
    idx = [_INDEX[name] for name in key]
    seen: set[Any] = set()
    keep = []
    for position, event in enumerate(events):
        k = event[idx[0]] if len(idx) == 1 else tuple(event[i] for i in idx)
        if k not in seen:
            seen.add(k)
            keep.append(position)
    return keep


def _ordinals_in(events: Sequence[Sequence[Any]]) -> list[int]:
    """Ranks by natural key within these events only (for batches sent without the spool's ranks)."""
    idx = [_INDEX[name] for name in NATURAL_KEY]
    seen: dict[tuple[Any, ...], int] = {}
    ranks = []
    for event in events:
        key = tuple(event[i] for i in idx)
        seen[key] = seen.get(key, 0) + 1
        ranks.append(seen[key])
    return ranks


class DatabricksSink:
    """Ships event batches to the central table over one ``databricks.sql`` connection (use as a context manager).
    A :class:`~ctg_app.tracking.delivery.sink.Sink`; its wire form is one JSON object per event."""

    encoding_sql: str | None = EVENT_JSON_SQL

    def __init__(self, settings: Settings | None = None, *, max_param_bytes: int = MAX_PARAM_BYTES,
                 conflict_retries: int = CONFLICT_RETRIES) -> None:
        self.settings = settings or get_settings()
        self.table = validate_table_name(self.settings.tracking_table)
        self.max_param_bytes = max_param_bytes
        self.conflict_retries = conflict_retries
        self.conn: Any = None
        self.columns: tuple[str, ...] = ()
        self.key: tuple[str, ...] = ()
        self._merge = ""
        self._merge_legacy_rows = ""
        self._types: dict[str, str] = {}
        self.statements = 0

    # ----- lifecycle -----------------------------------------------------------------------------------------------

    def open(self, *, create: bool = True) -> DatabricksSink:
        """Connect and look at the table (creating it when missing and ``create``); sets :attr:`mode`."""
        if self.conn is None:
            self.conn = connect(self.settings)
        existing = self.existing_columns()
        if existing is None and create:
            self._create()
            existing = self.existing_columns()
        self._use(existing)
        return self

    def ensure_table(self, *, create: bool = True) -> str:
        """Connect and look at the table (creating it when missing and ``create``); returns :attr:`mode`."""
        return self.open(create=create).mode

    def describe(self) -> dict[str, Any]:
        """The table's name, mode and the columns delivered."""
        return {"table": self.table, "mode": self.mode, "columns": list(self.columns)}

    def _create(self) -> None:
        """Create the table, liquid clustered by ``timestamp``; without clustering where the warehouse refuses it."""
        from databricks.sql.exc import ServerOperationError

        try:
            self._execute(create_table_sql(self.table))
        except ServerOperationError as exc:
            if "CLUSTER" not in str(exc).upper():
                raise
            log.warning("the warehouse refused CLUSTER BY (%s); creating %s without liquid clustering",
                        str(exc).splitlines()[0][:200], self.table)
            self._execute(create_table_sql(self.table, clustered=False))

    def close(self) -> None:
        """Close the connection (errors while closing are ignored: the work is already committed or released)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection must not mask the real outcome
                log.debug("closing the warehouse connection failed", exc_info=True)

    def __enter__(self) -> DatabricksSink:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mode(self) -> str:
        """``"full"`` (keyed on event_id), ``"legacy"`` (four spec columns, natural key) or ``"missing"``."""
        if not self.columns:
            return "missing"
        return "full" if self.key == ("event_id",) else "legacy"

    def _use(self, existing: list[str] | None) -> None:
        if existing is None:
            self.columns, self.key, self._merge = (), (), ""
            return
        have = {c.lower() for c in existing}
        missing_spec = [c for c in SPEC_COLUMNS if c not in have]
        if missing_spec:
            raise TableSchemaError(f"table {self.table} lacks the spec column(s) {', '.join(missing_spec)}")
        wrong = [f"{name} is {self._types[name]}, needs {kind}" for name, kind in TABLE_COLUMNS
                 if self._types.get(name) and not _compatible(self._types[name], kind)]
        if wrong:
            raise TableSchemaError(f"table {self.table} has columns of the wrong type ({'; '.join(wrong)}): delivery "
                                   "pauses until it is fixed")
        self.columns = tuple(name for name, _ in TABLE_COLUMNS if name in have)
        self.key = ("event_id",) if "event_id" in have else NATURAL_KEY
        if self.key == NATURAL_KEY:
            self._merge = legacy_insert_sql(self.table)
            log.warning("table %s has no event_id column: delivering the four spec columns (counted per "
                        "(timestamp, app_name, user, action)); run `flush-spool --migrate` to add the columns", self.table)
        else:
            self._merge = merge_sql(self.table, self.columns, self.key)
            self._merge_legacy_rows = merge_sql(self.table, self.columns, self.key, legacy_rows=True)

    # ----- schema --------------------------------------------------------------------------------------------------

    def existing_columns(self) -> list[str] | None:
        """The table's column names, or None when it does not exist."""
        from databricks.sql.exc import ServerOperationError

        try:
            rows = self._execute(f"DESCRIBE TABLE {self.table}", fetch=True)
        except ServerOperationError as exc:
            if is_missing_table(exc):
                return None
            raise
        columns = []
        self._types = {}
        for row in rows:
            name = (row[0] or "").strip()
            if not name or name.startswith("#"):  # Databricks appends "# Partition Information" sections
                break
            columns.append(name)
            self._types[name.lower()] = str(row[1] or "").strip().lower() if len(row) > 1 else ""
        return columns

    def migrate(self) -> list[str]:
        """Create the table if missing, else add the missing nullable extension columns. Returns the columns added."""
        if self.conn is None:
            self.conn = connect(self.settings)
        existing = self.existing_columns()
        if existing is None:
            self._create()
            self._use(self.existing_columns())
            return [name for name, _ in TABLE_COLUMNS]
        have = {c.lower() for c in existing}
        add = [(name, kind) for name, kind in TABLE_COLUMNS if name not in have]
        if add:
            spec = ", ".join(f"`{name}` {kind}" for name, kind in add)
            self._execute(f"ALTER TABLE {self.table} ADD COLUMNS ({spec})")
            log.info("added columns to %s: %s", self.table, ", ".join(name for name, _ in add))
        self._use(self.existing_columns())
        return [name for name, _ in add]

    # ----- sending -------------------------------------------------------------------------------------------------

    def send(self, batch: Batch | Sequence[Sequence[Any]]) -> SendResult:
        """Insert the events not yet in the table. ``batch``: a claimed :class:`Batch` (its ``texts``, when claimed
        with :attr:`encoding_sql`, are the same events already as JSON objects) or a sequence of event tuples in
        ``EVENT_COLUMNS`` order. Raises a warehouse error (see ``connection.warehouse_errors()``) when it cannot; a
        batch may then be partly in the table, and sending it again is safe."""
        events, texts = (batch.events, batch.texts) if isinstance(batch, Batch) else (batch, None)
        if not self._merge:
            raise TableSchemaError(f"table {self.table} is not ready (open the sink first)")
        keep = dedupe(events, ("event_id",))  # the same event twice: once; distinct events: never collapsed
        if texts is None:
            unique = [encode_event(events[i]) for i in keep]
        else:
            unique = [texts[i] for i in keep] if len(keep) != len(texts) else list(texts)
        statement = self._merge
        if self.mode == "legacy":
            ordinals = batch.ordinals if isinstance(batch, Batch) and batch.ordinals else _ordinals_in(events)
            unique = [text[:-1] + f',"n":{ordinals[i]}}}' for text, i in zip(unique, keep)]
        elif isinstance(batch, Batch) and batch.legacy_resend:
            statement = self._merge_legacy_rows
        inserted = statements = conflicts = 0
        since = batch_since([events[i] for i in keep]) if keep else ""
        for chunk in chunk_texts(unique, self.max_param_bytes):
            for attempt in range(self.conflict_retries + 1):
                try:
                    inserted += self._merge_one(chunk, statement, since)
                    statements += 1
                    break
                except warehouse_errors() as exc:
                    if not is_conflict(exc) or attempt == self.conflict_retries:
                        raise
                    conflicts += 1
                    time.sleep(CONFLICT_BACKOFF.delay(attempt))
        return SendResult(inserted, statements, conflicts)

    def _merge_one(self, text: str, statement: str, since: str) -> int:
        with self.conn.cursor() as cur:
            self.statements += 1
            params = {"events": text, "since": since} if ":since" in statement else {"events": text}
            cur.execute(statement, params)
            inserted = None
            if cur.description:
                names = [d[0] for d in cur.description]
                row = cur.fetchone()
                if row is not None and "num_inserted_rows" in names:
                    inserted = row[names.index("num_inserted_rows")]
            if inserted is None:
                inserted = cur.rowcount
            return max(0, int(inserted or 0))

    def _execute(self, statement: str, *, fetch: bool = False) -> list[Any]:
        with self.conn.cursor() as cur:
            self.statements += 1
            cur.execute(statement)
            return [tuple(row) for row in cur.fetchall()] if fetch else []
