"""Partition summaries: what the whole-input reductions need from one partition.

Every figure that needs all the rows (per-day totals and distinct products, rejections
per reason, the per-file profile, the number of distinct raw rows) is first reduced
inside the task that reads and validates a partition, so the validated rows die with
that task. Summaries are small and combine associatively, in any grouping.

The distinct raw rows are the exception: their fingerprints cannot be reduced before
every partition is seen. Each partition sorts its distinct fingerprints into SHARDS
ranges (by their top bits); one shard of every partition merges independently of the
others, so the exact count is a sum of independent, equally sized merges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine import quarantine
from engine.pseudonyms import SecretKey
from engine.validation import ALL_REJECT_REASONS, KEPT, MALFORMED_LINE_CODE, PROFILE_COMBINE, file_profile, kept_rows

#: Fingerprint ranges merged independently; enough to keep every core busy.
SHARDS = 16
_SHARD_SHIFT = np.uint64(64 - int(np.log2(SHARDS)))


@dataclass
class SalesSummary:
    """The reduced form of some partitions of validated sales."""

    #: per sales day (days since 1970-01-01): total_cents, transaction_count
    days: pa.Table
    #: the distinct (day, product_id) pairs of kept rows
    day_products: pa.Table
    #: rows per reject_reason code, KEPT first
    reasons: np.ndarray
    #: per source file: raw records (skipped malformed lines included), missing cells per
    #: column, amount and date ranges
    profiles: pd.DataFrame
    #: the rejected rows, positions not yet resolved to line numbers (engine.quarantine)
    rejects: pa.Table
    #: lines per read task (by task index)
    task_lines: dict[int, int]


def summarize(validated: pd.DataFrame, key: SecretKey | None = None) -> tuple:
    """A partition's summary followed by its distinct fingerprints, one array per shard.

    `key` pseudonymises the customer ids of rejected rows; without it they are left out.
    """
    kept = kept_rows(validated)
    day = pc.cast(pa.array(kept["date"]), pa.int32())
    sales = pa.table({"day": day, "cents": pa.array(kept["amount_cents"].to_numpy())})
    days = _by_day(sales, [("cents", "sum"), ("cents", "count")])
    pairs = pa.table({"day": day, "product_id": pa.array(kept["product_id"])})
    reasons = np.bincount(validated["reject_reason"].to_numpy(), minlength=len(ALL_REJECT_REASONS) + 1).astype(np.int64)
    profile = file_profile(validated)
    malformed = len(validated.attrs.get("malformed") or ())
    if malformed:
        reasons[MALFORMED_LINE_CODE] += malformed
        extra = pd.DataFrame({"source_file": [validated.attrs["file"]], "rows": [malformed]})
        profile = pd.concat([profile, extra], ignore_index=True).groupby("source_file", as_index=False).agg(
            {**PROFILE_COMBINE, "rows": "sum"})
    task_lines = {validated.attrs["task"]: validated.attrs["lines"]} if "task" in validated.attrs else {}
    summary = SalesSummary(days, _distinct(pairs), reasons, profile, quarantine.partition_rejects(validated, key),
                           task_lines)
    return (summary, *_shards(_sorted_distinct(validated["fingerprint"].to_numpy())))


def combine(summaries: list[SalesSummary]) -> SalesSummary:
    """One summary of all the partitions the given summaries cover."""
    if len(summaries) == 1:
        return summaries[0]
    days = _by_day(pa.concat_tables([s.days for s in summaries]),
                   [("total_cents", "sum"), ("transaction_count", "sum")])
    profiles = pd.concat([s.profiles for s in summaries], ignore_index=True)
    return SalesSummary(
        days=days,
        day_products=_distinct(pa.concat_tables([s.day_products for s in summaries])),
        reasons=np.sum([s.reasons for s in summaries], axis=0),
        profiles=profiles.groupby("source_file", as_index=False).agg(PROFILE_COMBINE),
        rejects=pa.concat_tables([s.rejects for s in summaries]),
        task_lines={task: lines for s in summaries for task, lines in s.task_lines.items()},
    )


def count_distinct(shard: list[np.ndarray]) -> int:
    """How many distinct fingerprints one shard of every partition holds together."""
    return int(_sorted_distinct(np.concatenate(shard)).size) if shard else 0


def daily_table(summary: SalesSummary) -> pd.DataFrame:
    """One row per sales day, ascending: date, total_cents, transaction_count, unique_products."""
    products = summary.day_products.group_by("day").aggregate([("product_id", "count")])
    daily = summary.days.join(products, "day").sort_by("day")
    return pd.DataFrame({
        "date": pd.Series(pc.cast(daily["day"], pa.date32()).to_pylist(), dtype=object),
        "total_cents": daily["total_cents"].to_numpy().astype("int64"),
        "transaction_count": daily["transaction_count"].to_numpy().astype("int64"),
        "unique_products": daily["product_id_count"].to_numpy().astype("int64"),
    })


def rejected_by_reason(summary: SalesSummary) -> dict[str, int]:
    """Rejected raw records per reason, every reason present."""
    return {reason: int(summary.reasons[code]) for code, reason in enumerate(ALL_REJECT_REASONS, start=KEPT + 1)}


def _by_day(table: pa.Table, aggregations: list[tuple[str, str]]) -> pa.Table:
    """Per day: the total cents and the number of sales, from the given column sums or counts."""
    grouped = table.group_by("day").aggregate(aggregations)
    total, count = (f"{column}_{function}" for column, function in aggregations)
    return pa.table({"day": grouped["day"], "total_cents": grouped[total], "transaction_count": grouped[count]})


def _distinct(pairs: pa.Table) -> pa.Table:
    return _compact(pairs.group_by(["day", "product_id"]).aggregate([]))


def _compact(table: pa.Table) -> pa.Table:
    """The table in buffers of its own. A group-by's key columns can be slices of much larger
    buffers (800 MiB behind 19 MiB at 10M rows), and a summary sent between processes
    carries whole buffers."""
    return table.take(pa.array(np.arange(table.num_rows)))


def _sorted_distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (a sort: numpy's hash-based unique is slower here)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _shards(fingerprints: np.ndarray) -> list[np.ndarray]:
    """Sorted distinct fingerprints cut into SHARDS contiguous ranges of their top bits."""
    bounds = np.searchsorted(fingerprints >> _SHARD_SHIFT, np.arange(1, SHARDS, dtype=np.uint64))
    return np.split(fingerprints, bounds)
