"""User modules: a user's Hamilton functions added to the engine's dataflow.

    engine run sales.csv --module my_nodes.py --module my_package.more_nodes

Every public function of a user module (one whose name does not start with `_`,
defined in that module) is a node. It may take any engine node (`cleaned_sales_data`,
`validated_sales`, `daily_sales_summary`, ...) or dataflow input (`top_days`,
`id_dtype`, ...) as a parameter, and every one is published (engine.outputs.forms). A
node that takes one of the engine's partitioned frames (`FRAMES`) runs in the engine's
one pass over the input: on Dask frames its lazy result is computed together with the
engine's own reductions; in pandas mode it is given the whole frame as pandas, kept
while the pass streams the partitions.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from engine.errors import ConfigurationError

#: The engine's partitioned frames: a user node taking one runs in the one pass.
FRAMES = ("raw_sales_data", "validated_sales", "cleaned_sales_data")


@dataclass(frozen=True)
class UserModules:
    """The loaded modules, their nodes in module order, and the frames each node takes."""

    modules: tuple[ModuleType, ...] = ()
    nodes: tuple[str, ...] = ()
    frames_taken: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def in_the_pass(self) -> tuple[str, ...]:
        """The nodes that take a partitioned frame."""
        return tuple(node for node in self.nodes if self.frames_taken.get(node))


def load_user_modules(specs: tuple[str, ...] | list[str]) -> UserModules:
    """Import each module named by a `.py` path or an importable name."""
    modules = tuple(_load(spec) for spec in specs)
    nodes: list[str] = []
    frames_taken: dict[str, tuple[str, ...]] = {}
    for module in modules:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or function.__module__ != module.__name__:
                continue
            if name in nodes:
                raise ConfigurationError(f"{module.__name__}: node {name!r} is defined by two user modules")
            nodes.append(name)
            frames_taken[name] = tuple(p for p in inspect.signature(function).parameters if p in FRAMES)
    return UserModules(modules, tuple(nodes), frames_taken)


def _load(spec: str) -> ModuleType:
    path = Path(spec)
    try:
        if spec.endswith(".py") or path.exists():
            if not path.is_file():
                raise ConfigurationError(f"{spec}: no such module file (--module, dataflow.modules)")
            name = f"engine_user_{path.stem}"
            loader = importlib.util.spec_from_file_location(name, path.resolve())
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
            _ship_by_value(module)
            return module
        return importlib.import_module(spec)
    except ConfigurationError:
        raise
    except Exception as error:  # a user's module can fail to import in any way
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise ConfigurationError(f"{spec}: cannot load the module ({type(error).__name__}: {detail})") from None


def _ship_by_value(module: ModuleType) -> None:
    """Functions of a module loaded from a file travel to Dask workers as code: the workers
    cannot import it by name."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - installed with distributed
        return
    cloudpickle.register_pickle_by_value(module)
