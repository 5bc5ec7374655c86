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

import functools
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
                 steps: tuple[tuple[Callable[..., Any], tuple], ...] = (),
                 retained: list[PartitionStream] | None = None) -> None:
        self.sources, self.read, self.steps = list(sources), read, steps
        #: streams of the same source whose partitions are kept while any stream of it is
        #: iterated (shared by every stream derived from one source)
        self._retained = [] if retained is None else retained
        self._kept: list[pd.DataFrame] | None = None

    def map_partitions(self, function: Callable[..., Any], *args: Any) -> PartitionStream:
        return PartitionStream(self.sources, self.read, (*self.steps, (function, args)), self._retained)

    @property
    def npartitions(self) -> int:
        return len(self.sources)

    def retain(self) -> None:
        """Keep this stream's partitions while the source is next iterated (by whichever
        stream of it), so that `materialize` needs no second read."""
        if self._kept is None:
            self._kept = []
            self._retained.append(self)

    def materialize(self) -> pd.DataFrame:
        """The whole stream as one pandas frame: the partitions kept during the last pass
        when `retain` was called before it, otherwise read now."""
        parts = self._kept if self._kept else list(self)
        if self in self._retained:
            self._retained.remove(self)
        self._kept = None
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        frame.attrs.clear()
        return frame

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for (partition,) in in_step([self]):
            yield partition

    def _through(self, done: dict[tuple, pd.DataFrame]) -> pd.DataFrame:
        """This stream's partition from the partition's results so far (`done`, keyed by
        the steps applied): streams of one source share their first steps (the very same
        step objects), which run once per partition."""
        key = tuple(map(id, self.steps))
        applied = len(key)
        while key[:applied] not in done:
            applied -= 1
        frame = done[key[:applied]]
        for index in range(applied, len(key)):
            function, args = self.steps[index]
            frame = function(frame, *args)
            done[key[:index + 1]] = frame
        return frame


def in_step(streams: Sequence[PartitionStream]) -> Iterator[tuple[pd.DataFrame, ...]]:
    """The partitions of streams of one source, a tuple of the same partition of each at
    a time: each partition is read once, and the steps the streams share run once."""
    first = streams[0]
    if any(stream._retained is not first._retained for stream in streams):
        raise ValueError("only streams of one source can be iterated in step")
    for source in first.sources:
        done = {(): first.read(source)}
        yield tuple(stream._through(done) for stream in streams)
        for stream in first._retained:
            stream._kept.append(stream._through(done))


@dataclass(frozen=True)
class PartitionReduction:
    """How a frame reduces to a small result one partition at a time.

    `summarize` turns a partition (of each reduced frame) into `(summary, shard_1, ...,
    shard_n)`; `combine` merges summaries (associative, any grouping); `merge_shard`
    turns shard i of every partition into one result. Shards are for what cannot be reduced before all
    partitions are seen (exact distinct counts): each merges independently of the others.
    """

    summarize: Callable[[pd.DataFrame], tuple]
    combine: Callable[[list[Any]], Any]
    merge_shard: Callable[[list[Any]], Any]
    shards: int
    #: summaries merged by one combine task
    fan_in: int = 8


def reduce_partitions(frames: Sequence[Any], reduction: PartitionReduction) -> Any:
    """The combined summary of every partition and the merged result of each shard, as
    `(summary, [shard results])`. `frames` are frames of one source, partition for
    partition (e.g. the validated and the cleaned sales); `summarize` takes the same
    partition of each.

    PartitionStreams are reduced partition by partition, here and now. For Dask frames
    the result is a LazyReduction: a summarize step per partition (fused with its read and
    validation), a tree of combines, one merge per shard, not yet computed, so that the
    run can compute it in one pass together with every other lazy result that reads the
    same partitions (`OnePass`).
    """
    if is_lazy(frames[0]):
        return _reduce_lazy(frames, reduction)
    partitions = in_step(frames) if isinstance(frames[0], PartitionStream) else [tuple(frames)]
    summaries: list[Any] = []
    shards: list[list[Any]] = [[] for _ in range(reduction.shards)]
    for partition in partitions:
        summary, *parts = reduction.summarize(*partition)
        summaries.append(summary)
        for shard, part in zip(shards, parts):
            shard.append(part)
        if len(summaries) == reduction.fan_in:
            summaries = [reduction.combine(summaries)]
    if not summaries:
        raise ValueError("a frame of no partitions cannot be reduced")  # read plans have at least one task
    return reduction.combine(summaries), [reduction.merge_shard(shard) for shard in shards]


