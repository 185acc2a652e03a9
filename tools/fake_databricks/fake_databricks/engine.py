"""SQL engine of the fake warehouse: Databricks SQL translated by sqlglot, executed on DuckDB.

Three-part names ``catalog.schema.table`` map to attached DuckDB databases (one per catalog; in memory, or
one file per catalog next to ``db_path``). Statements sqlglot cannot express for DuckDB (``DESCRIBE DETAIL``,
``SHOW COLUMNS``, multi-column ``ALTER TABLE ... ADD COLUMNS``, ``inline(from_json(...))``) get small rewrites.

Where Databricks' behaviour matters to the product, the engine follows it:

- ``TIMESTAMP`` is an instant (Databricks' ``TIMESTAMP_LTZ``, DuckDB ``TIMESTAMPTZ``): ``DATE(ts)``, ``HOUR(ts)``
  and the values returned follow the session time zone (``SET TIME ZONE 'UTC'`` or the ``TIMEZONE`` session
  parameter; a warehouse default otherwise). ``TIMESTAMP_NTZ`` stays a naive DuckDB ``TIMESTAMP``.
- ``CREATE TABLE ... USING DELTA CLUSTER BY (cols)``: only ``DELTA`` is accepted as the format; the clustering
  columns are kept and shown by ``DESCRIBE`` (a ``# Clustering Information`` section) and ``DESCRIBE DETAIL``
  (``clusteringColumns``). With ``Engine.cluster_by_supported = False`` it refuses ``CLUSTER BY`` as a runtime
  older than liquid clustering does (a syntax error).
- ``CREATE VOLUME [IF NOT EXISTS] c.s.v`` registers a volume (``Engine.on_create_volume`` tells the Files API).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import logging
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

logger = logging.getLogger(__name__)
logging.getLogger("sqlglot").setLevel(logging.ERROR)

MAX_PARAMETERS = 255
MAX_PARAMETER_BYTES = 1024 * 1024

_IDENT = r'(?:`[^`]+`|"[^"]+"|[\w$]+)'
_NAME = rf"({_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}})"
_RE_DESCRIBE_DETAIL = re.compile(rf"^\s*(?:DESC|DESCRIBE)\s+DETAIL\s+{_NAME}\s*;?\s*$", re.I | re.S)
_RE_DESCRIBE = re.compile(rf"^\s*(?:DESC|DESCRIBE)\s+(?:TABLE\s+)?(?:EXTENDED\s+|FORMATTED\s+)?{_NAME}\s*;?\s*$", re.I | re.S)
_RE_SHOW_COLUMNS = re.compile(rf"^\s*SHOW\s+COLUMNS\s+(?:IN|FROM)\s+{_NAME}(?:\s+(?:IN|FROM)\s+({_IDENT}))?\s*;?\s*$", re.I | re.S)
_RE_SHOW_TABLES = re.compile(rf"^\s*SHOW\s+TABLES(?:\s+(?:IN|FROM)\s+{_NAME})?\s*;?\s*$", re.I | re.S)
_RE_SET_TIME_ZONE = re.compile(r"^\s*SET\s+(?:TIME\s+ZONE|TIMEZONE\s*=?)\s*(?:'([^']*)'|(LOCAL)|([\w/+\-]+))\s*;?\s*$",
                               re.I | re.S)
_RE_CREATE_VOLUME = re.compile(rf"^\s*CREATE\s+(?:EXTERNAL\s+)?VOLUME\s+(IF\s+NOT\s+EXISTS\s+)?{_NAME}.*$", re.I | re.S)
_RE_USE = re.compile(rf"^\s*USE\s+(CATALOG\s+|SCHEMA\s+|DATABASE\s+)?{_NAME}\s*;?\s*$", re.I | re.S)


class SqlError(Exception):
    """A statement failed; carries a Databricks-style error class and SQLSTATE."""

    def __init__(self, message: str, sqlstate: str = "42000", error_class: str = "INTERNAL_ERROR") -> None:
        self.sqlstate = sqlstate
        self.error_class = error_class
        self.raw_message = message
        super().__init__(f"[{error_class}] {message} SQLSTATE: {sqlstate}")


@dataclass
class Param:
    """One bound parameter as received: ``name`` is None for positional ``?`` markers."""

    name: Optional[str]
    type: str
    value: Optional[str]
    arguments: Optional[list] = None
    py: Any = None  # with type "PY": an already-converted Python value (used by FakeWarehouse.query)


@dataclass
class Result:
    """Result of one statement: an arrow table (possibly with no columns) and the DML row count."""

    table: pa.Table
    duck_types: list[str] = field(default_factory=list)
    modified_rows: Optional[int] = None


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] in "`\"" and part[-1] == part[0]:
        return part[1:-1]
    return part


def _split_name(name: str) -> list[str]:
    return [_unquote(p) for p in re.findall(_IDENT, name)]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decimal_precision(type_name: str) -> tuple[int, int]:
    m = re.search(r"\((\d+)\s*,\s*(\d+)\)", type_name)
    return (int(m.group(1)), int(m.group(2))) if m else (38, 18)


def databricks_type_name(duck_type: str) -> str:
    """Map a DuckDB column type name to the name Databricks shows (``string``, ``bigint``, ...)."""
    t = duck_type.upper()
    simple = {
        "VARCHAR": "string", "BOOLEAN": "boolean", "TINYINT": "tinyint", "SMALLINT": "smallint",
        "INTEGER": "int", "BIGINT": "bigint", "HUGEINT": "bigint", "UBIGINT": "bigint", "UINTEGER": "bigint",
        "USMALLINT": "int", "UTINYINT": "smallint", "FLOAT": "float", "DOUBLE": "double", "DATE": "date",
        "TIMESTAMP": "timestamp_ntz", "TIMESTAMP WITH TIME ZONE": "timestamp", "BLOB": "binary",
        "INTERVAL": "interval", "UUID": "string", "JSON": "string",
    }
    if t in simple:
        return simple[t]
    if t.startswith("DECIMAL"):
        return t.lower()
    if t.endswith("[]"):
        return f"array<{databricks_type_name(duck_type[:-2])}>"
    if t.startswith("STRUCT"):
        return "struct"
    if t.startswith("MAP"):
        return "map"
    return t.lower()


def _json_structure(dt: exp.DataType) -> Any:
    """DuckDB ``json_transform`` structure for a Databricks schema data type."""
    if dt.this == exp.DataType.Type.ARRAY:
        return [_json_structure(dt.expressions[0])]
    if dt.this == exp.DataType.Type.STRUCT:
        out = {}
        for col in dt.expressions:
            name = col.this.name if isinstance(col, exp.ColumnDef) else col.name
            kind = col.args.get("kind") if isinstance(col, exp.ColumnDef) else col
            out[name] = _json_structure(kind)
        return out
    return _fix_types(dt.copy()).sql("duckdb")


def _parse_schema_string(schema: str) -> exp.DataType:
    s = schema.strip()
    if not re.match(r"^(ARRAY|STRUCT|MAP)\s*<", s, re.I) and ("," in s or " " in s) and ":" not in s:
        s = f"STRUCT<{s}>"
    return exp.DataType.build(s, dialect="databricks")


def _fix_types(node: exp.Expression) -> exp.Expression:
    """Databricks TIMESTAMP (an instant, shown in the session time zone) is a DuckDB TIMESTAMPTZ; TIMESTAMP_NTZ a
    naive DuckDB TIMESTAMP."""
    for dt in list(node.find_all(exp.DataType)):
        if dt.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPLTZ):
            dt.set("this", exp.DataType.Type.TIMESTAMPTZ)
        elif dt.this == exp.DataType.Type.TIMESTAMPNTZ:
            dt.set("this", exp.DataType.Type.TIMESTAMP)
    return node


def _transform(node: exp.Expression) -> exp.Expression:
    """AST fixes where sqlglot's Databricks→DuckDB translation differs from Databricks semantics."""
    if isinstance(node, exp.Inline) and isinstance(node.this, exp.FromJson):
        fj = node.this
        structure = _json_structure(_parse_schema_string(fj.expression.name))
        call = exp.func("from_json", fj.this, exp.Literal.string(json.dumps(structure)))
        return exp.Anonymous(this="UNNEST", expressions=[call, exp.PropertyEQ(this=exp.var("max_depth"), expression=exp.Literal.number(2))])
    if isinstance(node, exp.Inline):
        return exp.Anonymous(this="UNNEST", expressions=[node.this, exp.PropertyEQ(this=exp.var("max_depth"), expression=exp.Literal.number(2))])
    if isinstance(node, exp.FromJson):
        structure = _json_structure(_parse_schema_string(node.expression.name))
        return exp.func("from_json", node.this, exp.Literal.string(json.dumps(structure)))
    if isinstance(node, exp.Quantile):
        return exp.Anonymous(this="QUANTILE_CONT", expressions=[node.this, node.args["quantile"]])
    if isinstance(node, exp.ColumnConstraint) and isinstance(node.args.get("kind"), exp.CommentColumnConstraint):
        return None  # type: ignore[return-value]
    return node


