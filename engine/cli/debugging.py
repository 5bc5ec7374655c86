"""Step-by-step debugging of the dataflow: its graph (`engine dag`) and the result of
one step (`engine run INPUT --until NODE`).

`--until NODE` runs the dataflow up to NODE on the configured mode and input, exactly
as a run would, and returns NODE's value; it publishes nothing and records no lineage.
`summarize` turns that value into what an operator looks at: the type, rows, columns
and first rows of a frame, the value of a scalar or a dict. Customer ids are personal
data: in the rows shown, every customer_id and row fingerprint (an unkeyed hash of the
row, customer id included) is masked (`***`; missing ones stay empty).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import ConfigurationError, EngineError
from engine.files import atomic as files_atomic

HEAD_ROWS = 5
LIST_ITEMS = 5
#: Columns never shown: the customer id, and the row fingerprint (an unkeyed hash that includes it).
MASKED_COLUMNS = ("customer_id", "fingerprint")
#: the pictures `engine dag --output` renders with Graphviz (`dot -T<format>`), by file ending
RENDERED_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
#: the file endings of the graph's DOT text
DOT_SUFFIXES = (".dot", ".gv")


def dataflow_variables(modules: tuple[str, ...] = ()) -> list[Any]:
    """The dataflow's nodes and inputs (with those of the user `modules`) as Hamilton
    describes them (HamiltonNode)."""
    from engine.dataflow.user_modules import load_user_modules
    from engine.execution.backends import PandasBackend
    from engine.run import build_driver

    return list(build_driver(PandasBackend(), user=load_user_modules(modules)).list_available_variables())


def check_node(name: str, variables: Iterable[Any]) -> None:
    """A ConfigurationError (exit 2) listing close names when `name` is no dataflow node."""
    names = sorted(v.name for v in variables if not v.is_external_input)
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    listed = f"close names: {', '.join(close)}" if close else f"the nodes are: {', '.join(names)}"
    raise ConfigurationError(f"--until: no dataflow node named {name!r}; {listed}")


def run_until(config: Any, node: str, adapters: Iterable[Any] = ()) -> Any:
    """NODE's value, computed on the configured input and mode; nothing is written."""

    from engine.dataflow import quarantine
    from engine.dataflow.user_modules import load_user_modules
    from engine.execution.interrupts import InterruptCheckpoint, interruptible
    from engine.run import build_driver, dataflow_inputs, execute_dataflow, prepared_run
    from engine.sources.spool import input_spool

    check_node(node, dataflow_variables(config.dataflow.modules))
    if not config.input:
        raise ConfigurationError("no input given (engine run INPUT, or `input:` in the configuration)")
    user = load_user_modules(config.dataflow.modules)
    with interruptible(), input_spool(config, Path(tempfile.gettempdir()), uuid.uuid4().hex) as spool, \
            prepared_run(config, config.input, spool, f"until {node}") as prepared:
        driver = build_driver(prepared.backend, [InterruptCheckpoint(), *adapters], user)
        inputs = dataflow_inputs(config, prepared.plan, prepared.backend, quarantine.configured_key())
        value = execute_dataflow(driver, [node], inputs, user)[node]
        return summarize(node, value)


def summarize(node: str, value: Any) -> str:
    """What NODE's value is, in a few lines (frames are computed here if lazy)."""
    from engine.execution.frames import is_lazy

    if isinstance(value, pd.DataFrame) or is_lazy(value) or hasattr(value, "npartitions"):
        return _frame_summary(node, value)
    if isinstance(value, pd.Series):
        return _frame_summary(node, value.to_frame())
    if isinstance(value, (dict, list, tuple, int, float, str, bool)) or value is None:
        return _plain_summary(node, value)
    text = repr(value)
    return f"{node}: {type(value).__name__}\n{text[:2000]}{' …' if len(text) > 2000 else ''}"


def _frame_summary(node: str, frame: Any) -> str:
    rows, head, kind = _rows_and_head(frame)
    lines = [f"{node}: {kind}, {rows:,} rows, {len(head.columns)} columns", "columns:"]
    width = max((len(str(c)) for c in head.columns), default=0)
    lines += [f"  {str(column):<{width}}  {dtype}" for column, dtype in head.dtypes.items()]
    lines.append(f"first {len(head)} rows:")
    lines.append(_printable(_masked(head)).to_string(max_colwidth=40) if len(head) else "  (none)")
    return "\n".join(lines)


def _printable(head: pd.DataFrame) -> pd.DataFrame:
    """`head` with control characters in its text cells and column names escaped (a
    product id holding a terminal escape sequence is shown as `\\x1b[...`, never sent to
    the terminal), before the table is laid out so its columns stay aligned."""
    from engine.observability.logs import escape_controls

    head = head.rename(columns=lambda c: escape_controls(c) if isinstance(c, str) else c)
    for column in head.columns:
        if head[column].dtype == object or pd.api.types.is_string_dtype(head[column].dtype):
            head[column] = head[column].map(lambda v: escape_controls(v) if isinstance(v, str) else v,
                                            na_action="ignore").astype(object)
    return head


