"""The quarantine: every rejected row, with why and where, without customer ids in clear.

Each partition lists its rejected rows (engine.dataflow.summaries) with the line's position in its
read task; once every task's line count is known, positions become file line numbers
(a file's first task starts at line 1, its header). Customer ids are replaced by their
keyed pseudonyms (engine.rules.pseudonyms) where a key is configured, and left out otherwise:
a quarantine file never holds a customer id in clear. The cells are the text as read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.rules.pseudonyms import KEY_ENV, KEY_FILE_ENV, SecretKey, load_key, pseudonymize
from engine.rules.validation import ALL_REJECT_REASONS, KEPT, MALFORMED_LINE_CODE, TEXT_KEPT_FOR_QUARANTINE
from engine.sources.plan import ReadPlan

log = logging.getLogger("engine.quarantine")  # the name in log lines, kept from before the package layout

FILE_NAME = "rejected_rows.parquet"
#: The published columns: where the row was, why it was rejected, and its cells as read.
SCHEMA = pa.schema([
    ("file", pa.string()), ("line", pa.int64()), ("reason", pa.string()),
    ("date", pa.string()), ("product_id", pa.string()), ("amount", pa.string()),
    ("customer_id", pa.string()), ("detail", pa.string()),
])
_PARTIAL = pa.schema([
    ("task", pa.int32()), ("position", pa.int32()), ("reason", pa.int8()),
    ("date", pa.string()), ("product_id", pa.string()), ("amount", pa.string()),
    ("customer_id", pa.string()), ("detail", pa.string()),
])


def partition_rejects(validated: pd.DataFrame, key: SecretKey | None) -> pa.Table:
    """The partition's rejected rows and skipped malformed lines, positions unresolved."""
    reasons = validated["reject_reason"].to_numpy()
    rejected = np.flatnonzero(reasons != KEPT)
    count = len(rejected)
    task = np.int32(validated.attrs.get("task", 0))
    picked = pa.array(rejected)

    def cells(column: str) -> pa.Array:  # the rejected rows' cells of one column, as text
        return pc.take(pa.array(validated[column].array, pa.string()), picked)

    customers = pseudonymize(cells("customer_id"), key.reveal()) if key is not None else pa.nulls(count, pa.string())
    rows = pa.table({
        "task": pa.array(np.full(count, task, dtype=np.int32)),
        "position": pa.array(validated["line_position"].to_numpy()[rejected], pa.int32()),
        "reason": pa.array(reasons[rejected], pa.int8()),
        **{name: cells(f"{name}_text") for name in TEXT_KEPT_FOR_QUARANTINE},
        "customer_id": customers,
        "detail": pa.nulls(count, pa.string()),
    }, schema=_PARTIAL)
    malformed = validated.attrs.get("malformed") or []
    if not malformed:
        return rows
    positions, details = zip(*malformed)
    skipped = pa.table({
        "task": pa.array([task] * len(malformed), pa.int32()),
        "position": pa.array(positions, pa.int32()),
        "reason": pa.array([MALFORMED_LINE_CODE] * len(malformed), pa.int8()),
        **{name: pa.nulls(len(malformed), pa.string()) for name in ("date", "product_id", "amount", "customer_id")},
        "detail": pa.array(details, pa.string()),
    }, schema=_PARTIAL)
    return pa.concat_tables([rows, skipped])


def lines_by_file(rejects: pa.Table, task_lines: dict[int, int], plan: ReadPlan) -> dict[int, pa.Table]:
    """Each file's rejected rows with their file line numbers (`line`, then the reason
    code and the cells), ordered by line, by the file's index in `plan`. The tasks of a file
    in `plan` cover it whole, from its line 1 (the header)."""
    first_line = np.zeros(len(plan.tasks), dtype=np.int64)
    next_line: dict[int, int] = {}  # per file, the line after its tasks so far (plan order)
    for task in plan.tasks:
        first_line[task.index] = next_line.get(task.file_index, 1)
        next_line[task.file_index] = first_line[task.index] + task_lines.get(task.index, 0)
    tasks = rejects["task"].to_numpy()
    lines = first_line[tasks] + rejects["position"].to_numpy().astype(np.int64)
    files = np.array([t.file_index for t in plan.tasks], dtype=np.int64)[tasks]
    order = np.lexsort((lines, files))
    ordered = rejects.drop_columns(["task", "position"]).take(pa.array(order)).add_column(
        0, "line", pa.array(lines[order]))
    read = sorted({task.file_index for task in plan.tasks})
    bounds = np.searchsorted(files[order], read + [len(plan.files)])
    return {file: ordered.slice(start, end - start) for file, start, end in zip(read, bounds[:-1], bounds[1:])}


def publish(by_file: list[tuple[str, pa.Table]]) -> pa.Table:
    """The published quarantine from (path, that file's rows by `lines_by_file`), in the
    order given (the plan's): file paths and reason names, ordered by file and line."""
    reasons = pa.array(ALL_REJECT_REASONS, pa.string())
    parts = []
    for path, rows in by_file:
        parts.append(pa.table({
            "file": pa.repeat(pa.scalar(path, pa.string()), rows.num_rows),
            "line": rows["line"],
            "reason": pc.take(reasons, pc.subtract(pc.cast(rows["reason"], pa.int32()), 1)),
            **{name: rows[name] for name in ("date", "product_id", "amount", "customer_id", "detail")},
        }, schema=SCHEMA))
    return pa.concat_tables(parts) if parts else SCHEMA.empty_table()


def configured_key() -> SecretKey | None:
    """The pseudonymisation key if one is configured (a configured but unsafe key file is
    an error); None, with a note in the log, if none is."""
    if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV):
        return SecretKey(load_key())
    log.info("no pseudonymisation key (%s or %s): customer ids are left out of %s", KEY_ENV, KEY_FILE_ENV, FILE_NAME)
    return None


def write(table: pa.Table, path: Path) -> None:
    """The quarantine as one Parquet file (the same bytes whatever the mode)."""
    import pyarrow.parquet as pq

    pq.write_table(table.combine_chunks(), path, compression="zstd")
