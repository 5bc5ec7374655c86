"""Synthetic sales transactions: a realistic, seeded, reproducible CSV (or Parquet) file
for demos, tests and benchmarks.

The file has the engine's input columns (SPEC.md §2), ``date,product_id,amount,customer_id``,
with a header row, ``\\n`` line ends, UTF-8, and is quoted only where a cell needs it (a
comma or a quote inside, or a whitespace-only cell, so it survives any reader). Its name
says its form (``OUTPUT_FORMATS``): ``.csv``, compressed ``.csv.gz`` / ``.csv.zst``, or
``.parquet``: the same cells as text columns (an empty cell is null), one row group per
block of rows.

What the data looks like:

* **Dates** span ``days`` days from ``start``, in ascending order like a daily export; the
  number of sales per day follows a weekly rhythm (Saturdays and Sundays are busiest), a
  gentle yearly cycle peaking before Christmas, and a mild upward trend.
* **Products** (``P000042``) have Zipf-like popularity, so a few best sellers dominate,
  and each has its own price level; one product is literally called ``NA``.
* **Amounts** are log-normal around the product's price level times a small quantity,
  written with two decimals.
* **Customers** (``C0012345``) are skewed towards regulars; about 8 % of sales have no
  customer (the column is optional).

Dirt: about ``dirt`` of all rows break exactly one cleaning rule of docs/semantics.md, spread
over every reject reason (see ``DIRT_KINDS`` for the shares). Half as many rows again carry
harmless oddities that the cleaning must keep (values padded with spaces, ``12.5``, ``.75``,
``+12.50``). About ``duplicate_rate`` of rows are exact copies of a recent earlier row.

Reproducibility: the output is byte-identical for the same arguments and does not depend on
``chunk_rows`` (randomness is drawn per fixed block of rows, each block from its own seeded
stream), so the chunk size is a pure memory/speed knob. Generation is vectorised (numpy and
Arrow compute kernels build whole blocks of CSV lines at once) and streamed chunk by chunk,
so memory stays bounded whatever the row count. The file is written atomically: to a hidden
temporary file next to the target, then renamed over it, so a failed run never leaves a
partial file under the final name.
"""

from __future__ import annotations

import gzip
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from queue import Queue
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.files.atomic import atomic_file

__all__ = ["GeneratedSummary", "generate_sales", "output_format", "OUTPUT_FORMATS", "DIRT_KINDS", "ODDITY_KINDS",
           "HEADER"]

RAW_COLUMNS = ("date", "product_id", "amount", "customer_id")
HEADER = (",".join(RAW_COLUMNS) + "\n").encode()

#: The file name endings `generate_sales` writes: the format and the compression of each.
OUTPUT_FORMATS = {
    ".csv": ("csv", None),
    ".csv.gz": ("csv", "gzip"),
    ".csv.zst": ("csv", "zstd"),
    ".csv.zstd": ("csv", "zstd"),
    ".parquet": ("parquet", None),
}

#: Rows drawn from one random stream. Fixed, so the output never depends on `chunk_rows`.
_BLOCK_ROWS = 1 << 16
#: A duplicate copies one of this many rows before it (a re-sent record, not a random one).
_DUPLICATE_WINDOW = 2_000
#: Chunks waiting for the writer thread (memory: about this many chunks + one block).
_QUEUED_CHUNKS = 2

# Shape of the data (business assumptions, not arguments).
_WEEKDAY_WEIGHTS = np.array([0.90, 0.88, 0.92, 0.97, 1.08, 1.38, 1.27])  # Monday .. Sunday
_TREND_OVER_PERIOD = 0.25  # sales volume grows by 25 % from the first to the last day
_YEARLY_SWING = 0.12  # +-12 % yearly cycle ...
_YEARLY_PEAK_DAY = 349  # ... peaking mid-December (day of year, 0-based)
_ZIPF_EXPONENT = 1.07
_MEDIAN_PRICE = 18.0
_PRICE_SPREAD = 0.9  # sigma of log price level across products
_AMOUNT_SPREAD = 0.25  # sigma of log amount around a product's price level
_MIN_CENTS = 50  # nothing sells for less than 0.50
_QUANTITY_P = 0.72  # geometric: 72 % of sales are one item
_CUSTOMER_PRESENT = 0.92
_CUSTOMER_SKEW = 2.0  # customer index = customers * u**skew: regulars buy more
_LOOKUP_MAX_ITEMS = 1 << 16  # larger catalogues sample products by binary search
_NA_PRODUCT_RANK = 10  # the product called "NA" is the 10th best seller
_ODDITY_RATIO = 0.5  # oddity rows per dirty row

