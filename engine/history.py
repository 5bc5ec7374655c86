"""The run history: one JSON line per run, successful or not, and the success rate.

Every run that got as far as starting appends one line when it ends: its id, when it
started and ended, `success` or `failed`, the exit code and the kind of error, how long
it took, and the rows it read and kept (when it got that far). The file is only ever
appended to (one write of one line, then flush and fsync, under an exclusive lock), so
concurrent runs sharing a history interleave whole lines; a line that cannot be read
(a disk that filled mid-write) is skipped with a warning rather than failing the run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine import permissions
from engine.errors import INTERRUPTED_EXIT_CODE, UNEXPECTED_EXIT_CODE, EngineError

log = logging.getLogger(__name__)

SUCCESS, FAILED = "success", "failed"
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
        "status": SUCCESS if error is None else FAILED,
        "exit_code": 0 if error is None else exit_code_of(error),
        "error_kind": None if error is None else type(error).__name__,
        "mode": mode,
        "duration_s": round(duration_s, 3),
        "rows": dict(rows) if rows is not None else None,
    }


def exit_code_of(error: BaseException) -> int:
    """The process exit status the CLI reports for `error`."""
    if isinstance(error, EngineError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED_EXIT_CODE
    return UNEXPECTED_EXIT_CODE


def append_history(path: Path, entry: Mapping[str, Any]) -> None:
    """Append one line to the history (created with its folder, with the configured
    permissions, if missing)."""
    permissions.make_dirs(path.parent)
    permissions.create_file(path)
    line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
    with open(path, "ab") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_history(path: Path) -> list[dict[str, Any]]:
    """Every readable entry, oldest first; no file is an empty history."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s: line %d is not a history entry; skipped", path, number)
            continue
        if isinstance(entry, dict) and entry.get("status") in (SUCCESS, FAILED):
            entries.append(entry)
        else:
            log.warning("%s: line %d is not a history entry; skipped", path, number)
    return entries


def success_rate(entries: Iterable[Mapping[str, Any]], window: int | None = None) -> float | None:
    """The share of successful runs (0 to 1) among the last `window` entries (all when
    None); None for an empty history."""
    entries = list(entries)
    if window is not None:
        entries = entries[-window:]
    if not entries:
        return None
    return sum(1 for e in entries if e["status"] == SUCCESS) / len(entries)
