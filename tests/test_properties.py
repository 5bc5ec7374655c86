"""Properties over generated inputs: no row is unaccounted for, and the engine agrees
with the independent oracle on arbitrary mixes of valid and invalid cells."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import expected_outputs
from conftest import read_outputs, run_engine, write_csv

dates = st.one_of(
    st.dates(min_value=__import__("datetime").date(2023, 12, 20), max_value=__import__("datetime").date(2024, 1, 20))
    .map(lambda d: d.isoformat()),
    st.sampled_from(["", " ", "2023-02-29", "2024-13-01", "2024-1-5", "NA", "yesterday", " 2024-01-02 "]),
)
products = st.one_of(st.sampled_from(["P1", "P2", "NA", "null", " P1", "", "  "]), st.text("ABC", min_size=1, max_size=3))
amounts = st.one_of(
    st.decimals(min_value="-5", max_value="500", places=3, allow_nan=False).map(str),
    st.sampled_from(["", "\t", "NaN", "inf", "1e3", "abc", "0", "0.004", "0.005", ".5", "5.", "+1", "1,5"]),
)
customers = st.sampled_from(["", "C1", "C2", " "])
rows = st.lists(st.tuples(dates, products, amounts, customers), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows, partition=st.sampled_from(["pandas", "90B", "400B"]))
def test_accounting_and_oracle_agreement(rows, partition):
    folder = Path(tempfile.mkdtemp(prefix="prop-"))
    try:
        source = write_csv(folder / "in.csv", rows)
        settings_ = {} if partition == "pandas" else {"partition_size": partition}
        mode = "pandas" if partition == "pandas" else "dask"
        result = run_engine(source, folder / "out", mode=mode, **settings_)
        metrics = result.results["data_quality_metrics"]
        assert metrics["raw_record_count"] == len(rows)
        assert metrics["raw_record_count"] == metrics["cleaned_record_count"] + sum(
            metrics["rejected_by_reason"].values())
        assert read_outputs(folder / "out") == expected_outputs([source])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