# Stream identifiers mixed into the seed, so catalogue and blocks never share a stream.
_CATALOG_STREAM = 0
_BLOCK_STREAM = 1


@dataclass(frozen=True)
class GeneratedSummary:
    """What a generation wrote: the file, its data rows (header excluded), its size on
    disk in bytes (compressed size for .gz/.zst) and the seed that reproduces it."""

    path: Path
    rows: int
    bytes_written: int
    seed: int


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class _Spec:
    rows: int
    seed: int
    start: date
    days: int
    products: int
    customers: int
    dirt: float
    duplicate_rate: float
    chunk_rows: int


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return value


def _start_date(value: object, days: int) -> date:
    first = None
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            first = date.fromisoformat(value)
        except ValueError:
            pass
    if first is None:
        raise ValueError(f"start must be a calendar date YYYY-MM-DD, got {value!r}")
    if first.toordinal() + days - 1 > date.max.toordinal():
        raise ValueError(f"start {value} plus {days} days goes beyond year 9999")
    return first


def _validated(rows, seed, start, days, products, customers, dirt, duplicate_rate, chunk_rows) -> _Spec:
    """Check every argument before anything is written; raise ValueError on a bad one."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    duplicate_rate = _fraction("duplicate_rate", duplicate_rate)
    if duplicate_rate >= 1.0:
        raise ValueError("duplicate_rate must be below 1 (the first row cannot be a duplicate)")
    days = _positive_int("days", days)
    return _Spec(
        rows=_positive_int("rows", rows),
        seed=int(seed),
        start=_start_date(start, days),
        days=days,
        products=_positive_int("products", products),
        customers=_positive_int("customers", customers),
        dirt=_fraction("dirt", dirt),
        duplicate_rate=duplicate_rate,
        chunk_rows=_positive_int("chunk_rows", chunk_rows),
    )


# --------------------------------------------------------------------------- text helpers


def _strings(values) -> pa.Array:
    return pa.array(values, pa.string())


def _choice(rng: np.random.Generator, options: list[str | None], count: int, p=None) -> pa.Array:
    """`count` values drawn from `options` (None gives an empty cell)."""
    return _strings(options).take(rng.choice(len(options), size=count, p=p))


def _zero_padded(numbers: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width, "0")


def _text_from_bytes(data: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A string array from concatenated UTF-8 bytes and the length of each value; rows
    where `valid` is False are null (and must have length 0)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("too much text in one array")
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        len(lengths),
        pa.py_buffer(offsets.astype(np.int32)),
        pa.py_buffer(np.ascontiguousarray(data, np.uint8)),
        bitmap,
        null_count=-1 if valid is None else int(len(valid) - np.count_nonzero(valid)),
    )


_POWERS_OF_TEN = 10 ** np.arange(1, 19, dtype=np.int64)


def _digit_matrix(numbers: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative numbers, zero-padded to `width`, one row per number."""
    digits = np.empty((len(numbers), width), dtype=np.uint8)
    rest = np.asarray(numbers, np.int64)
    for place in range(width - 1, -1, -1):  # loops over digit places, not rows
        quotient = rest // 10
        digits[:, place] = rest - quotient * 10
        rest = quotient
    return digits + np.uint8(ord("0"))


