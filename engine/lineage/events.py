"""START, COMPLETE and FAIL run events, built with the openlineage-python classes.

Inputs are the files read (one dataset per file) with schema, data source, storage,
data-quality metrics and input statistics taken from the run's single pass; outputs are
the files published with schema, storage, output statistics, lifecycle state and the
column lineage of every column. Outputs published to object storage are named as
published there (`s3://bucket` / `reports/daily/daily_sales_summary.csv`), not as the
work folder holds them.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

import attr
import pandas as pd
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    InputDatasetFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    datasource_dataset,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    lifecycle_state_change_dataset,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
    source_code_job,
    storage_dataset,
    symlinks_dataset,
)

from engine import __version__
from engine.lineage.columns import (
    ColumnDerivation, ColumnSource, column_type, field_transformation, is_dataset, planned_outputs,
    published_schema)
from engine.lineage.naming import dataset_identity, datasource_uri, storage_layer
from engine.observability.logs import mask_credentials
from engine.outputs.publication import PublishedFile
from engine.sources.object_store import is_url
from engine.sources.plan import SourceFile

log = logging.getLogger(__name__)

PRODUCER = f"https://pypi.org/project/sales-engine/{__version__}/"
#: Where the repository's files are published; a custom facet's `_schemaURL` is this plus the
#: path of its JSON Schema in the repository (engine/lineage/schemas/), as shipped in the package.
SCHEMA_HOME = "https://pypi.org/project/sales-engine/files/"
SCHEMA_FOLDER = "engine/lineage/schemas"
#: Above this many input files, column lineage names the input folder or glob, not each file.
COLUMN_LINEAGE_FILES = 16


def facet_schema_url(facet: str) -> str:
    """The `_schemaURL` of one of the engine's own facets: its schema file in the repository."""
    return f"{SCHEMA_HOME}{SCHEMA_FOLDER}/{facet}.json#/$defs/{facet}"


@attr.define
class SalesEngineInputFacet(InputDatasetFacet):
    """How the run read an input file: in an incremental run, read now or its figures
    reused from the partial an earlier run kept (engine.incremental); the field delimiter
    when it is not a comma, and which of the file's columns holds each engine column the
    input layout maps (engine.sources.layout)."""

    reusedPartial: bool | None = attr.field(default=None)  # noqa: N815
    delimiter: str | None = attr.field(default=None)
    columnMapping: dict[str, str] | None = attr.field(default=None)  # noqa: N815

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()

    @staticmethod
    def _get_schema() -> str:
        return facet_schema_url("SalesEngineInputFacet")


@attr.define
class SalesEngineRunFacet(RunFacet):
    """The engine's own run facet: how the run was executed and what it measured."""

    mode: str
    modeReason: str  # noqa: N815
    engineVersion: str  # noqa: N815
    metrics: dict = attr.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self._producer = self._producer or PRODUCER
        super().__attrs_post_init__()

    @staticmethod
    def _get_schema() -> str:
        return facet_schema_url("SalesEngineRunFacet")


@dataclass
class RunContext:
    """What the lineage of one run is about; filled in as the run progresses."""

    run_id: str
    namespace: str
    job_name: str
    started_at: dt.datetime
    source: str
    files: tuple[SourceFile, ...] = ()
    mode: str | None = None
    mode_reason: str | None = None
    input_profile: pd.DataFrame | None = None
    published: list[PublishedFile] = field(default_factory=list)
    output_rows: dict[str, int] = field(default_factory=dict)
    #: user nodes published (engine.dataflow.user_modules) and the engine frames each takes
    user_outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the dataflow's column lineage, from the run's Hamilton graph
    derivation: ColumnDerivation | None = None
    #: an incremental run's files whose partials were reused (paths); None: not incremental
    reused_files: frozenset[str] | None = None
    metrics: dict = field(default_factory=dict)
    #: the folder (or object-storage URL) the outputs are published to (their planned names
    #: are known from the start)
    output_dir: str | None = None
    #: the time the orchestrator scheduled the run for: "start" or "start/end" (ISO 8601); None: not scheduled
    nominal_time: str | None = None
    #: the parent run an orchestrator announced (read once per run: a bad one is warned about once)
    parent: parent_run.ParentRunFacet | None = field(default_factory=lambda: parent_from_environment())
    #: the run's data-quality figures (the data_quality_metrics output), once computed
    quality: dict | None = None


