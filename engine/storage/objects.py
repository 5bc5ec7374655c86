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
from engine.sources.object_store import SCHEMES, failure_reason, filesystem, object_key, storage_errors, stored_object

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
                                        each file's key, size, SHA-256 and ETag
        <prefix>/<name>                 the published run's file, copied server-side
                                        (byte-identical, metadata `run-id`)

    A reader that needs one run's files together reads `_published.json` first and then
    the keys it names (they never change); `<prefix>/<name>` is for readers that need one
    file. A run that fails before the commit removes its `runs/<run id>/` (best effort)
    and changes nothing else. After the commit, the `storage.keep_runs` most recent other
    run folders are kept and older ones deleted. One run at a time may write a prefix
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

    def deliver(self, run: FinishedRun) -> None:
        """Publish `run`'s files: upload, commit, then refresh the published names."""
        with storage_errors(self.url, self.options, reading=False):
            fs = filesystem(self.url, self.options)
            prefix = object_key(fs, self.url)
            previous = self._published(fs, prefix)
            folder = f"{prefix}/{RUNS_FOLDER}/{run.run_id}"
            try:
                manifest = self._upload(fs, run, folder)
                self._commit(fs, prefix, manifest)
            except BaseException:
                if self._published(fs, prefix, quiet=True).get("run_id") != run.run_id:
                    _remove_quietly(fs, folder)
                    raise
            log.info("outputs of run %s published to %s/%s", run.run_id, self.url, PUBLISHED_NAME)
        self._refresh_names(fs, prefix, run, previous)
        self._prune(fs, prefix, run.run_id)

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

    def _published(self, fs: Any, prefix: str, quiet: bool = False) -> dict[str, Any]:
        """The manifest the prefix publishes now: {} when there is none or it is not one
        (with a warning); `quiet`: {} also when it cannot be read."""
        try:
            manifest = json.loads(fs.cat_file(f"{prefix}/{PUBLISHED_NAME}"))
        except FileNotFoundError:
            return {}
        except ValueError:
            log.warning("%s/%s is not a manifest of this engine; the run replaces it", self.url, PUBLISHED_NAME)
            return {}
        except Exception:
            if quiet:
                return {}
            raise
        return manifest if isinstance(manifest, dict) else {}

    def _refresh_names(self, fs: Any, prefix: str, run: FinishedRun, previous: dict[str, Any]) -> None:
        """Copy the committed run's files to their published names, and remove the names
        the previous run published that this one does not. The run is committed already:
        a failure here says so, and the next run repairs the names."""
        names = list(run.names)
        dropped = [f"{prefix}/{entry['name']}" for entry in previous.get("files", []) if entry["name"] not in names]
        try:
            with storage_errors(self.url, self.options, reading=False):
                fs.copy([f"{prefix}/{RUNS_FOLDER}/{run.run_id}/{name}" for name in names],
                        [f"{prefix}/{name}" for name in names])
                if dropped:
                    fs.rm(dropped)
        except EngineError as error:
            raise ServiceError(f"run {run.run_id} is published in {self.url}/{PUBLISHED_NAME}, but its files "
                               f"could not all be copied to their published names: {error}; the next run "
                               "replaces them") from None

    def _prune(self, fs: Any, prefix: str, run_id: str) -> None:
        """Keep the `keep_runs` most recently written other run folders; delete the rest.
        A failure is only a warning: the run is published."""
        runs = f"{prefix}/{RUNS_FOLDER}"
        try:
            fs.invalidate_cache(runs)
            written: dict[str, str] = {}
            for info in fs.find(runs, detail=True).values():
                folder = info["name"][len(runs) + 1:].split("/", 1)[0]
                stamp = str(info.get("LastModified") or info.get("last_modified") or info.get("updated") or "")
                written[folder] = max(written.get(folder, ""), stamp)
            others = sorted((folder for folder in written if folder != run_id),
                            key=lambda folder: (written[folder], folder), reverse=True)
            for folder in others[self.keep_runs:]:
                fs.rm(f"{runs}/{folder}", recursive=True)
                log.info("removed the old run folder %s/%s/%s", self.url, RUNS_FOLDER, folder)
        except Exception as error:
            log.warning("%s: old run folders not pruned (%s)", self.url, failure_reason(error, self.options))


def _bucket_key(url: str) -> str:
    """The object key of `url` inside its bucket."""
    return urlsplit(url).path.lstrip("/")


def _remove_quietly(fs: Any, folder: str) -> None:
    try:
        fs.rm(folder, recursive=True)
    except Exception as error:  # the run's own failure is the one to report
        log.warning("could not remove the unpublished run folder %s (%s)", folder, type(error).__name__)
