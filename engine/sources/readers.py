"""Reading one read task (a partition) into a DataFrame of raw text columns.

Every mode calls `read_task`: pandas mode for each task in turn, Dask modes once per
partition, on whichever worker runs it. Cells are read as text, exactly as written; an
empty cell is null and nothing else is (no `NA`/`NaN` guessing).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from fsspec.utils import read_block, seek_delimiter

from engine.errors import InputDataError
from engine.rules.validation import RAW_COLUMNS, STRING
from engine.sources.object_store import RANGE_BLOCK, WHOLE_BLOCK, open_object
from engine.sources.plan import ReadTask, SourceFile


@dataclass
class TaskRows:
    """What one read task parsed: its rows, where each sits, and the lines it skipped.

    Line positions are counted from the task's first line (the header of a file's first
    block is position 0); the file line number of a position is known once the line
    counts of the file's earlier tasks are (engine.dataflow.quarantine). For Parquet, a position
    is a row index and `lines` the task's row count.
    """

    table: pa.Table
    #: per row, its line's position in the task
    positions: np.ndarray
    #: lines (newline characters) the task's bytes hold
    lines: int
    #: skipped malformed lines: (position, what is wrong with it)
    malformed: list[tuple[int, str]] = field(default_factory=list)


def raw_frame(rows: TaskRows, task: ReadTask) -> pd.DataFrame:
    """The raw frame every reader returns: the four columns as Arrow text (a column the
    file lacks is null), `source_file` (the index of the file in the read plan) and
    `line_position` (the row's line within the task). The frame's `attrs` say which task
    it is, how many lines it covered and which malformed lines it skipped."""
    table = rows.table
    for name in RAW_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    frame = table.select(list(RAW_COLUMNS)).to_pandas(types_mapper=pd.ArrowDtype)
    frame = frame.astype({name: STRING for name in RAW_COLUMNS})
    frame["source_file"] = np.full(len(frame), task.file_index, dtype=np.int32)
    frame["line_position"] = rows.positions.astype(np.int32, copy=False)
    frame.attrs.update(task=task.index, file=task.file_index, lines=rows.lines, malformed=rows.malformed)
    return frame


def empty_raw_frame() -> pd.DataFrame:
    """A zero-row raw frame: the shape (meta) every partition has; it is no task's."""
    frame = raw_frame(TaskRows(pa.table({}), np.zeros(0, np.int32), 0), ReadTask(file=None))
    frame.attrs.clear()
    return frame


def read_task(task: ReadTask, threads: bool | None = None) -> pd.DataFrame:
    """The rows of one read task as raw text columns. A CSV task is parsed on Arrow's
    threads when `threads` is true; by default only a whole file is (a byte range is one
    of many partitions that run in parallel already)."""
    if task.fetch is not None or task.file.format == "parquet":
        table = _fetched(task) if task.fetch is not None else _read_parquet(task)
        rows = TaskRows(table, np.arange(table.num_rows, dtype=np.int32), table.num_rows)
    else:
        rows = _read_csv(task, threads)
    return raw_frame(rows, task)


def _read_csv(task: ReadTask, threads: bool | None = None) -> TaskRows:
    data = _csv_bytes(task)
    return _parse_csv(task, data, threads, broken_lines(data))


def _parse_csv(task: ReadTask, original: bytes, threads: bool | None, broken: dict[int, str]) -> TaskRows:
    """The task's rows, parsed from `original` with its `broken` lines left out: listed as
    malformed with `skip_malformed`, an error naming the first of them otherwise."""
    columns = [c for c in RAW_COLUMNS if c in task.file.columns]
    lines = original.count(b"\n")
    if not original or original.isspace():  # a block that begins inside the file's last line
        return TaskRows(pa.table({c: pa.array([], pa.string()) for c in columns}), np.zeros(0, np.int32), lines)
    header = 1 if task.offset == 0 else 0
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        include_columns=columns,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    data = _blank_lines(task, original, broken, header) if broken else original
    try:
        table = pacsv.read_csv(pa.BufferReader(data), read_options=_read_options(task, threads),
                               parse_options=_parse_options(task), convert_options=convert)
    except pa.ArrowInvalid as error:
        more = _more_open_quote_lines(original, broken) if b'"' in data else {}
        if more:
            return _parse_csv(task, original, threads, {**broken, **more})
        if not task.skip_malformed:
            raise _located_error(task, data, error, broken) from None
        rows = _read_csv_skipping_malformed(task, data, lines, header, convert, error, broken)
        records = len(rows.positions)  # the lines it kept
    else:
        records = lines + (0 if data.endswith(b"\n") else 1) - header
        # Every line gave a record (no empty line was skipped, none ran on): positions
        # are the line numbers. Otherwise the empty lines are looked for.
        if table.num_rows != records and (b"\n\n" in data or b"\n\r\n" in data or data.startswith((b"\n", b"\r\n"))):
            positions = _nonempty_lines(data)[header:]
            records = len(positions)
        else:
            positions = np.arange(header, header + table.num_rows, dtype=np.int32)
        rows = TaskRows(table, positions, lines, sorted(broken.items()))
    if b'"' in data and _spans_lines(rows.table, records):
        # A quote opened mid-line (its line's quotes pair up) ran on into later lines.
        more = _more_open_quote_lines(original, broken)
        if not more:
            raise InputDataError(f"{task.file.path}: cannot be parsed as CSV (its records do not match its lines)")
        return _parse_csv(task, original, threads, {**broken, **more})
    if broken and not task.skip_malformed:
        raise _broken_line_error(task, broken)
    return rows


def _read_csv_skipping_malformed(task: ReadTask, data: bytes, lines: int, header: int,
                                 convert: pacsv.ConvertOptions, error: pa.ArrowInvalid,
                                 broken: dict[int, str]) -> TaskRows:
    """The task's rows without its malformed lines (a wrong number of fields, besides the
    `broken` lines already blanked out), which are listed instead. Parsed on one thread:
    Arrow numbers the rows it rejects only then."""
    bad: list[pacsv.InvalidRow] = []

    def skip(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data), read_options=_read_options(task, threads=False),
            parse_options=_parse_options(task, invalid_row_handler=skip),
            convert_options=convert)
    except pa.ArrowInvalid:  # not a wrong field count: not skippable
        raise _located_error(task, data, error, broken) from None
    nonempty = _nonempty_lines(data)
    # Arrow numbers rows from 1 among the non-empty lines, the skipped header included.
    malformed_index = np.array([row.number - 1 for row in bad], dtype=np.int64)
    keep = np.ones(len(nonempty), dtype=bool)
    keep[malformed_index] = False
    keep[:header] = False
    malformed = {**broken, **{int(nonempty[row.number - 1]): _field_count_detail(row) for row in bad}}
    return TaskRows(table, nonempty[keep], lines, sorted(malformed.items()))