def _identifiers(prefix: str, numbers: np.ndarray, width: int, present: np.ndarray | None = None) -> pa.Array:
    """`P000042`-style identifiers: a prefix and a zero-padded number; null where
    `present` is False."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    text = np.empty((len(numbers), len(head) + width), dtype=np.uint8)
    text[:, : len(head)] = head
    text[:, len(head) :] = _digit_matrix(numbers, width)
    lengths = np.full(len(numbers), text.shape[1])
    if present is None:
        return _text_from_bytes(text.ravel(), lengths)
    return _text_from_bytes(text[present].ravel(), np.where(present, lengths, 0), present)


def _money(cents: np.ndarray) -> pa.Array:
    """Positive amounts in cents as text with two decimals (`1234` → `12.34`)."""
    cents = np.asarray(cents, np.int64)
    units = cents // 100
    unit_digits = 1 + np.searchsorted(_POWERS_OF_TEN, units, side="right")
    width = int(unit_digits.max(initial=1))
    text = np.empty((len(cents), width + 3), dtype=np.uint8)
    text[:, :width] = _digit_matrix(units, width)
    text[:, width] = ord(".")
    text[:, width + 1 :] = _digit_matrix(cents % 100, 2)
    keep = np.arange(width + 3) >= (width - unit_digits)[:, None]  # drop the leading zeros
    return _text_from_bytes(text[keep], unit_digits + 3)


def _quoted_where_needed(text: pa.Array) -> pa.Array:
    """CSV rendering of cells: quote a cell holding a comma, a quote or a line break, and a
    whitespace-only cell (so no reader mistakes it for empty or trims it away)."""
    needs = pc.match_substring_regex(text, r'[",\r\n]|^\s+$')
    escaped = pc.replace_substring(text, '"', '""')
    return pc.if_else(needs, pc.binary_join_element_wise('"', escaped, '"', ""), text)


# --------------------------------------------------------------------------- dirt and oddities

_Generator = Callable[[np.random.Generator, pa.Array], pa.Array]
_IMPOSSIBLE_MONTH_DAYS = ["02-30", "02-31", "04-31", "06-31", "09-31", "11-31", "13-01", "00-10", "07-32", "12-00"]


def _missing(rng, current):
    """An empty cell or a whitespace-only one."""
    return _choice(rng, [None, " ", "  ", "\t"], len(current), p=[0.5, 0.25, 0.15, 0.1])


def _impossible_day(rng, current):
    """`2023-02-30`: the right shape, but no such day."""
    year = pc.utf8_slice_codeunits(current, 0, 4)
    return pc.binary_join_element_wise(year, _choice(rng, _IMPOSSIBLE_MONTH_DAYS, len(current)), "-")


def _slashed_date(rng, current):
    """`2024/01/05`."""
    return pc.replace_substring(current, "-", "/")


def _day_first_date(rng, current):
    """`05-01-2024`."""
    day, month, year = (pc.utf8_slice_codeunits(current, a, b) for a, b in ((8, 10), (5, 7), (0, 4)))
    return pc.binary_join_element_wise(day, month, year, "-")


def _text_date(rng, current):
    return _choice(rng, ["not a date", "unknown", "N/A", "TBD", "yesterday"], len(current))


def _text_amount(rng, current):
    return _choice(rng, ["abc", "n/a", "null", "None", "twelve", "-", "."], len(current))


def _nan_amount(rng, current):
    return _choice(rng, ["NaN", "nan", "NAN"], len(current))


def _thousands_amount(rng, current):
    """`1,234.50`: a thousands separator."""
    count = len(current)
    units = pc.binary_join_element_wise(
        pc.cast(pa.array(rng.integers(1, 100, count)), pa.string()), _zero_padded(rng.integers(0, 1000, count), 3), ","
    )
    return pc.binary_join_element_wise(units, _zero_padded(rng.integers(0, 100, count), 2), ".")


def _currency_amount(rng, current):
    """`$12.00`: a currency sign."""
    return pc.binary_join_element_wise(_choice(rng, ["$", "€", "£"], len(current)), current, "")


def _infinite_amount(rng, current):
    return _choice(rng, ["inf", "-inf", "Infinity", "INF"], len(current))


def _exponent_amount(rng, current):
    return _choice(rng, ["1e3", "2.5e2", "1E2", "7.5e1"], len(current))


def _zero_amount(rng, current):
    """Zero, written several ways (`0.004` is 0 cents once rounded)."""
    return _choice(rng, ["0", "0.00", "0.0", "-0.00", "0.004"], len(current))


def _negative_amount(rng, current):
    """A refund: `-12.34`."""
    return pc.binary_join_element_wise("-", current, "")


def _padded(rng, current):
    """A valid value with surrounding spaces (kept: values are trimmed)."""
    pads = [(" ", ""), ("", " "), (" ", " "), ("  ", "  ")]
    which = rng.integers(0, len(pads), len(current))
    left = _strings([p[0] for p in pads]).take(which)
    right = _strings([p[1] for p in pads]).take(which)
    return pc.binary_join_element_wise(left, current, right, "")


def _one_decimal_amount(rng, current):
    """`12.5`: one decimal only (kept)."""
    return pc.utf8_slice_codeunits(current, 0, -1)


def _leading_dot_amount(rng, current):
    """`.75`: no units digit (kept)."""
    return pc.binary_join_element_wise(".", _zero_padded(rng.integers(1, 100, len(current)), 2), "")


def _plus_sign_amount(rng, current):
    """`+12.50`: an explicit plus sign (kept)."""
    return pc.binary_join_element_wise("+", current, "")


@dataclass(frozen=True)
class _Kind:
    name: str
    reason: str | None  # the reject reason it causes; None for a kept oddity
    column: str
    share: float
    make: _Generator


#: Dirt kinds with their share of the dirty rows (the shares add up to 1).
DIRT_KINDS: tuple[_Kind, ...] = (
    _Kind("missing_date", "missing_date", "date", 0.12, _missing),
    _Kind("impossible_day", "invalid_date", "date", 0.05, _impossible_day),
    _Kind("slashed_date", "invalid_date", "date", 0.045, _slashed_date),
    _Kind("day_first_date", "invalid_date", "date", 0.045, _day_first_date),
    _Kind("text_date", "invalid_date", "date", 0.04, _text_date),
    _Kind("missing_product_id", "missing_product_id", "product_id", 0.12, _missing),
    _Kind("missing_amount", "missing_amount", "amount", 0.14, _missing),
    _Kind("text_amount", "invalid_amount", "amount", 0.035, _text_amount),
    _Kind("nan_amount", "invalid_amount", "amount", 0.035, _nan_amount),
    _Kind("thousands_amount", "invalid_amount", "amount", 0.035, _thousands_amount),
    _Kind("currency_amount", "invalid_amount", "amount", 0.035, _currency_amount),
    _Kind("infinite_amount", "invalid_amount", "amount", 0.03, _infinite_amount),
    _Kind("exponent_amount", "invalid_amount", "amount", 0.03, _exponent_amount),
    _Kind("zero_amount", "non_positive_amount", "amount", 0.10, _zero_amount),
    _Kind("negative_amount", "non_positive_amount", "amount", 0.14, _negative_amount),
)

#: Harmless oddities with their share of the oddity rows (there are `dirt / 2` of them).
ODDITY_KINDS: tuple[_Kind, ...] = (
    _Kind("padded_date", None, "date", 0.15, _padded),
    _Kind("padded_product_id", None, "product_id", 0.15, _padded),
    _Kind("padded_amount", None, "amount", 0.15, _padded),
    _Kind("padded_customer_id", None, "customer_id", 0.10, _padded),
    _Kind("one_decimal_amount", None, "amount", 0.25, _one_decimal_amount),
    _Kind("leading_dot_amount", None, "amount", 0.15, _leading_dot_amount),
    _Kind("plus_sign_amount", None, "amount", 0.05, _plus_sign_amount),
)


def _kind_thresholds(dirt: float) -> np.ndarray:
    """Cumulative probability of each kind (DIRT_KINDS then ODDITY_KINDS); beyond the
    last threshold a row stays clean."""
    oddity = min(dirt * _ODDITY_RATIO, 1.0 - dirt)
    shares = [dirt * k.share for k in DIRT_KINDS] + [oddity * k.share for k in ODDITY_KINDS]
    return np.cumsum(shares)


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class _Catalog:
    """Everything shared by all blocks: the days, the products and their popularity."""

    day_text: pa.Array
    day_cdf: np.ndarray
    product_text: pa.Array
    product_cdf: np.ndarray
    product_lookup: np.ndarray | None
    product_price: np.ndarray
    kind_thresholds: np.ndarray


def _day_weights(first: date, days: int) -> np.ndarray:
    """Relative sales volume of each day: weekly rhythm × yearly cycle × trend."""
    day = np.datetime64(first, "D") + np.arange(days)
    weekday = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    day_of_year = (day - day.astype("datetime64[Y]")).astype(np.int64)
    yearly = 1.0 + _YEARLY_SWING * np.cos(2 * np.pi * (day_of_year - _YEARLY_PEAK_DAY) / 365.25)
    trend = 1.0 + _TREND_OVER_PERIOD * np.arange(days) / max(days - 1, 1)
    return _WEEKDAY_WEIGHTS[weekday] * yearly * trend


def _sample(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Indices drawn from a cumulative distribution."""
    return np.minimum(np.searchsorted(cdf, uniforms, side="right"), len(cdf) - 1)


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _inverse_cdf_table(cdf: np.ndarray) -> np.ndarray:
    """The item drawn for each cell of a fine grid of uniform values, so that sampling is
    one array lookup instead of a binary search. With at least 64 cells per item (and 2**20
    in all) the rarest items keep their popularity closely."""
    cells = max(1 << 20, 64 * len(cdf))
    return _sample(cdf, (np.arange(cells) + 0.5) / cells).astype(np.int32)


