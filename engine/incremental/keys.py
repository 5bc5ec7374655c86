"""The key of a file's partial: its content, the code that made it, the settings that
change it. A file rewritten with the same size and modification time still gets a new
key, because the key hashes the content."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from engine import __version__
from engine.files.digests import file_sha256

#: The modules whose code decides what a file's partial holds (reading, the rules, the
#: per-partition summaries, the quarantine): a change to any makes every partial stale.
_PARTIAL_CODE = ("sources/readers.py", "sources/plan.py", "rules", "dataflow/summaries.py",
                 "dataflow/partials.py", "dataflow/quarantine.py", "dataflow/clean.py", "dataflow/ingest.py",
                 "incremental/store.py")


def content_digests(paths: list[str], threads: int = 2) -> dict[str, str]:
    """SHA-256 of each file's bytes, on `threads` threads (hashing releases the GIL)."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return dict(zip(paths, (sha for _, sha in pool.map(file_sha256, paths))))


@cache
def code_version() -> str:
    """A digest of the engine's version and of the source of every module in _PARTIAL_CODE."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(__version__.encode())
    for name in _PARTIAL_CODE:
        path = root / name
        for source in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(source.relative_to(root)).encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def partial_key(content: str, settings: dict) -> str:
    """The key of the partial of a file with content digest `content`, computed by this
    code with `settings` (what changes a partial: see engine.incremental.planning)."""
    text = json.dumps({"content": content, "code": code_version(), "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
