"""`engine anonymize INPUT OUTPUT`: a copy of a sales dataset with customer ids replaced
by their keyed pseudonyms (engine.rules.pseudonyms), made in any execution mode.

The copy is planned like a run: the same input checks and read tasks
(engine.sources.plan), the same mode choice and partition sizes
(engine.execution.modes), the same backends (engine.execution.backends). Each partition is read with the engine's reader and
pseudonymised where it is read: one after another in this process in pandas mode, on
Dask's threads in dask mode, on the cluster's workers in distributed mode. This
process appends the finished partitions to the copy in input order, a few at a time,
so memory stays bounded whatever the input's size and the copy is the same, byte for
byte, in every mode and for every partition size.

What the copy holds: the four sales columns, rows in input order, every cell as the
engine reads it (text; a missing cell empty), `customer_id` as its pseudonym, a
missing one (empty or whitespace) empty. Extra columns are left out: the engine cannot
tell whether they hold personal data. A file without a `customer_id` column is copied
with that column empty. OUTPUT ending in `.parquet` is one Parquet file with row groups
of PARQUET_ROW_GROUP_ROWS rows; anything else is one CSV file. It appears atomically,
with the engine's file mode (engine.files.permissions: 0640 by default), and never
next to a half-written one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.config import EngineConfig
from engine.errors import ConfigurationError
from engine.execution.backends import Backend, DaskBackend
from engine.execution.interrupts import interruptible, raise_if_interrupted
from engine.files.atomic import atomic_file
from engine.files.permissions import make_dirs
from engine.rules.pseudonyms import SecretKey, load_key, pseudonymize
from engine.rules.validation import RAW_COLUMNS
from engine.run import prepared_run
from engine.sources.plan import ReadPlan, ReadTask, find_files
from engine.sources.readers import read_task
from engine.sources.spool import input_spool

log = logging.getLogger("engine.anonymize")  # the name in log lines, kept from before the package layout

OUTPUT_SCHEMA = pa.schema([(name, pa.string()) for name in RAW_COLUMNS])
CSV_HEADER = (",".join(RAW_COLUMNS) + "\n").encode()
#: Rows per Parquet row group, whatever the partitioning (so the file's bytes do not depend on it).
PARQUET_ROW_GROUP_ROWS = 1 << 19
#: Rows turned into CSV text at a time (keeps each text buffer far below Arrow's 2 GiB limit).
_CSV_BATCH_ROWS = 1 << 20
_NEEDS_QUOTES = '[",\r\n]'

#: One finished partition: its row count and its rows, as CSV text buffers or an Arrow table.
Block = tuple[int, Any]


@dataclass(frozen=True)
class AnonymizeResult:
    """What `anonymize` wrote, and how."""

    path: Path
    rows: int
    mode: str
    mode_reason: str
    partitions: int
    files_without_customer_id: tuple[str, ...]


def anonymize(source: str, output: str | Path, config: EngineConfig | None = None) -> AnonymizeResult:
    """Write the pseudonymised copy of `source` to `output`.

    `config` supplies the mode, partition size and cluster settings (as for `engine run`);
    its input and output keys are not used. Raises ConfigurationError without a key (or
    when `output` would overwrite an input file) and InputDataError for bad input, in
    which case nothing is written.
    """
    config = config or EngineConfig()
    key = SecretKey(load_key())
    files = find_files(source)
    target = _target(output, files)
    parquet = target.suffix.lower() == ".parquet"
    # pandas mode copies partition by partition too (sized as for dask): it never needs the
    # whole input at once. Every line is copied: a malformed one fails the copy.
    with interruptible(), input_spool(config, target.parent, uuid.uuid4().hex) as spool, \
            prepared_run(config, source, spool, f"anonymize {source}", files=files,
                         skip_malformed=False, sized_as="dask") as run:
        with closing(_blocks_in_order(run.backend, run.plan, key, parquet)) as blocks:
            rows = _write_atomically(target, blocks, parquet)
    return AnonymizeResult(path=target, rows=rows, mode=run.choice.mode, mode_reason=run.choice.reason,
                           partitions=len(run.plan.tasks),
                           files_without_customer_id=tuple(run.files[i].path for i in run.plan.files_without_customer_id))


def pseudonymised_block(task: ReadTask, key: SecretKey, parquet: bool) -> Block:
    """One partition of the copy: read, customer ids pseudonymised, ready to append."""
    raw = read_task(task)
    table = pa.Table.from_pandas(raw, columns=list(RAW_COLUMNS), preserve_index=False)
    table = table.replace_schema_metadata(None)
    table = table.set_column(RAW_COLUMNS.index("customer_id"), "customer_id",
                             pseudonymize(table["customer_id"], key.reveal()))
    if parquet:
        return table.num_rows, table
    return table.num_rows, [_csv_text(batch) for batch in table.to_batches(max_chunksize=_CSV_BATCH_ROWS)]


def _csv_text(batch: pa.RecordBatch) -> pa.Buffer:
    """The rows as CSV lines (`\\n` ends, a missing cell empty, a cell quoted only when it
    holds a quote, a comma or a line break), as one buffer."""
    cells = [_quoted_where_needed(batch.column(name)) for name in RAW_COLUMNS[:-1]]
    empty_for_null = {"null_handling": "replace", "null_replacement": ""}
    last = pc.binary_join_element_wise(batch.column("customer_id"), "", "\n", **empty_for_null)
    lines = pc.binary_join_element_wise(*cells, last, ",", **empty_for_null)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    return lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _quoted_where_needed(cells: pa.Array) -> pa.Array:
    needs_quotes = pc.match_substring_regex(cells, _NEEDS_QUOTES)
    if not pc.any(needs_quotes).as_py():
        return cells
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(cells, '"', '""'), '"', "")
    return pc.if_else(needs_quotes, quoted, cells)


def _target(output: str | Path, files: tuple) -> Path:
    target = Path(output).resolve()
    if any(Path(f.path) == target for f in files):
        raise ConfigurationError(f"{target}: the copy would overwrite its own input; choose another OUTPUT")
    if target.is_dir():
        raise ConfigurationError(f"{target}: is a directory; OUTPUT is the path of the copy (.csv or .parquet)")
    return target


def _blocks_in_order(backend: Backend, plan: ReadPlan, key: SecretKey, parquet: bool) -> Iterator[Block]:
    """The partitions of the copy, finished, in input order."""
    if not isinstance(backend, DaskBackend):
        for task in plan.tasks:
            yield pseudonymised_block(task, key, parquet)
        return
    import dask

    # Task names are chosen here: a name derived from the arguments would be a hash of the key.
    run = uuid.uuid4().hex[:12]
    blocks = [dask.delayed(pseudonymised_block, pure=False)(task, key, parquet, dask_key_name=f"anonymize-{run}-{i}")
              for i, task in enumerate(plan.tasks)]
    yield from _computed_in_order(blocks, batch=_threads(backend))


def _computed_in_order(blocks: list, batch: int) -> Iterator[Block]:
    """Computes `batch` blocks at a time on the backend's scheduler, the next batch while
    the caller writes the previous one: at most two batches are held at once."""
    import dask

    batches = [blocks[i:i + batch] for i in range(0, len(blocks), batch)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="anonymize") as pool:
        ahead = pool.submit(dask.compute, *batches[0]) if batches else None
        for following in [*batches[1:], None]:
            done = ahead.result()
            ahead = pool.submit(dask.compute, *following) if following else None
            yield from done


def _threads(backend: DaskBackend) -> int:
    return max(backend.describe().get("threads") or backend.workers, 1)


def _write_atomically(target: Path, blocks: Iterator[Block], parquet: bool) -> int:
    """Writes the blocks to a temporary file beside `target` (engine.files.atomic), then moves it into
    place; on any failure nothing is left behind. Returns the number of rows."""
    make_dirs(target.parent)
    with atomic_file(target) as handle:
        copy = _ParquetCopy(handle) if parquet else _CsvCopy(handle)
        rows = 0
        for count, block in blocks:
            copy.write(block)
            rows += count
        copy.close()
        raise_if_interrupted()
    return rows


class _CsvCopy:
    """The CSV copy: the header, then each partition's lines as they come."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        handle.write(CSV_HEADER)

    def write(self, buffers: list[pa.Buffer]) -> None:
        for buffer in buffers:
            self.handle.write(buffer)

    def close(self) -> None:
        pass


class _ParquetCopy:
    """The Parquet copy: partitions are regrouped into row groups of exactly
    PARQUET_ROW_GROUP_ROWS rows (the last one shorter), so neither the partition size nor
    the mode shows in the file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.writer = pq.ParquetWriter(handle, OUTPUT_SCHEMA)
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.pending_rows += table.num_rows
        while self.pending_rows >= PARQUET_ROW_GROUP_ROWS:
            self._write_row_group(PARQUET_ROW_GROUP_ROWS)

    def close(self) -> None:
        if self.pending_rows:
            self._write_row_group(self.pending_rows)
        self.writer.close()

    def _write_row_group(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)
        # One contiguous chunk per column: page boundaries then depend on the rows alone.
        self.writer.write_table(table.slice(0, rows).combine_chunks(), row_group_size=rows)
        rest = table.slice(rows)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