def _convert_param(p: Param) -> Any:
    t = (p.type or "STRING").upper()
    if t == "PY":
        return p.py
    if t == "VOID" or (p.value is None and not p.arguments):
        return None
    if t in ("ARRAY", "MAP") and p.arguments is not None:
        vals = [_convert_param(Param(None, a.type, a.value, a.arguments)) for a in p.arguments]
        return vals if t == "ARRAY" else dict(zip(vals[::2], vals[1::2]))
    v = p.value or ""
    if t in ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT"):
        return int(v)
    if t in ("DOUBLE", "FLOAT"):
        return float(v)
    if t.startswith("DECIMAL"):
        return decimal.Decimal(v)
    if t == "BOOLEAN":
        return v.strip().lower() in ("true", "1")
    if t.startswith("TIMESTAMP"):
        # an offset is kept (an instant); a naive value is read in the session time zone, as Databricks does
        return _dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
    if t == "DATE":
        return _dt.date.fromisoformat(v.strip()[:10])
    return v


def _map_duckdb_error(e: Exception) -> SqlError:
    msg = str(e)
    low = msg.lower()
    if isinstance(e, duckdb.TransactionException) or "conflict" in low:
        return SqlError(
            "ConcurrentAppendException: Files were added to the table by a concurrent update. "
            f"Please try the operation again. ({msg})", "2D521", "DELTA_CONCURRENT_APPEND")
    if isinstance(e, duckdb.ParserException):
        return SqlError(f"Syntax error: {msg}", "42601", "PARSE_SYNTAX_ERROR")
    if isinstance(e, duckdb.CatalogException):
        if "table with name" in low and "does not exist" in low:
            return SqlError(f"The table or view cannot be found. {msg}", "42P01", "TABLE_OR_VIEW_NOT_FOUND")
        if "schema" in low and "does not exist" in low:
            return SqlError(f"The schema cannot be found. {msg}", "42704", "SCHEMA_NOT_FOUND")
        if "does not exist" in low or "not found" in low:
            return SqlError(f"The table or view cannot be found. {msg}", "42P01", "TABLE_OR_VIEW_NOT_FOUND")
        if "already exists" in low:
            return SqlError(msg, "42P07", "TABLE_OR_VIEW_ALREADY_EXISTS")
    if isinstance(e, duckdb.BinderException):
        if "column" in low:
            return SqlError(f"A column cannot be resolved. {msg}", "42703", "UNRESOLVED_COLUMN")
        return SqlError(msg, "42000", "ANALYSIS_ERROR")
    if isinstance(e, duckdb.ConversionException):
        return SqlError(msg, "22018", "CAST_INVALID_INPUT")
    if isinstance(e, duckdb.ConstraintException):
        return SqlError(msg, "23505", "CONSTRAINT_VIOLATION")
    if isinstance(e, duckdb.InvalidInputException) and "parameter" in low:
        return SqlError(msg, "42P02", "UNBOUND_SQL_PARAMETER")
    return SqlError(msg, "XX000", "INTERNAL_ERROR")


