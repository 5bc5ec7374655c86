"""Row-level cleaning rules of SPEC §3 as vectorised functions over one partition.

Each function takes and returns a pandas DataFrame (Arrow-backed columns), so the same
code runs on a whole pandas input and on every partition of a Dask DataFrame. The work
is done by Arrow compute kernels: no Python loop touches a row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

RAW_COLUMNS = ("date", "product_id", "amount", "customer_id")
REQUIRED_COLUMNS = ("date", "product_id", "amount")

#: Reject reasons in the order they are tested; a row gets the first that applies.
REJECT_REASONS = (
    "missing_date",
    "invalid_date",
    "missing_product_id",
    "missing_amount",
    "invalid_amount",
    "non_positive_amount",
)
#: `reject_reason` code of a kept row; rejected rows carry 1 + the index in REJECT_REASONS.
KEPT = 0

_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_AMOUNT_SHAPE = r"^(?P<sign>[+-]?)(?P<units>[0-9]{0,12})(?:\.(?P<fraction>[0-9]*))?$"

STRING = pd.ArrowDtype(pa.string())
DATE = pd.ArrowDtype(pa.date32())
CENTS = pd.ArrowDtype(pa.int64())


def _arrow(column: pd.Series) -> pa.ChunkedArray | pa.Array:
    return pa.array(column, from_pandas=True) if column.dtype == object else pa.array(column)


def trimmed_text(column: pd.Series) -> pa.Array:
    """The column's text without surrounding whitespace; missing cells become null."""
    text = pc.utf8_trim(pc.cast(_arrow(column), pa.string()), characters=" \t")
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def is_missing(column: pd.Series) -> np.ndarray:
    """Boolean mask of missing cells: null, empty, or only whitespace."""
    return _mask(pc.is_null(trimmed_text(column)))


def parse_dates(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Calendar dates from `YYYY-MM-DD` text, and the mask of text that is not one.

    A partition holds few distinct dates, so each distinct text is parsed once. Arrow's
    strptime rolls impossible days over (2023-02-29 → 2023-03-01), so a date is valid
    only when formatting it again gives back the original text.
    """
    encoded = pc.dictionary_encode(_contiguous(text))
    distinct = encoded.dictionary
    shaped = pc.and_(pc.match_substring_regex(distinct, _DATE_SHAPE), pc.invert(pc.starts_with(distinct, "0000")))
    candidate = pc.if_else(shaped, distinct, pa.scalar(None, pa.string()))
    stamps = pc.strptime(candidate, format="%Y-%m-%d", unit="s", error_is_null=True)
    valid = pc.fill_null(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), candidate), False)
    dates = pc.if_else(valid, pc.cast(stamps, pa.date32()), pa.scalar(None, pa.date32()))
    invalid = pc.and_(pc.invert(valid), pc.is_valid(distinct))
    return pc.take(dates, encoded.indices), _mask(pc.take(invalid, encoded.indices))


def parse_cents(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Whole cents from plain decimal text, rounded half away from zero, and the mask of
    text that is not a plain decimal number (see docs/semantics.md)."""
    parts = pc.extract_regex(text, _AMOUNT_SHAPE)
    sign = pc.struct_field(parts, "sign")
    units = pc.struct_field(parts, "units")
    fraction = pc.struct_field(parts, "fraction")
    has_digit = pc.or_(pc.greater(pc.utf8_length(units), 0), pc.greater(pc.utf8_length(fraction), 0))
    valid = _mask(has_digit)
    first_three = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.coalesce(fraction, ""), 3, "0"), 0, 3)
    units_value = pc.cast(pc.if_else(pc.equal(units, ""), "0", units), pa.int64())
    thousandths = pc.cast(first_three, pa.int64())
    magnitude = pc.add(
        pc.add(pc.multiply(units_value, 100), pc.divide(thousandths, 10)),
        pc.cast(pc.greater_equal(pc.subtract(thousandths, pc.multiply(pc.divide(thousandths, 10), 10)), 5), pa.int64()),
    )
    cents = pc.if_else(pc.equal(sign, "-"), pc.negate(magnitude), magnitude)
    cents = pc.if_else(pa.array(valid), cents, pa.scalar(None, pa.int64()))
    return cents, ~valid


