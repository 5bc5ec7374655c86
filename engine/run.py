"""Running the pipeline: the Python API that the CLI, cluster jobs and notebooks call.

    result = run_pipeline(load_config(overrides={"input": "sales.csv", "output": "out"}))

A run resolves and checks the input, chooses the mode and partition size, executes the
Hamilton dataflow on the chosen backend, and publishes every output atomically. Extra
Hamilton lifecycle adapters (lineage, metrics, progress) can be attached per run.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openlineage.client.uuid import generate_new_uuid

from engine import __version__
from engine.config import EngineConfig
from engine.dataflow import quarantine
from engine.dataflow.partials import ReadPartials
from engine.dataflow.user_modules import FRAMES, UserModules, load_user_modules
from engine.errors import ClusterError, ConfigurationError, EngineError, QualityAlertError, ResourceError
from engine.execution.backends import Backend, DaskBackend, DistributedBackend, PandasBackend
from engine.execution.frames import OnePass
from engine.execution.interrupts import InterruptCheckpoint, interruptible, raise_if_interrupted
from engine.execution.modes import ModeChoice, choose_mode, partition_bytes, plan_summary
from engine.incremental.planning import (Increment, absorb_fingerprints, applies, batch_bytes, batches,
                                         count_distinct, finish, plan_increment)
from engine.lineage.columns import ColumnDerivation
from engine.lineage.delivery import LineageDelivery, configured_client
from engine.lineage.events import RunContext
from engine.lineage.recorder import LineageRecorder
from engine.observability.logs import mask_credentials
from engine.observability.metrics import RunMetrics, StepTimer, process_usage
from engine.observability.run_monitor import RunMonitor
from engine.outputs.early_write import EarlyWrite
from engine.outputs.forms import write_json, write_outputs, write_user_output
from engine.outputs.publication import PublishedFile, output_errors, output_lock, staged_outputs
from engine.rules.pseudonyms import SecretKey
from engine.sources.layout import layout_of
from engine.sources.plan import ReadPlan, SourceFile, find_files, plan_reads
from engine.sources.spool import STANDARD_INPUT, InputSpool, input_spool
from engine.storage.locations import OutputLocation, output_location
from engine.storage.plugins import FinishedRun, Sink, sink_for, source_for

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a finished run produced."""

    run_id: str
    mode: str
    #: the local folder the outputs are published in (an object-storage output's work folder)
    output_dir: Path
    files: list[PublishedFile]
    results: dict[str, Any]
    alerts: list[dict]
    report: dict
    #: where the outputs are, as the user named it: the folder, or the output URL
    output_shown: str = ""


def make_backend(mode: str, config: EngineConfig) -> Backend:
    """The backend object for a mode, configured from `config.cluster`."""
    cluster = config.cluster
    if mode == "pandas":
        return PandasBackend()
    if mode == "dask":
        return DaskBackend(workers=cluster.workers)
    return DistributedBackend(cluster)


def build_driver(backend: Backend, adapters: Sequence[Any] = (), user: UserModules | None = None) -> Any:
    """The Hamilton driver for the sales dataflow on `backend`, with the user's nodes."""
    from hamilton import driver

    from engine.dataflow import modules

    builder = driver.Builder().with_modules(*modules(), *(user.modules if user else ())) \
        .with_adapter(backend.graph_adapter())
    if adapters:
        builder = builder.with_adapters(*adapters)
    try:
        return builder.build()
    except ValueError as error:  # e.g. a user node named like an engine node
        raise ConfigurationError(f"the dataflow with the user modules cannot be built: {error}") from None


