"""The few operations whose spelling differs between pandas and Dask, in one place.

Dataflow nodes are written against the DataFrame API that pandas and Dask share; where
the two differ (applying a function per partition, reducing every partition, bringing
lazy results home) the node calls these helpers, which dispatch on the type of frame they
are given. Nothing else in the dataflow knows which backend runs it.

A frame is one of three things: a pandas DataFrame (a small frame held whole), a
PartitionStream (pandas mode: pandas partitions read and transformed one at a time when a
reduction consumes them), or a Dask DataFrame (partitions computed by Dask's schedulers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


def is_lazy(value: Any) -> bool:
    """True for a Dask collection (its values are computed later)."""
    return hasattr(value, "__dask_graph__") and value.__dask_graph__() is not None


def map_partitions(function: Callable[..., Any], frame: Any, *args: Any) -> Any:
    """`function` applied to each partition of a Dask frame, or to a pandas frame whole.

    The function must accept an empty frame: its result on the empty meta frame is the
    shape Dask expects of every partition.
    """
    if isinstance(frame, PartitionStream):
        return frame.map_partitions(function, *args)
    if not is_lazy(frame):
        return function(frame, *args)
    # enforce_metadata=False: Dask would otherwise replace an empty result by the meta
    # frame, losing the partition's `attrs` (which task it is, its line count).
    return frame.map_partitions(function, *args, meta=function(frame._meta, *args), enforce_metadata=False)


class PartitionStream:
    """pandas mode's frame: read tasks and the per-partition steps to apply to each.

    Nothing is read until a reduction iterates over it; then each partition is read,
    transformed and reduced before the next is read, so memory holds one partition.
    """

    def __init__(self, sources: Sequence[Any], read: Callable[[Any], pd.DataFrame],
                 steps: tuple[tuple[Callable[..., Any], tuple], ...] = ()) -> None:
        self.sources, self.read, self.steps = list(sources), read, steps

    def map_partitions(self, function: Callable[..., Any], *args: Any) -> PartitionStream:
        return PartitionStream(self.sources, self.read, (*self.steps, (function, args)))

    @property
    def npartitions(self) -> int:
        return len(self.sources)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for source in self.sources:
            frame = self.read(source)
            for function, args in self.steps:
                frame = function(frame, *args)
            yield frame


@dataclass(frozen=True)
class PartitionReduction:
    """How a frame reduces to a small result one partition at a time.

    `summarize` turns a partition into `(summary, shard_1, ..., shard_n)`; `combine`
    merges summaries (associative, any grouping); `merge_shard` turns shard i of every
    partition into one result. Shards are for what cannot be reduced before all
    partitions are seen (exact distinct counts): each merges independently of the others.
    """

    summarize: Callable[[pd.DataFrame], tuple]
    combine: Callable[[list[Any]], Any]
    merge_shard: Callable[[list[Any]], Any]
    shards: int
    #: summaries merged by one combine task
    fan_in: int = 8


def reduce_partitions(frame: Any, reduction: PartitionReduction) -> tuple[Any, list[Any]]:
    """The combined summary of every partition of `frame` and the merged result of each shard.

    For a Dask frame this builds one graph: a summarize task per partition (fused with
    its read and validation), a tree of combine tasks, and one merge task per shard; and
    computes it in one pass. A PartitionStream is reduced partition by partition.
    """
    if is_lazy(frame):
        return _reduce_lazy(frame, reduction)
    partitions = frame if isinstance(frame, PartitionStream) else [frame]
    summaries: list[Any] = []
    shards: list[list[Any]] = [[] for _ in range(reduction.shards)]
    for partition in partitions:
        summary, *parts = reduction.summarize(partition)
        summaries.append(summary)
        for shard, part in zip(shards, parts):
            shard.append(part)
        if len(summaries) == reduction.fan_in:
            summaries = [reduction.combine(summaries)]
    if not summaries:
        raise ValueError("a frame of no partitions cannot be reduced")  # read plans have at least one task
    return reduction.combine(summaries), [reduction.merge_shard(shard) for shard in shards]


def _reduce_lazy(frame: Any, reduction: PartitionReduction) -> tuple[Any, list[Any]]:
    import dask
    from dask import delayed
    from dask.base import tokenize

    # Summarising is one more step of the per-partition pipeline, so Dask fuses it with the
    # read and the validation into one task: a validated partition never outlives it (on a
    # cluster it would otherwise wait in worker memory for its summary task). A partition's
    # summary travels as a one-row frame of objects, one column per output.
    width = reduction.shards + 1
    meta = pd.DataFrame({str(i): pd.Series(dtype=object) for i in range(width)})
    rows = frame.map_partitions(_summary_row, reduction.summarize, meta=meta, enforce_metadata=False)
    parts = rows.to_delayed()
    token = tokenize([part.key for part in parts])
    outputs = [[delayed(_cell)(part, column, dask_key_name=f"summary-{token}-{i}-{column}") for column in range(width)]
               for i, part in enumerate(parts)]
    level, depth = [output[0] for output in outputs], 0
    while len(level) > 1:
        depth += 1
        level = [delayed(reduction.combine)(level[i:i + reduction.fan_in], dask_key_name=f"combine-{token}-{depth}-{i}")
                 for i in range(0, len(level), reduction.fan_in)]
    shards = [delayed(reduction.merge_shard)([output[i + 1] for output in outputs], dask_key_name=f"merge-{token}-{i}")
              for i in range(reduction.shards)]
    return dask.compute(level[0], shards)


def _summary_row(partition: pd.DataFrame, summarize: Callable[[pd.DataFrame], tuple]) -> pd.DataFrame:
    return pd.DataFrame({str(i): [value] for i, value in enumerate(summarize(partition))})


def _cell(row: pd.DataFrame, column: int) -> Any:
    return row[str(column)].iloc[0]