#: What makes a line unreadable on its own, whatever its fields.
UNCLOSED_QUOTE = "a quoted field is not closed on its line (a line break inside quotes, or a stray quote)"
CARRIAGE_RETURN = "a carriage return inside the line"
NUL_BYTE = "a NUL byte (binary data)"
#: Up to this many occurrences, a byte's lines are found by byte searches rather than numpy.
_FEW = 16384


def broken_lines(data: bytes) -> dict[int, str]:
    """Lines (positions in `data`) that cannot be read as one record on their own.

    Every line is one record: a quoted field that spans lines would swallow the lines
    after it (Arrow accepts one even with `newlines_in_values=False`) and would put
    partition boundaries inside a record. So a line with an odd number of quotes (an
    unclosed or stray quote), a bare carriage return (another line break), or a NUL byte
    is broken. A line whose quotes pair up but leave a field open (`a,b"c,"d`) shows up
    after parsing (`_spans_lines`) and is found then (`_more_open_quote_lines`).
    """
    broken: dict[int, str] = {}
    if b"\x00" in data:
        broken.update(dict.fromkeys(_lines_of(data, b"\x00").tolist(), NUL_BYTE))
    if b"\r" in data:
        for line in _lines_of(data, b"\r", bare_carriage_return=True).tolist():
            broken.setdefault(line, CARRIAGE_RETURN)
    if b'"' in data:
        for line in _odd_quote_lines(data).tolist():
            broken.setdefault(line, UNCLOSED_QUOTE)
    return broken


def _odd_quote_lines(data: bytes) -> np.ndarray:
    """Positions of the lines holding an odd number of quote characters.

    Lines with quotes are visited one by one with byte searches (in most data they are a
    small share of lines, and most have an even count), and only the lines found odd are
    numbered; when quoted lines are many, numpy counts the quotes of every line."""
    odd_starts: list[int] = []
    visited = 0
    offset = data.find(b'"')
    while offset != -1:
        visited += 1
        if visited > _FEW:
            return _odd_quote_lines_numpy(data)
        start = data.rfind(b"\n", 0, offset) + 1
        end = data.find(b"\n", offset)
        if end == -1:
            end = len(data)
        if data.count(b'"', start, end) & 1:
            odd_starts.append(start)
        offset = data.find(b'"', end)
    lines, line, previous = [], 0, 0
    for start in odd_starts:
        line += data.count(b"\n", previous, start)
        previous = start
        lines.append(line)
    return np.array(lines, dtype=np.int64)