def execute_dataflow(dataflow: Any, requested: Sequence[str], inputs: dict[str, Any],
                     user: UserModules | None = None) -> dict[str, Any]:
    """The requested nodes' values, with the input read in ONE pass.

    First the pass: `partition_summaries` (the engine's reductions) and every user node
    that takes a partitioned frame. On Dask frames those are lazy and computed in one
    Dask computation, which shares each partition's read and validation; in pandas mode
    the frames such user nodes take are kept while the summaries stream the partitions,
    and handed to them whole. Then the rest of the dataflow runs on those results.
    """
    from engine.execution.frames import PartitionStream

    user = user or UserModules()
    in_the_pass = [node for node in user.in_the_pass if _needed_by(dataflow, node, requested)]
    if not in_the_pass and not _needed_by(dataflow, "partition_summaries", requested):
        return dataflow.execute(list(requested), inputs=inputs)  # e.g. --until validated_sales
    frames_taken = sorted({frame for node in in_the_pass for frame in user.frames_taken[node]})
    # Every frame of one execution shares its source (a pandas mode stream is one source).
    streams = dataflow.execute(list(FRAMES), inputs=inputs) if frames_taken else {}
    if any(isinstance(value, PartitionStream) for value in streams.values()):
        for name in frames_taken:
            streams[name].retain()
        summaries = dataflow.execute(["partition_summaries"], inputs=inputs, overrides=streams)
        overrides = {**summaries, **{name: streams[name].materialize() for name in frames_taken}}
    else:
        one_pass = OnePass(dataflow.execute(in_the_pass, inputs=inputs) if in_the_pass else {})
        summaries = dataflow.execute(["partition_summaries"], inputs={**inputs, "one_pass": one_pass})
        overrides = {**summaries, **one_pass.results}
    return dataflow.execute(list(requested), inputs=inputs, overrides=overrides)


def execute_incremental(dataflow: Any, requested: Sequence[str], inputs: dict[str, Any],
                        increment: Increment, batch_size: int) -> dict[str, Any]:
    """The requested nodes' values from the partials `increment` reuses and those of the
    files it reads: batch by batch, each batch's partials saved as it finishes (a run
    killed part-way keeps them), then the rest of the dataflow over every file."""
    plan: ReadPlan = inputs["read_plan"]
    read: dict[int, Any] = {}
    absorb_fingerprints(increment, increment.kept)
    for batch in batches(plan, increment.to_read, batch_size):
        part = dataflow.execute(["read_partials"], inputs={
            **inputs, "read_plan": plan.restricted_to(batch), "keep_fingerprints": True})["read_partials"]
        for file, partial in part.partials.items():
            increment.store.save(increment.keys[file], partial)
        absorb_fingerprints(increment, part.partials)
        read.update(part.partials)
    counted = ReadPartials(read, count_distinct(increment))
    return dataflow.execute(list(requested), inputs={**inputs, "kept_partials": increment.kept},
                            overrides={"read_partials": counted})


def _incremental(config: EngineConfig, user: UserModules, output_dir: Path) -> Increment | None:
    """For an incremental run, its files (checked first: a bad input is reported before
    anything else) and what it reuses and reads."""
    if not applies(config, bool(user.in_the_pass)):
        return None
    files = input_files(config, config.input)
    return plan_increment(config, files, output_dir, quarantine.configured_key())


def _needed_by(dataflow: Any, node: str, requested: Sequence[str]) -> bool:
    """True if `node` is requested or a requested node depends on it."""
    return node in requested or any(node in {n.name for n in dataflow.what_is_upstream_of(name)}
                                    for name in requested)


@dataclass(frozen=True)
class PreparedRun:
    """What a command needs to read its input: the files, the mode and why, the backend
    (started), the partition size and the read plan."""

    files: tuple[SourceFile, ...]
    choice: ModeChoice
    backend: Backend
    partition_bytes: int
    plan: ReadPlan


@contextmanager
def prepared_run(config: EngineConfig, source: str, spool: InputSpool, label: str, *,
                 files: tuple[SourceFile, ...] | None = None, only: Collection[int] | None = None,
                 skip_malformed: bool | None = None, sized_as: str | None = None,
                 on_mode_chosen: Callable[[tuple[SourceFile, ...], ModeChoice], None] | None = None,
                 ) -> Iterator[PreparedRun]:
    """The one way `engine run`, `--until` and `engine anonymize` prepare to read INPUT:
    resolve and check the files (unless the caller has: `files`; compressed ones are
    decompressed into `spool`), choose the mode (logged as `label: mode ...`), start the
    backend, size the partitions (as for mode `sized_as`, if given) and plan the reads
    (malformed lines skipped as configured, unless `skip_malformed` says otherwise). With
    `only` (file indexes), just those files are decompressed, sized and planned (an
    incremental run). The backend is released when the block ends; failures with a known
    meaning become the engine's one-line errors."""
    if files is None:
        files = spool.standard_input(layout_of(config)) if source == STANDARD_INPUT else input_files(config, source)
    with _readers_closed(files):
        yield from _prepared(config, source, spool, label, files, only, skip_malformed, sized_as, on_mode_chosen)


