"""File partials: what one input file contributes to every whole-input figure.

The pass summarises partitions per file (engine.dataflow.summaries); a file's summary,
its rejected rows numbered by file line and its distinct fingerprints make its
`FilePartial`. Partials of different files merge exactly into the whole input's figures
(`merge`), in the input's file order, so a file's partial can be kept between runs and
reused when the file has not changed (engine.incremental) and the result is the same as
reading every file again.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from engine.dataflow import quarantine, summaries
from engine.rules.validation import MALFORMED_LINE_CODE, PROFILE_COMBINE
from engine.sources.plan import ReadPlan

#: The per-file profile's figures (engine.rules.validation.file_profile), in order.
PROFILE_FIGURES = tuple(PROFILE_COMBINE)


@dataclass
class FilePartial:
    """One input file's share of the whole-input figures."""

    #: per sales day of the kept rows: day, total_hi, total_lo, transaction_count
    days: pa.Table
    #: the distinct (day, product_id) pairs of the kept rows
    day_products: pa.Table
    #: records per reject_reason code, KEPT first (skipped malformed lines included)
    reasons: np.ndarray
    #: rows, missing cells per column, amount and date ranges (PROFILE_FIGURES)
    profile: dict[str, float]
    #: the file's quarantine rows (quarantine.lines_by_file): line, reason code, cells
    rejects: pa.Table
    #: the distinct fingerprints of the file's records, ascending; None when not kept
    fingerprints: np.ndarray | None = None


@dataclass(frozen=True)
class ReadPartials:
    """The partials of the files read in this run, by file index in the read plan, and
    the count of distinct records over them when the pass counted it instead of keeping
    fingerprints per file."""

    partials: dict[int, FilePartial]
    distinct_records: int | None = None


def from_pass(by_file: summaries.FileSummaries, shard_results: list, plan: ReadPlan) -> ReadPartials:
    """The partials of the pass's files. `shard_results` are either counts (the pass counted
    distinct records over all its files) or, per shard, each file's distinct fingerprints."""
    rejects = pa.concat_tables([summary.rejects for summary in by_file.values()])
    task_lines = {task: lines for summary in by_file.values() for task, lines in summary.task_lines.items()}
    rejects_by_file = quarantine.lines_by_file(rejects, task_lines, plan)
    counted = all(isinstance(result, int) for result in shard_results)
    partials = {}
    for file, summary in by_file.items():
        profile = summary.profiles.set_index("source_file").loc[file]
        partials[file] = FilePartial(
            days=summary.days, day_products=summary.day_products, reasons=summary.reasons,
            profile={figure: float(profile[figure]) for figure in PROFILE_FIGURES},
            rejects=rejects_by_file[file],
            fingerprints=None if counted else np.concatenate([result[file] for result in shard_results]))
    return ReadPartials(partials, sum(shard_results) if counted else None)


@dataclass(frozen=True)
class MergedFigures:
    """The whole input's figures, merged from every file's partial."""

    daily_sales: pd.DataFrame
    reasons: np.ndarray
    profiles: pd.DataFrame
    rejected_rows: pa.Table
    distinct_records: int


def merge(partials: list[tuple[int, FilePartial]], plan: ReadPlan, distinct_records: int) -> MergedFigures:
    """The figures of the files `(index in plan.files, partial)`, in file order, with
    `distinct_records` distinct records among their parsed rows (counted by the pass, or
    by an incremental run over the files' fingerprints). A skipped malformed line is never
    a duplicate: it counts as distinct."""
    parts = [partial for _, partial in partials]
    reasons = np.sum([p.reasons for p in parts], axis=0)
    profiles = pd.DataFrame([{"source_file": file, **p.profile} for file, p in partials])
    with ThreadPoolExecutor(max_workers=1) as pool:  # Arrow's take and concatenation release the GIL
        rejected_rows = pool.submit(quarantine.publish, [(plan.files[file].path, p.rejects) for file, p in partials])
        daily_sales = summaries.daily_table(summaries.merged_days([p.days for p in parts]),
                                            summaries.merged_day_products([p.day_products for p in parts]))
        return MergedFigures(
            daily_sales=daily_sales,
            reasons=reasons,
            profiles=profiles,
            rejected_rows=rejected_rows.result(),
            distinct_records=distinct_records + int(reasons[MALFORMED_LINE_CODE]),
        )
