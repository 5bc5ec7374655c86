"""Choosing how to run: the execution mode (for `auto`) and the partition size.

`auto` picks pandas for inputs small enough to hold in memory several times over and
fast to read in one piece, `distributed` when a scheduler address is configured, and
partitioned Dask otherwise. The choice and its reason are logged and reported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from engine.config import EngineConfig, parse_size
from engine.sources.plan import ReadPlan

#: Partition size for Dask modes when `partition_size: auto`, before memory caps.
DEFAULT_PARTITION_BYTES = 16 * 2**20
MIN_PARTITION_BYTES = 4 * 2**20
#: A partition expands roughly this much in memory while it is validated and reduced.
PARTITION_EXPANSION = 8
#: pandas mode reads, validates and reduces one partition of this size at a time.
PANDAS_PARTITION_BYTES = 8 * 2**20
#: pandas mode keeps per-partition results of the whole input; require this much headroom.
PANDAS_MEMORY_HEADROOM = 20


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    reason: str


def choose_mode(config: EngineConfig, input_bytes: int) -> ModeChoice:
    """The mode a run uses, and why."""
    if config.mode != "auto":
        return ModeChoice(config.mode, "requested")
    if config.cluster.scheduler:
        return ModeChoice("distributed", f"a scheduler is configured ({config.cluster.scheduler})")
    limit = parse_size(config.pandas_max_input)
    available = psutil.virtual_memory().available
    if input_bytes <= limit and input_bytes * PANDAS_MEMORY_HEADROOM <= available:
        return ModeChoice("pandas", f"input {_mib(input_bytes)} is at most the pandas limit of {_mib(limit)}")
    if input_bytes > limit:
        return ModeChoice("dask", f"input {_mib(input_bytes)} is over the pandas limit of {_mib(limit)}")
    return ModeChoice("dask", f"input {_mib(input_bytes)} needs more than the {_mib(available)} of memory available")


def partition_bytes(config: EngineConfig, mode: str, input_bytes: int, memory_per_thread: int | None = None) -> int:
    """Bytes of input per partition (read task).

    pandas mode streams PANDAS_PARTITION_BYTES at a time. Dask modes aim for DEFAULT_PARTITION_BYTES, but
    small enough that every core gets several partitions and that a partition, expanded
    in memory while it is processed, fits a quarter of the memory of the thread running
    it: a worker's memory limit in distributed mode, this machine's available memory
    shared by its cores otherwise.
    """
    if config.partition_size != "auto":
        return parse_size(config.partition_size)
    if mode == "pandas":
        return PANDAS_PARTITION_BYTES
    cores = os.cpu_count() or 1
    by_cores = input_bytes // (cores * 4) or MIN_PARTITION_BYTES
    if memory_per_thread is None:
        memory_per_thread = psutil.virtual_memory().available // cores
    by_memory = memory_per_thread // (PARTITION_EXPANSION * 4)
    return int(max(MIN_PARTITION_BYTES, min(DEFAULT_PARTITION_BYTES, by_cores, by_memory)))


def plan_summary(plan: ReadPlan) -> str:
    return f"{len(plan.files)} file(s), {_mib(plan.total_bytes)}, {len(plan.tasks)} partition(s)"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