def _product_popularity(rng: np.random.Generator, products: int) -> np.ndarray:
    """Zipf-like weights, assigned to product ids in random order."""
    by_rank = 1.0 / np.arange(1, products + 1) ** _ZIPF_EXPONENT
    return by_rank[rng.permutation(products)]


def _product_ids(popularity: np.ndarray) -> pa.Array:
    """`P000001` … ; the product of popularity rank `_NA_PRODUCT_RANK` is called `NA`."""
    count = len(popularity)
    ids = _identifiers("P", np.arange(1, count + 1), max(6, len(str(count))))
    if count < 2:
        return ids
    rank_order = np.argsort(-popularity, kind="stable")
    is_na = np.zeros(count, dtype=bool)
    is_na[rank_order[min(_NA_PRODUCT_RANK, count) - 1]] = True
    return pc.replace_with_mask(ids, pa.array(is_na), _strings(["NA"]))


def _build_catalog(spec: _Spec) -> _Catalog:
    rng = np.random.default_rng([spec.seed, _CATALOG_STREAM])
    days = np.datetime64(spec.start, "D") + np.arange(spec.days)
    popularity = _product_popularity(rng, spec.products)
    price = np.exp(rng.normal(np.log(_MEDIAN_PRICE), _PRICE_SPREAD, spec.products))
    return _Catalog(
        day_text=_strings(days.astype(str)),
        day_cdf=_cdf(_day_weights(spec.start, spec.days)),
        product_text=_product_ids(popularity),
        product_cdf=_cdf(popularity),
        product_lookup=_inverse_cdf_table(_cdf(popularity)) if spec.products <= _LOOKUP_MAX_ITEMS else None,
        product_price=price,
        kind_thresholds=_kind_thresholds(spec.dirt),
    )


