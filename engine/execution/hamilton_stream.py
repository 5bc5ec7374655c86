"""Hamilton's plain Python graph adapter, taught that a PartitionStream is a DataFrame.

In pandas mode the frame nodes (`raw_sales_data`, `validated_sales`, ...) are pandas
partitions streamed one at a time (engine.execution.frames.PartitionStream); the dataflow annotates
them `pd.DataFrame`, which Hamilton's type check would reject.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hamilton import base

from engine.execution.frames import PartitionStream


class PartitionStreamGraphAdapter(base.SimplePythonGraphAdapter):
    """Runs the dataflow in-process; results come back as a dict."""

    def __init__(self) -> None:
        super().__init__(base.DictResult())

    @staticmethod
    def check_input_type(node_type: type, input_value: Any) -> bool:
        if node_type is pd.DataFrame and isinstance(input_value, PartitionStream):
            return True
        return base.SimplePythonGraphAdapter.check_input_type(node_type, input_value)
