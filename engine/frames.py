"""The few operations whose spelling differs between pandas and Dask, in one place.

Dataflow nodes are written against the DataFrame API that pandas and Dask share; where
the two differ (applying a function per partition, bringing lazy results home) the node
calls these helpers, which dispatch on the type of frame they are given. Nothing else in
the dataflow knows which backend runs it.
"""

from __future__ import annotations

from collections.abc import Callable
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
    if not is_lazy(frame):
        return function(frame, *args)
    return frame.map_partitions(function, *args, meta=function(frame._meta, *args))


def materialize(lazy: dict[str, Any]) -> dict[str, Any]:
    """Every value computed, in ONE pass over the input when they are Dask collections.

    Dask merges the graphs of all the collections, so the input partitions they share
    are read once and feed every reduction.
    """
    if not any(is_lazy(value) for value in lazy.values()):
        return dict(lazy)
    import dask

    (computed,) = dask.compute(lazy)
    return computed


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Partitions read in pandas mode, joined into one frame with a fresh index."""
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)