# --------------------------------------------------------------------------- one block


def _draw_products(catalog: _Catalog, uniforms: np.ndarray) -> np.ndarray:
    """Products by popularity: a table lookup for usual catalogues, an exact binary search
    for very large ones (whose table would not fit comfortably in memory)."""
    lookup = catalog.product_lookup
    if lookup is None:
        return _sample(catalog.product_cdf, uniforms)
    return lookup[(uniforms * len(lookup)).astype(np.int64)]


def _clean_columns(rng: np.random.Generator, spec: _Spec, catalog: _Catalog, first_row: int, count: int):
    """Valid sales rows at file positions first_row … first_row+count-1, dates ascending."""
    position = (first_row + np.sort(rng.random(count)) * count) / spec.rows
    day = _sample(catalog.day_cdf, position)
    product = _draw_products(catalog, rng.random(count))
    quantity = rng.geometric(_QUANTITY_P, count)
    noise = rng.lognormal(0.0, _AMOUNT_SPREAD, count)
    cents = np.maximum(np.rint(catalog.product_price[product] * quantity * noise * 100), _MIN_CENTS)
    present = rng.random(count) < _CUSTOMER_PRESENT
    customer = (spec.customers * rng.random(count) ** _CUSTOMER_SKEW).astype(np.int64)
    return {
        "date": catalog.day_text.take(day),
        "product_id": catalog.product_text.take(product),
        "amount": _money(cents.astype(np.int64)),
        "customer_id": _identifiers("C", customer + 1, max(7, len(str(spec.customers))), present),
    }