def validate_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Every raw row with its trimmed, typed fields and its `reject_reason` code.

    Columns: `date` (date), `product_id` (text), `amount_cents` (int), `customer_id`
    (text as read: it is carried, never validated), `reject_reason` (int8: KEPT, or
    1 + index into REJECT_REASONS), `missing_cells` (int8, bit i set when RAW_COLUMNS[i]
    is missing) and `source_file` (the file's index in the read plan).
    """
    date_text = trimmed_text(raw["date"])
    product = trimmed_text(raw["product_id"])
    amount_text = trimmed_text(raw["amount"])
    dates, bad_date = parse_dates(date_text)
    cents, bad_amount = parse_cents(amount_text)
    rules = [
        _mask(pc.is_null(date_text)),
        bad_date,
        _mask(pc.is_null(product)),
        _mask(pc.is_null(amount_text)),
        bad_amount,
        _mask(pc.less_equal(cents, 0)),
    ]
    reason = np.select(rules, np.arange(1, len(rules) + 1, dtype=np.int8), default=KEPT).astype(np.int8)
    missing = [rules[0], rules[2], rules[3], is_missing(raw["customer_id"])]
    return pd.DataFrame(
        {
            "date": pd.array(dates, dtype=DATE),
            "product_id": pd.array(product, dtype=STRING),
            "amount_cents": pd.array(cents, dtype=CENTS),
            "customer_id": raw["customer_id"].array,
            "reject_reason": reason,
            "missing_cells": sum(mask.astype(np.int8) << bit for bit, mask in enumerate(missing)).astype(np.int8),
            "source_file": raw["source_file"].to_numpy(),
        },
        index=raw.index,
    )


ID_DTYPES = ("string", "category")


def kept_rows(validated: pd.DataFrame, id_dtype: str = "string") -> pd.DataFrame:
    """The rows that passed every rule, amounts as plain int64 cents, `product_id` as
    Arrow text or, with `id_dtype="category"`, as a pandas categorical."""
    kept = validated[validated["reject_reason"] == KEPT].drop(columns=["reject_reason", "missing_cells", "source_file"])
    dtypes = {"amount_cents": "int64"}
    if id_dtype == "category":
        dtypes["product_id"] = "category"
    return kept.astype(dtypes)


def file_profile(validated: pd.DataFrame) -> pd.DataFrame:
    """Per source file in the partition: rows, missing cells per column, and the range of
    the valid amounts (cents) and dates (days since 1970-01-01). Partial profiles of
    one file combine by sum (counts), min and max (ranges)."""
    bits = validated["missing_cells"].to_numpy()
    columns = {"source_file": validated["source_file"].to_numpy(), "rows": np.ones(len(validated), dtype=np.int64)}
    for bit, column in enumerate(RAW_COLUMNS):
        columns[f"missing_{column}"] = ((bits >> bit) & 1).astype(np.int64)
    cents = validated["amount_cents"].astype("float64").to_numpy()  # nulls as NaN, skipped by min/max
    days = pc.cast(pa.array(validated["date"]), pa.int32())
    columns["amount_min"] = columns["amount_max"] = cents
    columns["date_min"] = columns["date_max"] = pc.cast(days, pa.float64()).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(columns)
    return frame.groupby("source_file", as_index=False).agg(PROFILE_COMBINE)


#: How partial file profiles combine into the whole file's profile.
PROFILE_COMBINE = {
    "rows": "sum", **{f"missing_{c}": "sum" for c in RAW_COLUMNS},
    "amount_min": "min", "amount_max": "max", "date_min": "min", "date_max": "max",
}


def row_fingerprints(raw: pd.DataFrame) -> pd.Series:
    """A 64-bit fingerprint of each raw row's four fields as read (for duplicate counting).

    Each distinct value of a column is hashed once (pandas' stable hash of the text,
    a fixed value for an empty cell), and the four column hashes are mixed per row.
    """
    combined = np.zeros(len(raw), dtype=np.uint64)
    for column in RAW_COLUMNS:
        encoded = pc.dictionary_encode(_contiguous(_arrow(raw[column])))
        distinct = pd.util.hash_array(encoded.dictionary.to_numpy(zero_copy_only=False).astype(object))
        lookup = np.append(distinct, _EMPTY_CELL_HASH).astype(np.uint64)
        indices = pc.fill_null(encoded.indices, len(distinct)).to_numpy()
        combined = _mix(combined, lookup[indices])
    return pd.Series(combined, index=raw.index, name="fingerprint")


_EMPTY_CELL_HASH = np.uint64(0x9E3779B97F4A7C15)


def _mix(seed: np.ndarray, value: np.ndarray) -> np.ndarray:
    """boost::hash_combine on 64-bit lanes, wrapping."""
    with np.errstate(over="ignore"):
        return seed ^ (value + np.uint64(0x9E3779B97F4A7C15) + (seed << np.uint64(6)) + (seed >> np.uint64(2)))


def _contiguous(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks() if array.num_chunks else pa.array([], array.type)
    return array


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean numpy mask from an Arrow boolean array, null counting as False."""
    filled = pc.fill_null(array, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks() if filled.num_chunks else pa.array([], pa.bool_())
    return filled.to_numpy(zero_copy_only=False).astype(bool, copy=False)
