"""The published schemas of the outputs, and the column lineage of every output derived
from the dataflow.

Each node declares how its own columns come from columns upstream
(engine.dataflow.derivation); `ColumnDerivation` follows those declarations through the
Hamilton graph down to the input files' columns. Along a chain, DIRECT steps compose into
the strongest of them (IDENTITY, then TRANSFORMATION, then AGGREGATION) and an INDIRECT
step makes everything beneath it INDIRECT of its subtype; the dataset-wide sources of a
node (the cleaning rules FILTER rows, daily figures GROUP_BY date) reach every column
derived through it. In an output, the INDIRECT sources every column shares are reported
for the dataset as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.dataflow import quarantine
from engine.dataflow.derivation import DIRECT_SUBTYPES, INPUT_NODE, declared, parse_source
from engine.errors import ConfigurationError
from engine.outputs.forms import TABLE_COLUMNS
from engine.rules.validation import RAW_COLUMNS

#: Published types of table columns, by kind (as in the Parquet files), in the lineage's type
#: vocabulary (`column_type`).
KIND_TYPES = {"date": "date", "money": "decimal(18,2)", "ratio": "double", "count": "bigint",
              "bool": "boolean", "text": "string"}

#: The lineage's one type vocabulary, SQL-like as Spark and most OpenLineage producers name
#: types: every input and output column type is given as one of these (decimal with its
#: precision and scale). Arrow (Parquet), pandas and PostgreSQL (SQL) names map onto them;
#: JSON-schema names through `_JSON_TYPES`.
_TYPE_NAMES = {
    "int64": "bigint", "uint64": "bigint", "int32": "integer", "uint32": "bigint", "int16": "smallint",
    "uint16": "integer", "int8": "tinyint", "uint8": "smallint", "integer": "integer",
    "bigint": "bigint", "smallint": "smallint", "real": "float", "double precision": "double",
    "text": "string", "character varying": "string", "character": "string", "varchar": "string",
    "numeric": "decimal(38,18)",  # no declared precision: Spark's PostgreSQL dialect reads it so
    "double": "double", "float64": "double", "float": "float", "float32": "float", "halffloat": "float",
    "float16": "float", "number": "double",
    "bool": "boolean", "boolean": "boolean",
    "string": "string", "large_string": "string", "utf8": "string", "large_utf8": "string", "str": "string",
    "object": "struct", "array": "array", "binary": "binary", "large_binary": "binary", "null": "string",
}
_TYPE_FAMILIES = (("date", "date"), ("timestamp", "timestamp"), ("datetime64", "timestamp"), ("struct", "struct"),
                  ("list", "array"), ("large_list", "array"), ("map", "map"), ("dictionary", "string"))
_DECIMAL = re.compile(r"(?:decimal(?:32|64|128|256)?|numeric)\((\d+),\s*(\d+)\)")
#: JSON-schema type names (the JSON outputs' fields) in the vocabulary
_JSON_TYPES = {"integer": "bigint", "number": "double", "string": "string", "boolean": "boolean",
               "object": "struct", "array": "array"}

#: Published schema of the JSON outputs: top-level field -> JSON type.
JSON_FIELDS = {
    "data_quality_metrics": {
        "raw_record_count": "integer", "cleaned_record_count": "integer", "data_loss_rate": "number",
        "null_count": "integer", "duplicate_count": "integer", "rejected_by_reason": "object",
        "null_count_by_column": "object", "date_range": "object", "alerts": "array",
    },
    "trend_analysis": {
        "period_growth_rate": "number", "max_sales_amount": "number", "max_sales_date": "string",
        "min_sales_amount": "number", "min_sales_date": "string", "weekday_avg_sales": "number",
        "weekend_avg_sales": "number", "weekend_premium": "number", "volatility": "number",
        "days_analyzed": "integer",
    },
    "top_performing_days": {"date": "string", "total_amount": "number", "transaction_count": "integer",
                            "day_of_week": "string", "is_weekend": "boolean"},
}


def column_type(name: str) -> str:
    """A column type in the lineage's vocabulary, from an Arrow, pandas or SQL type name
    (`int64` is `bigint`, `integer` and `int32` are `integer`, `decimal128(18, 2)` and
    `numeric(18,2)` are `decimal(18,2)`, `date32[day]` is `date`, `text` and `character
    varying` are `string`); a name it does not know is kept as it is."""
    text = name.strip()
    lowered = text.lower()
    if lowered in _TYPE_NAMES:
        return _TYPE_NAMES[lowered]
    if decimal := _DECIMAL.fullmatch(lowered):
        return f"decimal({decimal[1]},{decimal[2]})"
    for prefix, family in _TYPE_FAMILIES:
        if lowered.startswith(prefix):
            return family
    return text


def planned_outputs() -> list[tuple[str, str, str]]:
    """(file name, output, format) of every dataset a run publishes, known before it runs
    (a user module's outputs are known once published)."""
    from engine.dataflow import JSON_OUTPUTS, TABLE_OUTPUTS

    files = [(f"{name}.{form}", name, form) for name in TABLE_OUTPUTS for form in ("csv", "parquet")]
    files += [(f"{name}.json", name, "json") for name in JSON_OUTPUTS]
    return [*files, (quarantine.FILE_NAME, "rejected_rows", "parquet")]


def field_transformation(sources: list[ColumnSource], renamed: dict[str, str]) -> tuple[str | None, str | None]:
    """(transformationType, transformationDescription) of one output column, the per-field
    summary older consumers (Marquez) read instead of each input's transformations: MASKED
    when a source is masked, else the strongest DIRECT step (IDENTITY, TRANSFORMATION,
    AGGREGATION; TRANSFORMATION when a node does not say how), INDIRECT when the column
    takes no value from an input column; the description lists each source and how."""
    if not sources:
        return None, None
    direct = [source for source in sources if source.kind == "DIRECT"]
    if any(source.masked for source in direct):
        kind = "MASKED"
    elif direct:
        subtypes = [source.subtype or "TRANSFORMATION" for source in direct]
        kind = max(subtypes, key=_STRENGTH.__getitem__)
    else:
        kind = "INDIRECT"
    described = [f"{renamed.get(s.column, s.column)}: {s.kind} {s.subtype or 'unknown'}{' masked' if s.masked else ''}"
                 for s in sources]
    return kind, "; ".join(described)


def is_dataset(output: str) -> bool:
    """True for the engine's published outputs (the data, not the reports about the run)."""
    return output in TABLE_COLUMNS or output in JSON_FIELDS or output == "rejected_rows"


def published_schema(output: str) -> list[tuple[str, str]]:
    """(column, type) of an output, in order, in the lineage's type vocabulary."""
    if output in TABLE_COLUMNS:
        return [(column, KIND_TYPES[kind]) for column, kind in TABLE_COLUMNS[output]]
    if output == "rejected_rows":
        return [(column.name, column_type(str(column.type))) for column in quarantine.SCHEMA]
    return [(field, _JSON_TYPES[kind]) for field, kind in JSON_FIELDS[output].items()]


@dataclass(frozen=True, order=True)
class ColumnSource:
    """An input file column a published column derives from, and how (OpenLineage's
    transformation type and subtype; `subtype` None when no node says how)."""

    column: str
    kind: str
    subtype: str | None
    masked: bool = False


#: Lineage of one output: column -> its sources, and the sources of the dataset as a whole.
OutputLineage = tuple[dict[str, list[ColumnSource]], list[ColumnSource]]

_STRENGTH = {subtype: rank for rank, subtype in enumerate(DIRECT_SUBTYPES)}


class ColumnDerivation:
    """The column lineage of a dataflow, from the declarations on its nodes.

    `graph` maps each node to its tags and the nodes it depends on (as a Hamilton
    driver lists them: `from_driver`). Every declaration is checked when this is made: a
    source must name a node upstream of the declaring node, and a column that node
    declares.
    """

    def __init__(self, graph: dict[str, tuple[dict[str, Any], tuple[str, ...]]]) -> None:
        self._dependencies = {node: dependencies for node, (_, dependencies) in graph.items()}
        self._declared = {node: found for node, (tags, _) in graph.items() if (found := declared(tags)) is not None}
        self._resolved: dict[tuple[str, str | None], frozenset[ColumnSource]] = {}
        self._check()

    @classmethod
    def from_driver(cls, driver: Any) -> ColumnDerivation:
        return cls({variable.name: (variable.tags, tuple(variable.required_dependencies)
                                    + tuple(variable.optional_dependencies))
                    for variable in driver.list_available_variables()})

    def lineage(self, output: str, columns: Iterable[str]) -> OutputLineage:
        """The lineage of `output`'s published `columns`: the INDIRECT sources they all
        share go to the dataset; a table without columns (a scalar) puts all there."""
        columns = list(columns)
        sources = {column: _merged(self._column(output, column)) for column in columns}
        if not columns:
            return {}, sorted(_merged(self._node(output)))
        shared = frozenset.intersection(*sources.values())
        shared = frozenset(source for source in shared if source.kind == "INDIRECT")
        return {column: sorted(found - shared) for column, found in sources.items()}, sorted(shared)

    def declared_columns(self, node: str) -> list[str] | None:
        """The columns `node` declares, or None when it declares none."""
        return list(self._declared[node][0]) if node in self._declared else None

    def _column(self, node: str, column: str) -> frozenset[ColumnSource]:
        if node in self._declared and column not in self._declared[node][0]:
            # A column its node does not declare (a user node's declaration may be partial)
            # may derive from anything the node derives from.
            return frozenset(_unknown_how(self._node(node)))
        return self._resolve(node, column)

    def _node(self, node: str) -> frozenset[ColumnSource]:
        return self._resolve(node, None)

    def _resolve(self, node: str, column: str | None) -> frozenset[ColumnSource]:
        key = (node, column)
        if key not in self._resolved:
            self._resolved[key] = frozenset(self._sources(node, column))
        return self._resolved[key]

    def _sources(self, node: str, column: str | None) -> set[ColumnSource]:
        if node == INPUT_NODE:
            return {ColumnSource(c, "DIRECT", "IDENTITY") for c in ([column] if column else RAW_COLUMNS)}
        if node not in self._declared:
            # Declares nothing: each column may derive from anything its parameters hold.
            found: set[ColumnSource] = set()
            for dependency in self._dependencies.get(node, ()):
                found |= _unknown_how(self._node(dependency))
            return found
        columns, dataset = self._declared[node]
        found = set()
        for name in (columns if column is None else [column]):
            for source in columns.get(name, ()):
                found |= self._step(source)
        for source in dataset:
            found |= self._step(source)
        return found

    def _step(self, source: str) -> set[ColumnSource]:
        """What one declared source contributes: the sources beneath it, composed with it."""
        node, column, subtype, masked = parse_source(source)
        beneath = self._resolve(node, column)
        if subtype not in _STRENGTH:  # an INDIRECT step: what the values came from now shapes rows
            return {s if s.kind == "INDIRECT" else ColumnSource(s.column, "INDIRECT", subtype) for s in beneath}
        return {s if s.kind == "INDIRECT" else
                ColumnSource(s.column, "DIRECT", _stronger(subtype, s.subtype), masked or s.masked)
                for s in beneath}

    def _check(self) -> None:
        for node, (columns, dataset) in self._declared.items():
            upstream = self._upstream(node)
            for source in [s for sources in columns.values() for s in sources] + dataset:
                name, column, _, _ = parse_source(source)
                where = f"node {node!r} declares column source {source!r}"
                if name != INPUT_NODE and name not in upstream:
                    raise ConfigurationError(f"{where}, but {name!r} is not upstream of it")
                if column and name in self._declared and column not in self._declared[name][0]:
                    raise ConfigurationError(f"{where}, but {name!r} declares no column {column!r}")

    def _upstream(self, node: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self._dependencies.get(node, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self._dependencies.get(current, ()))
        return seen


def _unknown_how(sources: Iterable[ColumnSource]) -> set[ColumnSource]:
    """`sources` as the sources of a column whose node does not say how it uses them."""
    return {s if s.kind == "INDIRECT" else ColumnSource(s.column, "DIRECT", None) for s in sources}


def _merged(sources: frozenset[ColumnSource]) -> frozenset[ColumnSource]:
    """One DIRECT source per input column: the strongest step, masked if any path masks."""
    direct: dict[str, ColumnSource] = {}
    for source in sorted(s for s in sources if s.kind == "DIRECT"):
        seen = direct.get(source.column)
        direct[source.column] = source if seen is None else ColumnSource(
            source.column, "DIRECT", _stronger(seen.subtype, source.subtype), seen.masked or source.masked)
    return frozenset(s for s in sources if s.kind == "INDIRECT") | frozenset(direct.values())


def _stronger(subtype: str | None, other: str | None) -> str | None:
    """The composition of two DIRECT steps; None (unknown) stays unknown."""
    if subtype is None or other is None:
        return None
    return max(subtype, other, key=_STRENGTH.__getitem__)