def _rows_and_head(frame: Any) -> tuple[int, pd.DataFrame, str]:
    from engine.execution.frames import is_lazy

    if isinstance(frame, pd.DataFrame):
        return len(frame), frame.head(HEAD_ROWS), "pandas DataFrame"
    if is_lazy(frame):
        import dask

        # One pass: the row count and the first rows (of whichever partitions hold them).
        rows, head = dask.compute(frame.map_partitions(len).sum(), frame.head(HEAD_ROWS, npartitions=-1, compute=False))
        return int(rows), head, f"Dask DataFrame in {frame.npartitions} partition(s)"
    # pandas mode's stream of partitions: counted one partition at a time
    rows, heads = 0, []
    for partition in frame:
        rows += len(partition)
        missing = HEAD_ROWS - sum(len(h) for h in heads)
        if missing > 0 or not heads:
            heads.append(partition.head(max(missing, 0)))
    head = pd.concat(heads, ignore_index=True) if heads else pd.DataFrame()
    return rows, head, f"pandas DataFrame in {frame.npartitions} partition(s)"


def _masked(head: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in MASKED_COLUMNS if c in head.columns]
    if not columns:
        return head
    head = head.copy()
    for column in columns:
        head[column] = head[column].astype(object).where(head[column].isna(), "***")
    return head


def _plain_summary(node: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        items = [_plain(item) for item in value[:LIST_ITEMS]]
        more = f"\n… and {len(value) - LIST_ITEMS:,} more" if len(value) > LIST_ITEMS else ""
        body = json.dumps(items, indent=2, default=str, ensure_ascii=False)
        return f"{node}: list of {len(value):,} item(s)\n{body}{more}"
    if isinstance(value, dict):
        return f"{node}: dict\n{json.dumps(_plain(value), indent=2, default=str, ensure_ascii=False)}"
    return f"{node} = {value!r}"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return f"<DataFrame of {len(value):,} rows: {', '.join(map(str, value.columns))}>"
    return value


# --- engine dag ---------------------------------------------------------------------

def dataflow_dot(variables: Iterable[Any] | None = None, modules: tuple[str, ...] = ()) -> str:
    """The dataflow (with the user `modules`) as a Graphviz DOT graph: one cluster per
    dataflow module, inputs as dashed parallelograms, the published outputs in bold."""
    from engine.dataflow import OUTPUTS

    variables = list(dataflow_variables(modules) if variables is None else variables)
    lines = ["digraph sales_dataflow {", "  rankdir=LR;",
             '  graph [fontname="Helvetica"];', '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];']
    by_module: dict[str, list[Any]] = {}
    for variable in variables:
        if not variable.is_external_input:
            module = str(variable.tags.get("module", "dataflow")).rsplit(".", 1)[-1]
            by_module.setdefault(module, []).append(variable)
    for variable in sorted((v for v in variables if v.is_external_input), key=lambda v: v.name):
        label = _quote(_label(variable))
        lines.append(f"  {_quote(variable.name)} [label={label}, shape=parallelogram, style=dashed];")
    for module, members in by_module.items():
        lines.append(f"  subgraph {_quote('cluster_' + module)} {{")
        lines.append(f"    label={_quote(module)}; style=rounded; color=gray60;")
        for variable in sorted(members, key=lambda v: v.name):
            style = ', style="rounded,bold,filled", fillcolor="#e8f0fe"' if variable.name in OUTPUTS else ""
            lines.append(f"    {_quote(variable.name)} [label={_quote(_label(variable))}{style}];")
        lines.append("  }")
    for variable in sorted(variables, key=lambda v: v.name):
        for dependency in sorted({*variable.required_dependencies, *variable.optional_dependencies}):
            lines.append(f"  {_quote(dependency)} -> {_quote(variable.name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(variable: Any) -> str:
    kind = variable.type
    name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
    return f"{variable.name}\n{name}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_dag(target: Path, modules: tuple[str, ...] = ()) -> tuple[list[Path], str | None]:
    """Write the dataflow graph to `target`: a .dot (or .gv) file, or for .svg / .png /
    .pdf a .dot file beside it and the picture rendered by Graphviz's `dot` when it is
    installed. Any other name is a ConfigurationError naming the endings there are.

    Returns the files written and, when the picture could not be made, a note saying why.
    """
    suffix = target.suffix.lower()
    if suffix not in DOT_SUFFIXES and suffix not in RENDERED_FORMATS:
        raise ConfigurationError(f"{target}: cannot tell which format to write from the name; end it with one of "
                                 f"{', '.join((*DOT_SUFFIXES, *RENDERED_FORMATS))}")
    dot_text = dataflow_dot(modules=modules)
    dot_path = target if suffix not in RENDERED_FORMATS else target.with_suffix(".dot")
    write_atomically(dot_path, dot_text.encode("utf-8"))
    if suffix not in RENDERED_FORMATS:
        return [dot_path], None
    dot = shutil.which("dot")
    if dot is None:
        render = f"dot -T{RENDERED_FORMATS[suffix]} {dot_path} -o {target}"
        return [dot_path], (f"{target}: not rendered: Graphviz's `dot` is not installed (apt-get install graphviz); "
                            f"render the DOT file elsewhere with: {render}")
    rendered = subprocess.run([dot, f"-T{RENDERED_FORMATS[suffix]}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=120)
    if rendered.returncode != 0:
        detail = rendered.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EngineError(f"{target}: Graphviz could not render the graph ({detail[0] if detail else 'no detail'})")
    write_atomically(target, rendered.stdout)
    return [dot_path, target], None


def write_atomically(path: Path, data: bytes) -> None:
    """`data` in `path`, all or nothing (engine.files.atomic); a failure to write is a
    ConfigurationError naming the path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files_atomic.write_atomically(path, data)
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot write ({error.strerror or error})") from None
