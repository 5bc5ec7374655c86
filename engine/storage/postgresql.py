"""PostgreSQL as a source of sales rows (`engine run postgresql://... --table T | --query Q`).
The sink of a run's outputs is engine.storage.postgresql_sink; connecting, naming the
database without its password and classifying failures, engine.storage.postgresql_connection.

Rows are read with ADBC (`adbc-driver-postgresql`, Arrow out: `pip install
'sales-engine[postgresql]'`). The source connects once, up front, to check the input and
to export a snapshot from a REPEATABLE READ transaction it holds open for the run; every
read task (a range of the table's pages, run on a Dask worker in the Dask modes) connects
on its own, imports that snapshot and reads its rows, so the partitions together see one
consistent state of the table, each row exactly once, whatever commits meanwhile. The
engine calls `close()` when the reading is over: the snapshot's transaction ends there.

Values arrive exactly as the engine validates a CSV file's text: `numeric` as its text
(never a float), dates as `YYYY-MM-DD` text (DateStyle ISO), integers and floats as typed
Arrow columns (turned into text as for Parquet), everything else cast to text. The
dataset's column types (SourceFile.types, in the lineage's schema facet) are those the
table stores, by their SQL names (`date`, `numeric(12,2)`, `text`, `integer`).

Credentials come from the URL, PGPASSWORD or ~/.pgpass (libpq reads them; on a remote
Dask cluster the workers need PGPASSWORD or ~/.pgpass themselves unless the URL holds the
password). The password never appears in a dataset name, log line, error message, report
or lineage event: the dataset is named `postgres://host:port/db.schema.table`, the
OpenLineage naming convention for PostgreSQL.

Exit codes: the input cannot be found or used (no such database, table or column, a column
of the wrong type, no rows, a query that fails, no privilege to read) is an InputDataError
(3); the server cannot be reached or refuses the login is a ServiceError (5); the driver
is not installed is a ConfigurationError (2). docs/storage.md, "PostgreSQL", says more.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.errors import ConfigurationError, InputDataError, ServiceError
from engine.rules.validation import RAW_COLUMNS, REQUIRED_COLUMNS
from engine.sources.plan import ReadTask, SourceFile
from engine.storage.postgresql_connection import Endpoint, driver, ident

if TYPE_CHECKING:
    from engine.config import EngineConfig

log = logging.getLogger(__name__)

#: type names (as PostgreSQL reports them) each input column may have
TEXT_TYPES = frozenset({"text", "varchar", "bpchar"})
NUMBER_TYPES = frozenset({"int2", "int4", "int8", "float4", "float8"})
ACCEPTED_TYPES = {
    "date": frozenset({"date"}) | TEXT_TYPES,
    "amount": frozenset({"numeric"}) | NUMBER_TYPES | TEXT_TYPES,
}
#: the SQL names (as `format_type` writes them) of PostgreSQL's internal type names
SQL_TYPE_NAMES = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
                  "float8": "double precision", "bpchar": "character", "varchar": "character varying",
                  "timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
                  "bool": "boolean"}
#: relation kinds read in ranges of pages (tables, partitioned tables, materialized views)
PAGED_KINDS = frozenset({"r", "p", "m"})
#: the first server version (server_version_num) that reads a ctid range without a full scan
TID_RANGE_VERSION = 140000


@dataclass(frozen=True)
class Relation:
    """What one dataset reads: a table or a query, checked."""

    #: the FROM item: a quoted schema-qualified table, or `(query) AS source_query`
    sql: str
    #: the dataset's name (credential-free URL), e.g. postgres://host:5432/db.public.sales
    name: str
    #: bytes on disk (a table) or as the planner estimates them (a query, a view)
    size: int
    #: pages of the largest heap when it is read in page ranges, else None (one task)
    pages: int | None = None


@dataclass(frozen=True)
class PartitionRead:
    """One read task: the rows of one range of pages (or the whole relation), in the run's
    snapshot, as an Arrow table keyed by the engine's column names. Runs where the task
    runs (a Dask worker); picklable: it holds no connection."""

    endpoint: Endpoint
    dataset: str
    sql: str
    snapshot: str | None = None

    def __call__(self) -> pa.Table:
        connection = self.endpoint.connect()
        try:
            with connection.cursor() as cursor:
                with self.endpoint.statements(self.dataset):
                    cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if self.snapshot:
                    try:
                        cursor.execute(f"SET TRANSACTION SNAPSHOT '{self.snapshot}'")
                    except driver().Error as error:
                        raise ServiceError(f"{self.dataset}: the run's snapshot cannot be imported (the run's "
                                           f"first connection closed? {self.endpoint.reason(error)})") from None
                with self.endpoint.statements(self.dataset):
                    cursor.execute("SET LOCAL DateStyle TO 'ISO, YMD'")
                    cursor.execute(self.sql)
                    table = cursor.fetch_arrow_table()
                    cursor.execute("COMMIT")
            return table.replace_schema_metadata(None)
        finally:
            connection.close()


class PostgresSource:
    """The engine's Source (engine.storage.plugins) for a `postgresql://` or `postgres://`
    INPUT: one dataset, a table (`source.table`, `--table`) or a query's rows
    (`source.query`, `--query`)."""

    def __init__(self, url: str) -> None:
        self.endpoint = Endpoint(url)
        self._read: tuple[Relation, str, str | None] | None = None
        self._holder: weakref.finalize | None = None

    def __repr__(self) -> str:
        return f"PostgresSource({self.endpoint.shown!r})"

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_holder": None}  # a copy on a worker holds no connection

    def resolve(self, url: str, config: EngineConfig) -> tuple[SourceFile, ...]:
        """Connect, export the run's snapshot, and check the table or query: it exists,
        has rows and the required columns (by the input layout's names) of usable types."""
        table, query = config.source.table, config.source.query
        if not (table or query):
            raise ConfigurationError(f"{self.endpoint.shown}: say what to read: --table NAME or --query SQL "
                                     "(source.table / source.query)")
        from engine.sources.layout import layout_of

        connection = self.endpoint.connect()
        try:
            with connection.cursor() as cursor:
                snapshot = self._begin(cursor)
                with self.endpoint.statements(self.endpoint.shown):
                    cursor.execute("SELECT current_database()::text, current_setting('server_version_num')::int")
                    database, version = cursor.fetchone()
                prefix = f"{self.endpoint.namespace}/{database}"
                relation = _table(cursor, self.endpoint, prefix, table, paged=version >= TID_RANGE_VERSION) \
                    if table else _query(cursor, self.endpoint, prefix, query)
                with self.endpoint.statements(relation.name):
                    described = cursor.adbc_execute_schema(f"SELECT * FROM {relation.sql}")
                own = tuple(described.names)
                types = tuple(_type_name(f) for f in described)
                stored = tuple(_stored_type(f) for f in described)
                layout = layout_of(config)
                columns = layout.standard_names(own)
                _check_columns(relation.name, own, columns, types, dict(layout.columns))
                with self.endpoint.statements(relation.name):
                    if not _scalar(cursor, f"SELECT EXISTS (SELECT 1 FROM {relation.sql})"):
                        raise InputDataError(f"{relation.name}: has no rows")
        except BaseException:
            connection.close()
            raise
        self._holder = weakref.finalize(self, _end_quietly, connection)
        kinds = {name: kind for name, kind in zip(columns, types) if name in RAW_COLUMNS}
        select = ", ".join(f"{_expression(own_name, kinds[name])} AS {ident(name)}"
                           for name, own_name in zip(columns, own) if name in RAW_COLUMNS)
        self._read = (relation, f"SELECT {select} FROM {relation.sql}", snapshot)
        return (SourceFile(path=relation.name, format="table", compression=None, size=relation.size,
                           columns=columns, types=stored,
                           header=own if columns != own else (), reader=self),)

    def tasks(self, dataset: SourceFile, index: int, partition_bytes: int) -> list[ReadTask]:
        """A table: ranges of its pages (`ctid` ranges, read by TID Range Scans) of about
        `partition_bytes` each, the first and last open-ended, so that every row is read
        once. A query or a view: one task (a query's rows have no address to split by)."""
        if self._read is None:
            raise RuntimeError("PostgresSource.tasks before resolve")
        relation, select, snapshot = self._read
        if relation.pages is None:
            ranges = [(None, None)]
        else:
            ranges = page_ranges(relation.pages, -(-relation.size // max(partition_bytes, 1)))
        log.info("%s: %d read task(s)%s", relation.name, len(ranges),
                 f" over {relation.pages} pages" if relation.pages is not None else "")
        return [ReadTask(file=dataset, fetch=PartitionRead(self.endpoint, relation.name,
                                                           select + _tid_condition(start, end), snapshot))
                for start, end in ranges]

    def close(self) -> None:
        """The reading is over: end the transaction that holds the run's snapshot and close
        its connection (a read task started afterwards cannot import the snapshot). Safe to
        call more than once, before `resolve` or after it failed; the same happens when the
        source is garbage-collected."""
        holder, self._holder = self._holder, None
        if holder is not None:
            holder()

    def _begin(self, cursor: Any) -> str | None:
        """Open the run's REPEATABLE READ transaction and export its snapshot (None when the
        server cannot: the tasks then read without one, each seeing the table as it is)."""
        with self.endpoint.statements(self.endpoint.shown):
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            return _scalar(cursor, "SELECT pg_export_snapshot()")
        except driver().Error as error:
            log.warning("%s: no snapshot can be exported (%s); the read tasks each see the table as it is "
                        "when they run", self.endpoint.shown, self.endpoint.reason(error))
        with self.endpoint.statements(self.endpoint.shown):
            cursor.execute("ROLLBACK")
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return None


def page_ranges(pages: int, parts: int) -> list[tuple[int | None, int | None]]:
    """At most `parts` [start, end) ranges of pages that cover pages 0 to `pages` - 1 and
    any page after them (the first range starts at the beginning, the last is
    open-ended: rows are never missed, whatever the table's size was when measured)."""
    parts = max(1, min(parts, pages))
    if parts == 1:
        return [(None, None)]
    step = -(-pages // parts)
    bounds = list(range(step, pages, step))
    return list(zip([None, *bounds], [*bounds, None]))


def _tid_condition(start: int | None, end: int | None) -> str:
    conditions = ([f"ctid >= '({start},0)'::tid"] if start is not None else []) + \
                 ([f"ctid < '({end},0)'::tid"] if end is not None else [])
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _table(cursor: Any, endpoint: Endpoint, prefix: str, table: str, paged: bool) -> Relation:
    """The table (or view) `table` names, as the search path finds it, and its size; in
    page ranges when it has pages and the server has TID Range Scans (`paged`)."""
    shown = f"{prefix}.{table}"
    with endpoint.statements(shown):
        cursor.execute("SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", (table,))
        found = cursor.fetchone()
    if found is None:
        raise InputDataError(f"{shown}: no such table (or no privilege to see it)")
    oid, schema, name, kind = found
    relation_name = f"{prefix}.{schema}.{name}"
    sql = f"{ident(schema)}.{ident(name)}"
    if kind not in PAGED_KINDS or not paged:
        return Relation(sql, relation_name, _estimated_bytes(cursor, endpoint, relation_name, f"SELECT * FROM {sql}"))
    heaps = ("SELECT relid FROM pg_partition_tree($1::int8::oid) WHERE isleaf" if kind == "p"
             else "SELECT $1::int8::oid")
    with endpoint.statements(relation_name):
        cursor.execute(f"SELECT coalesce(sum(pg_relation_size(relid)), 0)::int8, "
                       f"coalesce(max(pg_relation_size(relid)), 0)::int8, current_setting('block_size')::int8 "
                       f"FROM ({heaps}) AS heaps (relid)", (oid,))
        total, largest, block = cursor.fetchone()
    return Relation(sql, relation_name, total, -(-largest // block))


def _query(cursor: Any, endpoint: Endpoint, prefix: str, query: str) -> Relation:
    """The query's rows as a FROM item, named `db.query_<first 16 hex digits of its
    SHA-256>`, and their size as the planner estimates it."""
    text = query.strip().rstrip(";").strip()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = f"{prefix}.query_{digest}"
    log.info("%s: the query %s", name, " ".join(text.split()))
    return Relation(f"({text}) AS source_query", name, _estimated_bytes(cursor, endpoint, name, text))


def _estimated_bytes(cursor: Any, endpoint: Endpoint, name: str, query: str) -> int:
    """Rows times width of `query`'s result, as the planner estimates them (EXPLAIN also
    checks that a user's query is valid, naming what is wrong in its own text)."""
    with endpoint.statements(name), cursor.connection.cursor() as explain:
        explain.adbc_statement.set_options(**{"adbc.postgresql.use_copy": "false"})
        explain.execute(f"EXPLAIN (FORMAT JSON) {query}")
        plan = json.loads(explain.fetchone()[0])[0]["Plan"]
    return int(plan["Plan Rows"] * plan["Plan Width"])


def _scalar(cursor: Any, sql: str) -> Any:
    cursor.execute(sql)
    return cursor.fetchone()[0]


def _type_name(column: pa.Field) -> str:
    """PostgreSQL's internal name of a result column's type (`numeric`, `int4`, `text`, ...)."""
    metadata = column.metadata or {}
    return metadata.get(b"POSTGRESQL:type", str(column.type).encode()).decode()


def _stored_type(column: pa.Field) -> str:
    """A result column's type as the table stores it, by its SQL name (`integer`,
    `character varying`, `date`), a `numeric` with its precision and scale when declared
    (`numeric(12,2)`): SourceFile.types, which the lineage's schema facet reports."""
    name = _type_name(column)
    modifier = int((column.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if name == "numeric" and modifier >= 4:  # VARHDRSZ + (precision << 16 | scale)
        precision, scale = (modifier - 4) >> 16, (modifier - 4) & 0xFFFF
        return f"numeric({precision},{scale})"
    return SQL_TYPE_NAMES.get(name, name)


def _check_columns(name: str, own: tuple[str, ...], columns: tuple[str, ...], types: tuple[str, ...],
                   mapping: dict[str, str]) -> None:
    repeated = [c for c in RAW_COLUMNS if columns.count(c) > 1]
    if repeated:
        raise InputDataError(f"{name}: column {repeated[0]!r} appears {columns.count(repeated[0])} times")
    missing = [mapping.get(c, c) for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputDataError(f"{name}: missing required columns: {', '.join(missing)} (it has: {', '.join(own)})")
    for column, own_name, kind in zip(columns, own, types):
        accepted = ACCEPTED_TYPES.get(column)
        if accepted is not None and kind not in accepted:
            wanted = ", ".join(sorted(SQL_TYPE_NAMES.get(t, t) for t in accepted))
            raise InputDataError(f"{name}: column {own_name!r} has type {SQL_TYPE_NAMES.get(kind, kind)}; "
                                 f"{column} must be one of: {wanted} (cast it in a --query)")


def _expression(column: str, kind: str) -> str:
    """The SELECT expression that brings a column's values exactly: integers and floats as
    they are, everything else as its text."""
    return ident(column) if kind in NUMBER_TYPES else f"{ident(column)}::text"


def _end_quietly(connection: Any) -> None:
    """End the snapshot's transaction, then close its connection; the server may be gone
    already (the transaction ended with the session)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:
        pass
    try:
        connection.close()
    except Exception:
        pass

