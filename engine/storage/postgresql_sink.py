"""PostgreSQL as a sink (`--sink postgresql://user@host:port/db`, `sink.schema`): every
run's outputs, in one transaction, in the tables of one schema.

What a reader finds in the schema (default `sales_engine`):

- `daily_sales_summary`, `enriched_daily_summary`, `weekly_aggregation`: the latest
  successful run's tables, exactly as its Parquet files hold them (dates as `date`, money
  as `numeric(18,2)`, counts as `bigint`, ratios as `double precision`), each row with the
  `run_id` of the run that wrote it;
- `run_documents (run_id, name, document jsonb)`: its JSON outputs (data_quality_metrics,
  trend_analysis, top_performing_days) as published;
- `runs`: one row per delivered run, never rewritten: run_id, when it was delivered and
  started, engine version, mode, input datasets, row counts.

Each run replaces the previous run's rows (DELETE, then INSERT: MVCC-safe, unlike
TRUNCATE) and appends its `runs` row in ONE transaction that also creates the schema and
those tables that are missing: a reader sees the previous run or the new one, whole, never
a mix; a run that fails writes nothing. An advisory lock per schema makes concurrent runs
into the same schema take turns.

Privileges: only what is missing is created (PostgreSQL checks the CREATE privilege of a
`CREATE ... IF NOT EXISTS` before it looks whether the object exists), so once an owner's
run has created the schema and tables, a loading role with only USAGE on the schema and
INSERT, DELETE on its tables delivers every later run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.outputs.forms import TABLE_COLUMNS
from engine.storage.plugins import FinishedRun
from engine.storage.postgresql_connection import Endpoint, driver, ident

log = logging.getLogger(__name__)

DOCUMENTS = ("data_quality_metrics", "trend_analysis", "top_performing_days")
#: the SQL type of each column kind of engine.outputs.forms (the Parquet outputs' types)
SQL_TYPES = {"date": "date", "money": "numeric(18,2)", "ratio": "double precision", "count": "bigint",
             "bool": "boolean", "text": "text"}
#: the column each table output has one row per
KEYS = {"daily_sales_summary": "date", "enriched_daily_summary": "date", "weekly_aggregation": "week"}
RUNS_DDL = """CREATE TABLE IF NOT EXISTS {schema}.runs (
    run_id text PRIMARY KEY,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    engine_version text NOT NULL,
    mode text,
    input jsonb,
    raw_rows bigint,
    cleaned_rows bigint,
    rejected_rows bigint,
    output_rows jsonb)"""
DOCUMENTS_DDL = """CREATE TABLE IF NOT EXISTS {schema}.run_documents (
    run_id text NOT NULL,
    name text PRIMARY KEY,
    document jsonb NOT NULL)"""


def table_ddl(schema: str, name: str) -> str:
    """CREATE TABLE IF NOT EXISTS for a table output, its columns from its published form."""
    columns = ",\n    ".join(f"{ident(column)} {SQL_TYPES[kind]}" for column, kind in TABLE_COLUMNS[name])
    return (f"CREATE TABLE IF NOT EXISTS {schema}.{ident(name)} (\n    run_id text NOT NULL,\n    {columns},\n"
            f"    PRIMARY KEY ({ident(KEYS[name])}))")


class PostgresSink:
    """The engine's Sink (engine.storage.plugins) for a `postgresql://` or `postgres://` URL."""

    def __init__(self, url: str) -> None:
        driver()  # a missing driver is a usage error before the run starts
        self.endpoint = Endpoint(url)

    def __repr__(self) -> str:
        return f"PostgresSink({self.endpoint.shown!r})"

    def deliver(self, run: FinishedRun) -> None:
        """Replace the tables of the schema `sink.schema` with the run's outputs and record
        the run, in one transaction; a ServiceError (exit 5) naming the sink when it cannot."""
        schema = run.config.sink.schema
        where = f"sink {self.endpoint.shown} (schema {schema})"
        tables = {name: _with_run_id(pq.read_table(run.folder / f"{name}.parquet"), run.run_id) for name in KEYS}
        documents = {name: (run.folder / f"{name}.json").read_text(encoding="utf-8") for name in DOCUMENTS}
        connection = self.endpoint.connect(where, sink=True, autocommit=False)
        try:
            with connection.cursor() as cursor, self.endpoint.statements(where, sink=True):
                _write(cursor, ident(schema), schema, run, tables, documents)
                connection.commit()
        except BaseException:
            _rollback_quietly(connection)
            raise
        finally:
            connection.close()
        log.info("%s: run %s delivered (%s)", where, run.run_id,
                 ", ".join(f"{name} {table.num_rows} rows" for name, table in tables.items()))


def _write(cursor: Any, quoted: str, schema: str, run: FinishedRun, tables: dict[str, pa.Table],
           documents: dict[str, str]) -> None:
    """Inside the delivery's transaction: wait for the schema's lock, create what is
    missing, replace the outputs and record the run."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (f"sales-engine sink {schema}",))
    cursor.fetchall()
    for statement in _missing_ddl(cursor, quoted, schema, tables):
        cursor.execute(statement)
    for name, table in tables.items():
        cursor.execute(f"DELETE FROM {quoted}.{ident(name)}")
        if table.num_rows:
            cursor.adbc_ingest(name, table, mode="append", db_schema_name=schema)
    cursor.execute(f"DELETE FROM {quoted}.run_documents")
    for name, text in documents.items():
        cursor.execute(f"INSERT INTO {quoted}.run_documents (run_id, name, document) VALUES ($1, $2, $3::jsonb)",
                       (run.run_id, name, text))
    report = run.report
    rows = report.get("rows", {})
    cursor.execute(
        f"INSERT INTO {quoted}.runs (run_id, started_at, engine_version, mode, input, raw_rows, cleaned_rows, "
        f"rejected_rows, output_rows) VALUES ($1, $2::timestamptz, $3, $4, $5::jsonb, $6, $7, $8, $9::jsonb)",
        (run.run_id, report.get("started_at"), report.get("engine_version"), report.get("mode"),
         json.dumps(report.get("input", {}).get("files", [])), rows.get("raw"), rows.get("cleaned"),
         rows.get("rejected"), json.dumps({name: table.num_rows for name, table in tables.items()})))


def _missing_ddl(cursor: Any, quoted: str, schema: str, tables: dict[str, pa.Table]) -> list[str]:
    """The DDL for those of the schema and its tables that do not exist yet (none on every
    run after the first), looked up in the catalog, which every role may read: a role
    without CREATE then still delivers into the tables an owner created."""
    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", (schema,))
    schema_exists = cursor.fetchone()[0]
    cursor.execute("SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')", (schema,))
    existing = {row[0] for row in cursor.fetchall()}
    wanted = {"runs": RUNS_DDL.format(schema=quoted), "run_documents": DOCUMENTS_DDL.format(schema=quoted),
              **{name: table_ddl(quoted, name) for name in tables}}
    return ([] if schema_exists else [f"CREATE SCHEMA IF NOT EXISTS {quoted}"]) + \
        [ddl for name, ddl in wanted.items() if name not in existing]


def _with_run_id(table: pa.Table, run_id: str) -> pa.Table:
    return table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string())) \
        .replace_schema_metadata(None)


def _rollback_quietly(connection: Any) -> None:
    try:
        connection.rollback()
    except Exception:  # the connection is lost: the server rolls back by itself
        pass

