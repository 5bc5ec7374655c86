"""Hamilton's Dask graph adapter, taught that a Dask DataFrame is a DataFrame.

The dataflow annotates its nodes with `pd.DataFrame` / `pd.Series`. Hamilton's stock
`DaskGraphAdapter` accepts a Dask Series where `pd.Series` is declared but rejects a Dask
DataFrame where `pd.DataFrame` is declared ("Type requirement mismatch"). This subclass
accepts both, and runs nodes in the driver process with lazy Dask collections flowing
between them (`use_delayed=False`, `compute_at_end=False`): the data is partitioned by
Dask, not shipped whole as one task per node.
"""

from __future__ import annotations

from typing import Any

import dask.dataframe as dd
import pandas as pd
from hamilton import base
from hamilton.plugins import h_dask


class DaskFrameGraphAdapter(h_dask.DaskGraphAdapter):
    """Runs the dataflow over partitioned Dask DataFrames; results come back as a dict."""

    def __init__(self, client: Any = None) -> None:
        super().__init__(client, result_builder=base.DictResult(), use_delayed=False, compute_at_end=False)

    @staticmethod
    def check_input_type(node_type: type, input_value: Any) -> bool:
        if node_type is pd.DataFrame and isinstance(input_value, dd.DataFrame):
            return True
        if node_type is pd.Series and isinstance(input_value, dd.Series):
            return True
        return h_dask.DaskGraphAdapter.check_input_type(node_type, input_value)
