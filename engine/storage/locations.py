"""Where a run's outputs go: a local folder, or an object-storage URL with a local work
folder beside it.

A run whose `--output` is a URL (`s3://bucket/reports/daily`) still needs a local folder
for what only this machine uses: the output lock, the run's log, the run history and
metrics, the incremental state and the lineage events kept for replay. That is its work
folder (`storage.work_dir`, by default one per URL under `$XDG_STATE_HOME/sales-engine`).
The outputs are staged there, delivered to the URL (engine.storage.objects), and
published there too, so the work folder always shows what the URL shows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.config import EngineConfig
from engine.storage.plugins import scheme_of


@dataclass(frozen=True)
class OutputLocation:
    """The run's output: the local folder it works in, and the URL it publishes to (None
    for a local output)."""

    folder: Path
    url: str | None = None

    @property
    def shown(self) -> str:
        """Where the outputs are, as a user names it."""
        return self.url or str(self.folder)


def is_url(location: str) -> bool:
    """True for a URL other than `file://` (object storage, a database)."""
    return scheme_of(location) not in (None, "file")


def output_location(config: EngineConfig) -> OutputLocation:
    """The run's output location from `config.output`."""
    output = config.output
    if not is_url(output):
        return OutputLocation(Path(urlsplit(output).path if output.startswith("file://") else output).resolve())
    url = output.rstrip("/")
    if config.storage.work_dir:
        return OutputLocation(Path(config.storage.work_dir).resolve(), url)
    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    parts = urlsplit(url)
    tail = re.sub(r"[^A-Za-z0-9._/-]", "_", f"{parts.netloc}{parts.path}").strip("/")
    return OutputLocation((state_home / "sales-engine" / parts.scheme / tail).resolve(), url)
