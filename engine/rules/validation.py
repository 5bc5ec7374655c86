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
        self.values, self.indices = _dictionary_encode(_arrow(column))  # indices: null where the cell is
        self.trimmed = trim_to_null(self.values)
        self._codes: np.ndarray | None = None

    @property
    def codes(self) -> np.ndarray:
        """Per row, the index of its distinct text; len(values) for a null cell."""
        if self._codes is None:
            self._codes = pc.fill_null(self.indices, len(self.values)).to_numpy()
        return self._codes

    def rows(self, per_value: pa.Array) -> pa.Array:
        """A per-distinct-value array spread over the rows (null rows stay null)."""
        return pc.take(per_value, self.indices)

    def lookup(self, per_value: np.ndarray, null_rows) -> np.ndarray:
        """A per-distinct-value numpy array spread over the rows; null rows get `null_rows`."""
        return np.append(per_value, np.array(null_rows, per_value.dtype))[self.codes]

    def row_mask(self, per_value: pa.Array, null_rows: bool) -> np.ndarray:
        """A per-distinct-value boolean spread over the rows; null rows get `null_rows`."""
        return self.lookup(_mask(per_value), null_rows)

    def missing(self) -> np.ndarray:
        """Rows whose cell is null, empty, or only whitespace."""
        return self.row_mask(pc.is_null(self.trimmed), True)

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash of each row's cell as read (`text_hashes`; a fixed value for
        an empty cell), worked out once per distinct text."""
        return self.lookup(text_hashes(self.values), _EMPTY_CELL_HASH)


def _dictionary_encode(text: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """The distinct texts and, per row, the index of its text (null for a null cell).
    Arrow encodes the chunks of a chunked column with one dictionary, so they are not
    copied into one array first."""
    if isinstance(text, pa.ChunkedArray) and text.num_chunks > 1:
        encoded = pc.dictionary_encode(text)
        dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
        if all(chunk.dictionary.equals(dictionary) for chunk in encoded.chunks[:-1]):
            return dictionary, pa.concat_arrays([chunk.indices for chunk in encoded.chunks])
    encoded = pc.dictionary_encode(_contiguous(text))
    return encoded.dictionary, encoded.indices


class CellTexts:
    """One column of a partition as its cells, for a column that is only checked for
    missing cells and fingerprinted (customer ids): most cells are distinct there, so
    dictionary-encoding it would cost more than it saves."""

    def __init__(self, column: pd.Series) -> None:
        self.text = _arrow(column)

    def missing(self) -> np.ndarray:
        """Rows whose cell is null, empty, or only whitespace."""
        chunks = self.text.chunks if isinstance(self.text, pa.ChunkedArray) else [self.text]
        return np.concatenate([_missing_cells(chunk) for chunk in chunks] or [np.zeros(0, bool)])

    def hashes(self) -> np.ndarray:
        """A stable 64-bit hash of each row's cell as read (`text_hashes`)."""
        return text_hashes(self.text)


