"""Reduce: every figure that needs the whole (large) input, computed in one pass.

Each partition is summarised in the task that reads and validates it
(engine/dataflow/summaries.py), and the summaries are combined in one computation, so the
input is read once per run whatever the mode; everything downstream works on the small
results. `partition_summaries` is where the pass happens: on Dask frames it is a lazy
reduction that the run computes together with every user node over the same frames.
"""

from __future__ import annotations

import functools

import pandas as pd
import pyarrow as pa
from hamilton.function_modifiers import extract_fields

from engine.dataflow import partials, summaries
from engine.dataflow.derivation import derives
from engine.execution import frames
from engine.rules.pseudonyms import SecretKey
from engine.rules.validation import RAW_COLUMNS
from engine.sources.plan import ReadPlan


def partition_summaries(validated_sales: pd.DataFrame, cleaned_sales_data: pd.DataFrame,
                        pseudonym_key: SecretKey | None, one_pass: frames.OnePass, keep_fingerprints: bool) -> tuple:
    """Every partition summarised and the summaries combined: the one pass over the input.
    The sales figures come from `cleaned_sales_data`; rejections, the input profile, the
    quarantine and the duplicate fingerprints from `validated_sales` (every raw row), a
    partition of each at a time. On Dask frames it is computed in one computation together
    with `one_pass`'s companions (the user nodes over the same frames), which share each
    partition's read and validation. Rejected rows' customer ids are pseudonymised with
    `pseudonym_key`, or left out. Summaries stay per file; distinct records are counted,
    or with `keep_fingerprints` kept per file (to keep each file's partial)."""
    reduction = frames.PartitionReduction(
        summarize=functools.partial(summaries.summarize, key=pseudonym_key), combine=summaries.combine,
        merge_shard=summaries.distinct_by_file if keep_fingerprints else summaries.count_distinct,
        shards=summaries.SHARDS,
    )
    return one_pass.compute(frames.reduce_partitions((validated_sales, cleaned_sales_data), reduction))


def read_partials(partition_summaries: tuple, read_plan: ReadPlan) -> partials.ReadPartials:
    """The partials of the files read in this run (engine.dataflow.partials)."""
    by_file, shard_results = partition_summaries
    return partials.from_pass(by_file, shard_results, read_plan)


@derives(
    target="daily_sales",
    date="cleaned_sales_data.date IDENTITY",
    total_cents="cleaned_sales_data.amount_cents AGGREGATION",
    transaction_count="cleaned_sales_data.amount_cents AGGREGATION",
    unique_products="cleaned_sales_data.product_id AGGREGATION",
    dataset="cleaned_sales_data.date GROUP_BY",
)
@derives(target="raw_record_count", value="validated_sales AGGREGATION")
@derives(target="missing_cells_by_column",
         **{column: f"raw_sales_data.{column} AGGREGATION" for column in RAW_COLUMNS})
@derives(target="rejected_by_reason", value="validated_sales.reject_reason AGGREGATION")
@derives(target="distinct_raw_rows", value="validated_sales.fingerprint AGGREGATION")
@derives(
    target="rejected_rows",
    file="validated_sales.source_file IDENTITY",
    line="validated_sales.line_position IDENTITY",
    reason="validated_sales.reject_reason IDENTITY",
    date="validated_sales.date_text IDENTITY",
    product_id="validated_sales.product_id_text IDENTITY",
    amount="validated_sales.amount_text IDENTITY",
    customer_id="validated_sales.customer_id TRANSFORMATION masked",
    detail="validated_sales.reject_reason TRANSFORMATION",
    dataset="validated_sales.reject_reason FILTER",
)
@extract_fields(
    {
        "daily_sales": pd.DataFrame,
        "input_profile": pd.DataFrame,
        "raw_record_count": int,
        "missing_cells_by_column": dict,
        "rejected_by_reason": dict,
        "distinct_raw_rows": int,
        "rejected_rows": pa.Table,
    }
)
def sales_reductions(read_partials: partials.ReadPartials, kept_partials: dict[int, partials.FilePartial],
                     read_plan: ReadPlan) -> dict:
    """The large-data reductions over every input file (the files read now and those whose
    partials were kept from earlier runs): per-day sales of the kept rows (exact integer
    cents, distinct products), a profile of each input file (records, missing cells,
    value ranges), rejections per reason, the number of distinct raw records (a skipped
    malformed line is never a duplicate), and the rejected rows themselves (the
    quarantine, customer ids pseudonymised or left out)."""
    every = sorted({**kept_partials, **read_partials.partials}.items())
    merged = partials.merge(every, read_plan, read_partials.distinct_records)
    profile = _input_profile(merged.profiles, read_plan)
    return {
        "daily_sales": merged.daily_sales,
        "input_profile": profile,
        "raw_record_count": int(profile["rows"].sum()),
        "missing_cells_by_column": {c: int(profile[f"missing_{c}"].sum()) for c in RAW_COLUMNS},
        "rejected_by_reason": summaries.rejected_by_reason(merged.reasons),
        "distinct_raw_rows": merged.distinct_records,
        "rejected_rows": merged.rejected_rows,
    }


def _input_profile(profiles: pd.DataFrame, read_plan: ReadPlan) -> pd.DataFrame:
    """One row per input file, in plan order (a file without the optional customer_id
    column has no customer cells to be missing)."""
    profile = profiles.set_index("source_file").reindex(range(len(read_plan.files)))
    profile[["rows", *(f"missing_{c}" for c in RAW_COLUMNS)]] = profile[
        ["rows", *(f"missing_{c}" for c in RAW_COLUMNS)]].fillna(0).astype("int64")
    profile.loc[list(read_plan.files_without_customer_id), "missing_customer_id"] = 0
    profile.insert(0, "path", [f.path for f in read_plan.files])
    return profile.reset_index(drop=True)
