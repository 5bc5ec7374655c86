"""Which files an incremental run reads, and which partials it reuses.

A run is incremental when its input is a folder or a glob (a growing set of files; on
object storage, a glob or a prefix ending in `/`), incremental runs are enabled, and no
user node takes a partitioned frame (a user node's result over the whole input is not
mergeable file by file, so such a run reads every file). Each file's key
(engine.incremental.keys) is looked up in the state: a partial kept under it is reused;
every other file is read, and its partial saved as its batch finishes. `full` (`engine
run --full`) reads every file and rebuilds the state.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.config import EngineConfig, parse_size
from engine.dataflow.partials import FilePartial
from engine.dataflow.summaries import distinct_union
from engine.incremental.distinct import DistinctIndex, extend, load_index, rebuild
from engine.incremental.keys import file_digests, partial_key, sha256_digests
from engine.incremental.store import StateStore
from engine.rules.pseudonyms import SecretKey
from engine.sources.layout import layout_of
from engine.sources.object_store import is_object_url, is_url
from engine.sources.plan import ReadPlan, SourceFile

log = logging.getLogger(__name__)

STATE_DIR = ".state"


@dataclass
class Increment:
    """An incremental run's files: every file's key, the partials reused, the files to read."""

    store: StateStore
    #: the input's files, each with its content digest
    files: tuple[SourceFile, ...]
    #: every input file's key, by index in the input
    keys: dict[int, str]
    #: the partials reused, by file index
    kept: dict[int, FilePartial]
    #: files of the previous run that are no longer in the input
    removed: int
    #: the key that pseudonymises the quarantine's customer ids (part of every key)
    pseudonym_key: SecretKey | None = None
    #: the distinct-record index of earlier runs, when every file it covers is still here
    index: DistinctIndex | None = None
    #: the distinct fingerprints of the files the index does not cover, as absorbed so far
    fingerprints: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    #: how this run changes the index: (covered keys, fingerprints to add, whether they
    #: replace the index)
    index_update: tuple[set[str], np.ndarray, bool] | None = None

    @property
    def to_read(self) -> tuple[int, ...]:
        return tuple(index for index in self.keys if index not in self.kept)

    def report(self) -> dict:
        """The run report's `incremental` section (after `finish`: `state_bytes` is what the
        state holds for the next run)."""
        return {"files_reused": len(self.kept), "files_read": len(self.to_read), "files_removed": self.removed,
                "state_bytes": self.store.summary().bytes}


def applies(config: EngineConfig, frames_taken_by_user_nodes: bool) -> bool:
    """True when a run of `config` is incremental (see the module's description)."""
    source = config.input or ""
    if is_object_url(source):
        growing = glob.has_magic(source) or source.endswith("/")
    elif is_url(source):  # a database or a source plug-in: no files to key
        growing = False
    else:
        growing = glob.has_magic(source) or Path(source).is_dir()
    if growing and config.incremental.enabled and frames_taken_by_user_nodes:
        log.info("incremental: a user node takes a partitioned frame, so every file is read")
    return growing and config.incremental.enabled and not frames_taken_by_user_nodes


def state_dir(config: EngineConfig, output_dir: Path) -> Path:
    return Path(config.incremental.state_dir) if config.incremental.state_dir else output_dir / STATE_DIR


def plan_increment(config: EngineConfig, files: tuple[SourceFile, ...], output_dir: Path,
                   pseudonym_key: SecretKey | None) -> Increment:
    """Key every file by its content (an object by its stored identity) and reuse the
    partials the state holds for them."""
    store = StateStore(state_dir(config, output_dir))
    threads = os.cpu_count() or 1
    digests = file_digests(files, threads)
    settings = partial_settings(config, pseudonym_key)
    keys = {index: partial_key(digests[f.path], settings) for index, f in enumerate(files)}
    previous = store.manifest()
    distinct = None if config.incremental.full else load_index(store.folder)
    if distinct is not None and not distinct.keys <= set(keys.values()):
        distinct = None  # a file it covers was removed or changed: count every file again
    kept: dict[int, FilePartial] = {}
    if not config.incremental.full:
        for index, key in keys.items():  # a covered file's fingerprints are in the index already
            partial = store.load(key, files[index].path, fingerprints=distinct is None or key not in distinct.keys)
            if partial is not None:
                kept[index] = partial
    removed = len(set(previous) - {f.path for f in files})
    files = _with_sha256(files, keys, kept, store.known_sha256(), threads)
    increment = Increment(store, files, keys, kept, removed, pseudonym_key, distinct)
    log.info("incremental: %d file(s) reused, %d to read, %d removed since the last run%s", len(kept),
             len(increment.to_read), removed, " (--full: the state is rebuilt)" if config.incremental.full else "")
    return increment


def _with_sha256(files: tuple[SourceFile, ...], keys: dict[int, str], kept: dict[int, FilePartial],
                 known: dict[str, str], threads: int) -> tuple[SourceFile, ...]:
    """The files with their SHA-256, which the audit log records: a reused file's from the
    manifest (its key names its content, so the digest recorded for that key is its own),
    every other file's hashed now (those are read anyway). An incremental run then hashes
    only new content with SHA-256, and a year of reused files costs the audit nothing.
    Objects on object storage are never hashed here (the audit records their ETag)."""
    unknown = [files[index].path for index, key in keys.items()
               if (index not in kept or key not in known) and not files[index].on_object_storage]
    hashed = sha256_digests(unknown, threads)
    return tuple(dataclasses.replace(f, sha256=hashed.get(f.path) or known.get(keys[index]))
                 for index, f in enumerate(files))


def absorb_fingerprints(increment: Increment, partials: dict[int, FilePartial]) -> None:
    """Fold the fingerprints of `partials` (a batch just read and saved, or the kept ones)
    that the index does not cover into the run's union, and drop them from the partials:
    memory then holds one union, not every file's fingerprints and their union."""
    index = increment.index
    uncovered = [p for file, p in partials.items() if index is None or increment.keys[file] not in index.keys]
    increment.fingerprints = distinct_union([increment.fingerprints, *(p.fingerprints for p in uncovered)])
    for partial in uncovered:
        partial.fingerprints = None


def count_distinct(increment: Increment) -> int:
    """The exact number of distinct records over every file, once every partial's
    fingerprints are absorbed, and the index update that records it for the next run."""
    index = increment.index
    if index is None:
        increment.index_update = (set(increment.keys.values()), increment.fingerprints, True)
        return int(increment.fingerprints.size)
    new = index.new_values(increment.fingerprints)
    increment.index_update = ({key for key in increment.keys.values() if key not in index.keys}, new, False)
    return index.count + int(new.size)


def partial_settings(config: EngineConfig, pseudonym_key: SecretKey | None) -> dict:
    """The settings that change a file's partial: whether malformed lines are skipped, the
    input layout (delimiter, column mapping), and which key pseudonymises the quarantine's
    customer ids (its digest, never the key)."""
    key = None
    if pseudonym_key is not None:
        key = hashlib.sha256(b"engine incremental state\0" + pseudonym_key.reveal()).hexdigest()
    return {"malformed_lines": config.malformed_lines, "pseudonym_key": key,
            "input_layout": layout_of(config).settings()}


def batches(plan: ReadPlan, files: tuple[int, ...], batch_bytes: int) -> list[tuple[int, ...]]:
    """The files to read, in input order, in batches of about `batch_bytes` of input each
    (a file is never split across batches)."""
    groups: list[list[int]] = [[]]
    size = 0
    for index in files:
        if groups[-1] and size >= batch_bytes:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += plan.files[index].read_size
    return [tuple(group) for group in groups if group]


def batch_bytes(config: EngineConfig) -> int:
    return parse_size(config.incremental.batch_size, "incremental.batch_size")


def finish(increment: Increment, files: tuple[SourceFile, ...]) -> None:
    """Once a run has its results: the manifest of its files, the distinct-record index
    updated, and no partial of any other file."""
    increment.store.write_manifest({files[index].path: key for index, key in increment.keys.items()},
                                   {key: files[index].sha256 for index, key in increment.keys.items()
                                    if files[index].sha256})
    if increment.index_update is not None:
        keys, values, replace = increment.index_update
        if replace:
            rebuild(increment.store.folder, keys, values)
        elif keys:
            extend(increment.store.folder, increment.index, keys, values)
    removed, freed = increment.store.prune(set(increment.keys.values()))
    if removed:
        log.info("incremental: removed %d partial(s) no file of this input needs (%d bytes)", removed, freed)