def _prepared(config: EngineConfig, source: str, spool: InputSpool, label: str, files: tuple[SourceFile, ...],
              only: Collection[int] | None, skip_malformed: bool | None, sized_as: str | None,
              on_mode_chosen: Callable[[tuple[SourceFile, ...], ModeChoice], None] | None) -> Iterator[PreparedRun]:
    files = spool.decompress(files, only)
    input_bytes = sum(f.text_bytes for index, f in enumerate(files) if only is None or index in only)
    choice = choose_mode(config, input_bytes)
    log.info("%s: mode %s (%s)", label, choice.mode, choice.reason)
    if on_mode_chosen is not None:
        on_mode_chosen(files, choice)
    backend = make_backend(choice.mode, config)
    with backend, _translated_failures():
        chunk = partition_bytes(config, sized_as or choice.mode, input_bytes, backend.memory_per_thread())
        skip = config.malformed_lines == "skip" if skip_malformed is None else skip_malformed
        plan = plan_reads(source, files, chunk, skip_malformed=skip, only=only)
        log.info("input %s: %s", source, plan_summary(plan))
        yield PreparedRun(files, choice, backend, chunk, plan)


@contextmanager
def _readers_closed(files: tuple[SourceFile, ...]) -> Iterator[None]:
    """When the reading is over, the source plug-ins that read `files` let go of what they
    hold for it (a database's snapshot): their optional `close()`."""
    try:
        yield
    finally:
        for reader in {id(f.reader): f.reader for f in files if f.reader is not None}.values():
            if callable(getattr(reader, "close", None)):
                reader.close()


def input_files(config: EngineConfig, source: str) -> tuple[SourceFile, ...]:
    """The checked datasets of INPUT `source`: files (local or object storage), or the
    datasets of the source plug-in its URL scheme names (a database table)."""
    reader = source_for(source, config)
    if reader is not None:
        return reader.resolve(source, config)
    return find_files(source, layout_of(config), config.storage.options)


def run_pipeline(config: EngineConfig, adapters: Sequence[Any] = (), run_id: str | None = None) -> RunResult:
    """Run the dataflow on `config.input` and publish the outputs to `config.output`.

    Raises an EngineError subclass for every expected failure; the previous outputs in
    the output directory are untouched unless the run succeeds. Every run, failed ones
    included, records its OpenLineage events (START, then COMPLETE or FAIL).
    """
    if not config.input:
        raise ConfigurationError("no input given (engine run INPUT, or `input:` in the configuration)")
    run_id = run_id or str(generate_new_uuid())
    location = output_location(config)
    sinks = run_sinks(config, location)  # a bad sink URL is a usage error before anything starts
    if location.url is not None:
        log.info("output %s: the run's local files (lock, log, history, state) are in %s", location.url,
                 location.folder)
    with output_lock(location.folder, run_id):  # the whole run: one run at a time per output folder
        return _run_locked(config, adapters, run_id, location, sinks)


def run_sinks(config: EngineConfig, location: OutputLocation) -> list[Sink]:
    """Where the outputs go besides the local folder, in delivery order: the database sink
    (`sink.url`), then the object-storage output URL."""
    sinks = [sink_for(config.sink.url, config)] if config.sink.url else []
    if location.url is not None:
        from engine.storage.objects import ObjectStorageOutput

        sinks.append(ObjectStorageOutput(location.url, config.storage))
    for sink in sinks:  # a missing or unreachable destination fails before anything is read
        check = getattr(sink, "check", None)
        if check is not None:
            check()
    return sinks


def _run_locked(config: EngineConfig, adapters: Sequence[Any], run_id: str, location: OutputLocation,
                sinks: list[Sink]) -> RunResult:
    output_dir = location.folder
    context = RunContext(run_id=run_id, namespace=config.lineage.namespace, job_name=config.lineage.job_name,
                         started_at=dt.datetime.now(dt.timezone.utc), source=config.input,
                         nominal_time=config.lineage.nominal_time, output_dir=location.shown)
    recorder = _lineage_recorder(config, context, output_dir)
    monitor = RunMonitor(config.metrics, output_dir, run_id, context.started_at)
    try:
        with interruptible(), input_spool(config, output_dir, run_id) as spool:
            result = _run(config, context, location, [*([recorder] if recorder else []), *adapters], monitor,
                          spool, sinks)
    except BaseException as error:
        if recorder is not None:
            recorder.fail(error)
        monitor.failed(error, context.mode)
        raise
    monitor.succeeded()
    return result


