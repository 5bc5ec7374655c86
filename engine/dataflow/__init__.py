"""The sales-analytics dataflow: Hamilton node functions, one module per phase, and the
per-partition work they share.

    ingest  → raw_sales_data
    clean   → validated_sales, cleaned_sales_data
    reduce  → every reduction over the large data, in one pass (daily_sales, counts)
    analyse → daily_sales_summary, enriched_daily_summary, weekly_aggregation,
              trend_analysis, top_performing_days, data_quality_metrics

- `summaries`: one partition's summary (daily sums, distinct pairs, reject counts, the
  input profile) and how two summaries combine, for `reduce`;
- `quarantine`: the rejected rows, with why and where, customer ids pseudonymised;
- `partials`: one input file's share of every whole-input figure, merged across files
  (and kept between incremental runs);
- `derivation`: `@derives`, how a node's columns come from columns upstream (the
  column lineage is derived from these declarations);
- `user_modules`: a user's modules of extra nodes, loaded and described.

Nodes are plain functions; which backend runs them (pandas, Dask, dask.distributed) is
decided by the driver, never inside a node. This file imports none of them (they import
pandas): `modules()` does, when a driver is built.
"""

from __future__ import annotations

from types import ModuleType

#: The published outputs of a run, in the order they are written.
TABLE_OUTPUTS = ("daily_sales_summary", "enriched_daily_summary", "weekly_aggregation")
JSON_OUTPUTS = ("data_quality_metrics", "trend_analysis", "top_performing_days")
OUTPUTS = TABLE_OUTPUTS + JSON_OUTPUTS


def modules() -> tuple[ModuleType, ...]:
    """The node modules, in phase order."""
    from engine.dataflow import analyse, clean, ingest, reduce

    return (ingest, clean, reduce, analyse)
