"""Ingest: the sales transactions as read from the source."""

from __future__ import annotations

import pandas as pd

from engine.execution.backends import Backend
from engine.sources.plan import ReadPlan


def raw_sales_data(read_plan: ReadPlan, backend: Backend) -> pd.DataFrame:
    """Every data row of the source, its four columns (`date`, `product_id`, `amount`,
    `customer_id`) as the text written in the file; an empty cell is null."""
    return backend.load(read_plan)