def _run(config: EngineConfig, context: RunContext, location: OutputLocation, adapters: list[Any],
         monitor: RunMonitor, spool: InputSpool, sinks: Sequence[Sink]) -> RunResult:
    from engine.dataflow import JSON_OUTPUTS, OUTPUTS, TABLE_OUTPUTS

    output_dir = location.folder
    recorder = next((a for a in adapters if isinstance(a, LineageRecorder)), None)
    clock = time.perf_counter()
    cpu_start = process_usage()["cpu_s"]
    user = load_user_modules(config.dataflow.modules)

    def started(files: tuple[SourceFile, ...], choice: ModeChoice) -> None:
        context.files, context.mode, context.mode_reason = files, choice.mode, choice.reason
        if increment is not None:
            context.reused_files = frozenset(files[index].path for index in increment.kept)
        if recorder is not None:
            recorder.start()

    timer = StepTimer()
    increment = _incremental(config, user, output_dir)
    with ExitStack() as staging:  # the staging folder exists while the dataflow runs: see EarlyWrite
        with output_errors(output_dir):
            staged = staging.enter_context(staged_outputs(output_dir, context.run_id))
        quarantine_file = staging.enter_context(EarlyWrite(
            "sales_reductions", lambda figures: figures["rejected_rows"],
            functools.partial(quarantine.write, path=staged.path(quarantine.FILE_NAME))))
        with prepared_run(config, config.input, spool, f"run {context.run_id}", on_mode_chosen=started,
                          files=increment.files if increment else None,
                          only=increment.to_read if increment else None) as prepared:
            backend, plan, chunk, choice = prepared.backend, prepared.plan, prepared.partition_bytes, prepared.choice
            worker_usage = (functools.partial(backend.run_on_workers, process_usage)
                            if isinstance(backend, DistributedBackend) else None)
            step_metrics = RunMetrics(worker_usage)
            hooks = [timer, step_metrics, InterruptCheckpoint(), quarantine_file, *adapters]
            driver = build_driver(backend, hooks, user)
            context.derivation = ColumnDerivation.from_driver(driver)  # a bad declaration fails before the read
            requested = [*OUTPUTS, "input_profile", "rejected_rows", *user.nodes]
            inputs = dataflow_inputs(config, plan, backend,
                                     increment.pseudonym_key if increment else quarantine.configured_key())
            if increment is None:
                results = execute_dataflow(driver, requested, inputs, user)
            else:
                results = execute_incremental(driver, requested, inputs, increment, batch_bytes(config))
            backend_info = backend.describe()
        metrics = results["data_quality_metrics"]
        alerts = metrics["alerts"]
        duration = time.perf_counter() - clock
        run_metrics = step_metrics.summary(
            rows_in=metrics["raw_record_count"], rows_out=metrics["cleaned_record_count"], input_bytes=plan.total_bytes,
            wall_s=duration, cpu_start_s=cpu_start, known_rows=_deferred_step_rows(metrics))
        report = _run_report(context.run_id, context.started_at, duration, choice, backend_info, plan,
                             chunk, metrics, timer, run_metrics)
        report["user_outputs"] = list(user.nodes)
        if increment is not None:
            finish(increment, prepared.files)  # the state describes files, whatever publication does
        report["incremental"] = increment.report() if increment else None
        with output_errors(output_dir):
            write_outputs(results, staged, TABLE_OUTPUTS, JSON_OUTPUTS)
            user_rows = {name: write_user_output(name, results[name], staged) for name in user.nodes}
            quarantine_file.wait(results["rejected_rows"])
            write_json(report, staged.path("run_report.json"))
            monitor.stage(staged, results, report, fails_on_alert=bool(alerts) and config.alerts.fail_on_alert)
            raise_if_interrupted()
        finished = FinishedRun(context.run_id, staged.folder, tuple(staged.names), results, report, config)
        for sink in sinks:  # each shows the whole run or fails, before anything is published here
            sink.deliver(finished)
            raise_if_interrupted()
        with output_errors(output_dir):
            published = staged.publish()
    context.input_profile = results["input_profile"]
    context.published = published
    context.output_rows = {name: len(results[name]) for name in (*TABLE_OUTPUTS, "top_performing_days", "rejected_rows")}
    context.output_rows.update({name: rows for name, rows in user_rows.items() if rows is not None})
    context.user_outputs = {name: user.frames_taken[name] for name in user.nodes}
    context.metrics = {"duration_s": report["duration_s"], "rows": report["rows"],
                       "partitions": report["input"]["partitions"], "step_seconds": report["step_seconds"]}
    log.info(
        "run %s: %d rows read, %d kept, %d days; outputs in %s (%.2f s)",
        context.run_id, metrics["raw_record_count"], metrics["cleaned_record_count"],
        len(results["daily_sales_summary"]), location.shown, report["duration_s"],
    )
    for alert in alerts:
        log.warning("data-quality alert %s", alert["message"])
    if alerts and config.alerts.fail_on_alert:
        raise QualityAlertError(
            f"{len(alerts)} data-quality alert(s) and fail_on_alert is set: "
            + "; ".join(a["message"] for a in alerts)
        )
    if recorder is not None:
        recorder.complete()
    return RunResult(context.run_id, choice.mode, output_dir, published, results, alerts, report, location.shown)


