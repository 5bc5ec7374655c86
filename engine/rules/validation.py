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
#: A CSV line with the wrong number of fields, skipped when so configured (never a row).
MALFORMED_LINE = "malformed_line"
MALFORMED_LINE_CODE = len(REJECT_REASONS) + 1
#: Every reason a raw record can be rejected for, in code order (code = index + 1).
ALL_REJECT_REASONS = (*REJECT_REASONS, MALFORMED_LINE)

_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_AMOUNT_SHAPE = r"^(?P<sign>[+-]?)(?P<units>[0-9]{0,12})(?:\.(?P<fraction>[0-9]*))?$"

STRING = pd.ArrowDtype(pa.string())
DATE = pd.ArrowDtype(pa.date32())
CENTS = pd.ArrowDtype(pa.int64())


def _arrow(column: pd.Series) -> pa.ChunkedArray | pa.Array:
    return pa.array(column, from_pandas=True) if column.dtype == object else pa.array(column)


class DistinctValues:
    """One column of a partition as its distinct texts and, per row, which one it holds.

    Rules are evaluated once per distinct text and spread back to the rows: a partition
    of a million rows holds about a thousand distinct dates and products and tens of
    thousands of distinct amounts, so this is where validation saves most of its time.
    """

    def __init__(self, column: pd.Series) -> None:
        encoded = pc.dictionary_encode(_contiguous(_arrow(column)))
        self.values: pa.Array = encoded.dictionary
        self.indices: pa.Array = encoded.indices  # null where the cell is null
        self.trimmed = trim_to_null(self.values)

    def rows(self, per_value: pa.Array) -> pa.Array:
        """A per-distinct-value array spread over the rows (null rows stay null)."""
        return pc.take(per_value, self.indices)

    def row_mask(self, per_value: pa.Array, null_rows: bool) -> np.ndarray:
        """A per-distinct-value boolean spread over the rows; null rows get `null_rows`."""
        return _mask(pc.fill_null(self.rows(per_value), null_rows))

    def missing(self) -> np.ndarray:
        """Rows whose cell is null, empty, or only whitespace."""
        return self.row_mask(pc.is_null(self.trimmed), True)

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash of each row's cell as read (pandas' hash of the text; a
        fixed value for an empty cell)."""
        distinct = pd.util.hash_array(self.values.to_numpy(zero_copy_only=False).astype(object), categorize=False)
        lookup = np.append(distinct, _EMPTY_CELL_HASH).astype(np.uint64)
        return lookup[pc.fill_null(self.indices, len(distinct)).to_numpy()]


def trim_to_null(text: pa.Array) -> pa.Array:
    """Text without surrounding spaces and tabs; what is left empty becomes null."""
    trimmed = pc.utf8_trim(pc.cast(text, pa.string()), characters=" \t")
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def is_missing(column: pd.Series) -> np.ndarray:
    """Boolean mask of missing cells: null, empty, or only whitespace."""
    return DistinctValues(column).missing()


def parse_dates(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Calendar dates from trimmed `YYYY-MM-DD` text, and whether text that is present is
    not one. Arrow's strptime rolls impossible days over (2023-02-29 → 2023-03-01), so
    a date is valid only when formatting it again gives back the original text."""
    shaped = pc.and_(pc.match_substring_regex(text, _DATE_SHAPE), pc.invert(pc.starts_with(text, "0000")))
    candidate = pc.if_else(shaped, text, pa.scalar(None, pa.string()))
    stamps = pc.strptime(candidate, format="%Y-%m-%d", unit="s", error_is_null=True)
    valid = pc.fill_null(pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), candidate), False)
    dates = pc.if_else(valid, pc.cast(stamps, pa.date32()), pa.scalar(None, pa.date32()))
    return dates, pc.and_(pc.invert(valid), pc.is_valid(text))


