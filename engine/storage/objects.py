"""Object storage (S3, and Google Cloud Storage and Azure on the same code path) as the
output of `engine run`: ObjectStorageOutput publishes a run's files to a prefix, where no
rename exists (see the class).

Object storage as the input (listing a glob or a prefix, opening objects where the read
tasks run, the bounded retries, and the failures as the engine's errors) is the engine's
own file source (engine.sources.object_store); this module uses the same filesystem and
errors.
Credentials come the standard way (AWS_* variables including AWS_ENDPOINT_URL, profiles,
instance roles) or from `storage.options`; no message holds an option's value.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.errors import ConfigurationError, EngineError, ServiceError
from engine.sources.object_store import (SCHEMES, failure_reason, filesystem, object_key, probe_bucket, storage_errors,
                                         stored_object)

if TYPE_CHECKING:
    from engine.config import StorageConfig
    from engine.storage.plugins import FinishedRun

log = logging.getLogger(__name__)

PUBLISHED_NAME = "_published.json"
RUNS_FOLDER = "runs"


class ObjectStorageOutput:
    """A run's outputs on object storage (a Sink, engine.storage.plugins), where no rename
    exists. For `--output s3://bucket/reports/daily`:

        <prefix>/runs/<run id>/<name>   every file of the run, uploaded first
        <prefix>/_published.json        THE commit point: one object naming the run, and
                                        each file's key, size, SHA-256 and ETag, and the
                                        runs published before it whose folders are kept
        <prefix>/<name>                 the published run's file, copied server-side
                                        (byte-identical, metadata `run-id`)

    A reader that needs one run's files together reads `_published.json` first and then
    the keys it names (they never change); `<prefix>/<name>` is for readers that need one
    file. The run is published once `_published.json` names it: a failure after that
    (refreshing `<prefix>/<name>`, pruning) is a warning, and the next run repairs the
    names. A run that fails before the commit removes its `runs/<run id>/` (best effort)
    and changes nothing else; when whether the commit arrived cannot be read, the folder
    is kept. After the commit, the folders of the `storage.keep_runs` most recently
    published earlier runs are kept, and every other older folder (of an earlier published
    run, or of a run never published) is deleted. One run at a time may write a prefix
    (the output lock is the local work folder's).
    """

    def __init__(self, url: str, storage: StorageConfig) -> None:
        self.url = url.rstrip("/")
        self.options = dict(storage.options)
        self.keep_runs = storage.keep_runs
        self.scheme = urlsplit(self.url).scheme.lower()
        if self.scheme not in SCHEMES:
            schemes = ", ".join(f"{scheme}://" for scheme in SCHEMES)
            raise ConfigurationError(f"--output {self.url}: not object storage ({schemes}); a database receives "
                                     "the outputs with --sink")

    def check(self) -> None:
        """Before the run: the output bucket exists and these credentials reach it (one
        listing of at most one key; nothing is written). A missing bucket is a usage
        error (exit 2); a store that cannot be reached, fails or refuses is a
        ServiceError (exit 5)."""
        with storage_errors(self.url, self.options, reading=False):
            fs = filesystem(self.url, self.options)
            bucket = object_key(fs, self.url).split("/", 1)[0]
            try:
                probe_bucket(fs, self.scheme, bucket)
            except FileNotFoundError:
                raise ConfigurationError(f"--output {self.url}: the bucket {self.scheme}://{bucket} "
                                         "does not exist") from None

    def deliver(self, run: FinishedRun) -> None:
        """Publish `run`'s files: upload, commit, then refresh the published names. Returns
        once `_published.json` names the run (what follows the commit only warns)."""
        with storage_errors(self.url, self.options, reading=False):
            fs = filesystem(self.url, self.options)
            prefix = object_key(fs, self.url)
            previous = self._published(fs, prefix) or {}
            kept = self._kept_runs(previous, run.run_id)
            dropped = self._dropped_names(fs, prefix, previous, run.names)
            folder = f"{prefix}/{RUNS_FOLDER}/{run.run_id}"
            try:
                manifest = {**self._upload(fs, run, folder), "previous": kept, "dropped": dropped}
                self._commit(fs, prefix, manifest)
            except BaseException:
                if not self._committed_after_all(fs, prefix, run.run_id, folder):
                    raise
            log.info("outputs of run %s published to %s/%s", run.run_id, self.url, PUBLISHED_NAME)
        self._refresh_names(fs, prefix, run, dropped)
        self._prune(fs, prefix, run.run_id, kept)

    def _kept_runs(self, previous: dict[str, Any], run_id: str) -> list[str]:
        """The runs published before this one whose folders stay (most recent first, at
        most `keep_runs`): the previous manifest's run, then the ones it kept."""
        named = [previous.get("run_id"), *_listed(previous, "previous")]
        kept: list[str] = []
        for other in named:
            if isinstance(other, str) and other and other != run_id and other not in kept:
                kept.append(other)
        return kept[:self.keep_runs]

    def _dropped_names(self, fs: Any, prefix: str, previous: dict[str, Any], names: tuple[str, ...]) -> list[str]:
        """The published names an earlier run left at the prefix that this run does not
        publish: those the previous manifest published or meant to drop, if still there
        (a run whose refresh failed leaves them for the next one)."""
        earlier = {entry.get("name") for entry in _listed(previous, "files") if isinstance(entry, dict)}
        earlier |= {name for name in _listed(previous, "dropped") if isinstance(name, str)}
        candidates = {name for name in earlier if isinstance(name, str) and name and "/" not in name} - set(names)
        if not candidates:
            return []
        fs.invalidate_cache(prefix)
        try:
            present = {posixpath.basename(path) for path in fs.ls(prefix, detail=False)}
        except FileNotFoundError:
            return []
        return sorted(candidates & present)

    def _committed_after_all(self, fs: Any, prefix: str, run_id: str, folder: str) -> bool:
        """After a failed upload or commit: True when `_published.json` names the run all
        the same (the PUT arrived, its answer did not). Otherwise the run's folder is
        removed, unless the manifest could not be read: then it might name the run, and
        the folder is kept (the next run's pruning removes it if not)."""
        current = self._published(fs, prefix, quiet=True)
        if current is None:
            log.warning("run %s: %s/%s could not be read after the run's commit failed, so it may name the run; "
                        "its folder %s/%s/%s is kept", run_id, self.url, PUBLISHED_NAME, self.url, RUNS_FOLDER,
                        run_id)
            return False
        if current.get("run_id") == run_id:
            log.warning("run %s: its commit reported a failure, but %s/%s names it: the run is published",
                        run_id, self.url, PUBLISHED_NAME)
            return True
        _remove_quietly(fs, folder)
        return False

    def _upload(self, fs: Any, run: FinishedRun, folder: str) -> dict[str, Any]:
        """Upload every file into the run's folder; the manifest that describes them."""
        from engine.files.digests import file_sha256

        local = [str(Path(run.folder) / name) for name in run.names]
        fs.put(local, [f"{folder}/{name}" for name in run.names], **self._metadata(run.run_id))
        listed = {posixpath.basename(info["name"]): info for info in fs.find(folder, detail=True).values()}
        files = []
        for name, path in zip(run.names, local):
            size, sha256 = file_sha256(path)
            stored = stored_object(self.scheme, listed[name]) if name in listed else None
            if stored is None or stored.size != size:
                raise ServiceError(f"{self.url}/{RUNS_FOLDER}/{run.run_id}/{name}: the upload did not arrive whole")
            files.append({"name": name, "key": _bucket_key(stored.url), "size": size, "sha256": sha256,
                          "etag": stored.etag})
        return {"run_id": run.run_id, "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "url": self.url, "files": files}

    def _metadata(self, run_id: str) -> dict[str, Any]:
        """The upload arguments that label an object with its run (kept by server-side copies)."""
        labels = {"run-id": run_id}
        return {"Metadata": labels} if SCHEMES[self.scheme] == "s3" else {"metadata": labels}

    @staticmethod
    def _commit(fs: Any, prefix: str, manifest: dict[str, Any]) -> None:
        fs.pipe_file(f"{prefix}/{PUBLISHED_NAME}", json.dumps(manifest, indent=2).encode("utf-8"))

    def _published(self, fs: Any, prefix: str, quiet: bool = False) -> dict[str, Any] | None:
        """The manifest the prefix publishes now: {} when there is none or it is not one
        (with a warning). When it cannot be read: the store's error, or with `quiet`
        None."""
        try:
            manifest = json.loads(fs.cat_file(f"{prefix}/{PUBLISHED_NAME}"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("%s/%s is not a manifest of this engine; the run replaces it", self.url, PUBLISHED_NAME)
            return {}
        except Exception:
            if quiet:
                return None
            raise
        return manifest if isinstance(manifest, dict) else {}

    def _refresh_names(self, fs: Any, prefix: str, run: FinishedRun, dropped: list[str]) -> None:
        """Copy the committed run's files to their published names, and remove the
        `dropped` names. The run is published already: a failure is a warning, and the
        next run repairs the names (it copies every name, and removes what its manifest
        says this one meant to drop)."""
        names = list(run.names)
        try:
            with storage_errors(self.url, self.options, reading=False):
                fs.copy([f"{prefix}/{RUNS_FOLDER}/{run.run_id}/{name}" for name in names],
                        [f"{prefix}/{name}" for name in names])
                if dropped:
                    fs.rm([f"{prefix}/{name}" for name in dropped])
        except Exception as error:
            reason = str(error) if isinstance(error, EngineError) else failure_reason(error, self.options)
            log.warning("run %s is published (%s/%s names it), but the published names %s/<file> could not all be "
                        "refreshed (%s): some may still show an earlier run; the next run repairs them",
                        run.run_id, self.url, PUBLISHED_NAME, self.url, reason)

    def _prune(self, fs: Any, prefix: str, run_id: str, kept: list[str]) -> None:
        """Keep this run's folder and those of the `kept` runs (the most recently published
        earlier ones); delete every other folder written before this run's (of an older
        published run, or of a run never published). A failure is only a warning: the
        run is published."""
        runs = f"{prefix}/{RUNS_FOLDER}"
        try:
            fs.invalidate_cache(runs)
            written: dict[str, str] = {}
            for info in fs.find(runs, detail=True).values():
                folder = info["name"][len(runs) + 1:].split("/", 1)[0]
                stamp = str(info.get("LastModified") or info.get("last_modified") or info.get("updated") or "")
                written[folder] = max(written.get(folder, ""), stamp)
            own = written.get(run_id, "")
            for folder in sorted(written):
                if folder == run_id or folder in kept or written[folder] > own:  # newer: not this run's to judge
                    continue
                fs.rm(f"{runs}/{folder}", recursive=True)
                log.info("removed the old run folder %s/%s/%s", self.url, RUNS_FOLDER, folder)
        except Exception as error:
            log.warning("%s: old run folders not pruned (%s)", self.url, failure_reason(error, self.options))


def _listed(manifest: dict[str, Any], key: str) -> list[Any]:
    """The list under `key` of a manifest read from the store ([] when it holds none)."""
    value = manifest.get(key)
    return value if isinstance(value, list) else []


def _bucket_key(url: str) -> str:
    """The object key of `url` inside its bucket."""
    return urlsplit(url).path.lstrip("/")


def _remove_quietly(fs: Any, folder: str) -> None:
    try:
        fs.rm(folder, recursive=True)
    except FileNotFoundError:  # nothing was uploaded
        pass
    except Exception as error:  # the run's own failure is the one to report
        log.warning("could not remove the unpublished run folder %s (%s)", folder, type(error).__name__)