def _missing_cells(text: pa.Array) -> np.ndarray:
    """Null, empty or blank cells: only the cells that are null, empty or begin with a
    space or a tab need trimming to tell."""
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    count = len(text)
    if count == 0:
        return np.zeros(0, bool)
    _, offset_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[text.offset:text.offset + count + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    empty = offsets[1:] == starts
    first = data[np.minimum(starts, data.size - 1)] if data.size else np.zeros(count, np.uint8)
    maybe = np.flatnonzero(empty | (first == 0x20) | (first == 0x09))
    missing = np.zeros(count, bool)
    if maybe.size:
        missing[maybe] = _mask(pc.is_null(trim_to_null(text.take(pa.array(maybe)))))
    if text.null_count:
        missing |= text.is_null().to_numpy(zero_copy_only=False)
    return missing


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
    columns = {name: (CellTexts if name == "customer_id" else DistinctValues)(raw[name]) for name in RAW_COLUMNS}
    date, product, amount = columns["date"], columns["product_id"], columns["amount"]
    dates, bad_date = parse_dates(date.trimmed)
    cents, bad_amount = parse_cents(amount.trimmed)
    # Per distinct text, the first rule of its column that it breaks (0: none); per row,
    # the first of its columns' codes that is not 0: the rules' order (REJECT_REASONS).
    date_code = date.lookup(_first_code((pc.is_null(date.trimmed), 1), (bad_date, 2)), 1)
    product_code = product.lookup(_first_code((pc.is_null(product.trimmed), 3)), 3)
    amount_code = amount.lookup(_first_code(
        (pc.is_null(amount.trimmed), 4), (bad_amount, 5), (pc.less_equal(cents, 0), 6)), 4)
    reason = np.where(date_code != KEPT, date_code, np.where(product_code != KEPT, product_code, amount_code))
    missing_cells = (date_code == 1).view(np.int8) | ((product_code == 3).view(np.int8) << 1)
    missing_cells |= (amount_code == 4).view(np.int8) << 2
    missing_cells |= columns["customer_id"].missing().view(np.int8) << 3
    fingerprint = _combine(column.hashes for column in columns.values())
    validated = pd.DataFrame(
        {
            "date": pd.array(date.rows(dates), dtype=DATE),
            "product_id": pd.array(product.rows(product.trimmed), dtype=STRING),
            "amount_cents": pd.array(amount.rows(cents), dtype=CENTS),
            "customer_id": raw["customer_id"].array,
            "reject_reason": reason,
            "missing_cells": missing_cells,
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
    columns = ["date", "product_id", "amount_cents", "customer_id"]
    reason = validated["reject_reason"].to_numpy()
    kept = validated[columns] if not reason.any() else validated.loc[reason == KEPT, columns]
    dtypes = {"amount_cents": "int64"}
    if id_dtype == "category":
        dtypes["product_id"] = "category"
    return kept.astype(dtypes)


def file_profile(validated: pd.DataFrame) -> pd.DataFrame:
    """Per source file in the partition: rows, missing cells per column, and the range of
    the valid amounts (cents) and dates (days since 1970-01-01). Partial profiles of
    one file combine by sum (counts), min and max (ranges)."""
    files = validated["source_file"].to_numpy()
    bits = validated["missing_cells"].to_numpy()
    if len(files) and files.min() == files.max():  # a partition is one read task: one file
        return _one_file_profile(validated, files[0], bits)
    columns = {"source_file": files, "rows": np.ones(len(validated), dtype=np.int64)}
    for bit, column in enumerate(RAW_COLUMNS):
        columns[f"missing_{column}"] = ((bits >> bit) & 1).astype(np.int64)
    cents = validated["amount_cents"].astype("float64").to_numpy()  # nulls as NaN, skipped by min/max
    days = pc.cast(pa.array(validated["date"]), pa.int32())
    columns["amount_min"] = columns["amount_max"] = cents
    columns["date_min"] = columns["date_max"] = pc.cast(days, pa.float64()).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(columns)
    return frame.groupby("source_file", as_index=False).agg(PROFILE_COMBINE)


def _one_file_profile(validated: pd.DataFrame, file, bits: np.ndarray) -> pd.DataFrame:
    """`file_profile` of rows that all come from one file, without a group-by."""
    counts = np.bincount(bits.view(np.uint8), minlength=1 << len(RAW_COLUMNS))
    columns = {"source_file": np.array([file], dtype=validated["source_file"].dtype),
               "rows": np.array([len(validated)], dtype=np.int64)}
    for bit, column in enumerate(RAW_COLUMNS):
        columns[f"missing_{column}"] = np.array([counts[(np.arange(counts.size) >> bit) & 1 == 1].sum()], np.int64)
    for name, values in (("amount", pa.array(validated["amount_cents"])),
                         ("date", pc.cast(pa.array(validated["date"]), pa.int32()))):
        low, high = pc.min_max(values).values()  # nulls skipped; null when every value is
        columns[f"{name}_min"] = np.array([np.nan if low.as_py() is None else float(low.as_py())])
        columns[f"{name}_max"] = np.array([np.nan if high.as_py() is None else float(high.as_py())])
    return pd.DataFrame(columns)


#: How partial file profiles combine into the whole file's profile.
PROFILE_COMBINE = {
    "rows": "sum", **{f"missing_{c}": "sum" for c in RAW_COLUMNS},
    "amount_min": "min", "amount_max": "max", "date_min": "min", "date_max": "max",
}


_EMPTY_CELL_HASH = np.uint64(0x9E3779B97F4A7C15)


#: Odd multiplier of the fingerprint's columns (the fractional part of the golden ratio).
_COMBINE = np.uint64(0x9E3779B97F4A7C15)


def _combine(hashes) -> np.ndarray:
    """A row fingerprint from its cells' hashes (functions giving one array each, called
    in turn so that one column's hashes are held at a time): ((h0 * m + h1) * m + h2) * m
    + h3, wrapping (m odd). Two rows that differ in some cell share it with a chance of
    about 2**-64, and of at most 2**-61 for rows whose cells are swapped between columns
    (as m**k - 1 is 4 or 8 times an odd number)."""
    hashes = iter(hashes)
    fingerprint = next(hashes)()
    with np.errstate(over="ignore"):
        for column in hashes:
            fingerprint *= _COMBINE
            fingerprint += column()
    return fingerprint


def _first_code(*rules: tuple[pa.Array, int]) -> np.ndarray:
    """Per value, the code of the first rule whose mask holds (null: does not), else KEPT."""
    code = np.full(len(rules[0][0]), KEPT, dtype=np.int8)
    for mask, value in reversed(rules):
        code[_mask(mask)] = value
    return code


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
#: the low r bytes of a little-endian word, r = 0..8
_BYTE_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_LENGTH_SEED = np.uint64(0x243F6A8885A308D3)
_WORD_SEED = np.uint64(0x13198A2E03707344)


def text_hashes(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of each text cell's UTF-8 bytes, the same in every process and on
    every platform (plain 64-bit integer arithmetic); a null cell gets _EMPTY_CELL_HASH.

    A text of length L is cut into 8-byte little-endian words w_0, w_1, ... (the last one
    zero-padded); with f splitmix64's finaliser, its hash is
    f(f(L ^ s) + sum_j f(w_j ^ f((j + 1) * s')))  (sums modulo 2**64), which is computed
    for every word of every cell at once: the cost is linear in the bytes, with no Python
    object per cell. Two different texts share a hash with a chance of about 2**-64."""
    if isinstance(text, pa.ChunkedArray):
        if text.num_chunks == 1:
            return text_hashes(text.chunk(0))
        return np.concatenate([text_hashes(chunk) for chunk in text.chunks] or [np.zeros(0, np.uint64)])
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    count = len(text)
    if count == 0:
        return np.zeros(0, np.uint64)
    _, offset_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32)[text.offset:text.offset + count + 1].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    with np.errstate(over="ignore"):
        summed = _word_hashes(data, starts, np.minimum(lengths, 8), np.zeros(1, np.int64))  # every first word
        summed[lengths == 0] = 0
        longer = np.flatnonzero(lengths > 8)
        if longer.size:  # the words after the first, of the texts that have some
            extra = (lengths[longer] - 1) // 8
            owner = np.repeat(longer, extra)
            first = np.cumsum(extra) - extra
            index = np.arange(1, owner.size + 1, dtype=np.int64) - np.repeat(first, extra)
            remaining = np.minimum(lengths[owner] - 8 * index, 8)
            hashed = _word_hashes(data, starts[owner] + 8 * index, remaining, index)
            summed[longer] += np.add.reduceat(hashed, first)
        summed += _fmix(lengths.astype(np.uint64) ^ _LENGTH_SEED)
        hashes = _fmix(summed)
    if text.null_count:
        hashes[text.is_null().to_numpy(zero_copy_only=False)] = _EMPTY_CELL_HASH
    return hashes


def _word_hashes(data: np.ndarray, positions: np.ndarray, sizes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """f(w ^ f((index + 1) * s')) of the `sizes` (0..8) bytes of `data` at each position."""
    words = _words_at(data, positions) & _BYTE_MASKS[sizes]
    if index.size == 1:
        words ^= _fmix((index + 1).astype(np.uint64) * _WORD_SEED)[0]
    else:
        words ^= _fmix((index + 1).astype(np.uint64) * _WORD_SEED)
    return _fmix(words)


def _words_at(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 8 bytes of `data` from each position as a little-endian 64-bit word, the bytes
    past the end of `data` as zeros (read unaligned, without copying `data`)."""
    if data.size < 8:
        data = np.concatenate([data, np.zeros(8, np.uint8)])
    last = data.size - 8
    view = np.ndarray((last + 1,), dtype="<u8", buffer=data, strides=(1,))
    clipped = np.minimum(positions, last)
    words = view[clipped].astype(np.uint64)
    behind = np.minimum(positions - clipped, 7)
    if behind.any():
        words >>= behind.astype(np.uint64) * np.uint64(8)
    return words


def _fmix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, a bijection of 64-bit values (in place on arrays)."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


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