def _odd_quote_lines_numpy(data: bytes) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(buffer[:-1] == 0x0A) + 1))
    # Per-line sums in uint8 wrap at 256, which keeps their parity.
    return np.flatnonzero(np.add.reduceat((buffer == 0x22).view(np.uint8), starts) & 1)


def _lines_of(data: bytes, byte: bytes, bare_carriage_return: bool = False) -> np.ndarray:
    """The line position of each occurrence of `byte` (a carriage return only where no line
    feed follows it). Few occurrences are walked with byte searches; many, with numpy."""
    if data.count(byte) > _FEW:
        buffer = np.frombuffer(data, dtype=np.uint8)
        found = np.flatnonzero(buffer == byte[0])
        if bare_carriage_return:
            found = found[(found + 1 == len(buffer)) | (buffer[np.minimum(found + 1, len(buffer) - 1)] != 0x0A)]
        return np.searchsorted(np.flatnonzero(buffer == 0x0A), found)
    lines, line, previous = [], 0, 0
    offset = data.find(byte)
    while offset != -1:
        line += data.count(b"\n", previous, offset)
        previous = offset
        if not bare_carriage_return or data[offset + 1:offset + 2] != b"\n":
            lines.append(line)
        offset = data.find(byte, offset + 1)
    return np.array(lines, dtype=np.int64)


def _more_open_quote_lines(data: bytes, broken: dict[int, str]) -> dict[int, str]:
    """Lines not yet known as `broken` whose quotes pair up but leave a field open at the
    line's end, by the exact rule of Arrow's parser (a quote opens a field only at the
    field's start; `""` inside one is a quote). Needed only once a parse shows a record
    that spans lines."""
    found = {}
    for position, line in enumerate(data.split(b"\n")):
        if position not in broken and b'"' in line and _ends_inside_quotes(line.rstrip(b"\r")):
            found[position] = UNCLOSED_QUOTE
    return found


def _ends_inside_quotes(line: bytes) -> bool:
    quoted, field_start, index = False, True, 0
    while index < len(line):
        char = line[index]
        if quoted:
            if char == 0x22:
                if index + 1 < len(line) and line[index + 1] == 0x22:
                    index += 1
                else:
                    quoted = False
        elif char == 0x2C:
            field_start = True
            index += 1
            continue
        elif char == 0x22 and field_start:
            quoted = True
        field_start = False
        index += 1
    return quoted


def _spans_lines(table: pa.Table, lines: int) -> bool:
    """True if a record took more than one of the `lines` it was parsed from (a quote left
    open mid-line).

    Each non-empty line that a record runs on into costs a record, so the records fall
    short of the lines; a record left open up to the end over empty lines only ends in a
    line break instead."""
    if table.num_rows != lines:
        return True
    if not table.num_rows:
        return False
    last = table.slice(table.num_rows - 1).to_pylist()[0].values()
    return any("\n" in value or "\r" in value for value in last if value)


def _blank_lines(task: ReadTask, data: bytes, broken: dict[int, str], header: int) -> bytes:
    """`data` with the content of the broken lines removed and their line breaks kept, so
    every other line keeps its position. A broken header is an error in any case."""
    if header and 0 in broken:
        raise InputDataError(f"{task.file.path}: line 1 (the header): {broken[0]}")
    buffer = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == ord("\n"))
    ends_at = np.append(newlines, len(buffer))  # a line ends at its newline (or the data's end)
    lines = np.fromiter(sorted(broken), dtype=np.int64)
    starts = np.where(lines > 0, ends_at[np.maximum(lines - 1, 0)] + 1, 0)
    ends = ends_at[lines]
    inside = np.zeros(len(buffer) + 1, dtype=np.int8)
    inside[starts] += 1
    inside[ends] -= 1
    return buffer[np.cumsum(inside[:-1]) == 0].tobytes()


def _nonempty_lines(data: bytes) -> np.ndarray:
    """Positions of the lines that hold something (Arrow skips empty lines)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == ord("\n"))
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(buffer))
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts
    carriage_return_only = (length == 1) & (buffer[np.minimum(starts, len(buffer) - 1)] == ord("\r"))
    return np.flatnonzero((length > 0) & ~carriage_return_only).astype(np.int32)


def _field_count_detail(row: pacsv.InvalidRow) -> str:
    detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
    return detail + " (unclosed quote)" if row.text.count('"') % 2 else detail


def _read_options(task: ReadTask, threads: bool | None = None) -> pacsv.ReadOptions:
    # Blocks after the first have no header line: the columns are named instead of the
    # header being copied in front of the block. Locating a bad line needs one thread
    # (row numbers).
    return pacsv.ReadOptions(
        use_threads=task.length is None if threads is None else threads, block_size=8 << 20,
        column_names=list(task.file.columns), skip_rows=1 if task.offset == 0 else 0,
    )


def _parse_options(task: ReadTask, **options) -> pacsv.ParseOptions:
    """Fields split at the file's delimiter; a line break always ends a record."""
    return pacsv.ParseOptions(delimiter=task.file.delimiter, newlines_in_values=False, **options)