def _apply_kinds(rng: np.random.Generator, columns: dict[str, pa.Array], thresholds: np.ndarray) -> None:
    """Turn some clean rows into dirty or odd ones, at most one kind per row (one pass
    per column: the rows of all kinds touching it are replaced at once)."""
    kinds = DIRT_KINDS + ODDITY_KINDS
    kind = np.searchsorted(thresholds, rng.random(len(columns["date"])), side="right")
    for name in RAW_COLUMNS:
        indices = [i for i, k in enumerate(kinds) if k.column == name]
        rows = np.flatnonzero(np.isin(kind, indices))
        if rows.size == 0:
            continue
        current, row_kind = columns[name].take(rows), kind[rows]
        pieces, positions = [], []
        for index in indices:
            where = np.flatnonzero(row_kind == index)
            if where.size:
                pieces.append(kinds[index].make(rng, current.take(where)))
                positions.append(where)
        in_row_order = np.argsort(np.concatenate(positions), kind="stable")
        replacement = _quoted_where_needed(pa.concat_arrays(pieces).take(in_row_order))
        mask = np.zeros(len(kind), dtype=bool)
        mask[rows] = True
        columns[name] = pc.replace_with_mask(columns[name], pa.array(mask), replacement)


def _duplicate_sources(rng: np.random.Generator, count: int, rate: float) -> np.ndarray | None:
    """For each row, the row whose content it carries: itself, or for about `rate` of rows
    a recent earlier row that is not itself a copy. None when no row is a copy."""
    source = np.arange(count)
    copy = rng.random(count) < rate
    back = 1 + (rng.random(count) * np.minimum(source, _DUPLICATE_WINDOW)).astype(np.int64)
    copy[0] = False
    if not copy.any():
        return None
    source = np.where(copy, source - back, source)
    while True:  # follow copies of copies to the original (pointer jumping, a few rounds)
        followed = source[source]
        if np.array_equal(followed, source):
            return source
        source = followed


def _csv_lines(columns: dict[str, pa.Array]) -> pa.Array:
    """One CSV line per row, `\\n`-terminated; a null cell is written empty."""
    empty_for_null = {"null_handling": "replace", "null_replacement": ""}
    last = pc.binary_join_element_wise(columns["customer_id"], "", "\n", **empty_for_null)
    return pc.binary_join_element_wise(
        columns["date"], columns["product_id"], columns["amount"], last, ",", **empty_for_null
    )


def _block_lines(spec: _Spec, catalog: _Catalog, block: int) -> pa.Array:
    """The CSV lines of one block of rows, from the block's own random stream."""
    rng = np.random.default_rng([spec.seed, _BLOCK_STREAM, block])
    first_row = block * _BLOCK_ROWS
    count = min(_BLOCK_ROWS, spec.rows - first_row)
    columns = _clean_columns(rng, spec, catalog, first_row, count)
    _apply_kinds(rng, columns, catalog.kind_thresholds)
    source = _duplicate_sources(rng, count, spec.duplicate_rate)
    if source is not None:
        columns = {name: values.take(source) for name, values in columns.items()}
    return _csv_lines(columns)


# --------------------------------------------------------------------------- streaming