def start_event(context: RunContext) -> RunEvent:
    """The run has begun: what it reads, and the outputs it is to publish (names and schemas:
    a consumer such as Marquez takes a batch event without outputs to mean the job has none)."""
    return _event(RunState.START, context, inputs=_inputs(context), outputs=_planned_outputs(context))


def complete_event(context: RunContext) -> RunEvent:
    return _event(RunState.COMPLETE, context, inputs=_inputs(context), outputs=_outputs(context))


def running_event(context: RunContext, node_name: str) -> RunEvent:
    """A node of the dataflow has finished (emitted only when node events are on)."""
    event = _event(RunState.RUNNING, context, outputs=_planned_outputs(context))
    event.run.facets["salesEngine"] = SalesEngineRunFacet(
        mode=context.mode or "", modeReason=context.mode_reason or "", engineVersion=__version__,
        metrics={"finished_node": node_name})
    return event


def fail_event(context: RunContext, error: BaseException) -> RunEvent:
    facet = error_message_run.ErrorMessageRunFacet(
        message=mask_credentials(str(error) or type(error).__name__),
        programmingLanguage="python",
        stackTrace=mask_credentials("".join(traceback.format_exception(error))),
    )
    outputs = _outputs(context) or _planned_outputs(context)  # published before failing, else as planned
    return _event(RunState.FAIL, context, inputs=_inputs(context), outputs=outputs,
                  extra_run_facets={"errorMessage": facet})


def _event(state: RunState, context: RunContext, inputs=(), outputs=(), extra_run_facets=None) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=dt.datetime.now(dt.timezone.utc).isoformat(),
        run=Run(runId=context.run_id, facets={**_run_facets(context), **(extra_run_facets or {})}),
        job=Job(namespace=context.namespace, name=context.job_name, facets=_job_facets()),
        inputs=list(inputs),
        outputs=list(outputs),
        producer=PRODUCER,
    )


def _run_facets(context: RunContext) -> dict[str, Any]:
    engine_name, engine_version = _processing_engine(context.mode)
    facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=engine_version, name=engine_name, openlineageAdapterVersion=__version__),
    }
    if context.nominal_time:
        facets["nominalTime"] = _nominal_time(context.nominal_time)
    if context.parent is not None:
        facets["parent"] = context.parent
    if context.mode:
        facets["salesEngine"] = SalesEngineRunFacet(
            mode=context.mode, modeReason=context.mode_reason or "", engineVersion=__version__,
            metrics=context.metrics)
    return facets


def _nominal_time(text: str) -> nominal_time_run.NominalTimeRunFacet:
    """The time the orchestrator scheduled the run for ("START" or "START/END", ISO 8601 as
    lineage.nominal_time checked it), as RFC 3339 times."""
    start, _, end = text.partition("/")
    return nominal_time_run.NominalTimeRunFacet(
        nominalStartTime=dt.datetime.fromisoformat(start.strip()).isoformat(),
        nominalEndTime=dt.datetime.fromisoformat(end.strip()).isoformat() if end else None)


def _processing_engine(mode: str | None) -> tuple[str, str]:
    if mode in ("dask", "distributed"):
        import dask

        return "dask", dask.__version__
    return "pandas", pd.__version__


