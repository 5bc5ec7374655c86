"""Column lineage is derived from the dataflow: each node declares its own step
(engine.dataflow.derivation), and the lineage of every published column follows those
declarations through the Hamilton graph down to the input files' columns."""

from __future__ import annotations

import textwrap

import pytest
from hamilton import driver

from conftest import run_cli, write_csv
from engine.dataflow import OUTPUTS, modules
from engine.dataflow.derivation import derives
from engine.errors import ConfigurationError
from engine.lineage.columns import ColumnDerivation, ColumnSource, published_schema

ENGINE_DATASETS = (*OUTPUTS, "rejected_rows")


@pytest.fixture(scope="module")
def engine_lineage() -> ColumnDerivation:
    return ColumnDerivation.from_driver(driver.Builder().with_modules(*modules()).build())


def _lineage(derivation: ColumnDerivation, output: str):
    return derivation.lineage(output, [column for column, _ in published_schema(output)])


def _how(sources: list[ColumnSource]) -> set[tuple]:
    return {(s.column, s.kind, s.subtype) for s in sources}


@pytest.mark.parametrize("output", ENGINE_DATASETS)
def test_every_published_engine_column_declares_its_derivation(engine_lineage, output):
    assert sorted(engine_lineage.declared_columns(output)) == sorted(c for c, _ in published_schema(output))


def test_the_engines_lineage_follows_its_nodes(engine_lineage):
    daily, daily_wide = _lineage(engine_lineage, "daily_sales_summary")
    assert _how(daily["total_amount"]) == {("amount", "DIRECT", "AGGREGATION")}
    assert _how(daily["date"]) == {("date", "DIRECT", "TRANSFORMATION")}  # parsed, then kept as is
    assert _how(daily["unique_products"]) == {("product_id", "DIRECT", "AGGREGATION")}
    # the cleaning rules filter on the three rule columns; the figures are per day, in date order
    assert _how(daily_wide) == {("date", "INDIRECT", "FILTER"), ("product_id", "INDIRECT", "FILTER"),
                                ("amount", "INDIRECT", "FILTER"), ("date", "INDIRECT", "GROUP_BY"),
                                ("date", "INDIRECT", "SORT")}
    enriched, _ = _lineage(engine_lineage, "enriched_daily_summary")
    assert _how(enriched["total_amount_ma7"]) == {("amount", "DIRECT", "AGGREGATION"), ("date", "INDIRECT", "WINDOW")}
    assert _how(enriched["day_of_week"]) == {("date", "DIRECT", "TRANSFORMATION")}
    quality, quality_wide = _lineage(engine_lineage, "data_quality_metrics")
    assert quality_wide == []  # counts over every raw row: no filter shapes them all
    assert {s.column for s in quality["duplicate_count"]} == {"date", "product_id", "amount", "customer_id"}
    rejected, rejected_wide = _lineage(engine_lineage, "rejected_rows")
    assert _how(rejected["amount"]) == {("amount", "DIRECT", "IDENTITY")}  # the cell as read
    assert [(s.column, s.masked) for s in rejected["customer_id"]] == [("customer_id", True)]  # pseudonymised
    assert rejected["line"] == []  # where the row was, not what it held
    assert {s.subtype for s in rejected_wide} == {"FILTER"}


def _graph(**nodes):
    """A ColumnDerivation over a hand-made graph: name -> (tags of a derives(...), dependencies)."""
    def tags(decorator):
        return decorator.tags if decorator is not None else {}

    return ColumnDerivation({name: (tags(decorator), tuple(deps)) for name, (decorator, deps) in nodes.items()})


def test_steps_compose_along_a_chain():
    derivation = _graph(
        read_plan=(None, ()),
        raw=(derives(a="read_plan.amount IDENTITY", d="read_plan.date IDENTITY"), ["read_plan"]),
        parsed=(derives(a="raw.a TRANSFORMATION", d="raw.d TRANSFORMATION", dataset="raw.a FILTER"), ["raw"]),
        total=(derives(t="parsed.a AGGREGATION", dataset="parsed.d GROUP_BY"), ["parsed"]),
        shown=(derives(t="total.t IDENTITY", masked="total.t IDENTITY masked"), ["total"]),
        opaque=(None, ["total"]),
    )
    fields, wide = derivation.lineage("shown", ["t", "masked"])
    assert _how(fields["t"]) == {("amount", "DIRECT", "AGGREGATION")}  # the strongest DIRECT step
    assert [s.masked for s in fields["masked"]] == [True]
    # INDIRECT steps reach every column derived through them, as the dataset's
    assert _how(wide) == {("amount", "INDIRECT", "FILTER"), ("date", "INDIRECT", "GROUP_BY")}
    # a node that declares nothing derives from all its parameters hold, without saying how
    opaque, opaque_wide = derivation.lineage("opaque", ["anything"])
    assert _how(opaque["anything"]) == {("amount", "DIRECT", None)}
    assert _how(opaque_wide) == {("amount", "INDIRECT", "FILTER"), ("date", "INDIRECT", "GROUP_BY")}


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="unknown subtype 'SUMMED'"):
        derives(total="daily.total SUMMED")
    with pytest.raises(ValueError, match="INDIRECT"):
        derives(dataset="daily.date IDENTITY")
    with pytest.raises(ConfigurationError, match="'elsewhere' is not upstream"):
        _graph(read_plan=(None, ()), elsewhere=(None, ()),
               node=(derives(x="elsewhere.x IDENTITY"), ["read_plan"]))
    with pytest.raises(ConfigurationError, match="declares no column 'typo'"):
        _graph(read_plan=(None, ()), raw=(derives(a="read_plan.amount IDENTITY"), ["read_plan"]),
               node=(derives(x="raw.typo IDENTITY"), ["raw"]))


def test_a_user_module_with_a_bad_declaration_fails_before_reading(tmp_path):
    module = tmp_path / "bad_lineage.py"
    module.write_text(textwrap.dedent("""
        import pandas as pd
        from engine.dataflow.derivation import derives

        @derives(n="cleaned_sales_data.amount_cent AGGREGATION")
        def sales_count(cleaned_sales_data: pd.DataFrame) -> int:
            return len(cleaned_sales_data)
    """))
    source = write_csv(tmp_path / "s.csv", [("2024-01-01", "P1", "1.00", "C1")])
    done = run_cli("run", str(source), "--output", str(tmp_path / "out"), "--module", str(module))
    assert done.returncode == 2, done.stderr
    assert "'sales_count'" in done.stderr and "amount_cent" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "daily_sales_summary.csv").exists()