@dataclass(frozen=True)
class LazyReduction:
    """A Dask frame's reduction, planned but not computed: each partition's summary row
    (`rows`, one column per output) and how the rows reduce."""

    rows: Any
    reduction: PartitionReduction


class OnePass:
    """Lazy results (a user's nodes over the input's frames) to be computed in the same
    Dask computation as the engine's reductions, and their computed values afterwards."""

    def __init__(self, companions: dict[str, Any] | None = None) -> None:
        given = companions or {}
        self.companions = {name: value for name, value in given.items() if is_lazy(value)}
        self.results: dict[str, Any] = {name: value for name, value in given.items() if name not in self.companions}

    def compute(self, reduction: Any) -> Any:
        """`reduction` (a LazyReduction, or a reduction already done) as `(summary, [shard
        results])`, computed together with the lazy companions, whose values go to
        `results`.

        Alone, the reduction is one task per partition (read, validation and summary
        fused by Dask), a tree of combines and one merge per shard. With companions, the
        combines and merges are Dask's own tree reductions over the summary rows, so that
        one computation plans every consumer of a partition together and reads it once.
        """
        names = list(self.companions)
        if not isinstance(reduction, LazyReduction) and not names:
            return reduction  # pandas mode: reduced already, and Dask is never imported
        import dask

        if not isinstance(reduction, LazyReduction):
            self.results.update(zip(names, dask.compute(*self.companions.values())))
            return reduction
        if not names:
            summary, shards = dask.compute(*_fused_tree(reduction))
            return summary, list(shards)
        summary, shards = _tree_reductions(reduction)
        results = dask.compute(summary, *shards, *self.companions.values())
        self.results.update(zip(names, results[1 + len(shards):]))
        return results[0], list(results[1:1 + len(shards)])


def _reduce_lazy(frames: Sequence[Any], reduction: PartitionReduction) -> LazyReduction:
    # Summarising is one more step of the per-partition pipeline: a validated partition
    # never outlives its summary (on a cluster it would otherwise wait in worker memory for
    # its summary task). A partition's summary travels as a one-row frame of objects, one
    # column per output.
    width = reduction.shards + 1
    meta = pd.DataFrame({str(i): pd.Series(dtype=object) for i in range(width)})
    rows = frames[0].map_partitions(_summary_row, *frames[1:], summarize=reduction.summarize, meta=meta,
                                    enforce_metadata=False)
    return LazyReduction(rows, reduction)


def _fused_tree(lazy: LazyReduction) -> tuple[Any, list[Any]]:
    """The reduction as delayed tasks over one fused read-validate-summarise task per
    partition."""
    from dask import delayed
    from dask.base import tokenize

    reduction, width = lazy.reduction, lazy.reduction.shards + 1
    parts = lazy.rows.to_delayed()
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
    return level[0], shards


def _tree_reductions(lazy: LazyReduction) -> tuple[Any, list[Any]]:
    """The reduction as Dask DataFrame reductions over the summary rows' columns."""
    reduction, rows = lazy.reduction, lazy.rows
    combine = functools.partial(_combine_cells, reduction.combine)
    summary = rows["0"].reduction(chunk=combine, aggregate=combine, split_every=reduction.fan_in, meta=object)
    merge = functools.partial(_merge_cells, reduction.merge_shard)
    shards = [rows[str(i + 1)].reduction(chunk=_gather_cells, combine=_gather_cells, aggregate=merge,
                                         split_every=reduction.fan_in, meta=object)
              for i in range(reduction.shards)]
    return summary, shards


class _Cells:
    """Shard parts gathered from several partitions: not a sequence, so that Dask's
    reductions pass it on as one value instead of concatenating it."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts


def _combine_cells(combine: Callable[[list[Any]], Any], cells: pd.Series) -> Any:
    summaries = [cell for cell in cells if cell is not None]  # Dask may pass an empty group
    return combine(summaries) if summaries else None


def _gather_cells(cells: pd.Series) -> _Cells:
    return _Cells([part for cell in cells if cell is not None
                   for part in (cell.parts if isinstance(cell, _Cells) else [cell])])


def _merge_cells(merge: Callable[[list[Any]], Any], cells: pd.Series) -> Any:
    return merge(_gather_cells(cells).parts)


def _summary_row(*partitions: pd.DataFrame, summarize: Callable[..., tuple]) -> pd.DataFrame:
    return pd.DataFrame({str(i): [value] for i, value in enumerate(summarize(*partitions))})


def _cell(row: pd.DataFrame, column: int) -> Any:
    return row[str(column)].iloc[0]
