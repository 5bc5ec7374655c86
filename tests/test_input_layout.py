"""Inputs that differ from SPEC's CSV: another delimiter, other header names (a column
mapping, recorded in lineage), and standard input. Each gives the same figures, byte for
byte, as the same data in SPEC's form, in every mode."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import PUBLISHED_FILES, engine_command, run_cli, run_engine, write_csv
from test_modes import TRICKY_ROWS

pytestmark = pytest.mark.usefixtures("isolated_openlineage_config")
OWN_HEADER = ("Datum", "Artikel", "Betrag", "Kunde")
MAPPING = "date=Datum,product_id=Artikel,amount=Betrag,customer_id=Kunde"
MODES = [("pandas", {}), ("dask", {"partition_size": "300B"}),
         ("distributed", {"partition_size": "300B", "cluster.workers": 2})]


def _published(output) -> dict[str, bytes]:
    """The published files but the quarantine, whose `file` column names each input."""
    return {name: (output / name).read_bytes() for name in PUBLISHED_FILES if name != "rejected_rows.parquet"}


def _quarantine_without_file(output) -> pa.Table:
    return pq.read_table(output / "rejected_rows.parquet").drop_columns(["file"])


def _exported(rows, path, delimiter, header=OWN_HEADER):
    """The rows as another system exports them: its own header and delimiter (quoting
    what needs it, as csv.writer does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _record(output) -> list[dict]:
    return [json.loads(line) for line in (output / "lineage" / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("mode,settings", MODES, ids=[m for m, _ in MODES])
def test_a_semicolon_export_with_its_own_header_gives_the_same_bytes(tmp_path, mode, settings):
    standard = write_csv(tmp_path / "standard" / "sales.csv", TRICKY_ROWS)
    exported = _exported(TRICKY_ROWS, tmp_path / "export" / "sales.csv", ";")
    run_engine(standard, tmp_path / "out-standard", mode=mode, **settings)
    run_engine(exported, tmp_path / "out-export", mode=mode, **settings,
               **{"input_layout.delimiter": ";", "input_layout.columns": MAPPING})
    assert _published(tmp_path / "out-export") == _published(tmp_path / "out-standard")
    assert _quarantine_without_file(tmp_path / "out-export").equals(
        _quarantine_without_file(tmp_path / "out-standard"))


def test_tab_separated_with_renamed_columns_on_the_command_line(tmp_path):
    standard = write_csv(tmp_path / "standard.csv", TRICKY_ROWS)
    exported = _exported(TRICKY_ROWS, tmp_path / "export.tsv", "\t", header=("Date", "product_id", "Total", "customer_id"))
    assert run_cli("run", str(standard), "--output", str(tmp_path / "a")).returncode == 0
    done = run_cli("run", str(exported), "--output", str(tmp_path / "b"), "--delimiter", "tab",
                   "--columns", "date=Date,amount=Total")
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "b") == _published(tmp_path / "a")


def test_the_mapping_is_recorded_in_lineage(spec, tmp_path):
    from openlineage_schemas import validate_event

    exported = _exported(TRICKY_ROWS, tmp_path / "export.csv", ";")
    run_engine(exported, tmp_path / "out", **{"input_layout.delimiter": ";", "input_layout.columns": MAPPING})
    events = _record(tmp_path / "out")
    for event in events:
        validate_event(event)
    (dataset,) = events[-1]["inputs"]
    assert [f["name"] for f in dataset["facets"]["schema"]["fields"]] == list(OWN_HEADER)
    how = dataset["inputFacets"]["salesEngineInput"]
    assert how["delimiter"] == ";"
    assert how["columnMapping"] == {"date": "Datum", "product_id": "Artikel", "amount": "Betrag",
                                    "customer_id": "Kunde"}
    assert set(dataset["inputFacets"]["dataQualityMetrics"]["columnMetrics"]) == set(OWN_HEADER)
    daily = next(d for d in events[-1]["outputs"] if d["name"].endswith("daily_sales_summary.csv"))
    total = daily["facets"]["columnLineage"]["fields"]["total_amount"]["inputFields"]
    assert {f["field"] for f in total} == {"Betrag"}
    assert {f["field"] for f in daily["facets"]["columnLineage"]["fields"]["date"]["inputFields"]} == {"Datum"}


def test_a_parquet_file_with_its_own_column_names(tmp_path):
    standard = write_csv(tmp_path / "standard.csv", TRICKY_ROWS)
    columns = list(zip(*TRICKY_ROWS))
    pq.write_table(pa.table({own: pa.array(column) for own, column in zip(OWN_HEADER, columns)}),
                   tmp_path / "export.parquet")
    run_engine(standard, tmp_path / "a")
    run_engine(tmp_path / "export.parquet", tmp_path / "b", **{"input_layout.columns": MAPPING})
    assert _published(tmp_path / "b") == _published(tmp_path / "a")


def test_an_unmapped_column_of_a_mapped_name_is_not_read(tmp_path):
    """`date=Datum` says where the dates are: a column that happens to be called `date`
    is then just another column."""
    rows = [(day, "junk", product, amount, customer) for day, product, amount, customer in TRICKY_ROWS]
    exported = _exported(rows, tmp_path / "export.csv", ",", header=("Datum", "date", "product_id", "amount",
                                                                    "customer_id"))
    standard = write_csv(tmp_path / "standard.csv", TRICKY_ROWS)
    run_engine(standard, tmp_path / "a")
    run_engine(exported, tmp_path / "b", **{"input_layout.columns": "date=Datum"})
    assert _published(tmp_path / "b") == _published(tmp_path / "a")


@pytest.mark.parametrize("args, code, message", [
    (["--columns", "amount=Total"], 3, "the header has no column 'Total'"),
    (["--columns", "price=Total"], 2, "'price' is not one of the engine's columns"),
    (["--columns", "amount"], 2, "'amount' is not COLUMN=HEADER"),
    (["--columns", "amount=Betrag,date=Betrag"], 2, "header column 'Betrag' is mapped twice"),
    (["--delimiter", "::"], 2, "delimiter '::' is not one character"),
])
def test_a_bad_layout_is_one_line_naming_what_is_wrong(tmp_path, args, code, message):
    data = write_csv(tmp_path / "sales.csv", TRICKY_ROWS)
    done = run_cli("run", str(data), "--output", str(tmp_path / "out"), *args)
    assert done.returncode == code, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_semicolon_file_without_the_delimiter_gets_a_hint(tmp_path):
    exported = _exported(TRICKY_ROWS, tmp_path / "export.csv", ";", header=("date", "product_id", "amount"))
    done = run_cli("run", str(exported), "--output", str(tmp_path / "out"))
    assert done.returncode == 3
    assert f"{exported}: missing required columns" in done.stderr and "--delimiter ';'" in done.stderr


def test_standard_input_is_read_like_a_file_and_named_dev_stdin(tmp_path):
    data = write_csv(tmp_path / "sales.csv", TRICKY_ROWS)
    assert run_cli("run", str(data), "--output", str(tmp_path / "a")).returncode == 0
    audit = tmp_path / "audit.jsonl"
    with open(data, "rb") as stdin:
        done = subprocess.run(engine_command("run", "-", "--output", str(tmp_path / "b")), stdin=stdin,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "ENGINE__AUDIT__PATH": str(audit)})
    assert done.returncode == 0, done.stderr
    assert _published(tmp_path / "b") == _published(tmp_path / "a")
    (read,) = json.loads(audit.read_text().splitlines()[-1])["inputs"]
    assert (read["path"], read["sha256"]) == ("/dev/stdin", hashlib.sha256(data.read_bytes()).hexdigest())
    quarantine = pq.read_table(tmp_path / "b" / "rejected_rows.parquet")
    assert set(quarantine["file"].to_pylist()) == {"/dev/stdin"}
    (dataset,) = _record(tmp_path / "b")[-1]["inputs"]
    assert (dataset["namespace"], dataset["name"]) == ("file", "/dev/stdin")
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.startswith(".spool-")]


def test_bad_standard_input_names_dev_stdin(tmp_path):
    done = subprocess.run(engine_command("run", "-", "--output", str(tmp_path / "out")),
                          input="date,product_id\n2024-01-01,P1\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 3
    assert done.stderr.strip() == "error: /dev/stdin: missing required columns: amount"
