"""The per-partition fast paths: text hashes (row fingerprints), missing cells of a column
checked per cell, the summaries' group-by-free paths, and the line checks of a block
with quotes. Each is compared with the plain computation it replaces."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from engine.dataflow import summaries
from engine.rules import validation
from engine.rules.validation import STRING, CellTexts, DistinctValues, text_hashes
from engine.sources import readers

#: Hashes pinned once: the fingerprint must not depend on the process, the platform or
#: the version of numpy (it is plain 64-bit integer arithmetic).
PINNED = {
    "a": 0x70F9D55C1F5112AD,
    "b": 0x240460455BD94D4B,
    "abcdefgh": 0xAC67125D0A783752,
    "abcdefghi": 0xE75A71A0C468B65C,
    "abcdefghij" * 30: 0x6AE70C1C42D04BA0,
}


def _texts(seed: int, count: int) -> list[str | None]:
    rnd = random.Random(seed)
    lengths = [0, 1, 5, 7, 8, 9, 15, 16, 17, 31, 70]
    values = ["".join(rnd.choice("ab \t,x\u00e9\u20ac") for _ in range(rnd.choice(lengths))) for _ in range(count)]
    return values + [None] * 7


def test_pinned_values_and_the_empty_cell():
    hashes = text_hashes(pa.array([*PINNED, None]))
    assert [int(h) for h in hashes[:-1]] == list(PINNED.values())
    assert hashes[-1] == validation._EMPTY_CELL_HASH


def test_the_same_text_hashes_the_same_wherever_it_sits():
    values = _texts(1, 5000)
    array = pa.array(values, pa.string())
    hashes = text_hashes(array)
    by_text: dict = {}
    for text, value in zip(values, hashes):
        assert by_text.setdefault(text, value) == value
    assert len(set(by_text.values())) == len(by_text)  # no collision among these
    for start in (0, 1, 7, 333):
        assert (text_hashes(array.slice(start, 900)) == hashes[start:start + 900]).all()
    chunked = pa.chunked_array([array.slice(0, 1234), array.slice(1234)])
    assert (text_hashes(chunked) == hashes).all()
    for text in values[:200]:
        assert text_hashes(pa.array([text], pa.string()))[0] == by_text[text]
    assert text_hashes(pa.array([], pa.string())).size == 0


def test_hashes_are_the_same_in_another_process():
    code = ("import pyarrow as pa; from engine.rules.validation import text_hashes; "
            "print(','.join(str(int(h)) for h in text_hashes(pa.array(['x', ' y ', 'C0162317', 'é' * 20, None]))))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    here = ",".join(str(int(h)) for h in text_hashes(pa.array(["x", " y ", "C0162317", "é" * 20, None])))
    assert other == here


def test_per_cell_and_per_distinct_value_columns_agree():
    values = _texts(2, 3000) + ["", " ", "\t", " \t ", " a", "\ta "]
    random.Random(3).shuffle(values)
    column = pd.Series(pd.array(values, dtype=STRING))
    cells, distinct = CellTexts(column), DistinctValues(column)
    assert (cells.missing() == distinct.missing()).all()
    assert (cells.hashes() == distinct.hashes()).all()
    # the missing cells are those that trim to nothing
    expected = [v is None or v.strip(" \t") == "" for v in values]
    assert cells.missing().tolist() == expected


def test_equal_rows_share_a_fingerprint_and_swapped_cells_do_not():
    raw = pd.DataFrame({
        "date": pd.array(["2024-01-01", "2024-01-01", "P1", "2024-01-01"], dtype=STRING),
        "product_id": pd.array(["P1", "P1", "2024-01-01", "P1"], dtype=STRING),
        "amount": pd.array(["1.00", "1.00", "1.00", "1.00"], dtype=STRING),
        "customer_id": pd.array(["C1", "C1", "C1", None], dtype=STRING),
        "source_file": np.zeros(4, np.int32),
        "line_position": np.arange(4, dtype=np.int32),
    })
    fingerprints = validation.validate_rows(raw)["fingerprint"].tolist()
    assert fingerprints[0] == fingerprints[1]
    assert len(set(fingerprints[1:])) == 3


@pytest.mark.parametrize("spread", [30, 3_000_000])
def test_day_totals_fast_path_matches_the_group_by(spread):
    rng = np.random.default_rng(4)
    days = pa.array(rng.integers(19000, 19000 + spread, 5000).astype(np.int32))
    cents = rng.integers(1, 10**9, 5000)
    fast = summaries._day_totals(days, cents).sort_by("day")
    grouped = pa.table({"day": days, "cents": cents}).group_by("day").aggregate([("cents", "sum"), ("cents", "count")])
    grouped = grouped.sort_by("day")
    totals = fast["total_hi"].to_numpy() * 2**32 + fast["total_lo"].to_numpy()
    assert fast["day"].equals(grouped["day"])
    assert (totals == grouped["cents_sum"].to_numpy()).all()
    assert fast["transaction_count"].equals(grouped["cents_count"])


@pytest.mark.parametrize("spread", [40, 5_000_000])
def test_day_products_match_the_group_by(spread):
    rng = np.random.default_rng(5)
    days = pa.array(rng.integers(19000, 19000 + spread, 4000).astype(np.int32))
    products = pa.chunked_array([pa.array([f"P{i}" for i in rng.integers(0, 300, 2000)]) for _ in range(2)])
    found = summaries._day_products(days, products).sort_by([("day", "ascending"), ("product_id", "ascending")])
    expected = summaries._distinct(pa.table({"day": days, "product_id": products}))
    assert found.equals(expected.sort_by([("day", "ascending"), ("product_id", "ascending")]))
    empty = summaries._day_products(pa.array([], pa.int32()), pa.array([], pa.string()))
    assert empty.num_rows == 0 and empty.schema == expected.schema


def test_file_profile_of_one_file_matches_the_group_by():
    raw = pd.DataFrame({
        "date": pd.array(["2024-01-01", None, "2024-02-30", "2023-12-31"], dtype=STRING),
        "product_id": pd.array(["P1", " ", "P2", None], dtype=STRING),
        "amount": pd.array(["1.00", "-3", None, "x"], dtype=STRING),
        "customer_id": pd.array([None, "C1", "\t", "C2"], dtype=STRING),
        "source_file": np.zeros(4, np.int32),
        "line_position": np.arange(4, dtype=np.int32),
    })
    validated = validation.validate_rows(raw)
    for rows in (validated, validated.iloc[1:2], validated.iloc[2:4]):
        two_files = pd.concat([rows, rows.assign(source_file=np.int32(1))])
        grouped = validation.file_profile(two_files)  # the group-by path
        alone = validation.file_profile(rows)  # the one-file path
        pd.testing.assert_frame_equal(alone, grouped[grouped["source_file"] == 0].reset_index(drop=True))


def test_odd_quote_lines_agree_with_a_count_per_line():
    rnd = random.Random(6)
    for _ in range(2000):
        data = bytes(rnd.choice(b'ab,"\n\r') for _ in range(rnd.randint(0, 80)))
        lines = data.split(b"\n")
        expected = [i for i, line in enumerate(lines) if line.count(b'"') % 2]
        assert readers._odd_quote_lines(data).tolist() == expected
        assert readers._odd_quote_lines_numpy(data).tolist() == expected if data else True
    many = b"".join(rnd.choice([b'a,"b",c\n', b'x,"y\n', b"p,q\n"]) for _ in range(20000))
    expected = [i for i, line in enumerate(many.split(b"\n")) if line.count(b'"') % 2]
    assert readers._odd_quote_lines(many).tolist() == expected
