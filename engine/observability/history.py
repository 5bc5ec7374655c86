"""The run history: one JSON line per run, successful or not, and the success rate.

Every run that got as far as starting appends one line when it ends: its id, when it
started and ended, `success`, `failed` or `interrupted` (Ctrl-C or SIGTERM: someone
stopped it, as the audit log says too), the exit code and the kind of error, how long
it took, and the rows it read and kept (when it got that far). The success rate is the
share of successes among the runs that ran to an end: an interrupted run neither
succeeded nor failed, so it is left out. The file is only ever
appended to (one write of one line, then flush and fsync, under an exclusive lock), so
concurrent runs sharing a history interleave whole lines; a line that cannot be read
(a disk that filled mid-write, a hand edit, a missing field) is skipped with a warning
rather than failing the run. The file is never reached through a symbolic link: a link
in its place is refused (ConfigurationError, exit 2), its target left as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.errors import UNEXPECTED_EXIT_CODE, EngineError
from engine.execution.interrupts import exit_code_of_interrupt
from engine.files import permissions
from engine.files.append import append_line, open_for_append
from engine.files.opening import read_own_text

log = logging.getLogger("engine.history")  # the name in log lines, kept from before the package layout

SUCCESS, FAILED, INTERRUPTED = "success", "failed", "interrupted"
STATUSES = (SUCCESS, FAILED, INTERRUPTED)
DEFAULT_NAME = "run_history.jsonl"


def history_path(setting: str, output_dir: Path) -> Path:
    """Where the history is kept: `auto` is `<output>/run_history.jsonl`."""
    return output_dir / DEFAULT_NAME if setting == "auto" else Path(setting)


def history_entry(run_id: str, started_at: dt.datetime, mode: str | None, duration_s: float,
                  rows: Mapping[str, int] | None, error: BaseException | None = None) -> dict[str, Any]:
    """One run's line: `error` None is a success; otherwise the exit code the CLI gives
    for that error and its kind (the error class, e.g. InputDataError)."""
    return {
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "status": status_of(error),
        "exit_code": 0 if error is None else exit_code_of(error),
        "error_kind": None if error is None else type(error).__name__,
        "mode": mode,
        "duration_s": round(duration_s, 3),
        "rows": dict(rows) if rows is not None else None,
    }


def status_of(error: BaseException | None) -> str:
    """How a run ended: `success` (no error), `interrupted` (Ctrl-C or SIGTERM stopped it)
    or `failed`; the same word the audit log's `outcome` uses."""
    if error is None:
        return SUCCESS
    return INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED


def exit_code_of(error: BaseException) -> int:
    """The process exit status the CLI reports for `error`."""
    if isinstance(error, EngineError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return exit_code_of_interrupt(error)  # 130 for Ctrl-C, 143 for SIGTERM
    return UNEXPECTED_EXIT_CODE


def append_history(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one line to the history (created with its folder, with the configured
    permissions, if missing; an existing file gets them too). A symbolic link or
    anything but a regular file in its place is refused (ConfigurationError)."""
    permissions.make_dirs(path.parent)
    line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
    fd = open_for_append(path, what="the run history")
    try:
        append_line(fd, line)
    finally:
        os.close(fd)


#: the fields an entry has, the types they must be of when present
_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "started_at": (str,),
    "exit_code": (int,),
    "duration_s": (int, float),
}
#: the fields the report's history chart needs (an entry without them only counts in the success rate)
CHART_FIELDS = ("started_at", "duration_s")


def _problem(entry: Any) -> str | None:
    """Why `entry` is not a usable history entry (None: it is): not an object, no valid
    status, or a field present with a wrong value (`duration_s: null`)."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    if entry.get("status") not in STATUSES:
        return f"status {entry.get('status')!r} is not one of {', '.join(map(repr, STATUSES))}"
    for field, kinds in _FIELDS.items():
        if field not in entry:
            continue
        value = entry[field]
        if value is None:
            return f"no {field}"
        if isinstance(value, bool) or not isinstance(value, kinds):
            return f"{field} {value!r} is not a {' or '.join(k.__name__ for k in kinds)}"
    if "duration_s" in entry and (not math.isfinite(entry["duration_s"]) or entry["duration_s"] < 0):
        return f"duration_s {entry['duration_s']!r} is not a duration"
    return None


def charted(entry: Mapping[str, Any]) -> bool:
    """Whether `entry` has what the report's history chart shows (a start time and a duration)."""
    return all(field in entry for field in CHART_FIELDS)


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every readable entry, oldest first; no file is an empty history. A line that is
    not an entry (torn by a full disk, edited by hand, a field such as `duration_s: null`)
    is skipped with a warning, and one without a start time or duration is kept (it counts
    in the success rate) with a warning: such lines never fail a run."""
    text = read_own_text(path, "the run history")
    if text is None:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            problem: str | None = "not JSON"
        else:
            problem = _problem(entry)
        if problem is not None:
            log.warning("%s: line %d is not a history entry (%s); skipped", path, number, problem)
            continue
        missing = [field for field in CHART_FIELDS if field not in entry]
        if missing:
            log.warning("%s: line %d has no %s; counted in the success rate only", path, number,
                        " and no ".join(missing))
        entries.append(entry)
    return entries


def finished_runs(entries: Iterable[Mapping[str, Any]], window: int | None = None) -> list[Mapping[str, Any]]:
    """The last `window` runs (all when None) that ran to an end, successful or failed:
    the runs the success rate is about. Interrupted runs take no place in the window."""
    finished = [e for e in entries if e["status"] != INTERRUPTED]
    return finished[-window:] if window is not None else finished


def success_rate(entries: Iterable[Mapping[str, Any]], window: int | None = None) -> float | None:
    """The share of successful runs (0 to 1) among the last `window` finished runs (all
    when None), interrupted runs left out; None when no run has finished."""
    finished = finished_runs(entries, window)
    if not finished:
        return None
    return sum(1 for e in finished if e["status"] == SUCCESS) / len(finished)
