"""PostgreSQL as a source and a sink, against a real server (tests/postgres_server.py).

A table or a query gives the same published bytes as the same rows written as CSV, in
every mode, typed (`date`, `numeric(12,2)`) or all text; a table is read in several page
ranges, each row once, all in one snapshot. The sink holds exactly the local outputs, a
run replaces the previous one atomically, and a failing run writes nothing anywhere. Bad
input and an unusable server are one `error:` line with their exit code, never showing
the password.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import socket
import threading
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import PUBLISHED_FILES, run_cli, run_engine, write_csv
from postgres_server import postgres_server  # noqa: F401  (the session's server)
from test_modes import TRICKY_ROWS

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")

DATABASE = "sales_tests"
COMPARED = tuple(name for name in PUBLISHED_FILES if name != "rejected_rows.parquet")  # it names its input
TABLES = ("daily_sales_summary", "enriched_daily_summary", "weekly_aggregation")
DOCUMENTS = ("data_quality_metrics", "trend_analysis", "top_performing_days")
MODES = [("pandas", {}), ("dask", {"partition_size": "8KiB"}),
         pytest.param("distributed", {"partition_size": "8KiB", "cluster.workers": 2}, marks=pytest.mark.slow)]


def _generated_rows(tmp_path_factory) -> list[tuple]:
    """2,000 dirty generated rows (every reject reason, duplicates) plus the tricky rows,
    as text; an empty cell is None (a CSV reader reads it as null)."""
    from engine.sources.generate import generate_sales

    path = tmp_path_factory.mktemp("generated") / "sales.csv"
    generate_sales(path, 2000, seed=11, days=120, products=40)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [tuple(row) for row in csv.reader(handle)][1:]
    return [tuple(cell if cell != "" else None for cell in row) for row in [*rows, *TRICKY_ROWS]]


def _typed(row: tuple) -> tuple:
    """The row as a typed table holds it: a date that is not one is NULL, an amount is its
    value to the cent (numeric(12,2)) or NULL."""
    date, product, amount, customer = row
    try:
        date = date if date and len(date) == 10 and dt.date.fromisoformat(date) else None
    except ValueError:
        date = None
    try:
        value = Decimal(amount.strip()) if amount else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or abs(value) >= 10**10:
        return date, product, None, customer
    cents = value.quantize(Decimal("0.01"))
    return date, product, str(cents.copy_abs() if cents.is_zero() else cents), customer  # no -0.00 in numeric


def _csv(path: Path, rows: list[tuple]) -> Path:
    return write_csv(path, [tuple("" if cell is None else cell for cell in row) for row in rows])


def _published(output: Path) -> dict[str, bytes]:
    return {name: (output / name).read_bytes() for name in COMPARED}


@pytest.fixture(scope="module")
def sales(postgres_server, tmp_path_factory):  # noqa: F811
    """The test database: `typed_sales` (date, text, numeric(12,2), text) and `text_sales`
    (all text), and each one's rows as a CSV file with the engine's local outputs for it."""
    server = postgres_server
    server.create_database(DATABASE)
    rows = _generated_rows(tmp_path_factory)
    typed = [_typed(row) for row in rows]
    with server.connect(DATABASE, user=server.user) as connection:
        connection.execute("CREATE TABLE typed_sales (date date, product_id text, amount numeric(12,2), "
                           "customer_id text, note text DEFAULT 'ignored')")
        connection.execute("CREATE TABLE text_sales (date text, product_id text, amount text, customer_id text)")
        for table, data in (("typed_sales", typed), ("text_sales", rows)):
            with connection.cursor().copy(f"COPY {table} (date, product_id, amount, customer_id) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        connection.execute("ANALYZE typed_sales, text_sales")
    folder = tmp_path_factory.mktemp("reference")
    references, files = {}, {}
    for name, data in (("typed", typed), ("text", rows)):
        files[name] = _csv(folder / f"{name}.csv", data)
        run_engine(files[name], folder / f"out-{name}", mode="pandas")
        references[name] = folder / f"out-{name}"
    return {"server": server, "url": server.url(DATABASE), "rows": {"typed": typed, "text": rows},
            "csv": files, "references": references, "env": {"PGPASSWORD": server.password}}


@pytest.fixture
def pgpassword(sales, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", sales["server"].password)


def _pg_run(sales, output, mode="pandas", **settings):
    return run_engine(sales["url"], output, mode=mode, **settings)


# -- the source ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,settings", MODES, ids=["pandas", "dask", "distributed"])
@pytest.mark.parametrize("kind", ["typed", "text"])
def test_a_table_gives_the_bytes_of_its_rows_as_csv(sales, pgpassword, tmp_path, kind, mode, settings):
    result = _pg_run(sales, tmp_path / "out", mode, **settings, **{"source.table": f"{kind}_sales"})
    assert _published(tmp_path / "out") == _published(sales["references"][kind])
    assert result.report["input"]["files"][0]["path"].endswith(f"/{DATABASE}.public.{kind}_sales")
    if mode != "pandas":
        assert result.report["input"]["partitions"] > 3  # page ranges, read on the workers


@pytest.mark.parametrize("mode,settings", [MODES[0], MODES[2]], ids=["pandas", "distributed"])
@pytest.mark.parametrize("kind", ["typed", "text"])
def test_a_query_gives_the_bytes_of_its_rows_as_csv(sales, pgpassword, tmp_path, kind, mode, settings):
    query = f"SELECT amount, customer_id, product_id, date FROM {kind}_sales;"
    result = _pg_run(sales, tmp_path / "out", mode, **settings, **{"source.query": query})
    assert _published(tmp_path / "out") == _published(sales["references"][kind])
    assert result.report["input"]["partitions"] == 1


def test_a_double_precision_amount_arrives_as_its_value(sales, pgpassword, tmp_path):
    query = "SELECT date, product_id, amount::float8 AS amount, customer_id FROM typed_sales"
    _pg_run(sales, tmp_path / "out", **{"source.query": query})
    assert _published(tmp_path / "out") == _published(sales["references"]["typed"])


def test_renamed_columns_are_read_by_the_input_layout(sales, pgpassword, tmp_path):
    sales["server"].execute("CREATE VIEW renamed AS SELECT date AS sold_on, product_id, amount AS total, "
                            "customer_id FROM text_sales", database=DATABASE, user=sales["server"].user)
    _pg_run(sales, tmp_path / "out", **{"source.table": "renamed", "input_layout.columns": "date=sold_on,amount=total"})
    assert _published(tmp_path / "out") == _published(sales["references"]["text"])


def _source(sales, table=None, query=None):
    from engine.config import load_config
    from engine.storage.postgresql import PostgresSource

    config = load_config(overrides={"input": sales["url"], "source.table": table, "source.query": query}, environ={})
    source = PostgresSource(sales["url"])
    return source, source.resolve(sales["url"], config)[0]


def _rows_of(tasks) -> list[tuple]:
    rows = []
    for task in tasks:
        table = task.fetch()
        assert table.column_names == ["date", "product_id", "amount", "customer_id"]
        rows += [tuple(row.values()) for row in table.to_pylist()]
    return sorted(rows, key=repr)


def test_page_ranges_cover_every_row_once_in_tid_range_scans(sales, pgpassword):
    source, dataset = _source(sales, table="text_sales")
    tasks = source.tasks(dataset, 0, 8192)
    assert len(tasks) > 3
    assert _rows_of(tasks) == sorted(sales["rows"]["text"], key=repr)
    source.close()
    with sales["server"].connect(DATABASE) as connection:
        for task in tasks[1:-1]:
            plan = "\n".join(row[0] for row in connection.execute("EXPLAIN " + task.fetch.sql))
            assert "Tid Range Scan" in plan and "Seq Scan" not in plan


def test_the_partitions_read_the_table_as_it_was_when_the_run_began(sales, pgpassword):
    server = sales["server"]
    server.execute("CREATE TABLE moving AS SELECT * FROM text_sales", database=DATABASE, user=server.user)
    source, dataset = _source(sales, table="moving")
    tasks = source.tasks(dataset, 0, 8192)
    before = _rows_of([tasks[0]])
    deleted = server.execute("DELETE FROM moving WHERE ctid < '(2,0)'::tid RETURNING 1", database=DATABASE)
    server.execute("INSERT INTO moving SELECT * FROM text_sales", database=DATABASE)
    assert _rows_of([tasks[0]]) == before
    assert _rows_of(tasks) == sorted(sales["rows"]["text"], key=repr)
    source.close()
    later, dataset = _source(sales, table="moving")  # a later run sees the change
    assert len(_rows_of(later.tasks(dataset, 0, 8192))) == 2 * len(sales["rows"]["text"]) - len(deleted) > 0
    later.close()


def test_a_partitioned_table_is_read_in_page_ranges_of_its_partitions(sales, pgpassword):
    server = sales["server"]
    for statement in ("CREATE TABLE by_year (date text, product_id text, amount text, customer_id text) "
                      "PARTITION BY LIST (substr(coalesce(date, ''), 1, 4))",
                      "CREATE TABLE by_year_2022 PARTITION OF by_year FOR VALUES IN ('2022')",
                      "CREATE TABLE by_year_rest PARTITION OF by_year DEFAULT",
                      "INSERT INTO by_year SELECT * FROM text_sales"):
        server.execute(statement, database=DATABASE, user=server.user)
    source, dataset = _source(sales, table="by_year")
    tasks = source.tasks(dataset, 0, 8192)
    assert len(tasks) > 1
    assert _rows_of(tasks) == sorted(sales["rows"]["text"], key=repr)
    source.close()


def _snapshots_held(server) -> int:
    """The engine's sessions idle in a transaction (a source's snapshot holder) on the database."""
    return server.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = "
                          "'sales-engine' AND state LIKE 'idle in transaction%%'", (DATABASE,))[0][0]


def test_close_ends_the_snapshot_once_and_for_all(sales, pgpassword):
    from engine.errors import ServiceError
    from engine.storage.postgresql import PostgresSource

    PostgresSource(sales["url"]).close()  # before resolve: nothing to end
    server = sales["server"]
    before = _snapshots_held(server)
    source, dataset = _source(sales, table="text_sales")
    tasks = source.tasks(dataset, 0, 8192)
    assert _snapshots_held(server) == before + 1
    source.close()
    source.close()
    assert _snapshots_held(server) == before
    with pytest.raises(ServiceError, match="the run's snapshot cannot be imported"):
        tasks[0].fetch()


def test_the_dataset_types_are_the_sql_types_as_stored(sales, pgpassword):
    source, dataset = _source(sales, table="typed_sales")
    source.close()
    assert dict(zip(dataset.own_columns, dataset.types)) == {
        "date": "date", "product_id": "text", "amount": "numeric(12,2)", "customer_id": "text", "note": "text"}
    source, dataset = _source(sales, query="SELECT date::text AS date, product_id::varchar(20) AS product_id, "
                                           "amount::float8 AS amount, 7::int AS customer_id, amount::numeric AS n, "
                                           "2::int8 AS b, 'x'::char(2) AS c FROM typed_sales")
    source.close()
    assert dataset.types == ("text", "character varying", "double precision", "integer", "numeric", "bigint",
                             "character")


def test_page_ranges_are_contiguous_and_open_at_both_ends():
    from engine.storage.postgresql import page_ranges

    assert page_ranges(0, 5) == [(None, None)]
    assert page_ranges(10, 1) == [(None, None)]
    assert page_ranges(10, 3) == [(None, 4), (4, 8), (8, None)]
    assert page_ranges(3, 100) == [(None, 1), (1, 2), (2, None)]


def test_a_database_input_is_never_incremental(sales):
    from engine.config import load_config
    from engine.incremental.planning import applies

    for url in (sales["url"], sales["url"] + "?sslmode=disable&application_name=x"):
        assert not applies(load_config(overrides={"input": url, "source.table": "t"}, environ={}), False)


# -- the sink --------------------------------------------------------------------------------


def _sink_rows(server, schema: str, table: str) -> list[dict]:
    with server.connect(DATABASE) as connection:
        cursor = connection.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 2')
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def _assert_sink_holds(server, schema: str, output: Path, run_id: str) -> None:
    for name in TABLES:
        rows = _sink_rows(server, schema, name)
        assert {row.pop("run_id") for row in rows} == {run_id}
        assert rows == pq.read_table(output / f"{name}.parquet").to_pylist()
    documents = {row["name"]: row for row in _sink_rows(server, schema, "run_documents")}
    assert set(documents) == set(DOCUMENTS)
    for name in DOCUMENTS:
        assert documents[name]["run_id"] == run_id
        assert documents[name]["document"] == json.loads((output / f"{name}.json").read_text())


def test_the_sink_holds_the_local_outputs_and_records_the_run(sales, pgpassword, tmp_path):
    server = sales["server"]
    result = _pg_run(sales, tmp_path / "out", **{"source.table": "typed_sales", "sink.url": sales["url"]})
    _assert_sink_holds(server, "sales_engine", tmp_path / "out", result.run_id)
    run = server.execute("SELECT engine_version, mode, raw_rows, cleaned_rows, output_rows FROM sales_engine.runs "
                         "WHERE run_id = %s", (result.run_id,), database=DATABASE)
    assert run == [(result.report["engine_version"], "pandas", result.report["rows"]["raw"],
                    result.report["rows"]["cleaned"], {name: len(result.results[name]) for name in TABLES})]
    types = server.execute("SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid "
                           "= 'sales_engine.daily_sales_summary'::regclass AND attnum > 0 ORDER BY attnum",
                           database=DATABASE)
    assert types == [("run_id", "text"), ("date", "date"), ("total_amount", "numeric(18,2)"),
                     ("avg_amount", "numeric(18,2)"), ("transaction_count", "bigint"), ("unique_products", "bigint")]


def test_the_sink_writes_in_the_configured_schema(sales, pgpassword, tmp_path):
    schema = "Reports 2024"
    result = run_engine(sales["csv"]["text"], tmp_path / "out", **{"sink.url": sales["url"], "sink.schema": schema})
    _assert_sink_holds(sales["server"], schema, tmp_path / "out", result.run_id)


def test_a_loading_role_with_only_usage_insert_and_delete_delivers(sales, pgpassword, tmp_path):
    """docs/storage.md, "Privileges": an owner's first run creates the schema and tables;
    a role with only USAGE on the schema and INSERT, DELETE on its tables writes the next."""
    server = sales["server"]
    schema = "Loaded by loader"
    first = run_engine(sales["csv"]["typed"], tmp_path / "first", **{"sink.url": sales["url"], "sink.schema": schema})
    server.create_role("loader", "loader-pw")
    for statement in (f'GRANT USAGE ON SCHEMA "{schema}" TO loader',
                      f'GRANT INSERT, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO loader'):
        server.execute(statement, database=DATABASE, user=server.user)
    assert server.execute("SELECT has_database_privilege('loader', %s, 'CREATE'), has_schema_privilege('loader', "
                          "%s, 'CREATE'), has_table_privilege('loader', %s, 'SELECT')",
                          (DATABASE, schema, f'"{schema}".runs'), database=DATABASE) == [(False, False, False)]
    loader = server.url(DATABASE, user="loader", password="loader-pw")
    second = run_engine(sales["csv"]["text"], tmp_path / "second", **{"sink.url": loader, "sink.schema": schema})
    _assert_sink_holds(server, schema, tmp_path / "second", second.run_id)
    assert {row[0] for row in server.execute(f'SELECT run_id FROM "{schema}".runs', database=DATABASE)} == \
        {first.run_id, second.run_id}


def _run_ids(server, schema="sales_engine", connection=None) -> set[str]:
    """The run ids the sink's tables show (in `connection`'s transaction, if given)."""
    sql = " UNION ".join(f'SELECT DISTINCT run_id FROM "{schema}".{name}' for name in (*TABLES, "run_documents"))
    if connection is not None:
        return {row[0] for row in connection.execute(sql)}
    return {row[0] for row in server.execute(sql, database=DATABASE)}


def test_a_second_run_replaces_the_first_atomically(sales, pgpassword, tmp_path):
    import psycopg

    server = sales["server"]
    first = _pg_run(sales, tmp_path / "first", **{"source.table": "typed_sales", "sink.url": sales["url"]})
    before = {name: _sink_rows(server, "sales_engine", name) for name in TABLES}
    blocker = server.connect(DATABASE)
    reader = server.connect(DATABASE, autocommit=False)
    try:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE sales_engine.weekly_aggregation IN SHARE MODE")  # readers pass, writers wait
        done: dict = {}
        second = threading.Thread(target=lambda: done.update(result=_pg_run(
            sales, tmp_path / "second", **{"source.table": "text_sales", "sink.url": sales["url"]})))
        second.start()
        deadline = time.monotonic() + 120
        while not server.execute("SELECT 1 FROM pg_locks WHERE NOT granted AND relation = "
                                 "'sales_engine.weekly_aggregation'::regclass", database=DATABASE):
            assert second.is_alive() and time.monotonic() < deadline, "the sink never reached the locked table"
            time.sleep(0.05)
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        assert _run_ids(server, connection=reader) == {first.run_id}  # mid-delivery: the first run, whole
        assert {name: _sink_rows(server, "sales_engine", name) for name in TABLES} == before
        blocker.execute("COMMIT")
        second.join(300)
        result = done["result"]
        assert _run_ids(server, connection=reader) == {first.run_id}  # the reader's snapshot: still the first
        reader.rollback()
        assert _run_ids(server, connection=reader) == {result.run_id}
        _assert_sink_holds(server, "sales_engine", tmp_path / "second", result.run_id)
        assert {row[0] for row in server.execute("SELECT run_id FROM sales_engine.runs", database=DATABASE)} >= \
            {first.run_id, result.run_id}
    finally:
        blocker.close()
        reader.close()


def test_a_run_that_fails_writes_nothing_to_the_sink(sales, tmp_path):
    server = sales["server"]
    output = tmp_path / "out"
    url = sales["url"]
    assert run_cli("run", url, "--table", "typed_sales", "--output", str(output), "--sink", url,
                   env=sales["env"]).returncode == 0
    published, runs = _published(output), server.execute("SELECT count(*) FROM sales_engine.runs", database=DATABASE)
    ids = _run_ids(server)
    server.execute("CREATE TABLE no_amount AS SELECT date, product_id FROM text_sales", database=DATABASE,
                   user=server.user)
    done = run_cli("run", url, "--table", "no_amount", "--output", str(output), "--sink", url, env=sales["env"])
    assert done.returncode == 3 and "missing required columns: amount" in done.stderr
    server.create_role("visitor", "visitor-pw")
    server.execute(f"GRANT CONNECT ON DATABASE {DATABASE} TO visitor", database=DATABASE)
    refused = server.url(DATABASE, user="visitor")
    done = run_cli("run", url, "--table", "text_sales", "--output", str(output), "--sink", refused,
                   env={"PGPASSWORD": server.password})
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: sink postgresql://visitor@")
    assert "visitor-pw" not in done.stderr and server.password not in done.stderr
    done = run_cli("run", url, "--table", "text_sales", "--output", str(output), "--sink",
                   server.url(DATABASE, user="visitor", password="visitor-pw"), env={"PGPASSWORD": server.password})
    assert done.returncode == 5 and "permission denied" in done.stderr and "visitor-pw" not in done.stderr
    assert _published(output) == published
    assert server.execute("SELECT count(*) FROM sales_engine.runs", database=DATABASE) == runs
    assert _run_ids(server) == ids


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def previous_output(sales, tmp_path_factory):
    """An output folder holding a successful run's outputs."""
    output = tmp_path_factory.mktemp("previous") / "out"
    done = run_cli("run", sales["url"], "--table", "text_sales", "--output", str(output), env=sales["env"])
    assert done.returncode == 0, done.stderr
    return output