class Engine:
    """DuckDB-backed executor of Databricks SQL text.

    ``db_path=None`` keeps everything in memory; otherwise the main DuckDB file is ``db_path`` and every
    Databricks catalog lives in ``<db_path stem>.<catalog>.duckdb`` beside it (re-attached on start).
    """

    def __init__(self, db_path: Optional[str] = None) -> None:
        self.db_path = db_path
        #: False: refuse ``CLUSTER BY`` as a runtime without liquid clustering does (a syntax error)
        self.cluster_by_supported = True
        #: liquid clustering columns per ``catalog.schema.table`` (lower case), from ``CREATE TABLE ... CLUSTER BY``
        self.clustering: dict[str, list[str]] = {}
        #: called with ``/Volumes/<catalog>/<schema>/<volume>`` for each ``CREATE VOLUME``
        self.on_create_volume: Any = None
        self._con = duckdb.connect(db_path or ":memory:")
        self._con.execute("SET GLOBAL TimeZone = 'UTC'")
        self._ddl_lock = threading.RLock()
        self._catalogs: set[str] = set()
        if db_path:
            base = os.path.splitext(os.path.abspath(db_path))[0]
            d = os.path.dirname(base)
            prefix = os.path.basename(base) + "."
            for fn in sorted(os.listdir(d)):
                if fn.startswith(prefix) and fn.endswith(".duckdb") and os.path.join(d, fn) != os.path.abspath(db_path):
                    self.ensure_catalog(fn[len(prefix):-len(".duckdb")])

    # ---- catalogs ------------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new DuckDB connection to the same database (one per session / thread)."""
        return self._con.cursor()

    def close(self) -> None:
        """Close the DuckDB database."""
        try:
            self._con.close()
        except Exception:  # pragma: no cover
            pass

    def _known_catalogs(self) -> set[str]:
        rows = self._con.cursor().execute("SELECT database_name FROM duckdb_databases()").fetchall()
        return {r[0].lower() for r in rows}

    def ensure_catalog(self, catalog: str) -> None:
        """Attach (creating) the DuckDB database that stands for a Databricks catalog."""
        key = catalog.lower()
        if key in self._catalogs:
            return
        with self._ddl_lock:
            if key in self._known_catalogs():
                self._catalogs.add(key)
                return
            if self.db_path:
                base = os.path.splitext(os.path.abspath(self.db_path))[0]
                target = f"{base}.{catalog}.duckdb".replace("'", "''")
            else:
                target = ":memory:"
            self._con.execute(f"ATTACH '{target}' AS {_q(catalog)}")
            self._catalogs.add(key)
            logger.debug("attached catalog %s -> %s", catalog, target)

    def ensure_schema(self, catalog: Optional[str], schema: str) -> None:
        """Create ``catalog.schema`` if it is missing."""
        with self._ddl_lock:
            if catalog:
                self.ensure_catalog(catalog)
                self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(catalog)}.{_q(schema)}")
            else:
                self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")

    @staticmethod
    def set_time_zone(cur: duckdb.DuckDBPyConnection, zone: str) -> None:
        """Make ``zone`` (an IANA name or ``UTC``) the session time zone of ``cur``."""
        try:
            cur.execute(f"SET TimeZone = '{zone.replace(chr(39), '')}'")
        except duckdb.Error:
            raise SqlError(f"Invalid time zone {zone!r}.", "22023", "INVALID_CONF_VALUE.TIME_ZONE") from None

    def use(self, cur: duckdb.DuckDBPyConnection, catalog: Optional[str], schema: Optional[str]) -> None:
        """Make ``catalog.schema`` the default namespace of ``cur`` (auto-created)."""
        if catalog:
            self.ensure_schema(catalog, schema or "default")
            cur.execute(f"USE {_q(catalog)}.{_q(schema or 'default')}")
        elif schema:
            self.ensure_schema(None, schema)
            cur.execute(f"USE {_q(schema)}")

    # ---- execution -----------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Param] = (), cur: Optional[duckdb.DuckDBPyConnection] = None) -> Result:
        """Run one Databricks SQL statement; raises :class:`SqlError` on failure."""
        cur = cur or self.cursor()
        self._check_param_limits(sql, params)
        try:
            special = self._special(sql, cur)
            if special is not None:
                return special
            try:
                tree = sqlglot.parse_one(sql, read="databricks")
            except sqlglot.errors.ParseError as e:
                plain = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
                raise SqlError(f"Syntax error: {plain}", "42601", "PARSE_SYNTAX_ERROR") from None
            if isinstance(tree, exp.Command):
                return self._run(cur, sql, params, kind="command")
            self._prepare_namespaces(tree)
            if isinstance(tree, exp.Alter) and (
                len(tree.args.get("actions") or []) > 1 or any(isinstance(a, exp.Schema) for a in tree.args.get("actions") or [])
            ):
                return self._alter_multi(cur, tree, params)
            tree = _fix_types(tree.transform(_transform))
            cluster_columns = self._table_properties(tree) if isinstance(tree, exp.Create) else None
            duck_sql = tree.sql("duckdb")
            result = self._run(cur, duck_sql, params, kind=type(tree).__name__.lower())
            if cluster_columns is not None and isinstance(tree.this, (exp.Schema, exp.Table)):
                table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
                parts = [p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p is not None]
                key = ".".join(self._resolve(cur, parts)).lower()
                if cluster_columns or key not in self.clustering:
                    self.clustering[key] = cluster_columns
            return result
        except SqlError:
            raise
        except duckdb.Error as e:
            raise _map_duckdb_error(e) from None

    def _table_properties(self, tree: exp.Create) -> Optional[list[str]]:
        """Check ``USING <format>`` and ``CLUSTER BY`` of a CREATE TABLE as Databricks does, drop them from the tree
        (DuckDB knows neither) and return the clustering columns ([] when not clustered; None for non-tables)."""
        props = tree.args.get("properties")
        if (tree.kind or "").upper() != "TABLE":
            return None
        columns: list[str] = []
        keep = []
        for prop in (props.expressions if props else []):
            if isinstance(prop, exp.FileFormatProperty):
                fmt = prop.name.upper() if prop.this is not None else ""
                if fmt not in ("DELTA", ""):
                    raise SqlError(f"Unity Catalog managed tables must use DELTA, not {fmt}.", "0A000",
                                   "UC_FILE_FORMAT_NOT_SUPPORTED")
            elif isinstance(prop, exp.ClusterProperty):
                if not self.cluster_by_supported:
                    raise SqlError("Syntax error at or near 'CLUSTER'.", "42601", "PARSE_SYNTAX_ERROR")
                columns = [c.name for c in prop.expressions]
            elif isinstance(prop, exp.TemporaryProperty):
                keep.append(prop)
        tree.set("properties", exp.Properties(expressions=keep) if keep else None)
        return columns

    def _check_param_limits(self, sql: str, params: Sequence[Param]) -> None:
        n_markers = len(re.findall(r"(?<![:\w]):[A-Za-z_]\w*|\?", _strip_literals(sql)))
        n = max(n_markers, len(params))
        if n > MAX_PARAMETERS:
            raise SqlError(
                f"The statement has {n} parameter markers, but at most {MAX_PARAMETERS} parameter markers "
                "are allowed per statement.", "54000", "TOO_MANY_PARAMETERS")
        size = sum(len((p.value or "").encode()) for p in params if p.type != "PY")
        if size > MAX_PARAMETER_BYTES:
            raise SqlError(
                f"The total size of parameter values is {size} bytes, which exceeds the limit of 1 MB "
                f"({MAX_PARAMETER_BYTES} bytes) per statement.", "54000", "PARAMETER_VALUES_TOO_LARGE")

    def _prepare_namespaces(self, tree: exp.Expression) -> None:
        if isinstance(tree, exp.Create) and (tree.kind or "").upper() in ("SCHEMA", "DATABASE"):
            t = tree.this
            if isinstance(t, exp.Table) and t.args.get("catalog"):
                self.ensure_catalog(t.args["catalog"].name)
            return
        creating = isinstance(tree, exp.Create)
        for t in tree.find_all(exp.Table):
            cat, db = t.args.get("catalog"), t.args.get("db")
            if cat is not None:
                if creating:
                    self.ensure_schema(cat.name, db.name if db is not None else "default")
                elif cat.name.lower() not in self._catalogs and cat.name.lower() in self._known_catalogs():
                    self._catalogs.add(cat.name.lower())

    def _alter_multi(self, cur: duckdb.DuckDBPyConnection, tree: exp.Alter, params: Sequence[Param]) -> Result:
        table = tree.this.sql("duckdb")
        stmts = []
        actions = []
        for action in tree.args["actions"]:
            actions.extend(action.expressions if isinstance(action, exp.Schema) else [action])
        for action in actions:
            if isinstance(action, exp.ColumnDef):
                col = _fix_types(action.transform(_transform))
                stmts.append(f"ALTER TABLE {table} ADD COLUMN {col.sql('duckdb')}")
            else:
                one = tree.copy()
                one.set("actions", [action])
                stmts.append(_fix_types(one).sql("duckdb"))
        cur.execute("BEGIN TRANSACTION")
        try:
            for s in stmts:
                cur.execute(s)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        return Result(pa.table({}))

    def _run(self, cur: duckdb.DuckDBPyConnection, duck_sql: str, params: Sequence[Param], kind: str) -> Result:
        bind: Any = None
        if params:
            if all(p.name for p in params):
                present = set(re.findall(r"\$(\w+)", duck_sql))
                bind = {p.name: _convert_param(p) for p in params if p.name in present}
            else:
                bind = [_convert_param(p) for p in params]
        logger.debug("duckdb: %s", duck_sql)
        cur.execute(duck_sql, bind) if bind else cur.execute(duck_sql)
        if cur.description is None:
            return Result(pa.table({}))
        duck_types = [str(d[1]) for d in cur.description]
        fetch = getattr(cur, "to_arrow_table", None) or getattr(cur, "fetch_arrow_table")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
            table = fetch()
        for i, t in enumerate(duck_types):
            if t == "HUGEINT":  # SUM(BIGINT) is BIGINT on Databricks
                try:
                    table = table.set_column(i, table.field(i).name, table.column(i).cast(pa.int64()))
                    duck_types[i] = "BIGINT"
                except pa.ArrowInvalid:
                    duck_types[i] = "DECIMAL(38,0)"
        if kind in ("create", "alter", "drop", "command") and table.column_names == ["Count"]:
            return Result(pa.table({}))
        if kind in ("insert", "merge", "delete", "update") and table.column_names == ["Count"]:
            n = int(table.column(0)[0].as_py()) if table.num_rows else 0
            if kind == "insert":
                out = {"num_affected_rows": [n], "num_inserted_rows": [n]}
            elif kind == "merge":
                out = {"num_affected_rows": [n], "num_updated_rows": [0], "num_deleted_rows": [0], "num_inserted_rows": [n]}
            else:
                out = {"num_affected_rows": [n]}
            t = pa.table({k: pa.array(v, pa.int64()) for k, v in out.items()})
            return Result(t, ["BIGINT"] * t.num_columns, modified_rows=n)
        return Result(table, duck_types)

    def load_dataframe(self, table: str, df: Any) -> int:
        """Bulk-load a pandas DataFrame into ``table`` (1-3 part name), creating it if missing."""
        parts = _split_name(table)
        cur = self.cursor()
        if len(parts) == 3:
            self.ensure_schema(parts[0], parts[1])
        elif len(parts) == 2:
            self.ensure_schema(None, parts[0])
        name = ".".join(_q(p) for p in parts)
        cur.register("__fw_load_df", df)
        try:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM __fw_load_df LIMIT 0")
            for col, typ in cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE {name})").fetchall():
                if typ == "TIMESTAMP":  # a Databricks TIMESTAMP is an instant; naive frame values are UTC
                    cur.execute(f"ALTER TABLE {name} ALTER {_q(col)} TYPE TIMESTAMPTZ")
            cur.execute(f"INSERT INTO {name} BY NAME SELECT * FROM __fw_load_df")
        finally:
            cur.unregister("__fw_load_df")
            cur.close()
        return len(df)

    # ---- statements sqlglot does not handle -------------------------------------------------------------
    def _special(self, sql: str, cur: duckdb.DuckDBPyConnection) -> Optional[Result]:
        m = _RE_SET_TIME_ZONE.match(sql)
        if m:
            zone = "UTC" if m.group(2) else (m.group(1) if m.group(1) is not None else m.group(3))
            self.set_time_zone(cur, zone)
            return Result(pa.table({}))
        m = _RE_CREATE_VOLUME.match(sql)
        if m:
            parts = _split_name(m.group(2))
            if len(parts) != 3:
                raise SqlError("A volume name must be catalog.schema.volume.", "42601", "INVALID_VOLUME_NAME")
            if self.on_create_volume is not None:
                self.on_create_volume("/Volumes/" + "/".join(parts))
            return Result(pa.table({}))
        m = _RE_DESCRIBE_DETAIL.match(sql)
        if m:
            return self._describe_detail(cur, _split_name(m.group(1)))
        m = _RE_SHOW_COLUMNS.match(sql)
        if m:
            parts = _split_name(m.group(1))
            if m.group(2):
                parts = [_unquote(m.group(2)), *parts[-1:]]
            cols = self._columns(cur, parts)
            return Result(pa.table({"col_name": [c[0] for c in cols]}), ["VARCHAR"])
        m = _RE_DESCRIBE.match(sql)
        if m and m.group(1).upper() not in ("DETAIL", "TABLE", "EXTENDED"):
            parts = _split_name(m.group(1))
            cols = self._columns(cur, parts)
            rows = [(c[0], databricks_type_name(c[1]), None) for c in cols]
            clustered = self.clustering.get(".".join(self._resolve(cur, parts)).lower())
            if clustered:  # as Databricks shows a liquid clustered table
                types = dict((c[0].lower(), databricks_type_name(c[1])) for c in cols)
                rows += [("# Clustering Information", "", ""), ("# col_name", "data_type", "comment")]
                rows += [(c, types.get(c.lower(), ""), None) for c in clustered]
            t = pa.table({
                "col_name": [r[0] for r in rows],
                "data_type": [r[1] for r in rows],
                "comment": pa.array([r[2] for r in rows], pa.string()),
            })
            return Result(t, ["VARCHAR"] * 3)
        m = _RE_SHOW_TABLES.match(sql)
        if m:
            parts = _split_name(m.group(1)) if m.group(1) else []
            q = "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = coalesce(?, current_database()) AND schema_name = coalesce(?, current_schema()) ORDER BY table_name"
            cat, sch = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
            rows = cur.execute(q, [cat, sch]).fetchall()
            t = pa.table({"database": [r[0] for r in rows], "tableName": [r[1] for r in rows],
                          "isTemporary": pa.array([False] * len(rows), pa.bool_())})
            return Result(t, ["VARCHAR", "VARCHAR", "BOOLEAN"])
        m = _RE_USE.match(sql)
        if m:
            what = (m.group(1) or "").strip().upper()
            parts = _split_name(m.group(2))
            if what == "CATALOG":
                self.ensure_catalog(parts[0])
                cur.execute(f"USE {_q(parts[0])}")
            elif len(parts) == 2:
                self.use(cur, parts[0], parts[1])
            else:
                self.ensure_schema(cur.execute("SELECT current_database()").fetchone()[0], parts[0])
                cur.execute(f"USE {_q(parts[0])}")
            return Result(pa.table({}))
        return None

    def _resolve(self, cur: duckdb.DuckDBPyConnection, parts: list[str]) -> tuple[str, str, str]:
        cat, sch = cur.execute("SELECT current_database(), current_schema()").fetchone()
        if len(parts) == 3:
            return parts[0], parts[1], parts[2]
        if len(parts) == 2:
            return cat, parts[0], parts[1]
        return cat, sch, parts[0]

    def _columns(self, cur: duckdb.DuckDBPyConnection, parts: list[str]) -> list[tuple[str, str]]:
        cat, sch, tbl = self._resolve(cur, parts)
        rows = cur.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name ILIKE ? AND schema_name ILIKE ? "
            "AND table_name ILIKE ? ORDER BY column_index", [cat, sch, tbl]).fetchall()
        if not rows:
            raise SqlError(f"The table or view `{cat}`.`{sch}`.`{tbl}` cannot be found.", "42P01", "TABLE_OR_VIEW_NOT_FOUND")
        return rows

    def _describe_detail(self, cur: duckdb.DuckDBPyConnection, parts: list[str]) -> Result:
        cat, sch, tbl = self._resolve(cur, parts)
        cols = self._columns(cur, parts)
        n = cur.execute(f"SELECT count(*) FROM {_q(cat)}.{_q(sch)}.{_q(tbl)}").fetchone()[0]
        size = int(n * max(1, len(cols)) * 12)
        now = _dt.datetime.now(_dt.timezone.utc)
        t = pa.table({
            "format": ["delta"], "id": [f"{cat}.{sch}.{tbl}"], "name": [f"{cat}.{sch}.{tbl}"],
            "description": pa.array([None], pa.string()), "location": [f"duckdb:///{cat}/{sch}/{tbl}"],
            "createdAt": pa.array([now], pa.timestamp("us", tz="UTC")),
            "lastModified": pa.array([now], pa.timestamp("us", tz="UTC")),
            "partitionColumns": ["[]"],
            "clusteringColumns": [json.dumps(self.clustering.get(f"{cat}.{sch}.{tbl}".lower(), []))], "numFiles": pa.array([max(1, n // 1_000_000 + 1) if n else 0], pa.int64()),
            "sizeInBytes": pa.array([size], pa.int64()), "properties": ["{}"],
            "minReaderVersion": pa.array([1], pa.int32()), "minWriterVersion": pa.array([2], pa.int32()),
        })
        types = ["VARCHAR"] * 5 + ["TIMESTAMP WITH TIME ZONE"] * 2 + ["VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "INTEGER",
                                   "INTEGER"]
        return Result(t, types)


def _strip_literals(sql: str) -> str:
    """Remove string literals, quoted identifiers and comments (for counting parameter markers)."""
    return re.sub(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
