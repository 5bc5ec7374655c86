"""`engine anonymize` in every mode: the same bytes whatever the mode and partition size,
rows and cells exactly as the engine reads them, nothing left behind on bad input, and
the key never in a task name or a log line (real processes, real Dask clusters)."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, write_csv
from engine.config import load_config
from engine.governance import anonymize as anonymize_module
from engine.governance.anonymize import anonymize
from engine.rules.pseudonyms import KEY_ENV, KEY_FILE_ENV, pseudonymize
from engine.rules.validation import RAW_COLUMNS
from engine.sources.generate import generate_sales
from engine.sources.plan import find_files, plan_reads
from engine.sources.readers import read_task

KEY = "a-test-key-of-more-than-16-bytes"
KEY_ONLY = {KEY_ENV: KEY, KEY_FILE_ENV: ""}
INPUT_ERROR = 3
#: Cells a CSV writer must quote (or must not), and values pandas would wrongly call missing.
TRICKY_ROWS = [
    ("2024-02-01", "P,1", '1,000.00', "C1"),
    ("2024-02-01", 'say "hi"', "2.50", "  "),
    ("2024-02-02", "  P2 ", " 3.00", " C1 "),
    ("2024-02-03", "NA", "NaN", ""),
    ("", "", "", "C2"),
    ("2024-02-04", "Пример", "4.00", "Kund ö"),
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """A dirty generated dataset cut into a glob of a plain CSV, a gzip CSV and a CSV of
    tricky cells; also the generated file on its own."""
    folder = tmp_path_factory.mktemp("anonymize-input")
    generated = folder / "generated.csv"
    generate_sales(generated, 30_000, seed=11, customers=5_000)
    header, *lines = generated.read_bytes().splitlines(keepends=True)
    parts = folder / "parts"
    parts.mkdir()
    (parts / "part-1.csv").write_bytes(header + b"".join(lines[:18_000]))
    (parts / "part-2.csv.gz").write_bytes(gzip.compress(header + b"".join(lines[18_000:])))
    write_csv(parts / "part-3.csv", TRICKY_ROWS)
    return {"generated": str(generated), "glob": str(parts / "part-*")}


def _copy(source: str, target: Path, mode: str, **settings) -> Path:
    overrides = {"mode": mode, **settings}
    result = anonymize(source, target, load_config(overrides=overrides, environ={}))
    assert result.mode == mode and result.path == target.resolve()
    return target


def _engine_rows(source: str | Path) -> pa.Table:
    """Every row of `source` as the engine reads it, in order."""
    plan = plan_reads(str(source), find_files(str(source)), 2**30)
    return pa.concat_tables(pa.Table.from_pandas(read_task(t), columns=list(RAW_COLUMNS), preserve_index=False)
                            .replace_schema_metadata(None) for t in plan.tasks)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_copy_is_the_same_bytes_in_every_mode_and_partition_size(sources, external_cluster, tmp_path,
                                                                      monkeypatch, suffix):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setattr(anonymize_module, "PARQUET_ROW_GROUP_ROWS", 7_000)  # several row groups here
    source = sources["glob"]
    reference = _copy(source, tmp_path / f"pandas{suffix}", "pandas")
    copies = [
        _copy(source, tmp_path / f"pandas-small{suffix}", "pandas", partition_size="64KiB"),
        _copy(source, tmp_path / f"dask{suffix}", "dask", partition_size="64KiB", **{"cluster.workers": 2}),
        _copy(source, tmp_path / f"cluster{suffix}", "distributed", partition_size="48KiB",
              **external_cluster.settings()),
    ]
    for copy in copies:
        assert copy.read_bytes() == reference.read_bytes(), copy.name
    if suffix == ".parquet":
        metadata = pq.ParquetFile(reference).metadata
        assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [7_000] * 4 + [2_006]


@pytest.mark.slow  # starts a LocalCluster in a fresh process
def test_embedded_cluster_from_the_command_line_gives_the_same_bytes(sources, tmp_path):
    source = sources["glob"]
    sequential = run_cli("anonymize", source, str(tmp_path / "pandas.csv"), "--mode", "pandas", env=KEY_ONLY)
    assert sequential.returncode == 0, sequential.stderr
    done = run_cli("anonymize", source, str(tmp_path / "cluster.csv"), "--mode", "distributed", "--workers", "2",
                   "--partition-size", "100KiB", env=KEY_ONLY)
    assert done.returncode == 0, done.stderr
    assert "30,006 rows" in done.stdout and "distributed mode" in done.stdout
    assert (tmp_path / "cluster.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
    assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_order_and_cells_are_kept_as_read_and_ids_pseudonymised(sources, tmp_path, monkeypatch, suffix):
    monkeypatch.setenv(KEY_ENV, KEY)
    source = sources["glob"]
    target = _copy(source, tmp_path / f"copy{suffix}", "dask", partition_size="64KiB")
    original = _engine_rows(source)
    copied = _engine_rows(target)
    assert copied.num_rows == original.num_rows == 30_006
    for name in ("date", "product_id", "amount"):
        assert copied[name].to_pylist() == original[name].to_pylist(), name
    assert copied["customer_id"].to_pylist() == pseudonymize(original["customer_id"], KEY.encode()).to_pylist()
    tricky = copied.slice(30_000).to_pylist()
    assert [(r["date"], r["product_id"], r["amount"]) for r in tricky] == [
        ("2024-02-01", "P,1", "1,000.00"), ("2024-02-01", 'say "hi"', "2.50"), ("2024-02-02", "  P2 ", " 3.00"),
        ("2024-02-03", "NA", "NaN"), (None, None, None), ("2024-02-04", "Пример", "4.00")]
    customers = [r["customer_id"] for r in tricky]
    assert customers[1] is None and customers[3] is None  # whitespace-only and empty stay empty
    assert customers[0] != customers[2]  # " C1 " is other text than "C1", as everywhere in the engine
    present = {c for c in original["customer_id"].to_pylist() if c is not None and c.strip(" \t")}
    assert len(present) == len(set(copied["customer_id"].to_pylist()) - {None})  # no two ids merged
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_csv_copy_reads_back_with_any_csv_reader(sources, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    target = _copy(sources["glob"], tmp_path / "copy.csv", "pandas")
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["date", "product_id", "amount", "customer_id"]
    assert len(rows) == 1 + 30_006 and all(len(row) == 4 for row in rows)
    assert [row[:3] for row in rows[-6:]] == [list(r[:3]) for r in TRICKY_ROWS]


def test_a_file_without_customer_id_is_copied_with_the_column_empty(tmp_path):
    source = write_csv(tmp_path / "no-customers.csv", [("2024-01-01", "P1", "1.00"), ("2024-01-02", "P2", "2.00")],
                       header=("date", "product_id", "amount"))
    done = run_cli("anonymize", str(source), str(tmp_path / "copy.csv"), env=KEY_ONLY)
    assert done.returncode == 0, done.stderr
    assert f"{source}: no customer_id column" in done.stdout
    assert (tmp_path / "copy.csv").read_text() == "date,product_id,amount,customer_id\n2024-01-01,P1,1.00,\n" \
                                                  "2024-01-02,P2,2.00,\n"


@pytest.mark.parametrize("mode", ["pandas", "dask", "distributed"])
def test_a_malformed_line_deep_in_the_input_leaves_nothing_behind(external_cluster, tmp_path, mode):
    good = [(f"2024-01-{1 + i % 28:02d}", f"P{i}", "1.00", f"C{i}") for i in range(3_000)]
    folder = tmp_path / "in"
    write_csv(folder / "a.csv", good)
    bad = folder / "b.csv"
    write_csv(bad, [*good, ("2024-01-01", "P1", "1.00", "C1", "surprise"), *good])
    target = tmp_path / "out" / "copy.csv"
    target.parent.mkdir()
    where = ["--scheduler", external_cluster.address] if mode == "distributed" else ["--mode", mode]
    done = run_cli("anonymize", str(folder / "*.csv"), str(target), *where, "--partition-size", "16KiB", env=KEY_ONLY)
    assert done.returncode == INPUT_ERROR, done.stderr
    error_lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, done.stderr
    assert error_lines[0].startswith(f"error: {bad}: line 3002: expected 4 fields, found 5"), done.stderr
    assert "Traceback" not in done.stderr
    assert list(target.parent.iterdir()) == []
    logs = "".join(p.read_text(errors="replace") for p in external_cluster.workdir.glob("*.log"))
    assert KEY not in done.stderr + done.stdout + logs


def test_task_names_never_carry_the_key(sources, external_cluster, tmp_path, monkeypatch):
    from distributed import get_task_stream

    monkeypatch.setenv(KEY_ENV, KEY)
    with external_cluster.client() as client:
        with get_task_stream(client=client) as stream:
            _copy(sources["generated"], tmp_path / "copy.csv", "distributed", partition_size="128KiB",
                  **external_cluster.settings())
        names = [str(task["key"]) for task in stream.data]
    assert len(names) == len(plan_reads(sources["generated"], find_files(sources["generated"]), 128 * 2**10).tasks)
    assert all(name.startswith("anonymize-") for name in names), names
    assert not any(KEY in name for name in names)


def test_refusals_write_nothing(sources, tmp_path):
    copy_of_input = tmp_path / "generated.csv"
    shutil.copy(sources["generated"], copy_of_input)
    before = copy_of_input.read_bytes()
    done = run_cli("anonymize", str(copy_of_input), str(copy_of_input), env=KEY_ONLY)
    assert done.returncode == 2 and "would overwrite its own input" in done.stderr
    assert copy_of_input.read_bytes() == before
    done = run_cli("anonymize", str(copy_of_input), str(tmp_path / "copy.csv"), "--mode", "dask",
                   env={KEY_ENV: "", KEY_FILE_ENV: ""})
    assert done.returncode == 2 and "no pseudonymisation key" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated.csv"]


def test_secret_key_hides_itself_in_reprs_and_survives_pickling():
    import pickle

    from engine.rules.pseudonyms import SecretKey

    secret = SecretKey(KEY.encode())
    assert KEY not in repr(secret) and KEY not in str(secret) and KEY not in repr([secret])
    assert pickle.loads(pickle.dumps(secret)).reveal() == KEY.encode()
