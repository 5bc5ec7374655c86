"""`engine anonymize INPUT OUTPUT`: a copy of a sales dataset with customer ids replaced
by their keyed pseudonyms (engine.pseudonyms).

The input is read partition by partition with the engine's own readers (any source the
pipeline reads: CSV, compressed, globs, Parquet), so memory stays bounded whatever its
size; the copy holds the four sales columns. OUTPUT ending in `.parquet` is written as
Parquet, anything else as CSV; it appears atomically, readable by its owner and group
only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.modes import DEFAULT_PARTITION_BYTES
from engine.pseudonyms import load_key, pseudonymize
from engine.readers import read_task
from engine.sources import find_files, plan_reads
from engine.validation import RAW_COLUMNS

OUTPUT_MODE = 0o640


def anonymize(source: str, output: str | Path) -> int:
    """Write the pseudonymised copy of `source` to `output`; the number of rows."""
    key = load_key()
    plan = plan_reads(source, find_files(source), DEFAULT_PARTITION_BYTES)
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    schema = pa.schema([(name, pa.string()) for name in RAW_COLUMNS])
    rows = 0
    try:
        with _writer(temporary, schema, parquet=target.suffix == ".parquet") as write:
            for task in plan.tasks:
                raw = read_task(task)
                columns = {name: pa.array(raw[name], type=pa.string()) for name in RAW_COLUMNS}
                columns["customer_id"] = pseudonymize(columns["customer_id"], key)
                write(pa.table(columns, schema=schema))
                rows += len(raw)
        os.chmod(temporary, OUTPUT_MODE)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return rows


class _writer:
    """A streaming CSV or Parquet writer used as `with _writer(...) as write: write(t)`."""

    def __init__(self, path: Path, schema: pa.Schema, parquet: bool) -> None:
        self.writer = pq.ParquetWriter(path, schema) if parquet else pacsv.CSVWriter(path, schema)

    def __enter__(self):
        return self.writer.write_table

    def __exit__(self, *exc_info: object) -> None:
        self.writer.close()