def _text_bytes(lines: pa.Array) -> memoryview:
    """The bytes of a (possibly sliced) string array, without copying."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]]


def _chunks(spec: _Spec, catalog: _Catalog) -> Iterator[list[memoryview]]:
    """The file body, `chunk_rows` rows at a time (as pieces of block buffers)."""
    cached_block, cached_lines = -1, None
    for chunk_start in range(0, spec.rows, spec.chunk_rows):
        chunk_end = min(spec.rows, chunk_start + spec.chunk_rows)
        pieces = []
        for block in range(chunk_start // _BLOCK_ROWS, (chunk_end - 1) // _BLOCK_ROWS + 1):
            if block != cached_block:
                cached_block, cached_lines = block, _block_lines(spec, catalog, block)
            low = max(chunk_start, block * _BLOCK_ROWS) - block * _BLOCK_ROWS
            high = min(chunk_end, (block + 1) * _BLOCK_ROWS) - block * _BLOCK_ROWS
            pieces.append(_text_bytes(cached_lines.slice(low, high - low)))
        yield pieces


def _write_in_background(sink: BinaryIO, chunks: Iterator[list[memoryview]]) -> None:
    """Write the chunks to `sink` from a second thread, so that compressing and writing one
    chunk overlaps with generating the next (zlib, zstd and file writes release the GIL).
    At most `_QUEUED_CHUNKS` chunks wait, so memory stays bounded. An error on either side
    stops both and is raised here."""
    queue: Queue = Queue(maxsize=_QUEUED_CHUNKS)
    failures: list[BaseException] = []

    def drain() -> None:
        while (pieces := queue.get()) is not None:
            if failures:
                continue  # keep taking chunks so the producer never blocks; drop them
            try:
                for piece in pieces:
                    sink.write(piece)
            except BaseException as error:  # noqa: BLE001 - handed to the caller below
                failures.append(error)

    writer = threading.Thread(target=drain, name="generate-sales-writer", daemon=True)
    writer.start()
    try:
        for pieces in chunks:
            if failures:
                break
            queue.put(pieces)
    finally:
        queue.put(None)
        writer.join()
    if failures:
        raise failures[0]


def output_format(path: str | Path) -> tuple[str, str | None]:
    """The format ("csv" or "parquet") and compression its name gives a generated file;
    ValueError naming the endings there are for any other name."""
    name = Path(path).name.lower()
    for ending in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(ending) and len(name) > len(ending):
            return OUTPUT_FORMATS[ending]
    raise ValueError(f"cannot tell which format to write from the name; end it with one of "
                     f"{', '.join(OUTPUT_FORMATS)}")


def _write_parquet(raw: BinaryIO, spec: _Spec, catalog: _Catalog) -> None:
    """The rows as Parquet: text columns holding each cell as a CSV reader reads it (an
    empty cell is null), one row group per block of rows, so the file never depends on
    `chunk_rows` either."""
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.string()) for name in RAW_COLUMNS])
    with pq.ParquetWriter(raw, schema) as writer:
        for block in range((spec.rows - 1) // _BLOCK_ROWS + 1):
            writer.write_table(_cells(_block_lines(spec, catalog, block), schema))


def _cells(lines: pa.Array, schema: pa.Schema) -> pa.Table:
    """The CSV lines of a block read back as a table of text cells."""
    import pyarrow.csv as pa_csv

    options = pa_csv.ConvertOptions(column_types=schema, strings_can_be_null=True, null_values=[""],
                                    quoted_strings_can_be_null=False)
    text = pa.BufferReader(HEADER + bytes(_text_bytes(lines)))
    return pa_csv.read_csv(text, read_options=pa_csv.ReadOptions(use_threads=False), convert_options=options)


@contextmanager
def _compressed(raw: BinaryIO, compression: str | None) -> Iterator[BinaryIO]:
    """A writer that compresses into `raw`; reproducible (no timestamp, no file name)."""
    if compression is None:
        yield raw
    elif compression == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as sink:
            yield sink
    else:
        import zstandard

        with zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(raw, closefd=False) as sink:
            yield sink


def generate_sales(
    output: str | Path,
    rows: int,
    *,
    seed: int = 0,
    start: str = "2022-01-01",
    days: int = 3 * 365,
    products: int = 2_000,
    customers: int = 200_000,
    dirt: float = 0.04,
    duplicate_rate: float = 0.01,
    chunk_rows: int = 1_000_000,
) -> GeneratedSummary:
    """Write `rows` synthetic sales transactions to `output` and say what was written.

    `output` ending in `.csv` is CSV text, `.csv.gz` gzip-compressed, `.csv.zst` (or
    `.csv.zstd`) zstandard-compressed, `.parquet` Parquet (OUTPUT_FORMATS; any other name
    is a ValueError); missing parent directories are created. The data cover `days`
    days from `start` (YYYY-MM-DD), `products` products and `customers` customers; about
    `dirt` of the rows break one cleaning rule each (every reject reason occurs) and about
    `duplicate_rate` of them repeat an earlier row exactly. The same arguments always give
    the same bytes; `chunk_rows` only bounds memory (rows held at once) and never changes
    the output.

    Raises ValueError for a bad argument before anything is written, and OSError when the
    file cannot be written; in both cases no file appears (or changes) under `output`.
    """
    spec = _validated(rows, seed, start, days, products, customers, dirt, duplicate_rate, chunk_rows)
    target = Path(output)
    if target.is_dir():
        raise ValueError(f"output {target} is a directory, expected a file path")
    form, compression = output_format(target)
    catalog = _build_catalog(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    # all or nothing; the file gets the usual permissions (0666 minus the umask)
    with atomic_file(target, 0o666, umask=True) as raw:
        if form == "parquet":
            _write_parquet(raw, spec, catalog)
        else:
            with _compressed(raw, compression) as sink:
                sink.write(HEADER)
                _write_in_background(sink, _chunks(spec, catalog))
    return GeneratedSummary(path=target, rows=spec.rows, bytes_written=target.stat().st_size, seed=spec.seed)