BAD_INPUTS = [
    ("missing table", {"table": "no_such_table"}, 3, "no such table"),
    ("missing column", {"query": "SELECT date, amount FROM text_sales"}, 3, "missing required columns: product_id"),
    ("wrong type", {"query": "SELECT now() AS date, product_id, amount FROM text_sales"}, 3,
     "column 'date' has type timestamp with time zone"),
    ("empty table", {"query": "SELECT * FROM text_sales WHERE false"}, 3, "has no rows"),
    ("bad query", {"query": "SELEKT 1"}, 3, 'syntax error at or near "SELEKT"'),
    ("missing database", {"database": "no_such_db", "table": "text_sales"}, 3, 'database "no_such_db" does not exist'),
    ("unreachable", {"port": "closed", "table": "text_sales"}, 5, "cannot connect to PostgreSQL"),
    ("wrong password", {"password": "wrong-secret", "table": "text_sales"}, 5, "refused the login"),
    ("no table or query", {}, 2, "--table NAME or --query SQL"),
]


@pytest.mark.parametrize("case,given,code,message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_one_line_and_an_exit_code(sales, previous_output, case, given, code, message):
    server = sales["server"]
    password = given.get("password", server.password)
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        url = server.url(given.get("database", DATABASE), password=password,
                         port=closed.getsockname()[1] if given.get("port") else None)
        what = (["--table", given["table"]] if "table" in given else ["--query", given["query"]] if "query" in given
                else [])
        before = _published(previous_output)
        done = run_cli("run", url, *what, "--output", str(previous_output))
    assert done.returncode == code, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert password not in done.stderr + done.stdout
    assert _published(previous_output) == before


def test_a_password_in_the_url_is_never_recorded(sales, tmp_path):
    server = sales["server"]
    url = server.url(DATABASE, password=True)
    audit = tmp_path / "audit.jsonl"
    done = run_cli("run", url, "--table", "typed_sales", "--output", str(tmp_path / "out"), "--sink", url,
                   env={"ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 0, done.stderr
    assert server.password not in done.stdout + done.stderr
    for path in [audit, *(tmp_path / "out").rglob("*")]:
        if path.is_file():
            assert server.password.encode() not in path.read_bytes(), path


def test_without_the_driver_the_error_says_what_to_install(sales, tmp_path):
    shadow = tmp_path / "shadow" / "adbc_driver_postgresql"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    done = run_cli("run", sales["url"], "--table", "text_sales", "--output", str(tmp_path / "out"),
                   env={**sales["env"], "PYTHONPATH": str(shadow.parent)})
    assert done.returncode == 2, done.stderr
    assert "pip install 'sales-engine[postgresql]'" in done.stderr.strip().splitlines()[-1]


def test_the_lineage_names_the_stored_types_in_its_vocabulary(sales, pgpassword, tmp_path):
    from engine.lineage.delivery import RECORD_NAME

    _pg_run(sales, tmp_path / "out", **{"source.table": "typed_sales"})
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / RECORD_NAME).read_text().splitlines()]
    inputs = [dataset for event in events for dataset in event["inputs"] if "schema" in dataset["facets"]]
    assert inputs
    for dataset in inputs:
        assert {f["name"]: f["type"] for f in dataset["facets"]["schema"]["fields"]} == {
            "date": "date", "product_id": "string", "amount": "decimal(12,2)", "customer_id": "string",
            "note": "string"}