def _csv_bytes(task: ReadTask) -> bytes:
    """The bytes to parse: a compressed file without a decompressed copy whole, decompressed
    (an object on object storage always: the worker reads it there); else the task's byte
    range, extended to whole lines."""
    file = task.file
    try:
        if not file.splittable:
            with _opened(file, whole=True) as stream:
                return stream.read()
        with _opened(file) as handle:
            return read_block(handle, task.offset, task.length, delimiter=b"\n")
    except (OSError, pa.ArrowException) as error:
        raise InputDataError(f"{file.path}: cannot be read ({error})") from None


def _opened(file: SourceFile, whole: bool = False) -> Any:
    """`file` opened for reading where the task runs (a context manager): the local file
    (a decompressed copy, if there is one), or the object on object storage, whose
    failures are the engine's errors there (engine.sources.object_store.storage_errors).
    `whole`: decompressed, read from start to end."""
    compression = file.compression if whole else None
    if file.on_object_storage:
        return open_object(file.path, file.storage_options, compression=compression,
                           block_size=WHOLE_BLOCK if whole else RANGE_BLOCK)
    if compression:
        return pa.input_stream(file.path, compression=compression)
    return open(file.readable_path, "rb")


def _first_line(task: ReadTask) -> int:
    """The file line number of the task's first line (1: the header). It takes a scan of
    the file up to the task, so it is worked out only for an error message."""
    if task.offset == 0 or not task.file.splittable:
        return 1
    with _opened(task.file) as handle:
        return _count_lines(handle, _block_start(handle, task.offset)) + 1


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


def _located_error(task: ReadTask, data: bytes, error: pa.ArrowInvalid,
                   broken: dict[int, str] | None = None) -> InputDataError:
    """An input error naming the file and the first line that cannot be read: a line of
    the wrong number of fields, or an earlier `broken` line (left out of `data`)."""
    file = task.file
    bad = {}

    def note_first(row: pacsv.InvalidRow) -> str:
        bad.setdefault("row", row)
        return "skip"

    try:
        pacsv.read_csv(
            pa.BufferReader(data),
            read_options=_read_options(task, threads=False),
            parse_options=_parse_options(task, invalid_row_handler=note_first),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in file.columns}),
        )
    except pa.ArrowInvalid as again:
        return InputDataError(f"{file.path}: cannot be parsed as CSV ({_squash(again)})")
    row = bad.get("row")
    if row is None:
        if broken:
            return _broken_line_error(task, broken)
        return InputDataError(f"{file.path}: cannot be parsed as CSV ({_squash(error)})")
    position = int(_nonempty_lines(data)[row.number - 1])  # Arrow counts only non-empty lines
    if broken and min(broken) < position:
        return _broken_line_error(task, broken)
    return InputDataError(f"{file.path}: line {_first_line(task) + position}: {_field_count_detail(row)}")


def _broken_line_error(task: ReadTask, broken: dict[int, str]) -> InputDataError:
    position = min(broken)
    return InputDataError(f"{task.file.path}: line {_first_line(task) + position}: {broken[position]}")


def _squash(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]


def _fetched(task: ReadTask) -> pa.Table:
    """A `table` dataset's partition (engine.storage.plugins): the source's rows, each
    column as the text validation reads."""
    table = task.fetch()
    columns = [c for c in RAW_COLUMNS if c in task.file.columns]
    return pa.table({name: _as_text(name, table[name]) for name in columns})


def _read_parquet(task: ReadTask) -> pa.Table:
    import pyarrow.parquet as pq

    columns = [c for c in RAW_COLUMNS if c in task.file.columns]
    own = [task.file.renamed.get(name, name) for name in columns]  # as the file names them
    file = task.file
    try:
        with _opened(file) if file.on_object_storage else nullcontext(file.path) as source:
            parquet = pq.ParquetFile(source)
            if task.row_groups:
                table = parquet.read_row_groups(list(task.row_groups), columns=own)
            else:
                table = parquet.read(columns=own)
        return pa.table({name: _as_text(name, table[column]) for name, column in zip(columns, own)})
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
