"""Compressed CSV inputs, decompressed once into a spool folder and read like plain CSV.

A gzip or zstd file cannot be cut into byte ranges, and its size on disk says little
about its size as text (274 KB of zstd can hold 3 GB). So before a run plans its reads,
each compressed CSV file is decompressed in 1 MiB blocks into a plain file in the run's
spool folder; from there it is split into partitions and read in bounded memory like
any plain CSV, in every mode, and the mode choice sees its real size. A file that
expands past `max_decompressed_size` stops the run with an input error naming it.

Standard input (INPUT `-`, plain CSV) is copied into the spool folder the same way, and
the run reads the copy; errors, reports and lineage name it `/dev/stdin`.

The spool folder is removed when the run ends, whatever the outcome; one left behind by
a killed run on this host is removed by the next run that uses the same parent folder.
Errors and lineage still name the compressed file: only the reading goes to the copy.

A compressed object on object storage is not spooled: downloading it to the client would
defeat the workers reading their own input. It is one read task, which the worker that
runs it reads whole, decompressing as it reads (engine.sources.readers).
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import sys
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from engine.config import EngineConfig, parse_size
from engine.errors import ConfigurationError, InputDataError, ResourceError
from engine.files import permissions
from engine.files.leftovers import owned_name, remove_abandoned
from engine.sources.layout import InputLayout
from engine.sources.plan import SourceFile, find_files

PREFIX = ".spool-"
#: INPUT that means standard input, and the name runs give it
STANDARD_INPUT = "-"
STDIN_PATH = "/dev/stdin"
_BLOCK = 1 << 20


class InputSpool:
    """The spool folder of one run: `<parent>/.spool-<host>-<pid>-<run id>`, made on first use."""

    def __init__(self, parent: Path, run_id: str, limit: int) -> None:
        self.parent, self.limit = parent, limit
        self.folder = parent / owned_name(PREFIX, run_id)

    def __enter__(self) -> InputSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def decompress(self, files: tuple[SourceFile, ...], only: Collection[int] | None = None) -> tuple[SourceFile, ...]:
        """`files` with every compressed local CSV file (of the indexes `only`, if given)
        read from a decompressed copy."""
        compressed = [i for i, f in enumerate(files) if f.format == "csv" and f.compression and not f.read_path
                      and not f.on_object_storage and (only is None or i in only)]
        if not compressed:
            return files
        self._make_folder()
        workers = min(len(compressed), os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decompress") as pool:
            copies = list(pool.map(lambda i: self._decompress(i, files[i]), compressed))
        replaced = list(files)
        for index, copy in zip(compressed, copies):
            replaced[index] = copy
        return tuple(replaced)

    def standard_input(self, layout: InputLayout) -> tuple[SourceFile, ...]:
        """Standard input as the run's one file: copied into the spool folder (at most
        `max_decompressed_size`), checked like any CSV file, named `/dev/stdin`, with the
        SHA-256 of what was read (for the audit log: standard input cannot be read twice)."""
        self._make_folder()
        copy = self.folder / "stdin.csv"
        digest = hashlib.sha256()
        try:
            with open(copy, "wb") as out:
                written = self._copy_within_limit(sys.stdin.buffer, out, f"{STDIN_PATH}: more than {{limit}} of input",
                                                  digest)
            files = find_files(str(copy), layout)
        except InputDataError as error:
            raise InputDataError(str(error).replace(str(copy), STDIN_PATH)) from None
        except OSError as error:
            raise _write_error(copy, error) from None
        return tuple(dataclasses.replace(f, path=STDIN_PATH, read_path=str(copy), text_size=written,
                                         sha256=digest.hexdigest()) for f in files)

    def _copy_within_limit(self, stream: Any, out: BinaryIO, too_large: str, digest: Any = None) -> int:
        """Copy `stream` into `out` in blocks (fed to `digest` too, if given); the bytes
        copied. More than `max_decompressed_size` is an input error: `too_large`, the limit
        in place of `{limit}`."""
        written = 0
        while block := stream.read(_BLOCK):
            written += len(block)
            if written > self.limit:
                raise InputDataError(f"{too_large.format(limit=_size(self.limit))} "
                                     "(max_decompressed_size); raise the limit if this input is genuine")
            if digest is not None:
                digest.update(block)
            out.write(block)
        return written

    def _make_folder(self) -> None:
        try:
            permissions.make_dirs(self.parent)
            remove_abandoned(self.parent, PREFIX)
            self.folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as error:
            raise _write_error(self.parent, error) from None

    def _decompress(self, index: int, file: SourceFile) -> SourceFile:
        target = self.folder / f"{index}.csv"
        try:
            with pa.input_stream(file.path, compression=file.compression) as stream, open(target, "wb") as out:
                written = self._copy_within_limit(
                    stream, out, f"{file.path}: expands to more than {{limit}} when decompressed")
        except InputDataError:
            target.unlink(missing_ok=True)
            raise
        except pa.ArrowException as error:
            target.unlink(missing_ok=True)
            raise InputDataError(f"{file.path}: cannot be decompressed ({_first_line(error)})") from None
        except OSError as error:
            target.unlink(missing_ok=True)
            if error.filename is None or os.path.abspath(str(error.filename)) == file.path:
                raise InputDataError(f"{file.path}: cannot be read ({_first_line(error)})") from None
            raise _write_error(target, error) from None
        return dataclasses.replace(file, read_path=str(target), text_size=written)


def _write_error(path: Path, error: OSError) -> Exception:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResourceError(f"{path}: no space left to decompress the input (spool_dir sets where)")
    return ConfigurationError(f"{path}: cannot write the decompressed input ({error.strerror or error})")


def _size(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def input_spool(config: EngineConfig, beside: Path, run_id: str) -> InputSpool:
    """The spool of a run configured by `config`: in `spool_dir`, or in `beside` (the
    output folder) when none is set."""
    parent = Path(config.spool_dir) if config.spool_dir else beside
    return InputSpool(parent, run_id, parse_size(config.max_decompressed_size, "max_decompressed_size"))
