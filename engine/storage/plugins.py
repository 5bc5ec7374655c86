"""Sources and sinks: the one small interface every place data comes from or goes to
implements, and the registry that finds them by URL scheme.

A **source** turns INPUT (a URL such as `postgresql://host/db`) into the run's input
datasets and cuts each into read tasks. Local files and object storage (`s3://`,
`gs://`, `abfs://`) are the engine's own file source (engine.sources.plan); every other
scheme is a `Source`:

    class Source(Protocol):
        def resolve(self, url: str, config: EngineConfig) -> tuple[SourceFile, ...]
        def tasks(self, dataset: SourceFile, index: int, partition_bytes: int) -> list[ReadTask]
        def close(self) -> None     # optional: the run has read everything

`resolve` checks the input up front (reachable, the columns are there) and raises the
engine's errors (InputDataError, exit 3; ServiceError, exit 5) naming the input, never
its credentials. Each dataset is a `SourceFile` of format `table` whose `reader` is the
source. Each `ReadTask` carries a `fetch`: a picklable callable that runs where the task
runs (a Dask worker, in the Dask modes) and returns that partition's rows as an Arrow
table of the engine's columns, as text or as typed columns; the engine validates them
exactly as it validates a CSV file's text.

A **sink** receives a finished run's outputs before they are published locally:

    class Sink(Protocol):
        def deliver(self, run: FinishedRun) -> None

A sink makes the run visible to its readers all at once, or not at all: it raises an
EngineError when it cannot, and the run then fails with nothing published anywhere.

Registration: `register_source("http", factory)` / `register_sink("postgresql", factory)`,
a factory taking the URL. The built-in ones are registered here; a plug-in is a module that
registers its own when imported, named in the configuration's `plugins:` (a module name or
a `.py` path, `--plugin` on the command line) or exposed as an entry point of the group
`sales_engine.plugins`. Adding one touches no module of the engine: see
`examples/plugins/http_json_source.py`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import ConfigurationError
from engine.observability.logs import mask_credentials
from engine.sources.object_store import SCHEMES as OBJECT_STORAGE_SCHEMES
from engine.sources.object_store import url_scheme

if TYPE_CHECKING:
    from engine.config import EngineConfig
    from engine.sources.plan import ReadTask, SourceFile

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sales_engine.plugins"


class Source(Protocol):
    """Where a run's rows come from, for a URL scheme that is not a file store."""

    def resolve(self, url: str, config: EngineConfig) -> tuple[SourceFile, ...]:
        """The input's datasets, checked."""

    def tasks(self, dataset: SourceFile, index: int, partition_bytes: int) -> list[ReadTask]:
        """Read tasks that cover `dataset` (the plan's dataset number `index`) exactly once."""

    # Optional: `close(self) -> None`, called once the run has read everything (a database
    # source ends the transaction that holds its snapshot).


@dataclass(frozen=True)
class FinishedRun:
    """A run's outputs as a sink receives them: written in full, not yet published."""

    run_id: str
    #: the staging folder holding every output file
    folder: Path
    #: the published file names (`daily_sales_summary.csv`, `trend_analysis.json`, ...)
    names: tuple[str, ...]
    #: the dataflow's results by node name (frames and JSON documents)
    results: Mapping[str, Any] = field(repr=False)
    #: the run report (run_report.json's content)
    report: Mapping[str, Any] = field(repr=False)
    #: the run's configuration (a sink reads its own section: `sink.schema`, `sink.options`)
    config: EngineConfig = field(repr=False)


class Sink(Protocol):
    """Where a run's outputs also go."""

    def deliver(self, run: FinishedRun) -> None:
        """Make the run's outputs visible to the sink's readers, all at once or not at all."""

    # Optional: `check(self) -> None`, called before the run reads anything: a cheap look at
    # the destination (it exists, it answers) that raises the engine's errors, writes nothing.


_SOURCES: dict[str, Callable[[str], Source]] = {}
_SINKS: dict[str, Callable[[str], Sink]] = {}
#: the built-in factories, imported only when a URL of their scheme is used
_BUILT_IN_SOURCES = {"postgresql": "engine.storage.postgresql:PostgresSource",
                     "postgres": "engine.storage.postgresql:PostgresSource"}
_BUILT_IN_SINKS = {"postgresql": "engine.storage.postgresql_sink:PostgresSink",
                   "postgres": "engine.storage.postgresql_sink:PostgresSink"}
_loaded: set[str] = set()


def register_source(scheme: str, factory: Callable[[str], Source]) -> None:
    """Read URLs of `scheme` with `factory(url)`."""
    _SOURCES[scheme.lower()] = factory


def register_sink(scheme: str, factory: Callable[[str], Sink]) -> None:
    """Write outputs to URLs of `scheme` with `factory(url)`."""
    _SINKS[scheme.lower()] = factory


def source_for(location: str, config: EngineConfig) -> Source | None:
    """The registered source for `location`, None when it is a file or object store
    (the engine's file source reads those); a usage error (exit 2) for a URL no source
    reads."""
    load_plugins(config.plugins)  # a plug-in that cannot be loaded fails every run, not only URL ones
    scheme = url_scheme(location)
    if scheme is None or scheme == "file" or scheme in OBJECT_STORAGE_SCHEMES:
        return None
    factory = _SOURCES.get(scheme) or _built_in(_BUILT_IN_SOURCES.get(scheme))
    if factory is None:
        known = sorted({*_SOURCES, *_BUILT_IN_SOURCES, *OBJECT_STORAGE_SCHEMES})
        raise ConfigurationError(f"{mask_credentials(location)}: no source reads {scheme}:// URLs (known: "
                                 f"{', '.join(known)}; a plug-in adds more: --plugin, docs/plugins.md)")
    return factory(location)


def sink_for(location: str, config: EngineConfig) -> Sink:
    """The registered sink for `location`; a usage error when no sink has its scheme."""
    scheme = url_scheme(location)
    load_plugins(config.plugins)
    factory = _SINKS.get(scheme or "") or _built_in(_BUILT_IN_SINKS.get(scheme or ""))
    if factory is None:
        known = sorted({*_SINKS, *_BUILT_IN_SINKS})
        raise ConfigurationError(f"sink {mask_credentials(location)!r}: no sink writes {scheme or 'local paths'}:// URLs "
                                 f"(known: {', '.join(known)})")
    return factory(location)


def load_plugins(names: Iterable[str] = ()) -> None:
    """Import the configured plug-in modules (names or `.py` paths) and the installed
    entry points of `sales_engine.plugins`, each once; a plug-in that cannot be imported
    is a usage error naming it."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _import_once(entry.value, lambda entry=entry: entry.load())
    for name in names:
        _import_once(name, lambda name=name: _import(name))


def _import_once(key: str, load: Callable[[], Any]) -> None:
    if key in _loaded:
        return
    try:
        load()
    except ConfigurationError:
        raise
    except Exception as error:
        raise ConfigurationError(f"plug-in {key!r} cannot be loaded: {type(error).__name__}: {error}") from None
    _loaded.add(key)


def _import(name: str) -> Any:
    if name.endswith(".py"):
        path = Path(name).resolve()
        if not path.is_file():
            raise ConfigurationError(f"plug-in {name!r}: no such file")
        module_name = f"sales_engine_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)  # Dask workers need not have the file
        return module
    return importlib.import_module(name)


def _built_in(target: str | None) -> Callable[[str], Any] | None:
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