def parent_from_environment(environ: dict | None = None) -> parent_run.ParentRunFacet | None:
    """The parent run an orchestrator announced through the standard variables
    (OPENLINEAGE_PARENT_RUN_ID, _JOB_NAMESPACE, _JOB_NAME, and the OPENLINEAGE_ROOT_PARENT_* ones).
    A run id that is not a UUID is warned about and left out (the run goes on without a
    parent, or without a root); a parent whose run id a consumer refuses (Data.Rentgen
    takes UUIDv7 only) is the orchestrator's to fix."""
    env = os.environ if environ is None else environ
    run_id, namespace, name = (env.get(f"OPENLINEAGE_PARENT_{key}") for key in ("RUN_ID", "JOB_NAMESPACE", "JOB_NAME"))
    if not (run_id and namespace and name) or not _is_uuid(run_id, "OPENLINEAGE_PARENT_RUN_ID"):
        return None
    root = None
    root_run, root_namespace, root_name = (
        env.get(f"OPENLINEAGE_ROOT_PARENT_{key}") for key in ("RUN_ID", "JOB_NAMESPACE", "JOB_NAME"))
    if root_run and root_namespace and root_name and _is_uuid(root_run, "OPENLINEAGE_ROOT_PARENT_RUN_ID"):
        root = parent_run.Root(run=parent_run.RootRun(runId=root_run),
                               job=parent_run.RootJob(namespace=root_namespace, name=root_name))
    return parent_run.ParentRunFacet(run=parent_run.Run(runId=run_id),
                                     job=parent_run.Job(namespace=namespace, name=name), root=root)


def _is_uuid(value: str, variable: str) -> bool:
    """True when `value` is a UUID; else a warning naming `variable`."""
    try:
        uuid.UUID(value)
    except ValueError:
        log.warning("%s=%r is not a UUID: the lineage events name no parent run from it", variable, value)
        return False
    return True


def _job_facets() -> dict[str, Any]:
    from engine import dataflow

    source = "\n\n".join(inspect.getsource(module) for module in dataflow.modules())
    return {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="HAMILTON", jobType="JOB"),
        "sourceCode": source_code_job.SourceCodeJobFacet(language="python", sourceCode=source),
    }


def _inputs(context: RunContext) -> list[InputDataset]:
    datasets = []
    shared: dict[tuple, tuple[schema_dataset.SchemaDatasetFacet, storage_dataset.StorageDatasetFacet]] = {}
    profiles = None if context.input_profile is None else context.input_profile.to_dict("records")
    assertions = None if context.quality is None else _quality_assertions(context.quality)
    for index, file in enumerate(context.files):
        namespace, name = dataset_identity(file.path)
        input_facets = {}
        if profiles is not None:
            profile = profiles[index]
            input_facets = {
                "dataQualityMetrics": _quality_metrics(file, profile),
                "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=int(profile["rows"]), size=file.size, fileCount=1),
            }
        how_read = SalesEngineInputFacet(
            reusedPartial=None if context.reused_files is None else file.path in context.reused_files,
            delimiter=None if file.delimiter == "," else file.delimiter, columnMapping=file.renamed or None)
        if (how_read.reusedPartial, how_read.delimiter, how_read.columnMapping) != (None, None, None):
            input_facets["salesEngineInput"] = how_read
        if assertions is not None:
            input_facets["dataQualityAssertions"] = assertions
        shape = (file.own_columns, file.types, file.format, storage_layer(file.path))
        if shape not in shared:  # files of one layout share their schema and storage facets
            shared[shape] = _schema_and_storage(file)
        schema, storage = shared[shape]
        datasets.append(InputDataset(
            namespace=namespace, name=name,
            facets={
                "schema": schema,
                "dataSource": datasource_dataset.DatasourceDatasetFacet(name=namespace, uri=datasource_uri(namespace)),
                "storage": storage,
            },
            inputFacets=input_facets,
        ))
    if len(context.files) > COLUMN_LINEAGE_FILES:
        namespace, name = dataset_identity(context.source)
        for dataset in datasets:
            dataset.facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(
                identifiers=[symlinks_dataset.Identifier(namespace=namespace, name=name, type="LOCATION")])
    return datasets


