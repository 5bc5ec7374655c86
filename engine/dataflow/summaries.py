"""Partition summaries: what the whole-input reductions need from one partition.

Every figure that needs all the rows (per-day totals and distinct products, rejections
per reason, the per-file profile, the number of distinct raw rows) is first reduced
inside the task that reads and validates a partition, so the validated rows die with
that task. Summaries are small and combine associatively, in any grouping.

Per-day totals are exact at any size: a summary holds each day's total cents as two int64
halves, `total_hi * 2**32 + total_lo` with `0 <= total_lo < 2**32`. A partition whose
largest amount times its row count stays below 2**63 sums its cents directly (the plain
int64 sum cannot wrap) and splits the sums; any other partition splits every amount
first and sums the halves, which cannot wrap below 2**31 rows per day. Combining adds
the halves and carries the low half's overflow into the high half, so no grouping,
partitioning or mode can wrap a total (docs/semantics.md, "Arithmetic and rounding").

The distinct raw rows are the exception: their fingerprints cannot be reduced before
every partition is seen. Each partition sorts its distinct fingerprints into SHARDS
ranges (by their top bits); one shard of every partition merges independently of the
others, so the exact count is a sum of independent, equally sized merges.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.dataflow import quarantine
from engine.rules.pseudonyms import SecretKey
from engine.rules.validation import ALL_REJECT_REASONS, KEPT, MALFORMED_LINE_CODE, PROFILE_COMBINE, file_profile

#: Fingerprint ranges merged independently; enough to keep every core busy.
SHARDS = 16
_SHARD_SHIFT = np.uint64(64 - int(np.log2(SHARDS)))
#: Totals are kept as total_hi * 2**_HALF + total_lo (docs at the top).
_HALF = 32
_LOW_MASK = (1 << _HALF) - 1
_INT64_MAX = np.iinfo(np.int64).max
#: Every integer below this is exact as a float64.
_FLOAT_EXACT = 2**53


@dataclass
class SalesSummary:
    """The reduced form of some partitions of validated sales."""

    #: per sales day (days since 1970-01-01): total_hi, total_lo (the exact total cents
    #: are total_hi * 2**32 + total_lo, 0 <= total_lo < 2**32), transaction_count
    days: pa.Table
    #: the distinct (day, product_id) pairs of kept rows
    day_products: pa.Table
    #: rows per reject_reason code, KEPT first
    reasons: np.ndarray
    #: per source file: raw records (skipped malformed lines included), missing cells per
    #: column, amount and date ranges
    profiles: pd.DataFrame
    #: the rejected rows, positions not yet resolved to line numbers (engine.dataflow.quarantine)
    rejects: pa.Table
    #: lines per read task (by task index)
    task_lines: dict[int, int]


#: Summaries by the file they cover (its index in the read plan).
FileSummaries = dict[int, SalesSummary]


def summarize(validated: pd.DataFrame, cleaned: pd.DataFrame, key: SecretKey | None = None) -> tuple:
    """A partition's summary followed by its distinct fingerprints, one array per shard,
    each keyed by the partition's file.

    The sales figures (per-day totals, distinct products per day) come from the partition
    of `cleaned_sales_data`; what is about every raw row (rejections, the file profile,
    the quarantine, the fingerprints) from the same partition of `validated_sales`. `key`
    pseudonymises the customer ids of rejected rows; without it they are left out.
    """
    reason = validated["reject_reason"].to_numpy()
    day = pc.cast(pa.array(cleaned["date"]), pa.int32())
    days = _day_totals(day, cleaned["amount_cents"].to_numpy())
    pairs = _day_products(day, pa.array(cleaned["product_id"]))
    reasons = np.bincount(reason, minlength=len(ALL_REJECT_REASONS) + 1).astype(np.int64)
    profile = file_profile(validated)
    malformed = len(validated.attrs.get("malformed") or ())
    if malformed:
        reasons[MALFORMED_LINE_CODE] += malformed
        extra = pd.DataFrame({"source_file": [validated.attrs["file"]], "rows": [malformed]})
        profile = pd.concat([profile, extra], ignore_index=True).groupby("source_file", as_index=False).agg(
            {**PROFILE_COMBINE, "rows": "sum"})
    task_lines = {validated.attrs["task"]: validated.attrs["lines"]} if "task" in validated.attrs else {}
    summary = SalesSummary(days, pairs, reasons, profile, quarantine.partition_rejects(validated, key),
                           task_lines)
    file = int(validated.attrs.get("file", 0))  # a read task is part of one file
    return ({file: summary}, *({file: part} for part in _shards(sorted_distinct(validated["fingerprint"].to_numpy()))))


def combine(summaries: list[FileSummaries]) -> FileSummaries:
    """One summary per file of all the partitions the given summaries cover."""
    by_file: dict[int, list[SalesSummary]] = {}
    for summary in summaries:
        for file, part in summary.items():
            by_file.setdefault(file, []).append(part)
    return {file: combine_sales(parts) for file, parts in sorted(by_file.items())}


def combine_sales(summaries: list[SalesSummary]) -> SalesSummary:
    """One summary of all the partitions the given summaries cover."""
    if len(summaries) == 1:
        return summaries[0]
    profiles = pd.concat([s.profiles for s in summaries], ignore_index=True)
    return SalesSummary(
        days=merged_days([s.days for s in summaries]),
        day_products=merged_day_products([s.day_products for s in summaries]),
        reasons=np.sum([s.reasons for s in summaries], axis=0),
        profiles=profiles.groupby("source_file", as_index=False).agg(PROFILE_COMBINE),
        rejects=pa.concat_tables([s.rejects for s in summaries]),
        task_lines={task: lines for s in summaries for task, lines in s.task_lines.items()},
    )


def merged_days(days: list[pa.Table]) -> pa.Table:
    """Per-day totals of several summaries added up (exactly: the halves carry)."""
    if len(days) == 1:
        return days[0]
    grouped = pa.concat_tables(days).group_by("day").aggregate(
        [("total_hi", "sum"), ("total_lo", "sum"), ("transaction_count", "sum")])
    hi, lo = _carry(grouped["total_hi_sum"].to_numpy(), grouped["total_lo_sum"].to_numpy())
    return _days_table(grouped["day"], hi, lo, grouped["transaction_count_sum"])


def merged_day_products(pairs: list[pa.Table]) -> pa.Table:
    """The distinct (day, product_id) pairs of several summaries: each pair as one int64
    (day and the product's index among the distinct products), sorted and deduplicated."""
    if len(pairs) == 1:
        return pairs[0]
    product = pa.concat_arrays([chunk for table in pairs for chunk in table["product_id"].chunks])
    if not len(product):
        return pairs[0]
    encoded = pc.dictionary_encode(product)
    dictionary, codes = encoded.dictionary, encoded.indices.to_numpy().astype(np.int64)
    days = np.concatenate([table["day"].to_numpy() for table in pairs]).astype(np.int64)
    first, width = int(days.min()), len(dictionary)
    keys = sorted_distinct((days - first) * width + codes)  # < 2**22 days times 2**40 products
    return pa.table({"day": pa.array((keys // width + first).astype(np.int32)),
                     "product_id": dictionary.take(pa.array(keys % width))})


def count_distinct(shard: list[dict[int, np.ndarray]]) -> int:
    """How many distinct fingerprints one shard of every partition (of every file) holds."""
    parts = [part for by_file in shard for part in by_file.values()]
    return int(sorted_distinct(np.concatenate(parts)).size) if parts else 0


def distinct_by_file(shard: list[dict[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """One shard's distinct fingerprints of each file, ascending."""
    by_file: dict[int, list[np.ndarray]] = {}
    for parts in shard:
        for file, part in parts.items():
            by_file.setdefault(file, []).append(part)
    return {file: sorted_distinct(np.concatenate(parts)) for file, parts in by_file.items()}


def distinct_union(fingerprints: list[np.ndarray]) -> np.ndarray:
    """The distinct values of the given ascending arrays of distinct fingerprints (one per
    file), ascending; shard by shard, on threads (numpy sorts without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    if len(fingerprints) <= 1:
        return fingerprints[0] if fingerprints else np.zeros(0, np.uint64)
    shards = list(zip(*(_shards(array) for array in fingerprints)))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return np.concatenate(list(pool.map(lambda parts: sorted_distinct(np.concatenate(parts)), shards)))


def daily_table(days: pa.Table, day_products: pa.Table) -> pd.DataFrame:
    """One row per sales day, ascending: date, total_cents, transaction_count, unique_products.

    `total_cents` is int64 when every total fits, otherwise exact Python ints (object)."""
    products = day_products.group_by("day").aggregate([("product_id", "count")])
    daily = days.join(products, "day").sort_by("day")
    return pd.DataFrame({
        "date": pd.Series(pc.cast(daily["day"], pa.date32()).to_pylist(), dtype=object),
        "total_cents": _total_cents(daily["total_hi"].to_numpy(), daily["total_lo"].to_numpy()),
        "transaction_count": daily["transaction_count"].to_numpy().astype("int64"),
        "unique_products": daily["product_id_count"].to_numpy().astype("int64"),
    })


def rejected_by_reason(reasons: np.ndarray) -> dict[str, int]:
    """Rejected raw records per reason (from rows per reason code), every reason present."""
    return {reason: int(reasons[code]) for code, reason in enumerate(ALL_REJECT_REASONS, start=KEPT + 1)}


def _day_totals(day: pa.Array, cents: np.ndarray) -> pa.Table:
    """Per day of the kept rows: the exact total cents (as halves) and the number of sales."""
    cents = np.asarray(cents, dtype=np.int64)
    largest = max(int(cents.max()), -int(cents.min())) if cents.size else 0
    if largest * cents.size < _FLOAT_EXACT and cents.size:
        # No partial sum of these rows reaches 2**53, so summing them as float64 (by day,
        # with bincount) is exact; the days of a partition are a narrow range.
        days = np.asarray(day.to_numpy(), dtype=np.int64)
        first = int(days.min())
        span = int(days.max()) - first + 1
        if span <= max(1 << 20, 4 * days.size):
            counts = np.bincount(days - first, minlength=span)
            sums = np.bincount(days - first, weights=cents.astype(np.float64), minlength=span)
            present = np.flatnonzero(counts)
            totals = sums[present].astype(np.int64)
            return _days_table(pa.array((present + first).astype(np.int32)), totals >> _HALF, totals & _LOW_MASK,
                               pa.array(counts[present].astype(np.int64)))
    if largest * cents.size <= _INT64_MAX:  # the fast path: no sum of these rows can wrap
        grouped = pa.table({"day": day, "cents": cents}).group_by("day").aggregate(
            [("cents", "sum"), ("cents", "count")])
        totals = grouped["cents_sum"].to_numpy()
        hi, lo = totals >> _HALF, totals & _LOW_MASK
    else:  # sum the halves of every amount: each sum stays below 2**63 for < 2**31 rows
        grouped = pa.table({"day": day, "hi": cents >> _HALF, "lo": cents & _LOW_MASK}).group_by("day").aggregate(
            [("hi", "sum"), ("lo", "sum"), ("hi", "count")])
        hi, lo = _carry(grouped["hi_sum"].to_numpy(), grouped["lo_sum"].to_numpy())
        grouped = grouped.rename_columns(["day", "hi_sum", "lo_sum", "cents_count"])
    return _days_table(grouped["day"], hi, lo, grouped["cents_count"])


def _day_products(day: pa.Array, product: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The distinct (day, product_id) pairs of the kept rows, in buffers of their own. When
    the days times the products are few, a pair is a cell of a table of flags (a product
    is its index among the distinct products); otherwise a group-by finds them."""
    if pa.types.is_dictionary(product.type):  # product_id as a pandas categorical (id_dtype)
        encoded, product = product, product.dictionary_decode()
    else:
        encoded = pc.dictionary_encode(product)
    if isinstance(encoded, pa.ChunkedArray):
        dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary if encoded.num_chunks else pa.array([], pa.string())
        if not all(chunk.dictionary.equals(dictionary) for chunk in encoded.chunks):
            return _distinct(pa.table({"day": day, "product_id": product}))
        codes = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks] or [np.zeros(0, np.int32)])
    else:
        dictionary, codes = encoded.dictionary, encoded.indices.to_numpy()
    days = np.asarray(day.to_numpy(), dtype=np.int64)
    if not days.size:
        return pa.table({"day": pa.array([], pa.int32()), "product_id": pa.array([], pa.string())})
    first = int(days.min())
    cells = (int(days.max()) - first + 1) * len(dictionary)
    if cells > max(1 << 22, 4 * days.size):
        return _distinct(pa.table({"day": day, "product_id": product}))
    seen = np.zeros(cells, dtype=bool)
    seen[(days - first) * len(dictionary) + codes] = True
    found = np.flatnonzero(seen)
    return pa.table({"day": pa.array((found // len(dictionary) + first).astype(np.int32)),
                     "product_id": dictionary.take(pa.array(found % len(dictionary)))})


def _days_table(day: pa.ChunkedArray, hi: np.ndarray, lo: np.ndarray, count: pa.ChunkedArray) -> pa.Table:
    return pa.table({"day": day, "total_hi": pa.array(hi, pa.int64()), "total_lo": pa.array(lo, pa.int64()),
                     "transaction_count": count})


def _carry(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The halves with the low half's overflow carried into the high half (lo in [0, 2**32))."""
    hi = np.asarray(hi, dtype=np.int64)
    lo = np.asarray(lo, dtype=np.int64)
    return hi + (lo >> _HALF), lo & _LOW_MASK


def _total_cents(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """hi * 2**32 + lo: int64 when every value fits, else exact Python ints."""
    hi = np.asarray(hi, dtype=np.int64)
    lo = np.asarray(lo, dtype=np.int64)
    if hi.size == 0 or (hi.max() < (1 << (63 - _HALF)) and hi.min() >= -(1 << (63 - _HALF))):
        return (hi << _HALF) + lo
    return np.array([(int(h) << _HALF) + int(l) for h, l in zip(hi, lo)], dtype=object)


def _distinct(pairs: pa.Table) -> pa.Table:
    return _compact(pairs.group_by(["day", "product_id"]).aggregate([]))


def _compact(table: pa.Table) -> pa.Table:
    """The table in buffers of its own. A group-by's key columns can be slices of much larger
    buffers (800 MiB behind 19 MiB at 10M rows), and a summary sent between processes
    carries whole buffers."""
    return table.take(pa.array(np.arange(table.num_rows)))


def sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (a sort: numpy's hash-based unique is slower here)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _shards(fingerprints: np.ndarray) -> list[np.ndarray]:
    """Sorted distinct fingerprints cut into SHARDS contiguous ranges of their top bits."""
    bounds = np.searchsorted(fingerprints >> _SHARD_SHIFT, np.arange(1, SHARDS, dtype=np.uint64))
    return np.split(fingerprints, bounds)
