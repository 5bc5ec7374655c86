"""Ingest: the sales transactions as read from the source."""

from __future__ import annotations

import pandas as pd

from engine.dataflow.derivation import derives
from engine.execution.backends import Backend
from engine.sources.plan import ReadPlan


@derives(date="read_plan.date IDENTITY", product_id="read_plan.product_id IDENTITY",
         amount="read_plan.amount IDENTITY", customer_id="read_plan.customer_id IDENTITY")
def raw_sales_data(read_plan: ReadPlan, backend: Backend) -> pd.DataFrame:
    """Every data row of the source, its four columns (`date`, `product_id`, `amount`,
    `customer_id`) as the text written in the file; an empty cell is null."""
    return backend.load(read_plan)
