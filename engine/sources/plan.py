"""Where the sales data comes from: resolving INPUT into files, checking each one, and
cutting it into read tasks (the partitions every mode reads).

Checks that need only a file's first bytes (exists, not empty, text, has the required
columns, has a data row) happen here, before any computation starts, so a bad input
fails in milliseconds with a message that names the file.

Files on object storage are files like any other (engine.sources.object_store).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import io
import os
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.errors import InputDataError
from engine.rules.validation import RAW_COLUMNS, REQUIRED_COLUMNS
from engine.sources.layout import InputLayout
from engine.sources.object_store import StoredObject, is_object_url, list_objects, open_object

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
PARQUET_SUFFIXES = (".parquet", ".pq")
_SNIFF_BYTES = 64 * 1024
_OTHER_DELIMITERS = (";", "\t", "|")
#: objects of object storage checked at once (each check is a request or two)
_OBJECT_CHECKS = 16
DELIMITER_HINTS = {"\t": "tab"}


@dataclass(frozen=True)
class SourceFile:
    """One input file: absolute path, format, compression, size and its columns."""

    path: str
    format: str  # "csv" or "parquet"
    compression: str | None
    size: int
    #: the columns in file order, by the engine's names where the input layout maps them
    columns: tuple[str, ...]
    types: tuple[str, ...] = ()  # column types as stored (empty: all text, as in CSV)
    #: the file's own column names, when the input layout renames some (else empty)
    header: tuple[str, ...] = ()
    #: the CSV field delimiter
    delimiter: str = ","
    #: where the bytes are read from when not `path`: a compressed file's decompressed copy
    read_path: str | None = None
    #: size as text, when known (a decompressed copy's size)
    text_size: int | None = None
    #: SHA-256 of the file's bytes, when the run has already hashed them
    sha256: str | None = None
    #: a dataset that is not a file (format `table`): the source that reads it
    #: (engine.storage.plugins.Source)
    reader: Any = dataclasses.field(default=None, repr=False, compare=False)
    #: an object-storage file: the fsspec storage options its reader opens it with
    #: (credentials: never printed); None for every other file
    storage_options: Mapping[str, Any] | None = dataclasses.field(default=None, repr=False, compare=False)
    #: an object-storage file: its ETag and version id, which identify its content unread
    etag: str | None = None
    version_id: str | None = None

    @property
    def own_columns(self) -> tuple[str, ...]:
        """The columns as the file names them."""
        return self.header or self.columns

    @property
    def renamed(self) -> dict[str, str]:
        """{engine column: the file's name for it} of the columns the layout renames."""
        return {name: own for name, own in zip(self.columns, self.own_columns) if name != own}

    @property
    def column_types(self) -> dict[str, str]:
        """The type of each of the file's own columns."""
        columns = self.own_columns
        return dict(zip(columns, self.types)) if self.types else dict.fromkeys(columns, "string")

    @property
    def text_bytes(self) -> int:
        """Size as CSV text: exact for plain and decompressed files; Parquet files (and a
        compressed file not yet decompressed) expand about 4 times."""
        if self.text_size is not None:
            return self.text_size
        return self.size * (4 if self.compression or self.format == "parquet" else 1)

    @property
    def readable_path(self) -> str:
        """The file the bytes are read from (a decompressed copy, or the file itself)."""
        return self.read_path or self.path

    @property
    def read_size(self) -> int:
        """Bytes of `readable_path`."""
        return self.text_size if self.read_path and self.text_size is not None else self.size

    @property
    def splittable(self) -> bool:
        return self.format == "csv" and (self.compression is None or self.read_path is not None)

    @property
    def on_object_storage(self) -> bool:
        """True for an object on object storage (`path` is its URL): whoever reads it opens
        it there, with `storage_options`."""
        return self.storage_options is not None


@dataclass(frozen=True)
class ReadTask:
    """One partition: a byte range of a CSV file, or row groups of a Parquet file."""

    file: SourceFile
    file_index: int = 0  # position of the file in the plan (the rows' `source_file`)
    offset: int = 0
    length: int | None = None  # None: to the end of the file
    row_groups: tuple[int, ...] | None = None  # Parquet only; None: all
    index: int = 0  # position of the task in the plan
    skip_malformed: bool = False  # skip (and list) CSV lines with a wrong field count
    #: a `table` dataset's partition: returns its rows as an Arrow table (runs on the worker)
    fetch: Callable[[], pa.Table] | None = dataclasses.field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple:
        """A source plug-in's task as it travels to a Dask worker: its `fetch` pickled with
        cloudpickle, which carries the code of a plug-in loaded from a `.py` path (registered
        by value, engine.storage.plugins), where dask.distributed's pickler would name its
        classes by a module the worker cannot import. The file travels without its `reader`:
        that object only plans the reads."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["file"] = dataclasses.replace(self.file, reader=None) if self.file is not None else None
        if self.fetch is None:
            return _unpickled_task, (None, fields)
        import cloudpickle

        return _unpickled_task, (cloudpickle.dumps(self.fetch), {**fields, "fetch": None})


def _unpickled_task(fetch: bytes | None, fields: dict[str, Any]) -> ReadTask:
    if fetch is not None:
        import cloudpickle

        fields = {**fields, "fetch": cloudpickle.loads(fetch)}
    return ReadTask(**fields)


@dataclass(frozen=True)
class ReadPlan:
    """The whole input: its files and the read tasks that cover them exactly once."""

    source: str
    files: tuple[SourceFile, ...]
    tasks: tuple[ReadTask, ...]

    @property
    def files_without_customer_id(self) -> tuple[int, ...]:
        """Indexes of the files that have no `customer_id` column (it is optional)."""
        return tuple(i for i, f in enumerate(self.files) if "customer_id" not in f.columns)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def files_read(self) -> tuple[int, ...]:
        """Indexes of the files the tasks read (every file, unless the plan was restricted)."""
        return tuple(sorted({task.file_index for task in self.tasks}))

    def restricted_to(self, files: Collection[int]) -> ReadPlan:
        """The plan of the same files whose tasks read only the files `files` (indexes)."""
        wanted = set(files)
        kept = [task for task in self.tasks if task.file_index in wanted]
        return dataclasses.replace(self, tasks=tuple(dataclasses.replace(task, index=i) for i, task in enumerate(kept)))



def find_files(source: str, layout: InputLayout = InputLayout(),
               storage_options: Mapping[str, Any] | None = None) -> tuple[SourceFile, ...]:
    """The checked files of INPUT: a file, a glob, or a directory (CSV or Parquet), their
    columns read by `layout`; on object storage (a URL), opened with `storage_options`."""
    if is_object_url(source):
        files = _inspect_objects(source, layout, dict(storage_options or {}))
    else:
        files = tuple(_inspect(path, layout) for path in _expand(source))
    if len({f.format for f in files}) > 1:
        raise InputDataError(f"{source}: mixes CSV and Parquet files; give one format per run")
    return files


def plan_reads(source: str, files: tuple[SourceFile, ...], partition_bytes: int,
               skip_malformed: bool = False, only: Collection[int] | None = None) -> ReadPlan:
    """Read tasks of about `partition_bytes` each that cover every file (or the files
    `only`, by index) exactly once."""
    tasks = (task for index, f in enumerate(files) if only is None or index in only
             for task in _tasks_for(f, index, partition_bytes))
    numbered = tuple(dataclasses.replace(task, index=i, skip_malformed=skip_malformed) for i, task in enumerate(tasks))
    return ReadPlan(source=source, files=files, tasks=numbered)


def _expand(source: str) -> list[str]:
    if glob.has_magic(source):
        matches = sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
        if not matches:
            raise InputDataError(f"{source}: no file matches this pattern")
        return [os.path.abspath(p) for p in matches]
    path = Path(source)
    if path.is_dir():
        found = sorted(
            str(p.resolve())
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith((".", "_")) and _format_of(p.name)[0] is not None
        )
        if not found:
            raise InputDataError(f"{source}: directory holds no CSV or Parquet file")
        return found
    if not path.exists():
        raise InputDataError(f"{source}: no such file or directory")
    return [str(path.resolve())]


def _format_of(name: str) -> tuple[str | None, str | None]:
    lower = name.lower()
    compression = None
    for suffix, kind in COMPRESSION_SUFFIXES.items():
        if lower.endswith(suffix):
            compression, lower = kind, lower[: -len(suffix)]
            break
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet", compression
    if lower.endswith(CSV_SUFFIXES) or compression:
        return "csv", compression
    return None, None


def _listed(name: str) -> bool:
    """True for a file a folder (or a prefix) holds as input: CSV or Parquet, not hidden."""
    return not name.startswith((".", "_")) and _format_of(name)[0] is not None


def _inspect_objects(source: str, layout: InputLayout, options: dict[str, Any]) -> tuple[SourceFile, ...]:
    """The checked objects of an object-storage INPUT, each checked from its first bytes
    (a Parquet file: its footer), several at a time; nothing else is downloaded."""
    objects = list_objects(source, options, _listed)

    def inspect(stored: StoredObject) -> SourceFile:
        file = _inspect(stored.url, layout, stored.size, options)
        return dataclasses.replace(file, storage_options=options, etag=stored.etag, version_id=stored.version_id)

    with ThreadPoolExecutor(max_workers=min(_OBJECT_CHECKS, len(objects)), thread_name_prefix="inspect") as pool:
        return tuple(pool.map(inspect, objects))


def _inspect(path: str, layout: InputLayout, size: int | None = None,
             options: Mapping[str, Any] | None = None) -> SourceFile:
    """The checked file at `path` (an object of `size` bytes, opened with `options`, when
    `options` is given)."""
    fmt, compression = _format_of(os.path.basename(path))
    size = os.path.getsize(path) if size is None else size
    if size == 0:
        raise InputDataError(f"{path}: file is empty")
    if fmt == "parquet":
        return _inspect_parquet(path, size, layout, options)
    return _inspect_csv(path, size, compression, layout, options)


def _laid_out(path: str, header: tuple[str, ...], layout: InputLayout) -> dict:
    """The SourceFile fields of a file whose header is `header`: its columns by the
    engine's names (checked), and its own names when the layout renames any."""
    columns = layout.standard_names(header)
    missing = [own for name, own in layout.columns if name in REQUIRED_COLUMNS and own not in header]
    if missing:
        raise InputDataError(f"{path}: the header has no column {missing[0]!r} (mapped by --columns / "
                             f"input_layout.columns); it has: {', '.join(header)}")
    _require_columns(path, columns)
    return {"columns": columns, "header": header if columns != header else (), "delimiter": layout.delimiter}


def _inspect_parquet(path: str, size: int, layout: InputLayout, options: Mapping[str, Any] | None) -> SourceFile:
    try:
        metadata = parquet_metadata(path, options)
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{path}: not a readable Parquet file ({_first_line(error)})") from None
    schema = metadata.schema.to_arrow_schema()
    laid_out = _laid_out(path, tuple(schema.names), layout)
    if metadata.num_rows == 0:
        raise InputDataError(f"{path}: Parquet file has no rows")
    return SourceFile(path=path, format="parquet", compression=None, size=size,
                      types=tuple(str(t) for t in schema.types), **{**laid_out, "delimiter": ","})


def _inspect_csv(path: str, size: int, compression: str | None, layout: InputLayout,
                 options: Mapping[str, Any] | None) -> SourceFile:
    head = _read_head(path, compression, options)
    if not head.strip():
        raise InputDataError(f"{path}: file is empty")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    header_end = head.find(b"\n")
    header = head if header_end < 0 else head[: header_end + 1]
    if b"\x00" in header or head.count(b"\x00") * 100 > len(head):
        # A NUL byte on some data line makes that line malformed (engine.sources.readers).
        raise InputDataError(f"{path}: binary data, not a CSV text file")
    try:
        header_text = header.decode("utf-8")
    except UnicodeDecodeError:
        raise InputDataError(f"{path}: line 1: not UTF-8 text (binary data or another encoding)") from None
    names = next(csv.reader(io.StringIO(header_text), delimiter=layout.delimiter), [])
    laid_out = _laid_out(path, tuple(name.strip() for name in names), layout)
    if not head[len(header):].strip():
        raise InputDataError(f"{path}: has a header but no data rows")
    return SourceFile(path=path, format="csv", compression=compression, size=size, **laid_out)


def _read_head(path: str, compression: str | None, options: Mapping[str, Any] | None) -> bytes:
    if options is not None:
        with open_object(path, options, compression=compression, block_size=_SNIFF_BYTES,
                         exact=compression is None) as handle:
            return handle.read(_SNIFF_BYTES)
    try:
        with pa.input_stream(path, compression=compression) as stream:
            return stream.read(_SNIFF_BYTES)
    except (pa.ArrowException, OSError) as error:
        raise InputDataError(f"{path}: cannot be read ({_first_line(error)})") from None


def parquet_metadata(path: str, options: Mapping[str, Any] | None = None) -> Any:
    """The footer of a Parquet file (on object storage when `options` is given: only the
    footer's bytes are fetched)."""
    import pyarrow.parquet as pq

    if options is None:
        return pq.ParquetFile(path).metadata
    with open_object(path, options) as handle:
        return pq.ParquetFile(handle).metadata


def _require_columns(path: str, columns: tuple[str, ...]) -> None:
    repeated = [c for c in RAW_COLUMNS if columns.count(c) > 1]
    if repeated:
        raise InputDataError(f"{path}: the header names column {repeated[0]!r} {columns.count(repeated[0])} times; "
                             "which one holds the data is ambiguous")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not missing:
        return
    message = f"{path}: missing required columns: {', '.join(missing)}"
    if len(columns) == 1:
        hinted = [d for d in _OTHER_DELIMITERS if d in columns[0]]
        if hinted:
            message += (f" (the header looks {hinted[0]!r}-separated; give the delimiter: "
                        f"--delimiter {DELIMITER_HINTS.get(hinted[0], hinted[0])!r})")
    raise InputDataError(message)


def _tasks_for(file: SourceFile, index: int, partition_bytes: int) -> list[ReadTask]:
    if file.reader is not None:
        return [dataclasses.replace(task, file=file, file_index=index)
                for task in file.reader.tasks(file, index, partition_bytes)]
    if file.format == "parquet":
        metadata = parquet_metadata(file.path, file.storage_options)
        groups, tasks, group_bytes = [], [], 0
        for group in range(metadata.num_row_groups):
            groups.append(group)
            group_bytes += metadata.row_group(group).total_byte_size
            if group_bytes >= partition_bytes:
                tasks.append(ReadTask(file=file, file_index=index, row_groups=tuple(groups)))
                groups, group_bytes = [], 0
        if groups:
            tasks.append(ReadTask(file=file, file_index=index, row_groups=tuple(groups)))
        return tasks
    size = file.read_size
    if not file.splittable or size <= partition_bytes:
        return [ReadTask(file=file, file_index=index)]
    return [
        ReadTask(file=file, file_index=index, offset=offset, length=min(partition_bytes, size - offset))
        for offset in range(0, size, partition_bytes)
    ]


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
