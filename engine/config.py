"""Run configuration: one typed model from a YAML file, the environment and CLI flags.

Precedence, lowest first: the defaults below, the YAML file (`--config`), environment
variables `ENGINE__<KEY>` / `ENGINE__<SECTION>__<KEY>` (e.g. `ENGINE__CLUSTER__SCHEDULER`),
then command-line flags. Everything is validated before any work starts; an error names
the source and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigurationError
from engine.files.permissions import FileModes, parse_mode
from engine.rules.alerts import AlertThresholds
from engine.rules.validation import ID_DTYPES

MODES = ("auto", "pandas", "dask", "distributed")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
PROGRESS_DISPLAYS = ("auto", "log", "off")
ENV_PREFIX = "ENGINE__"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 2**10, "M": 1e6, "MB": 1e6, "MIB": 2**20,
          "G": 1e9, "GB": 1e9, "GIB": 2**30, "T": 1e12, "TB": 1e12, "TIB": 2**40}


def parse_size(value: str | int, key: str = "size") -> int:
    """Bytes from `123`, `64MiB`, `1.5GB` and the like."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.match(str(value))
    if not match or (match.group(2) or "").upper() not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigurationError(f"{key}: {value!r} is not a size (e.g. 64MiB, 1GB, 1048576)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "").upper()])


@dataclass(frozen=True)
class AlertConfig:
    """Data-quality alert thresholds and whether an alert fails the run."""

    max_data_loss_rate: float = 10.0
    max_null_count: int = 100
    #: percent of raw rows that repeat an earlier row (null: no check)
    max_duplicate_rate: float | None = None
    #: days without sales between the first and last sales day (null: no check; 0: any)
    max_missing_days: int | None = None
    #: percent a day's total may differ from its 7-day moving mean (null: no check)
    max_daily_deviation: float | None = None
    fail_on_alert: bool = False

    def __post_init__(self) -> None:
        for key in ("max_data_loss_rate", "max_null_count", "max_duplicate_rate", "max_missing_days",
                    "max_daily_deviation"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigurationError(f"{key}: must be 0 or more, got {getattr(self, key)}")

    def thresholds(self) -> AlertThresholds:
        return AlertThresholds(
            max_data_loss_rate=self.max_data_loss_rate, max_null_count=self.max_null_count,
            max_duplicate_rate=self.max_duplicate_rate, max_missing_days=self.max_missing_days,
            max_daily_deviation=self.max_daily_deviation)


TLS_MODES = ("off", "temporary", "files")


@dataclass(frozen=True)
class ClusterConfig:
    """Where distributed mode runs (an existing scheduler, or an embedded LocalCluster),
    how it is secured, and how it tolerates failures."""

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    local_directory: str | None = None
    connect_timeout: float = 10.0
    #: off; temporary (self-signed, embedded LocalCluster only); files (tls_* below)
    tls: str = "off"
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: task retries after an exception (a transient read error on a shared filesystem)
    retries: int = 1
    #: worker deaths a task may be part of before it fails with KilledWorker (embedded cluster)
    allowed_failures: int = 3
    #: seconds without any worker before a running computation is abandoned
    no_workers_timeout: float = 60.0

    def __post_init__(self) -> None:
        # Messages name keys relative to the `cluster` section; the loader adds `cluster.`.
        _check_choice("tls", self.tls, TLS_MODES)
        if self.tls == "files" and not (self.tls_ca_file and self.tls_cert and self.tls_key):
            raise ConfigurationError("tls: files needs tls_ca_file, tls_cert and tls_key")
        if self.tls == "temporary" and self.scheduler:
            raise ConfigurationError("tls: temporary certificates work only for the embedded LocalCluster")
        if self.scheduler and self.scheduler.startswith("tls://") and self.tls != "files":
            raise ConfigurationError(f"scheduler: {self.scheduler} needs tls: files and certificate files")
        for key in ("retries", "allowed_failures"):
            if getattr(self, key) < 0:
                raise ConfigurationError(f"{key}: must be 0 or more, got {getattr(self, key)}")


@dataclass(frozen=True)
class LineageConfig:
    """OpenLineage for every run. Where events go is configured the standard OpenLineage
    way (openlineage.yml, OPENLINEAGE__TRANSPORT__*, OPENLINEAGE_URL); without it they go
    to `<output>/lineage/events.jsonl`."""

    enabled: bool = True
    namespace: str = "sales-engine"
    job_name: str = "sales_analytics"
    #: seconds the configured backend has to take an event before it is kept for replay
    timeout: float = 5.0
    #: also emit a RUNNING event as each dataflow node finishes
    node_events: bool = False
    #: the time an orchestrator scheduled the run for, ISO 8601 with a UTC offset: START or
    #: START/END (`engine run --nominal-time`); unset: the events carry no nominal time
    nominal_time: str | None = None

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigurationError(f"timeout: must be more than 0 seconds, got {self.timeout}")
        if self.nominal_time is not None:
            self.nominal_times()

    def nominal_times(self) -> tuple[Any, Any] | None:
        """The scheduled start and end as datetimes (end None when not given), or None
        when the run is not scheduled."""
        if self.nominal_time is None:
            return None
        start, slash, end = self.nominal_time.partition("/")
        times = (self._nominal(start), self._nominal(end) if slash else None)
        if times[1] is not None and times[1] < times[0]:
            raise ConfigurationError(f"nominal_time: {self.nominal_time!r} ends before it starts "
                                     "(engine run --nominal-time START/END)")
        return times

    def _nominal(self, text: str) -> Any:
        """One ISO 8601 time of `nominal_time`; it must say its UTC offset."""
        import datetime as dt

        usage = ("(ISO 8601 with a UTC offset, START or START/END, e.g. 2024-05-01T02:00:00Z; "
                 "engine run --nominal-time)")
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise ConfigurationError(f"nominal_time: {self.nominal_time!r} is not a time {usage}") from None
        if moment.tzinfo is None:
            raise ConfigurationError(f"nominal_time: {self.nominal_time!r} has no UTC offset {usage}")
        return moment


@dataclass(frozen=True)
class ProgressConfig:
    """How `engine run` shows its progress (engine.observability.progress)."""

    #: auto: a live line when stdout is a terminal, log lines otherwise; log: log lines; off
    display: str = "auto"
    #: seconds before progress is first shown, live or logged (shorter runs show none)
    delay: float = 2.0
    #: seconds between progress log lines
    interval: float = 10.0

    def __post_init__(self) -> None:
        _check_choice("display", self.display, PROGRESS_DISPLAYS)
        for key in ("delay", "interval"):
            if getattr(self, key) < 0 or (key == "interval" and self.interval == 0):
                raise ConfigurationError(f"{key}: must be {'more than' if key == 'interval' else 'at least'} "
                                         f"0 seconds, got {getattr(self, key)}")


@dataclass(frozen=True)
class MetricsConfig:
    """Run metrics beyond run_report.json: the run history, the Prometheus export and the
    HTML report (docs/metrics.md)."""

    #: the run history (JSON lines); auto: <output>/run_history.jsonl
    history: str = "auto"
    #: runs (the most recent) the success rate is computed over
    success_rate_window: int = 100
    #: Prometheus text file for node-exporter's textfile collector; auto: <output>/metrics.prom; off: none
    prometheus_textfile: str = "auto"
    #: Pushgateway URL (http://host:9091); none: no push
    pushgateway: str | None = None
    #: the Pushgateway job name and the `pipeline` label of every exported metric
    job: str = "sales_analytics"
    #: seconds the Pushgateway has to take a push before the run goes on without it
    push_timeout: float = 5.0
    #: write <output>/report.html
    html_report: bool = True

    def __post_init__(self) -> None:
        if self.success_rate_window < 1:
            raise ConfigurationError(f"success_rate_window: must be at least 1, got {self.success_rate_window}")
        if self.push_timeout <= 0:
            raise ConfigurationError(f"push_timeout: must be more than 0 seconds, got {self.push_timeout}")
        if self.pushgateway and not self.pushgateway.startswith(("http://", "https://")):
            raise ConfigurationError(f"pushgateway: {self.pushgateway!r} is not an http:// or https:// URL")
        if not self.job.strip():
            raise ConfigurationError("job: must not be empty")


@dataclass(frozen=True)
class PermissionsConfig:
    """Modes of the files and folders the engine writes (outputs, log, lineage, backups);
    never readable by other users. Octal text, quoted in YAML: "0640"."""

    file_mode: str = "0640"
    dir_mode: str = "0750"

    def __post_init__(self) -> None:
        self.modes()

    def modes(self) -> FileModes:
        return FileModes(file=parse_mode(self.file_mode, "file_mode", 0o600),
                         directory=parse_mode(self.dir_mode, "dir_mode", 0o700))


@dataclass(frozen=True)
class AuditConfig:
    """The installation's audit log (engine.governance.audit): one JSON line per run, anonymize,
    backup, restore and prune."""

    #: the log file; none: $XDG_STATE_HOME/sales-engine/audit.jsonl (~/.local/state/...)
    path: str | None = None
    #: record the SHA-256 of every input file (hashed in the background during the run)
    hash_inputs: bool = True


BACKUP_COMPRESSIONS = ("gzip", "xz")


@dataclass(frozen=True)
class BackupConfig:
    """`engine backup`: where archives go, what they hold, how many are kept."""

    directory: str = "backups"
    #: folders to back up; empty: the configured `output` folder
    sources: tuple[str, ...] = ()
    compression: str = "gzip"
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12

    def __post_init__(self) -> None:
        _check_choice("compression", self.compression, BACKUP_COMPRESSIONS)
        for key in ("keep_daily", "keep_weekly", "keep_monthly"):
            if getattr(self, key) < 0:
                raise ConfigurationError(f"{key}: must be 0 or more, got {getattr(self, key)}")


@dataclass(frozen=True)
class DataflowConfig:
    """User modules added to the dataflow (engine.dataflow.user_modules)."""

    #: `.py` paths or importable module names; every public function is a node, published
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputLayoutConfig:
    """How the input files lay out their columns when they differ from SPEC's CSV
    (engine.sources.layout; checked when a run starts): the field delimiter (one
    character, or `tab`), and `COLUMN=HEADER` pairs naming the header column that holds
    each engine column named otherwise (`date=Date,amount=Total`)."""

    delimiter: str = ","
    columns: str = ""


@dataclass(frozen=True)
class IncrementalConfig:
    """Incremental runs (engine.incremental): a run over several files keeps each file's
    partial figures and the next run reads only new and changed files."""

    enabled: bool = True
    #: where the partials are kept; none: <output>/.state
    state_dir: str | None = None
    #: ignore the kept partials and read every file, rebuilding the state (`--full`)
    full: bool = False
    #: new files are read and their partials saved in batches of about this much input, so
    #: a run killed part-way keeps the batches it finished
    batch_size: str = "256MiB"

    def __post_init__(self) -> None:
        if parse_size(self.batch_size, "batch_size") < 1:
            raise ConfigurationError(f"batch_size: must be at least 1 byte, got {self.batch_size}")


@dataclass(frozen=True)
class StorageConfig:
    """Object storage (`s3://`, `gs://`, `abfs://` inputs and outputs, through fsspec;
    engine.storage.objects). Credentials come the standard way (AWS_* variables,
    AWS_ENDPOINT_URL, profiles, instance roles) or from `options`; they never appear in a
    log line, report or lineage event."""

    #: fsspec storage options for the filesystem (endpoint_url, key, secret, profile, ...)
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    #: where a run whose --output is a URL keeps its local files (lock, logs, history,
    #: incremental state, lineage kept for replay); none: a folder per URL under
    #: $XDG_STATE_HOME/sales-engine (~/.local/state/sales-engine)
    work_dir: str | None = None
    #: run folders kept under <output URL>/runs/ besides the published one
    keep_runs: int = 2

    def __post_init__(self) -> None:
        if self.keep_runs < 0:
            raise ConfigurationError(f"keep_runs: must be 0 or more, got {self.keep_runs}")


@dataclass(frozen=True)
class SourceConfig:
    """What to read from a database INPUT (`postgresql://...`): a whole table, or the
    rows of a query (one or the other)."""

    #: a table name, optionally schema-qualified (`sales`, `shop.sales`)
    table: str | None = None
    #: a SELECT whose columns are named like the input's
    query: str | None = None
    #: a source plug-in's own settings (engine.storage.plugins), passed through unchecked
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.table and self.query:
            raise ConfigurationError("table: give a table or a query, not both")


@dataclass(frozen=True)
class SinkConfig:
    """A database that also receives every run's outputs (`--sink`)."""

    #: e.g. postgresql://user@host:5432/db; none: no sink
    url: str | None = None
    #: the schema (namespace) the output tables are written in
    schema: str = "sales_engine"
    #: a sink plug-in's own settings, passed through unchecked
    options: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class EngineConfig:
    """Everything a run needs to know."""

    input: str | None = None
    output: str = "output"
    mode: str = "auto"
    partition_size: str = "auto"
    pandas_max_input: str = "64MiB"
    #: fail: a CSV line with a wrong number of fields stops the run (exit 3); skip: it is
    #: left out, counted as `malformed_line` and listed in rejected_rows.parquet
    malformed_lines: str = "fail"
    #: a compressed CSV file that expands past this is an input error (exit 3)
    max_decompressed_size: str = "100GiB"
    #: where compressed inputs are decompressed for the run; none: beside the outputs
    spool_dir: str | None = None
    id_dtype: str = "string"
    top_days: int = 5
    log_level: str = "INFO"
    #: text (human lines) or json (one object per line, for log aggregation)
    log_format: str = "text"
    #: the run's log file; none: <output>/pipeline.log
    log_file: str | None = None
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    dataflow: DataflowConfig = field(default_factory=DataflowConfig)
    incremental: IncrementalConfig = field(default_factory=IncrementalConfig)
    input_layout: InputLayoutConfig = field(default_factory=InputLayoutConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    permissions: PermissionsConfig = field(default_factory=PermissionsConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    #: plug-in modules (names or .py paths) that register sources and sinks
    #: (engine.storage.plugins)
    plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("malformed_lines", self.malformed_lines, ("fail", "skip"))
        _check_choice("log_level", self.log_level.upper(), LOG_LEVELS)
        _check_choice("log_format", self.log_format, LOG_FORMATS)
        _check_choice("id_dtype", self.id_dtype, ID_DTYPES)
        if self.partition_size != "auto":
            parse_size(self.partition_size, "partition_size")
        parse_size(self.pandas_max_input, "pandas_max_input")
        parse_size(self.max_decompressed_size, "max_decompressed_size")
        if self.top_days < 1:
            raise ConfigurationError(f"top_days: must be at least 1, got {self.top_days}")
        if self.cluster.workers is not None and self.cluster.workers < 1:
            raise ConfigurationError(f"cluster.workers: must be at least 1, got {self.cluster.workers}")
        if self.cluster.threads_per_worker < 1:
            raise ConfigurationError(f"cluster.threads_per_worker: must be at least 1, got {self.cluster.threads_per_worker}")
        if self.mode != "distributed" and self.mode != "auto" and self.cluster.scheduler:
            raise ConfigurationError(f"cluster.scheduler: a scheduler address needs mode distributed or auto, not {self.mode}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigurationError(f"{key}: {value!r} is not one of {', '.join(choices)}")


def load_config(path: str | None = None, overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> EngineConfig:
    """The configuration from defaults, a YAML file, `ENGINE__*` variables and overrides
    (dotted keys such as `cluster.scheduler`, None values ignored). An error names the
    file, or the `ENGINE__*` variable a bad value came from, and the key."""
    merged: dict[str, Any] = {}
    if path:
        _merge(merged, _read_yaml(path), source=path)
    from_environment, variables = _from_environment(os.environ if environ is None else environ)
    _merge(merged, from_environment, source="environment")
    flags: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(flags, dotted, value)
            variables.pop(dotted, None)  # the flag's value is the one used
    _merge(merged, flags, source="command line")
    return _build(EngineConfig, merged, prefix="", source=path or "configuration", variables=variables)


def _read_yaml(path: str) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read configuration ({error.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: the configuration must be a mapping of keys to values")
    return data


def _from_environment(environ: Mapping[str, str]) -> tuple[dict, dict[str, str]]:
    """The settings of the `ENGINE__*` variables, and the variable each dotted key came from."""
    data: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for name, text in environ.items():
        if name.startswith(ENV_PREFIX):
            dotted = ".".join(part.lower() for part in name[len(ENV_PREFIX):].split("__"))
            _set_dotted(data, dotted, _environment_value(name, text))
            variables[dotted] = name
    return data, variables


def _environment_value(name: str, text: str) -> Any:
    """A variable's text read as a YAML value (`4`, `true`, `[a, b]`); empty: not set."""
    if not text.strip():
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigurationError(f"environment variable {name}: not a valid value "
                                 f"({' '.join(str(error).split())})") from None


def _source_of(dotted: str, source: str, variables: Mapping[str, str]) -> str:
    """Where the value of `dotted` came from: the `ENGINE__*` variable that set it (or a
    key inside it, for a section), else `source` (the file, or "configuration")."""
    name = variables.get(dotted) or next(
        (variable for key, variable in variables.items() if key.startswith(f"{dotted}.")), None)
    return f"environment variable {name}" if name else source


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    *sections, key = dotted.split(".")
    for section in sections:
        data = data.setdefault(section, {})
    data[key] = value


def _merge(into: dict, data: Mapping, source: str) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, source)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _build(cls: type, data: Mapping, prefix: str, source: str, variables: Mapping[str, str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigurationError(f"{_source_of(dotted, source, variables)}: unknown key {dotted!r}{hint}")
        kind = fields[key].type
        nested = {"AlertConfig": AlertConfig, "ClusterConfig": ClusterConfig, "LineageConfig": LineageConfig,
                  "MetricsConfig": MetricsConfig, "PermissionsConfig": PermissionsConfig,
                  "AuditConfig": AuditConfig, "BackupConfig": BackupConfig,
                  "ProgressConfig": ProgressConfig, "DataflowConfig": DataflowConfig,
                  "IncrementalConfig": IncrementalConfig, "InputLayoutConfig": InputLayoutConfig,
                  "StorageConfig": StorageConfig, "SourceConfig": SourceConfig, "SinkConfig": SinkConfig}.get(str(kind))
        if nested is not None:
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"{_source_of(dotted, source, variables)}: {dotted!r} must be a mapping "
                                         "of keys to values")
            values[key] = _build(nested, value, prefix=f"{dotted}.", source=source, variables=variables)
        else:
            values[key] = _coerce(value, str(kind), dotted, _source_of(dotted, source, variables))
    try:
        return cls(**values)
    except ConfigurationError as error:  # its message starts with the key: "top_days: must be ..."
        dotted = f"{prefix}{str(error).partition(':')[0]}"
        raise ConfigurationError(f"{_source_of(dotted, source, variables)}: {prefix}{error}") from None


def _coerce(value: Any, kind: str, key: str, source: str) -> Any:
    """`value` as the declared type (`str`, `int`, `float`, `bool`, optional variants)."""
    if value is None and "None" in kind:
        return None
    base = kind.replace(" | None", "")
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if base == "str" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if base == "tuple[str, ...]" and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if base == "dict[str, Any]" and isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return dict(value)
    expected = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "text",
                "tuple[str, ...]": "a list of text", "dict[str, Any]": "a mapping of keys to values"}[base]
    raise ConfigurationError(f"{source}: {key!r} must be {expected}, got {value!r}")