def parse_cents(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Whole cents from trimmed plain decimal text, rounded half away from zero, and
    whether text that is present is not a plain decimal number (docs/semantics.md)."""
    parts = pc.extract_regex(text, _AMOUNT_SHAPE)
    sign = pc.struct_field(parts, "sign")
    units = pc.struct_field(parts, "units")
    fraction = pc.struct_field(parts, "fraction")
    valid = pc.fill_null(pc.or_(pc.greater(pc.utf8_length(units), 0), pc.greater(pc.utf8_length(fraction), 0)), False)
    first_three = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.coalesce(fraction, ""), 3, "0"), 0, 3)
    units_value = pc.cast(pc.if_else(pc.equal(units, ""), "0", units), pa.int64())
    thousandths = pc.cast(first_three, pa.int64())
    magnitude = pc.add(
        pc.add(pc.multiply(units_value, 100), pc.divide(thousandths, 10)),
        pc.cast(pc.greater_equal(pc.subtract(thousandths, pc.multiply(pc.divide(thousandths, 10), 10)), 5), pa.int64()),
    )
    cents = pc.if_else(pc.equal(sign, "-"), pc.negate(magnitude), magnitude)
    cents = pc.if_else(valid, cents, pa.scalar(None, pa.int64()))
    return cents, pc.and_(pc.invert(valid), pc.is_valid(text))


def validate_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Every raw row with its trimmed, typed fields and its `reject_reason` code.

    Columns: `date` (date), `product_id` (text), `amount_cents` (int), `customer_id`
    (text as read: it is carried, never validated), `reject_reason` (int8: KEPT, or
    1 + index into REJECT_REASONS), `missing_cells` (int8, bit i set when RAW_COLUMNS[i]
    is missing), `fingerprint` (uint64 of the four fields as read, for duplicates),
    `source_file` (the file's index in the read plan), `line_position` (the row's line in
    its read task) and the cells as read (`date_text`, `product_id_text`, `amount_text`)
    for the quarantine of rejected rows. The raw frame's `attrs` are kept.
    """
    columns = {name: DistinctValues(raw[name]) for name in RAW_COLUMNS}
    date, product, amount = columns["date"], columns["product_id"], columns["amount"]
    dates, bad_date = parse_dates(date.trimmed)
    cents, bad_amount = parse_cents(amount.trimmed)
    row_cents = amount.rows(cents)
    missing = [column.missing() for column in columns.values()]
    rules = [
        missing[0],
        date.row_mask(bad_date, False),
        missing[1],
        missing[2],
        amount.row_mask(bad_amount, False),
        _mask(pc.less_equal(row_cents, 0)),
    ]
    reason = np.select(rules, np.arange(1, len(rules) + 1, dtype=np.int8), default=KEPT).astype(np.int8)
    fingerprint = np.zeros(len(raw), dtype=np.uint64)
    for column in columns.values():
        fingerprint = _mix(fingerprint, column.hashes())
    validated = pd.DataFrame(
        {
            "date": pd.array(date.rows(dates), dtype=DATE),
            "product_id": pd.array(product.rows(product.trimmed), dtype=STRING),
            "amount_cents": pd.array(row_cents, dtype=CENTS),
            "customer_id": raw["customer_id"].array,
            "reject_reason": reason,
            "missing_cells": sum(mask.astype(np.int8) << bit for bit, mask in enumerate(missing)).astype(np.int8),
            "fingerprint": fingerprint,
            "source_file": raw["source_file"].to_numpy(),
            "line_position": raw["line_position"].to_numpy(),
            **{f"{name}_text": raw[name].array for name in TEXT_KEPT_FOR_QUARANTINE},
        },
        index=raw.index,
    )
    validated.attrs.update(raw.attrs)
    return validated


#: Raw cells carried with each validated row, so a rejected row can be quarantined as read.
TEXT_KEPT_FOR_QUARANTINE = ("date", "product_id", "amount")


ID_DTYPES = ("string", "category")


def kept_rows(validated: pd.DataFrame, id_dtype: str = "string") -> pd.DataFrame:
    """The rows that passed every rule, amounts as plain int64 cents, `product_id` as
    Arrow text or, with `id_dtype="category"`, as a pandas categorical."""
    kept = validated.loc[validated["reject_reason"] == KEPT, ["date", "product_id", "amount_cents", "customer_id"]]
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
