"""`engine audit`: the audit log as a table, filtered.

Filters combine (all must hold): operation (`backup` matches every `backup.*`), OS user,
outcome, run id prefix, output folder (the runs that wrote to it: the default log holds
every folder's runs of the OS user), and a time window (`--since`/`--until`, dates or
ISO times, UTC). `--last N` keeps the N most recent matching records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigurationError

COLUMNS = ("time (UTC)", "user", "host", "operation", "run id", "outcome", "exit", "inputs", "outputs")


@dataclass(frozen=True)
class AuditFilter:
    operation: str | None = None
    user: str | None = None
    outcome: str | None = None
    run_id: str | None = None
    #: an output folder, absolute and resolved (`output_folder`)
    output: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    last: int | None = None

    def matches(self, record: dict) -> bool:
        operation = str(record.get("operation", ""))
        if self.operation and operation != self.operation and not operation.startswith(f"{self.operation}."):
            return False
        if self.user and record.get("user") != self.user:
            return False
        if self.outcome and record.get("outcome") != self.outcome:
            return False
        if self.run_id and not str(record.get("run_id", "")).startswith(self.run_id):
            return False
        if self.output and _details(record).get("output") != self.output:
            return False
        moment = _record_time(record)
        if self.since and (moment is None or moment < self.since):
            return False
        return not (self.until and (moment is None or moment >= self.until))

    def apply(self, records: Iterable[dict]) -> list[dict]:
        selected = [r for r in records if self.matches(r)]
        return selected[-self.last:] if self.last else selected


def output_folder(text: str) -> str:
    """The folder `text` names as a run records its output folder: absolute, links resolved."""
    return str(Path(text).expanduser().resolve())


def _details(record: dict) -> dict:
    details = record.get("details")
    return details if isinstance(details, dict) else {}


def parse_moment(text: str, option: str, end_of_day: bool = False) -> dt.datetime:
    """A UTC moment from `YYYY-MM-DD` (its start; with `end_of_day`, the next day's start)
    or an ISO date-time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(f"{option}: {text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _record_time(record: dict) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(record["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None


def render(records: list[dict]) -> str:
    """The records as an aligned text table, oldest first."""
    rows = [COLUMNS] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _row(record: dict) -> tuple[str, ...]:
    moment = _record_time(record)
    inputs, outputs = record.get("inputs") or [], record.get("outputs") or []
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S") if moment else str(record.get("time", "")),
        str(record.get("user", "")),
        str(record.get("host", "")),
        str(record.get("operation", "")),
        str(record.get("run_id", "")),
        str(record.get("outcome", "")),
        str(record.get("exit_code", "")),
        _files(inputs),
        _files(outputs),
    )


def _files(entries: list[dict]) -> str:
    if not entries:
        return "-"
    total = sum(e.get("size") or 0 for e in entries)
    return f"{len(entries)} ({human_size(total)})"


def human_size(count: float) -> str:
    """Bytes as B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"