def _schema_and_storage(file: SourceFile) -> tuple[schema_dataset.SchemaDatasetFacet,
                                                    storage_dataset.StorageDatasetFacet]:
    schema = schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=column, type=column_type(file.column_types.get(column, "string")),
                                                ordinal_position=position)
        for position, column in enumerate(file.own_columns, start=1)])
    storage = storage_dataset.StorageDatasetFacet(storageLayer=storage_layer(file.path), fileFormat=file.format)
    return schema, storage


def _quality_metrics(file: SourceFile, profile: dict) -> data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet:
    """Per-column missing counts, and the ranges of valid amounts (currency units) and
    valid dates (as YYYYMMDD numbers: the facet's min and max are numbers), under the
    file's own column names."""
    metric = data_quality_metrics_input_dataset.ColumnMetrics
    columns = {c: metric(nullCount=int(profile[f"missing_{c}"])) for c in ("date", "product_id", "amount", "customer_id")
               if c in file.columns}
    if not pd.isna(profile["amount_min"]):
        columns["amount"] = metric(nullCount=int(profile["missing_amount"]), min=float(profile["amount_min"]) / 100,
                                   max=float(profile["amount_max"]) / 100)
    if not pd.isna(profile["date_min"]):
        columns["date"] = metric(nullCount=int(profile["missing_date"]), min=_yyyymmdd(profile["date_min"]),
                                 max=_yyyymmdd(profile["date_max"]))
    own = file.renamed
    return data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
        columnMetrics={own.get(c, c): m for c, m in columns.items()}, rowCount=int(profile["rows"]), bytes=file.size,
        fileCount=1)


def _quality_assertions(quality: dict) -> data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet:
    """The run's checks of its input as assertions (what Marquez shows as the dataset's
    quality): each cleaning rule (success: it rejected no row; actual: the rows it rejected)
    and each data-quality alert raised (success false, with its value and threshold)."""
    assertion = data_quality_assertions_dataset.Assertion
    checks = [assertion(assertion=rule, success=int(rejected) == 0, severity="warning", expected="0",
                        actual=str(rejected), description="input rows the cleaning rule rejected")
              for rule, rejected in quality.get("rejected_by_reason", {}).items()]
    checks += [assertion(assertion=alert["name"], success=False, severity=alert.get("severity"),
                         expected=f"<= {alert['threshold']}", actual=str(alert["value"]), description=alert["message"])
               for alert in quality.get("alerts", [])]
    return data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(assertions=checks)


def _yyyymmdd(days_since_epoch: float) -> float:
    day = dt.date(1970, 1, 1) + dt.timedelta(days=int(days_since_epoch))
    return float(day.year * 10000 + day.month * 100 + day.day)


def column_lineage_inputs(context: RunContext) -> list[tuple[str, str]]:
    """The datasets the column lineage names as inputs: each input file, or, for an input of
    more than COLUMN_LINEAGE_FILES files, the folder or glob they come from as one dataset
    (each file's input dataset then names it in a `symlinks` facet). Every output column
    derives from every input file alike, so listing hundreds of files per column would only
    multiply the events' size (366 daily files: 11 MB per event)."""
    if len(context.files) <= COLUMN_LINEAGE_FILES:
        return [dataset_identity(file.path) for file in context.files]
    return [dataset_identity(context.source)]


