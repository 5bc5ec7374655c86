"""Reading one read task (a partition) into a DataFrame of raw text columns.

Every mode calls `read_task`: pandas mode for each task in turn, Dask modes once per
partition, on whichever worker runs it. Cells are read as text, exactly as written; an
empty cell is null and nothing else is (no `NA`/`NaN` guessing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from fsspec.utils import read_block, seek_delimiter

from engine.errors import InputDataError
from engine.sources import ReadTask
from engine.validation import RAW_COLUMNS, STRING



def raw_frame(table: pa.Table, file_index: int) -> pd.DataFrame:
    """The raw frame every reader returns: the four columns as Arrow text (a column the
    file lacks is null) and `source_file`, the index of the file in the read plan."""
    for name in RAW_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    frame = table.select(list(RAW_COLUMNS)).to_pandas(types_mapper=pd.ArrowDtype)
    frame = frame.astype({name: STRING for name in RAW_COLUMNS})
    frame["source_file"] = np.full(len(frame), file_index, dtype=np.int32)
    return frame


def empty_raw_frame() -> pd.DataFrame:
    """A zero-row raw frame: the shape (meta) every partition has."""
    return raw_frame(pa.table({}), 0)


def read_task(task: ReadTask, threads: bool | None = None) -> pd.DataFrame:
    """The rows of one read task as raw text columns. A CSV task is parsed on Arrow's
    threads when `threads` is true; by default only a whole file is (a byte range is one
    of many partitions that run in parallel already)."""
    if task.file.format == "parquet":
        table = _read_parquet(task)
    else:
        table = _read_csv(task, threads)
    return raw_frame(table, task.file_index)


def _read_csv(task: ReadTask, threads: bool | None = None) -> pa.Table:
    data, first_line = _csv_bytes(task)
    columns = [c for c in RAW_COLUMNS if c in task.file.columns]
    if not data.strip():  # a block that begins inside the file's last line
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    read = _read_options(task, threads)
    parse = pacsv.ParseOptions(newlines_in_values=False)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        include_columns=columns,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        return pacsv.read_csv(pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as error:
        raise _located_error(task, data, first_line, error) from None


def _read_options(task: ReadTask, threads: bool | None = None) -> pacsv.ReadOptions:
    # Blocks after the first have no header line: the columns are named instead of the
    # header being copied in front of the block. Locating a bad line needs one thread
    # (row numbers).
    return pacsv.ReadOptions(
        use_threads=task.length is None if threads is None else threads, block_size=8 << 20,
        column_names=list(task.file.columns), skip_rows=1 if task.offset == 0 else 0,
    )


def _csv_bytes(task: ReadTask) -> tuple[bytes, int]:
    """The bytes to parse and the file line number of their first line (1: the header)."""
    file = task.file
    try:
        if file.compression is not None:
            with pa.input_stream(file.path, compression=file.compression) as stream:
                return stream.read(), 1
        with open(file.path, "rb") as handle:
            block = read_block(handle, task.offset, task.length, delimiter=b"\n")
            if task.offset == 0:
                return block, 1
            return block, _count_lines(handle, _block_start(handle, task.offset)) + 1
    except (OSError, pa.ArrowException) as error:
        raise InputDataError(f"{file.path}: cannot be read ({error})") from None


def _block_start(handle, offset: int) -> int:
    """Where the block at `offset` really starts: after the first line break at or after it
    (the rule `read_block` follows)."""
    handle.seek(offset)
    seek_delimiter(handle, b"\n", 1 << 16)
    return handle.tell()


def _count_lines(handle, end: int) -> int:
    handle.seek(0)
    count, remaining = 0, end
    while remaining > 0:
        chunk = handle.read(min(remaining, 1 << 24))
        if not chunk:
            break
        count += chunk.count(b"\n")
        remaining -= len(chunk)
    return count


def _located_error(task: ReadTask, data: bytes, first_line: int, error: pa.ArrowInvalid) -> InputDataError:
    """An input error naming the file and the line of the first row that does not parse."""
    file = task.file
    bad = {}

    def note_first(row: pacsv.InvalidRow) -> str:
        bad.setdefault("row", row)
        return "skip"

    try:
        pacsv.read_csv(
            pa.BufferReader(data),
            read_options=_read_options(task, threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=False, invalid_row_handler=note_first),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in file.columns}),
        )
    except pa.ArrowInvalid as again:
        return InputDataError(f"{file.path}: cannot be parsed as CSV ({_squash(again)})")
    row = bad.get("row")
    if row is None:
        return InputDataError(f"{file.path}: cannot be parsed as CSV ({_squash(error)})")
    line = first_line + row.number - 1
    detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
    if row.text.count('"') % 2:
        detail += " (unclosed quote)"
    return InputDataError(f"{file.path}: line {line}: {detail}")


def _squash(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]


def _read_parquet(task: ReadTask) -> pa.Table:
    import pyarrow.parquet as pq

    columns = [c for c in RAW_COLUMNS if c in task.file.columns]
    try:
        parquet = pq.ParquetFile(task.file.path)
        table = parquet.read_row_groups(list(task.row_groups), columns=columns) if task.row_groups else parquet.read(columns=columns)
        return pa.table({name: _as_text(name, table[name]) for name in columns})
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{task.file.path}: cannot be read as Parquet ({_squash(error)})") from None


def _as_text(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A typed Parquet column as the text a CSV export would hold (docs/semantics.md)."""
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_timestamp(kind):
        midnight = pc.equal(pc.cast(pc.cast(column, pa.date32()), kind), column)
        as_date = pc.cast(pc.cast(column, pa.date32()), pa.string())
        return pc.if_else(midnight, as_date, pc.strftime(column, format="%Y-%m-%d %H:%M:%S"))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    try:
        return column.cast(pa.string())
    except pa.ArrowNotImplementedError:
        raise pa.ArrowInvalid(f"column {name!r} has type {kind}, not text, a number or a date") from None