def _lineage_recorder(config: EngineConfig, context: RunContext, output_dir: Path) -> LineageRecorder | None:
    if not config.lineage.enabled:
        return None
    delivery = LineageDelivery(output_dir, configured_client(), deadline=config.lineage.timeout)
    return LineageRecorder(context, delivery, node_events=config.lineage.node_events)


def dataflow_inputs(config: EngineConfig, plan: ReadPlan, backend: Backend,
                    pseudonym_key: SecretKey | None) -> dict[str, Any]:
    """The dataflow's inputs for a prepared run: the read plan, the backend, the key that
    pseudonymises the quarantine's customer ids (quarantine.configured_key), and the
    configuration values nodes may take."""
    return {
        "read_plan": plan,
        "backend": backend,
        "top_days": config.top_days,
        "id_dtype": config.id_dtype,
        "alert_thresholds": config.alerts.thresholds(),
        "pseudonym_key": pseudonym_key,
        "one_pass": OnePass(),
        "kept_partials": {},
        "keep_fingerprints": False,
    }


def _deferred_step_rows(metrics: dict) -> dict[str, int]:
    """Rows of the steps whose results are deferred frames, known once the run counted them."""
    raw, kept = metrics["raw_record_count"], metrics["cleaned_record_count"]
    return {"raw_sales_data": raw, "validated_sales": raw, "cleaned_sales_data": kept}


def _run_report(run_id, started_at, duration, choice, backend_info, plan, partition_size, metrics, timer,
                run_metrics) -> dict:
    return {
        "run_id": run_id,
        "engine_version": __version__,
        "status": "success",
        "started_at": started_at.isoformat(),
        "duration_s": round(duration, 3),
        "mode": choice.mode,
        "mode_reason": choice.reason,
        "backend": backend_info,
        "input": {
            "source": mask_credentials(plan.source),
            "files": [{"path": f.path, "bytes": f.size} for f in plan.files],
            "bytes": plan.total_bytes,
            "partitions": len(plan.tasks),
            "partition_bytes": partition_size,
        },
        "rows": {
            "raw": metrics["raw_record_count"],
            "cleaned": metrics["cleaned_record_count"],
            "rejected": metrics["raw_record_count"] - metrics["cleaned_record_count"],
        },
        "step_seconds": timer.seconds,
        "alerts": len(metrics["alerts"]),
        "metrics": run_metrics,
    }


class _translated_failures:
    """Turns failures that have a known meaning into the engine's one-line errors."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> bool:
        if error is None or isinstance(error, EngineError):
            return False
        if isinstance(error, MemoryError):
            raise ResourceError("out of memory: use --mode dask or a smaller partition_size") from error
        if type(error).__name__ in {"KilledWorker", "CommClosedError", "FutureCancelledError"}:
            raise ClusterError(f"the Dask cluster lost the work: {error}") from error
        return False