def _outputs(context: RunContext) -> list[OutputDataset]:
    inputs = column_lineage_inputs(context)
    renamed = context.files[0].renamed if context.files else {}  # one input layout for every file
    datasets = []
    for published in context.published:
        user = published.output in context.user_outputs
        if context.derivation is None or not (user or is_dataset(published.output)):
            continue  # the run report, the HTML report, ...
        location = _published_location(context, published.path.name, str(published.path))
        namespace, name = dataset_identity(location)
        state = lifecycle_state_change_dataset.LifecycleStateChange.OVERWRITE if published.replaced \
            else lifecycle_state_change_dataset.LifecycleStateChange.CREATE
        schema = _user_schema(published) if user else published_schema(published.output)
        datasets.append(OutputDataset(
            namespace=namespace, name=name,
            facets={
                "schema": _schema_facet(schema),
                "storage": storage_dataset.StorageDatasetFacet(storageLayer=storage_layer(location),
                                                               fileFormat=published.format),
                "lifecycleStateChange": lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
                    lifecycleStateChange=state),
                "columnLineage": _lineage_facet(
                    *context.derivation.lineage(published.output, [column for column, _ in schema]), inputs,
                    renamed),
            },
            outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=context.output_rows.get(published.output), size=published.size, fileCount=1)},
        ))
    return datasets


def _planned_outputs(context: RunContext) -> list[OutputDataset]:
    """The engine's outputs as the run is to publish them: names, schemas and formats, no
    statistics (a user module's outputs are listed once published)."""
    if context.output_dir is None:
        return []
    datasets = []
    for file_name, output, file_format in planned_outputs():
        location = _published_location(context, file_name, os.path.join(context.output_dir, file_name))
        namespace, name = dataset_identity(location)
        datasets.append(OutputDataset(namespace=namespace, name=name, facets={
            "schema": _schema_facet(published_schema(output)),
            "storage": storage_dataset.StorageDatasetFacet(storageLayer=storage_layer(location),
                                                           fileFormat=file_format),
        }))
    return datasets


def _published_location(context: RunContext, file_name: str, local: str) -> str:
    """Where readers find the published file `file_name`: under the output URL when the
    run publishes to object storage (the name readers use, not the run's own folder
    there), else its `local` path."""
    output = context.output_dir or ""
    if is_url(output):
        return f"{output.rstrip('/')}/{file_name}"
    return local


def _schema_facet(schema: list[tuple[str, str]]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name=column, type=kind, ordinal_position=position)
        for position, (column, kind) in enumerate(schema, start=1)])


def _user_schema(published: PublishedFile) -> list[tuple[str, str]]:
    """A user table's columns and types, from its published Parquet file (a JSON output
    has none)."""
    import pyarrow.parquet as pq

    if published.format == "json":
        return []
    try:
        return [(f.name, column_type(str(f.type))) for f in pq.read_schema(published.path.with_suffix(".parquet"))]
    except OSError:
        return []


def _lineage_facet(fields: dict[str, list[ColumnSource]], dataset_wide: list[ColumnSource],
                   inputs: list[tuple[str, str]],
                   renamed: dict[str, str]) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """The column-lineage facet: per output column and for the dataset as a whole, the
    input columns it derives from (by the files' own names: `renamed`), in every input
    file, each with how."""

    def references(sources: list[ColumnSource]) -> list[column_lineage_dataset.InputField]:
        how: dict[str, list[column_lineage_dataset.Transformation]] = {}
        for source in sources:
            how.setdefault(source.column, []).append(column_lineage_dataset.Transformation(
                type=source.kind, subtype=source.subtype, masking=source.masked,
                description=None if source.subtype else "may derive from it: the node does not declare how"))
        return [column_lineage_dataset.InputField(namespace=namespace, name=name, field=renamed.get(column, column),
                                                  transformations=transformations)
                for column, transformations in how.items() for namespace, name in inputs]

    def summarised(sources: list[ColumnSource]) -> column_lineage_dataset.Fields:
        kind, description = field_transformation(sources, renamed)
        return column_lineage_dataset.Fields(inputFields=references(sources), transformationType=kind,
                                             transformationDescription=description)

    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={column: summarised(sources) for column, sources in fields.items()},
        dataset=references(dataset_wide),
    )
