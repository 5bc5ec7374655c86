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

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.config import EngineConfig, load_config
from engine.errors import ConfigurationError
from engine.observability.logs import mask_credentials
from engine.sources.object_store import SCHEMES, is_url, url_scheme


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


def output_location(config: EngineConfig) -> OutputLocation:
    """The run's output location from `config.output`: a usage error (exit 2) for a URL
    that is not object storage (a database receives the outputs through `--sink`)."""
    output = config.output
    if not is_url(output):
        return OutputLocation(Path(urlsplit(output).path if output.startswith("file://") else output).resolve())
    url = output.rstrip("/")
    if url_scheme(url) not in SCHEMES:
        schemes = ", ".join(f"{scheme}://" for scheme in SCHEMES)
        raise ConfigurationError(f"--output {mask_credentials(url)}: not a folder or object storage ({schemes}); "
                                 "a database receives the outputs with --sink")
    if config.storage.work_dir:
        return OutputLocation(Path(config.storage.work_dir).resolve(), url)
    return OutputLocation(_default_work_folder(url), url)


def local_output_folder(output: str, config_file: str | None = None) -> Path:
    """The local folder of the output `output` (a folder, or an object-storage URL: its
    work folder), as a command other than `engine run` finds it (`engine lineage`,
    `engine state`)."""
    return output_location(load_config(config_file, overrides={"output": output})).folder


def _default_work_folder(url: str) -> Path:
    """`$XDG_STATE_HOME/sales-engine/<scheme>/<bucket>/<path>-<digest>`: readable, one
    folder per URL (the digest of the URL tells apart URLs whose names would clash once
    made safe for a file system), never a credential, never outside that folder."""
    parts = urlsplit(url)
    state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    names = [parts.hostname or "_", *(name for name in parts.path.split("/") if name not in ("", ".", ".."))]
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", name) for name in names]
    digest = hashlib.sha256(f"{parts.scheme}://{parts.hostname}{parts.path}".encode()).hexdigest()[:8]
    safe[-1] = f"{safe[-1]}-{digest}"
    return state_home.resolve() / "sales-engine" / parts.scheme / Path(*safe)
