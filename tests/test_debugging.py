"""Debugging: the dataflow graph (`engine dag`), one step at a time (`engine run
--until NODE`), and tracebacks only with `--debug`."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import run_cli, write_csv

from engine.cli.debugging import dataflow_variables

ROWS = [
    ("2024-01-01", "P1", "10.00", "CUST-ALPHA-001"),
    ("2024-01-01", "P2", "5.50", "CUST-BRAVO-002"),
    ("2024-01-02", "P1", "-3.00", "CUST-CHARLIE-003"),  # non_positive_amount
    ("2024-01-02", "", "7.25", "CUST-DELTA-004"),  # missing_product_id
    ("2024-01-03", "P3", "12.00", ""),
    ("2024-01-03", "P3", "abc", "CUST-ECHO-005"),  # invalid_amount
]
CUSTOMERS = [row[3] for row in ROWS if row[3]]


@pytest.fixture
def small_sales(tmp_path):
    return write_csv(tmp_path / "sales.csv", ROWS)


def test_dag_prints_dot_with_every_node_and_dependency():
    done = run_cli("dag")
    assert done.returncode == 0, done.stderr
    dot = done.stdout
    assert dot.startswith("digraph sales_dataflow {") and dot.rstrip().endswith("}")
    variables = dataflow_variables()
    for variable in variables:
        assert f'"{variable.name}" [label="{variable.name}\\n' in dot
        for dependency in variable.required_dependencies:
            assert f'"{dependency}" -> "{variable.name}";' in dot
    edges = re.findall(r'^  "[^"]+" -> "[^"]+";$', dot, flags=re.MULTILINE)
    assert len(edges) == sum(len({*v.required_dependencies, *v.optional_dependencies}) for v in variables)
    for module in ("ingest", "clean", "reduce", "analyse"):
        assert f'subgraph "cluster_{module}"' in dot


def test_dag_renders_svg_and_png_with_graphviz(tmp_path):
    assert shutil.which("dot"), "Graphviz is installed by `make test` (test-system-packages)"
    for name, magic in (("graph.svg", b"<?xml"), ("graph.png", b"\x89PNG\r\n\x1a\n")):
        target = tmp_path / name
        done = run_cli("dag", "--output", str(target))
        assert done.returncode == 0, done.stderr
        assert target.read_bytes().startswith(magic)
        assert target.with_suffix(".dot").read_text().startswith("digraph sales_dataflow {")
        assert done.stdout.splitlines() == [f"wrote {target.with_suffix('.dot')}", f"wrote {target}"]
    assert "sales_reductions" in (tmp_path / "graph.svg").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_dag_renders_pdf_and_refuses_a_form_it_cannot_write(tmp_path):
    target = tmp_path / "graph.pdf"
    done = run_cli("dag", "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert target.read_bytes().startswith(b"%PDF-")
    assert done.stdout.splitlines() == [f"wrote {target.with_suffix('.dot')}", f"wrote {target}"]
    for name in ("graph.jpg", "graph"):
        refused = run_cli("dag", "--output", str(tmp_path / name))
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == [
            f"error: {tmp_path / name}: cannot tell which format to write from the name; "
            "end it with one of .dot, .gv, .svg, .png, .pdf"]
        assert refused.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot", "graph.pdf"]


def test_dag_without_graphviz_writes_dot_and_says_so(tmp_path):
    bare = tmp_path / "bin"  # a PATH without Graphviz
    bare.mkdir()
    target = tmp_path / "graph.svg"
    done = subprocess.run([sys.executable, "-m", "engine", "dag", "--output", str(target)], capture_output=True,
                          text=True, env={**os.environ, "PATH": str(bare)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not target.exists()
    assert target.with_suffix(".dot").read_text().startswith("digraph sales_dataflow {")
    assert done.stdout == f"wrote {target.with_suffix('.dot')}\n"
    assert done.stderr.startswith(f"note: {target}: not rendered: Graphviz's `dot` is not installed")
    assert f"dot -Tsvg {target.with_suffix('.dot')} -o {target}" in done.stderr


def test_dag_to_an_unwritable_place_is_one_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = run_cli("dag", "--output", str(blocker / "graph.dot"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {blocker / 'graph.dot'}: cannot write") and "Traceback" not in done.stderr


@pytest.mark.parametrize("mode", ["pandas", "dask"])
def test_until_summarises_a_frame_masks_customer_ids_and_writes_nothing(tmp_path, small_sales, mode):
    out = tmp_path / "out"
    done = run_cli("run", str(small_sales), "--output", str(out), "--mode", mode, "--partition-size", "64B",
                   "--until", "cleaned_sales_data")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    kind = "Dask DataFrame" if mode == "dask" else "pandas DataFrame"
    assert re.match(rf"cleaned_sales_data: {kind}.*, 3 rows, \d+ columns$", lines[0]), lines[0]
    assert "columns:" in lines and any(re.match(r"  amount_cents\s+int64", line) for line in lines)
    head = done.stdout[done.stdout.index("first 3 rows:"):]
    assert "1000" in head and "550" in head and "1200" in head  # cents of the three kept sales
    assert "***" in head
    assert not any(customer in done.stdout + done.stderr for customer in CUSTOMERS)
    assert not out.exists()  # no outputs, no log file, no lineage


def test_until_a_dict_prints_the_value_a_full_run_publishes(tmp_path, small_sales):
    done = run_cli("run", str(small_sales), "--output", str(tmp_path / "x"), "--until", "rejected_by_reason")
    assert done.returncode == 0, done.stderr
    header, body = done.stdout.split("\n", 1)
    assert header == "rejected_by_reason: dict"
    until = json.loads(body)
    full = run_cli("run", str(small_sales), "--output", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    published = json.loads((tmp_path / "full" / "data_quality_metrics.json").read_text())
    assert until == published["rejected_by_reason"]
    assert until["non_positive_amount"] == until["missing_product_id"] == until["invalid_amount"] == 1
    count = run_cli("run", str(small_sales), "--until", "raw_record_count")
    assert count.stdout == "raw_record_count = 6\n"


def test_until_unknown_node_lists_close_names(tmp_path, small_sales):
    done = run_cli("run", str(small_sales), "--output", str(tmp_path / "out"), "--until", "cleaned_sales")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --until: no dataflow node named 'cleaned_sales'; close names: cleaned_sales_data, "
        + done.stderr.split("cleaned_sales_data, ", 1)[1].rstrip("\n")]
    assert "Traceback" not in done.stderr and done.stdout == ""
    nothing_close = run_cli("run", str(small_sales), "--until", "zzz")
    assert nothing_close.returncode == 2 and "the nodes are: " in nothing_close.stderr
    assert "read_plan" not in nothing_close.stderr  # inputs are not steps


def test_debug_shows_the_traceback_of_an_expected_error(tmp_path):
    missing = tmp_path / "nowhere.csv"
    plain = run_cli("run", str(missing), "--output", str(tmp_path / "out"))
    assert plain.returncode == 3
    assert plain.stderr.strip().splitlines()[-1] == f"error: {missing}: no such file or directory"
    assert "Traceback" not in plain.stderr
    for flags in (["--debug", "run", str(missing)], ["run", str(missing), "--debug"]):
        debug = run_cli(*flags, "--output", str(tmp_path / "out"))
        assert debug.returncode == 3, debug.stderr
        assert "Traceback (most recent call last)" in debug.stderr and "InputDataError" in debug.stderr
        assert debug.stderr.strip().splitlines()[-1] == f"error: {missing}: no such file or directory"


def test_until_reads_the_same_rows_as_the_input(tmp_path, small_sales):
    """The frame --until shows is the input as read: every row, customer ids masked."""
    done = run_cli("run", str(small_sales), "--until", "raw_sales_data", "--mode", "pandas")
    assert done.returncode == 0, done.stderr
    with open(small_sales, newline="") as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    assert f", {expected} rows, " in done.stdout.splitlines()[0]
    assert done.stdout.count("***") == sum(1 for row in ROWS[:5] if row[3])  # ids shown masked, missing ones not
