"""Example user nodes: three figures the engine does not publish, added as a module.

    engine run data/sales.csv --module examples/sales_extensions.py

Each public function is a Hamilton node. The two over `cleaned_sales_data` (the kept
sales: `date`, `product_id`, `amount_cents` as exact int64 cents, `customer_id`) are plain
pandas code; the engine runs them on pandas partitions or Dask DataFrames, in the same
single pass over the input as its own figures. `best_product` works on the (small) result
of `product_totals`. Each is published beside the engine's outputs: a table as
`<node>.csv` and `<node>.parquet`, a dict as `<node>.json`.

`derives` declares how a node's columns come from the columns it reads; the engine
follows it down to the input files' columns for the OpenLineage column lineage. A node
without it (`best_product`) gets every column of what it reads, without saying how.
"""

from __future__ import annotations

import pandas as pd

from engine.dataflow.derivation import derives


@derives(
    product_id="cleaned_sales_data.product_id IDENTITY",
    total_cents="cleaned_sales_data.amount_cents AGGREGATION",
    sales="cleaned_sales_data.amount_cents AGGREGATION",
    dataset="cleaned_sales_data.product_id GROUP_BY",
)
def product_totals(cleaned_sales_data: pd.DataFrame) -> pd.DataFrame:
    """Per product: the total of its sales in cents and how many sales it had."""
    totals = cleaned_sales_data.groupby("product_id")["amount_cents"].agg(["sum", "count"]).reset_index()
    return totals.rename(columns={"sum": "total_cents", "count": "sales"})


@derives(
    date="cleaned_sales_data.date IDENTITY",
    customers="cleaned_sales_data.customer_id AGGREGATION",
    dataset=["cleaned_sales_data.date GROUP_BY", "cleaned_sales_data.customer_id FILTER"],
)
def customers_per_day(cleaned_sales_data: pd.DataFrame) -> pd.DataFrame:
    """Per sales day: how many distinct customers bought (sales without a customer id
    are not counted)."""
    known = cleaned_sales_data[cleaned_sales_data["customer_id"].notnull()]
    return known.groupby("date")["customer_id"].nunique().reset_index().rename(columns={"customer_id": "customers"})


def best_product(product_totals: pd.DataFrame, top_days: int) -> dict:
    """The product with the largest total (ties: the smallest id), and the configured
    number of top days (a configuration value is an input like any other)."""
    ranked = product_totals.sort_values(["total_cents", "product_id"], ascending=[False, True])
    best = ranked.iloc[0]
    return {"product_id": str(best["product_id"]), "total_cents": int(best["total_cents"]),
            "products": int(len(product_totals)), "top_days_setting": top_days}
