"""The sales-analytics dataflow: Hamilton node functions, one module per phase.

    ingest  → raw_sales_data
    clean   → validated_sales, cleaned_sales_data
    reduce  → every reduction over the large data, in one pass (daily_sales, counts)
    analyse → daily_sales_summary, enriched_daily_summary, weekly_aggregation,
              trend_analysis, top_performing_days, data_quality_metrics

Nodes are plain functions; which backend runs them (pandas, Dask, dask.distributed) is
decided by the driver, never inside a node.
"""

from engine.dataflow import analyse, clean, ingest, reduce

MODULES = (ingest, clean, reduce, analyse)

#: The published outputs of a run, in the order they are written.
TABLE_OUTPUTS = ("daily_sales_summary", "enriched_daily_summary", "weekly_aggregation")
JSON_OUTPUTS = ("data_quality_metrics", "trend_analysis", "top_performing_days")
OUTPUTS = TABLE_OUTPUTS + JSON_OUTPUTS
