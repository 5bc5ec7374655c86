"""Column derivations: how each column of a node comes from columns of nodes upstream.

A node declares its own step only, as Hamilton tags, and `engine.lineage.columns` derives
every published column's lineage back to the input files' columns by walking the graph:

    @derives(
        total_cents="cleaned_sales_data.amount_cents AGGREGATION",
        date="cleaned_sales_data.date IDENTITY",
        dataset="cleaned_sales_data.date GROUP_BY",
    )
    def daily_totals(cleaned_sales_data: pd.DataFrame) -> pd.DataFrame: ...

Each source is `"<node>.<column> <SUBTYPE>"`, or `"<node> <SUBTYPE>"` for every column
the node declares, with an optional trailing `masked` when the values are masked (e.g.
pseudonymised). The subtype says the kind, as in OpenLineage's column-lineage facet:
IDENTITY, TRANSFORMATION and AGGREGATION are DIRECT (the values flow into the column);
FILTER, JOIN, GROUP_BY, SORT, WINDOW and CONDITIONAL are INDIRECT (they decide which rows
or how). `dataset=` lists the sources that shape every column of the node (a filter, a
grouping). A column with no column source (a line number) is declared with `[]`. The
input files' columns are `read_plan.<column>`. A non-table node (a count, a dict)
declares the fields it has: a scalar one field, `value`.

The source node need not be a direct parameter, only upstream (the extracted fields of
`sales_reductions` name the frames their pass summarised). A node that declares nothing,
such as a user's node, derives each of its columns from every column its parameters
have, which is true if coarse; a user module can use `derives` for precise lineage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hamilton.function_modifiers import tag

#: Tag keys: `lineage.column.<column>` per declared column, `lineage.dataset` for the node.
COLUMN_TAG = "lineage.column."
DATASET_TAG = "lineage.dataset"
#: OpenLineage's transformation subtypes, by kind.
DIRECT_SUBTYPES = ("IDENTITY", "TRANSFORMATION", "AGGREGATION")
INDIRECT_SUBTYPES = ("FILTER", "JOIN", "GROUP_BY", "SORT", "WINDOW", "CONDITIONAL")
#: The node whose columns are the input files' columns.
INPUT_NODE = "read_plan"


def derives(*, target: str | None = None, dataset: str | list[str] = (),
            **columns: str | list[str]) -> Callable[[Any], Any]:
    """Declare the column derivations of a node (of `target`, for a function that makes
    several nodes, e.g. with `extract_fields`)."""
    tags = {f"{COLUMN_TAG}{column}": _tag_value(sources) for column, sources in columns.items()}
    if dataset:
        tags[DATASET_TAG] = _tag_value(dataset)
    for key, value in tags.items():
        for source in value if isinstance(value, list) else [value]:
            if source and parse_source(source)[2] in DIRECT_SUBTYPES and key == DATASET_TAG:
                raise ValueError(f"dataset source {source!r}: a whole dataset derives INDIRECTly "
                                 f"(one of {', '.join(INDIRECT_SUBTYPES)})")
    return tag(target_=target, **tags)


def _tag_value(sources: str | list[str] | tuple[str, ...]) -> str | list[str]:
    if isinstance(sources, str):
        return sources
    sources = list(dict.fromkeys(sources))
    return sources or ""  # Hamilton tags cannot be empty lists: "" means no column source


def parse_source(source: str) -> tuple[str, str | None, str, bool]:
    """(node, column or None for every column, subtype, masked) of one declared source."""
    words = source.split()
    masked = len(words) == 3 and words[2] == "masked"
    if len(words) not in (2, 3) or (len(words) == 3 and not masked):
        raise ValueError(f"column source {source!r}: expected '<node>[.<column>] <SUBTYPE> [masked]'")
    reference, subtype = words[0], words[1]
    if subtype not in DIRECT_SUBTYPES + INDIRECT_SUBTYPES:
        raise ValueError(f"column source {source!r}: unknown subtype {subtype!r} "
                         f"(one of {', '.join(DIRECT_SUBTYPES + INDIRECT_SUBTYPES)})")
    node, _, column = reference.partition(".")
    return node, column or None, subtype, masked


def declared(tags: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]] | None:
    """A node's declared (column -> sources, dataset-wide sources), or None if it declares
    nothing."""
    columns = {key[len(COLUMN_TAG):]: _sources(value) for key, value in tags.items() if key.startswith(COLUMN_TAG)}
    if not columns and DATASET_TAG not in tags:
        return None
    return columns, _sources(tags.get(DATASET_TAG, ""))


def _sources(value: str | list[str]) -> list[str]:
    return [source for source in (value if isinstance(value, list) else [value]) if source]
