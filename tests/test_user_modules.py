"""A user's module adds nodes to the dataflow: they run in every mode, in the engine's one
pass over the input, and are published beside the engine's outputs.

The reference is DuckDB SQL over the rows the oracle keeps (tests/oracle.py's rules).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, run_engine
from oracle import CLASSIFY_SQL, _load_raw

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sales_extensions.py"
USER_FILES = ("product_totals.csv", "product_totals.parquet", "customers_per_day.csv", "customers_per_day.parquet",
              "best_product.json")


def _reference(source: Path) -> dict:
    con = duckdb.connect()
    try:
        _load_raw(con, [str(source)])
        con.execute(CLASSIFY_SQL)
        con.execute("CREATE VIEW cleaned AS SELECT r.day, r.p AS product_id, r.cents, raw.customer_id "
                    "FROM rows r JOIN (SELECT rowid AS n, customer_id FROM raw) raw USING (n) WHERE r.reason IS NULL")
        products = con.execute("SELECT product_id, sum(cents)::BIGINT, count(*) FROM cleaned "
                               "GROUP BY product_id ORDER BY product_id").fetchall()
        customers = con.execute("SELECT strftime(day, '%Y-%m-%d'), count(DISTINCT customer_id) FROM cleaned "
                                "WHERE customer_id IS NOT NULL GROUP BY day ORDER BY day").fetchall()
    finally:
        con.close()
    best = sorted(products, key=lambda p: (-p[1], p[0]))[0]
    return {
        "product_totals": [{"product_id": p, "total_cents": str(t), "sales": str(n)} for p, t, n in products],
        "customers_per_day": [{"date": d, "customers": str(c)} for d, c in customers],
        "best_product": {"product_id": best[0], "total_cents": int(best[1]), "products": len(products),
                         "top_days_setting": 5},
    }


def _published(output: Path) -> dict:
    found = {}
    for name in ("product_totals", "customers_per_day"):
        with open(output / f"{name}.csv", newline="", encoding="utf-8") as handle:
            found[name] = list(csv.DictReader(handle))
    found["best_product"] = json.loads((output / "best_product.json").read_text())
    return found


@pytest.fixture(scope="module")
def sales(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user-modules") / "sales.csv"
    done = run_cli("generate", str(path), "--rows", "30000", "--seed", "3")
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize("mode, settings", [
    ("pandas", {}),
    ("dask", {"partition_size": "256KiB"}),
    ("distributed", {"partition_size": "512KiB", "cluster.workers": 2}),
])
def test_the_example_module_in_every_mode_matches_duckdb(tmp_path, sales, mode, settings):
    result = run_engine(sales, tmp_path / "out", mode=mode, **{"dataflow.modules": [str(EXAMPLE)]}, **settings)
    assert _published(tmp_path / "out") == _reference(sales)
    published = {f.path.name for f in result.files}
    assert set(USER_FILES) <= published
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert set(report["user_outputs"]) == {"product_totals", "customers_per_day", "best_product"}


def test_the_example_gives_the_same_bytes_in_every_mode_through_the_cli(tmp_path, sales):
    copies = {}
    for mode, extra in (("pandas", ()), ("dask", ("--partition-size", "300KiB"))):
        out = tmp_path / mode
        done = run_cli("run", str(sales), "--output", str(out), "--mode", mode, "--module", str(EXAMPLE), *extra)
        assert done.returncode == 0, done.stderr
        copies[mode] = {name: (out / name).read_bytes() for name in USER_FILES}
    assert copies["pandas"] == copies["dask"]
    schema = pq.read_schema(tmp_path / "pandas" / "product_totals.parquet")
    assert [(f.name, str(f.type)) for f in schema] == [("product_id", "string"), ("total_cents", "int64"),
                                                       ("sales", "int64")]


def test_an_importable_module_name_works_too(tmp_path, sales, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    run_engine(sales, tmp_path / "out", mode="pandas", **{"dataflow.modules": ["sales_extensions"]})
    assert _published(tmp_path / "out") == _reference(sales)


@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_a_user_node_does_not_read_the_input_again(tmp_path, sales, mode, monkeypatch):
    """Every read task that runs is counted (the real reader, wrapped): as many with user
    nodes over cleaned_sales_data as without, one per partition."""
    from engine.sources import readers

    reads: list[int] = []
    real = readers.read_task

    def counted(task, *args, **kwargs):
        reads.append(task.index)
        return real(task, *args, **kwargs)

    monkeypatch.setattr(readers, "read_task", counted)
    settings = {"partition_size": "128KiB"}
    plain = run_engine(sales, tmp_path / "plain", mode=mode, **settings)
    plain_reads, reads[:] = sorted(reads), []
    run_engine(sales, tmp_path / "extended", mode=mode, **{"dataflow.modules": [str(EXAMPLE)]}, **settings)
    partitions = plain.report["input"]["partitions"]
    assert partitions > 3
    assert sorted(reads) == plain_reads == list(range(partitions))


def test_a_module_that_cannot_be_loaded_is_a_usage_error(tmp_path, sales):
    done = run_cli("run", str(sales), "--output", str(tmp_path / "out"), "--module", str(tmp_path / "missing.py"))
    assert done.returncode == 2
    assert "missing.py" in done.stderr and "Traceback" not in done.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("def total(cleaned_sales_data) -> int:\n    return len(cleaned_sales_data\n")
    done = run_cli("run", str(sales), "--output", str(tmp_path / "out"), "--module", str(broken))
    assert done.returncode == 2 and str(broken) in done.stderr


def test_user_outputs_are_output_datasets_with_schema_and_column_lineage(tmp_path, sales, spec):
    from openlineage_schemas import validate_event

    run_engine(sales, tmp_path / "out", mode="pandas", **{"dataflow.modules": [str(EXAMPLE)]})
    events = [json.loads(line) for line in (tmp_path / "out" / "lineage" / "events.jsonl").read_text().splitlines()]
    complete = events[-1]
    assert complete["eventType"] == "COMPLETE"
    for event in events:
        validate_event(event)
    outputs = {Path(o["name"]).name: o for o in complete["outputs"]}
    totals = outputs["product_totals.parquet"]
    assert [f["name"] for f in totals["facets"]["schema"]["fields"]] == ["product_id", "total_cents", "sales"]
    lineage = totals["facets"]["columnLineage"]
    assert _how(lineage["fields"]["total_cents"]) == {("amount", "DIRECT", "AGGREGATION")}
    assert _how(lineage["fields"]["product_id"]) == {("product_id", "DIRECT", "TRANSFORMATION")}
    assert ("product_id", "INDIRECT", "GROUP_BY") in _how(lineage["dataset"])
    assert ("amount", "INDIRECT", "FILTER") in _how(lineage["dataset"])  # the cleaning rules
    # best_product declares nothing: it gets every column product_totals derives from
    best = outputs["best_product.json"]["facets"]["columnLineage"]
    assert {f["field"] for f in best["dataset"]} == {"amount", "product_id", "date"}


def _how(lineage: dict | list) -> set[tuple[str, str, str | None]]:
    fields = lineage["inputFields"] if isinstance(lineage, dict) else lineage
    return {(f["field"], t["type"], t.get("subtype")) for f in fields for t in f["transformations"]}


def test_until_shows_a_user_node_and_honours_skip_malformed_lines(tmp_path, sales):
    done = run_cli("run", str(sales), "--until", "product_totals", "--module", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "product_totals" in done.stdout and "total_cents" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("date,product_id,amount,customer_id\n2024-01-01,P1,1.00,C1\n2024-01-02,P2,2.00,C2,extra\n")
    assert run_cli("run", str(bad), "--until", "data_quality_metrics").returncode == 3
    done = run_cli("run", str(bad), "--until", "data_quality_metrics", "--skip-malformed-lines")
    assert done.returncode == 0, done.stderr
    assert "'malformed_line': 1" in done.stdout or '"malformed_line": 1' in done.stdout, done.stdout


@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_id_dtype_is_what_user_nodes_see(tmp_path, sales, mode):
    module = tmp_path / "dtypes.py"
    module.write_text("import pandas as pd\n\n"
                      "def product_id_dtype(cleaned_sales_data: pd.DataFrame) -> dict:\n"
                      "    return {'dtype': str(cleaned_sales_data['product_id'].dtype)}\n")
    for id_dtype, expected in (("category", "category"), ("string", "string")):
        out = tmp_path / id_dtype
        run_engine(sales, out, mode=mode, id_dtype=id_dtype, **{"dataflow.modules": [str(module)]})
        seen = json.loads((out / "product_id_dtype.json").read_text())["dtype"]
        assert seen.startswith(expected), seen


def test_engine_dag_shows_the_user_nodes(tmp_path):
    done = run_cli("dag", "--module", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert '"cleaned_sales_data" -> "product_totals"' in done.stdout
    assert '"product_totals" -> "best_product"' in done.stdout


def test_every_mode_gives_the_example_the_same_bytes(tmp_path, sales):
    copies = []
    for mode, settings in (("pandas", {}), ("dask", {"partition_size": "200KiB"}),
                           ("distributed", {"partition_size": "300KiB", "cluster.workers": 2})):
        run_engine(sales, tmp_path / mode, mode=mode, **{"dataflow.modules": [str(EXAMPLE)]}, **settings)
        copies.append({name: (tmp_path / mode / name).read_bytes() for name in USER_FILES})
    assert copies[0] == copies[1] == copies[2]


def test_pandas_mode_does_not_import_dask(tmp_path, sales):
    """pandas mode is for a fast start: neither Dask nor distributed is imported."""
    probe = ("import sys; from engine.cli import main; code = main(sys.argv[1:]); "
             "print('DASK' if any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules) "
             "else 'NO-DASK'); sys.exit(code)")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", probe, "run", str(sales), "--output", str(tmp_path / "out"),
                           "--mode", "pandas"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO-DASK"
