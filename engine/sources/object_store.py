"""Object storage: the filesystem of a URL, listing, opening, and failures as the
engine's errors.

Files on object storage (S3; Google Cloud Storage and Azure on the same code path, through
fsspec) are files like any other: INPUT is one object's URL, a glob
(`s3://bucket/sales/2026-*.csv.gz`) or a prefix ending in `/` (`s3://bucket/raw/`). The
client lists the objects and reads the first bytes of each (a Parquet file's footer) to
check it; each read task carries the object's URL and the storage options, and whoever
runs it (a Dask worker) opens the object there (engine.sources.readers): a plain CSV by
byte ranges, a compressed one whole, a Parquet file by row groups. Nothing is downloaded
to the client. Credentials and endpoint come the standard way (for S3: the AWS_*
variables including AWS_ENDPOINT_URL, profiles, instance roles) or from `storage.options`
(fsspec options), and no message holds an option's value. Retries are bounded, so a
store that is down fails the run in seconds: for S3, botocore's standard retry mode with
3 attempts, a 5 s connect timeout and a 20 s read timeout (`storage.options`
`config_kwargs` overrides them), and s3fs's own retries cut from 5 to 2 (docs/storage.md
has the resulting waits). engine.storage.objects publishes outputs to object storage
with the same filesystem and errors.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import re
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from engine.errors import ConfigurationError, EngineError, InputDataError, ServiceError


#: URL schemes on object storage, and the package extra that installs each one's filesystem
SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "abfss": "azure", "az": "azure"}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
#: bounded retries and timeouts (see the module's description); s3fs's own retry loop,
#: which covers a transfer broken mid-way, runs each call at most twice
_S3_CONFIG = {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 3, "mode": "standard"}}
_S3FS_RETRIES = 2
#: what a read task asks the store for at a time: a byte range's own length plus this
RANGE_BLOCK = 1 << 16
#: what a whole-object read (a compressed CSV) asks for at a time
WHOLE_BLOCK = 8 << 20
#: option names whose values are secrets (never shown, even in a store's own message)
_SECRET_OPTION = re.compile(r"key|secret|token|passw|credential|sas|signature|connection_string", re.IGNORECASE)
#: the variables that choose the credentials and endpoint of a filesystem
_ENVIRONMENT = re.compile(r"^(AWS_|GOOGLE_|GCS|AZURE_)")
_CONNECTION_ERRORS = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                      "ClientConnectorError", "ServerDisconnectedError", "FSTimeoutError", "HTTPClientError",
                      "ConnectionError", "TimeoutError", "ServiceRequestError"}
_MISSING_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"}
_STORE_ERRORS = {"ClientError", "BotoCoreError", "HttpError", "HttpResponseError"}


def is_object_url(location: str) -> bool:
    """True when `location` is an object-storage URL (`s3://`, `gs://`, `abfs://`, ...)."""
    return "://" in location and urlsplit(location).scheme.lower() in SCHEMES


@dataclass(frozen=True)
class StoredObject:
    """One object as its listing describes it: URL, size, and what identifies its content
    without reading it (the ETag, which changes whenever the object is rewritten; the
    version id on a versioned bucket)."""

    url: str
    size: int
    etag: str | None = None
    version_id: str | None = None


_filesystems: dict[tuple, Any] = {}
_filesystems_lock = threading.Lock()


def filesystem(url: str, options: Mapping[str, Any] | None = None) -> Any:
    """The fsspec filesystem of `url`'s store, opened with `options` (and, for S3, the
    bounded retries above). One per process for the same options and credential
    variables; a missing filesystem package is a usage error naming the extra."""
    scheme = urlsplit(url).scheme.lower()
    extra = SCHEMES[scheme]
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if _ENVIRONMENT.match(k)))
    key = (scheme, json.dumps(options or {}, sort_keys=True, default=str), environment)
    with _filesystems_lock:
        if key not in _filesystems:
            _filesystems[key] = _open_filesystem(scheme, extra, dict(options or {}))
        return _filesystems[key]


def _open_filesystem(scheme: str, extra: str, options: dict[str, Any]) -> Any:
    import fsspec

    if extra == "s3":
        options["config_kwargs"] = {**_S3_CONFIG, **options.get("config_kwargs", {})}
    try:
        fs = fsspec.filesystem(scheme, skip_instance_cache=True, **options)
    except ImportError:
        raise ConfigurationError(f"{scheme}:// URLs need the {_PACKAGES[extra]} package: "
                                 f"pip install 'sales-engine[{extra}]'") from None
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"storage.options: not options of the {scheme}:// filesystem "
                                 f"({_redacted(str(error), options)})") from None
    if extra == "s3":
        fs.retries = _S3FS_RETRIES
    return fs


def object_key(fs: Any, url: str) -> str:
    """`url` as the filesystem names it: `bucket/key`."""
    return fs._strip_protocol(url)


def _url(scheme: str, key: str) -> str:
    return f"{scheme}://{key}"


def list_objects(source: str, options: Mapping[str, Any], keep: Callable[[str], bool]) -> list[StoredObject]:
    """The objects INPUT `source` names, sorted by URL: the objects a glob matches, every
    object under a prefix (ending in `/`, or naming no object) whose file name `keep`
    accepts, or the one object named. Nothing found is an input error saying what is
    missing (the bucket, the object, a match)."""
    scheme = urlsplit(source).scheme.lower()
    with storage_errors(source, options):
        fs = filesystem(source, options)
        fs.invalidate_cache()  # a listing cached by an earlier run in this process is stale
        path = object_key(fs, source)
        if glob.has_magic(path):
            found = [info for info in fs.glob(path, detail=True).values() if _is_object(info)]
            if not found:
                _check_bucket(fs, scheme, path)
                raise InputDataError(f"{source}: no object matches this pattern")
        elif source.endswith("/") or fs.isdir(path):
            found = [info for info in fs.find(path, detail=True).values()
                     if _is_object(info) and keep(posixpath.basename(info["name"]))]
            if not found:
                _check_bucket(fs, scheme, path)
                raise InputDataError(f"{source}: no CSV or Parquet object under this prefix")
        else:
            found = [_info(fs, scheme, path, source)]
    return sorted((stored_object(scheme, info) for info in found), key=lambda stored: stored.url)


def _is_object(info: Mapping[str, Any]) -> bool:
    return info.get("type") == "file" and not info["name"].endswith("/")


def _info(fs: Any, scheme: str, path: str, source: str) -> Mapping[str, Any]:
    try:
        return fs.info(path)
    except FileNotFoundError:
        _check_bucket(fs, scheme, path)
        raise InputDataError(f"{source}: no such object") from None


def _check_bucket(fs: Any, scheme: str, path: str) -> None:
    """An input error when the bucket (container) of `path` does not exist."""
    bucket = path.split("/", 1)[0]
    if not fs.exists(bucket):
        raise InputDataError(f"{_url(scheme, bucket)}: no such bucket")


def stored_object(scheme: str, info: Mapping[str, Any]) -> StoredObject:
    """The StoredObject of a listing entry (`info`) of a `scheme://` store."""
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if tag is None:  # a store without ETags: the modification time stands in
        modified = info.get("LastModified") or info.get("last_modified") or info.get("updated") or info.get("mtime")
        tag = f"modified:{modified}" if modified is not None else None
    version = info.get("VersionId") or info.get("version_id") or info.get("generation")
    return StoredObject(_url(scheme, info["name"]), int(info["size"]), str(tag).strip('"') if tag else None,
                        str(version) if version else None)


@contextmanager
def open_object(url: str, options: Mapping[str, Any] | None, *, compression: str | None = None,
                block_size: int = RANGE_BLOCK, exact: bool = False) -> Iterator[BinaryIO]:
    """The object at `url` opened for reading (decompressed with `compression`: gzip,
    zstd), asking the store for `block_size` bytes at a time beyond what is read (`exact`:
    for exactly what is read, nothing ahead). Every failure in the block, the reads
    included, is the engine's error (`storage_errors`)."""
    from fsspec.compression import compr

    with storage_errors(url, options):
        fs = filesystem(url, options)
        cache_type = "none" if exact else "readahead"
        with fs.open(object_key(fs, url), "rb", block_size=block_size, cache_type=cache_type) as raw:
            if compression is None:
                yield raw
            else:
                with compr[compression](raw, mode="rb") as decompressed:
                    yield decompressed


def _corrupt_data_errors() -> tuple[type[BaseException], ...]:
    """What the decompressors raise for a damaged stream."""
    errors: tuple[type[BaseException], ...] = (EOFError, zlib.error)
    try:
        from zstandard import ZstdError
    except ImportError:
        return errors
    return (*errors, ZstdError)


@contextmanager
def storage_errors(url: str, options: Mapping[str, Any] | None, *, reading: bool = True) -> Iterator[None]:
    """Failures of object storage in the block as the engine's one-line errors, naming
    `url` and never a credential. Reading an input: a missing bucket or object, or access
    denied, is an input error (exit 3). Writing the outputs, the store refuses the run
    (ServiceError, exit 5). Unreachable, in either case: ServiceError (exit 5). No
    credentials found: a configuration error (exit 2)."""
    try:
        yield
    except EngineError:
        raise
    except ImportError as error:
        extra = SCHEMES.get(urlsplit(url).scheme.lower(), "s3")
        raise ConfigurationError(f"{url}: object storage needs the {_PACKAGES[extra]} package "
                                 f"({error.name or error}): pip install 'sales-engine[{extra}]'") from None
    except _corrupt_data_errors() as error:
        raise InputDataError(f"{url}: cannot be decompressed ({failure_reason(error, options)})") from None
    except Exception as error:
        translated = _translated(url, error, options or {}, reading)
        if translated is None:
            raise
        raise translated from None


def _translated(url: str, error: Exception, options: Mapping[str, Any], reading: bool) -> EngineError | None:
    names = {kind.__name__ for kind in type(error).__mro__}
    reason = failure_reason(error, options)
    refused = InputDataError if reading else ServiceError
    if names & _MISSING_CREDENTIALS:
        return ConfigurationError(f"{url}: no credentials for object storage ({reason}); give them the standard "
                                  "way (AWS_* variables, a profile, an instance role) or in storage.options")
    if names & _CONNECTION_ERRORS:
        return ServiceError(f"{url}: object storage at {endpoint(url, options)} cannot be reached ({reason})")
    if isinstance(error, FileNotFoundError):
        return refused(f"{url}: no such bucket or object ({reason})")
    if isinstance(error, PermissionError):
        return refused(f"{url}: access denied ({reason})")
    if isinstance(error, OSError) or names & _STORE_ERRORS:
        return refused(f"{url}: {'cannot be read' if reading else 'cannot be written'} ({reason})")
    return None


def endpoint(url: str, options: Mapping[str, Any]) -> str:
    """The store `url` is on, as a message names it: the configured endpoint (its address
    only), else the provider's default."""
    configured = options.get("endpoint_url") or (options.get("client_kwargs") or {}).get("endpoint_url")
    if configured is None and SCHEMES.get(urlsplit(url).scheme.lower()) == "s3":
        configured = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not configured:
        return "the default endpoint"
    parts = urlsplit(str(configured))
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def failure_reason(error: BaseException, options: Mapping[str, Any] | None) -> str:
    """A store's error as one line of a message, without any secret option's value."""
    text = " ".join(str(error).split()) or type(error).__name__
    return _redacted(text, options or {})[:300]


def _redacted(text: str, options: Mapping[str, Any]) -> str:
    """`text` without the value of any secret option (at any depth of `options`)."""
    for value in _secret_values(options):
        text = text.replace(value, "***")
    return text


def _secret_values(options: Mapping[str, Any]) -> Iterator[str]:
    for name, value in options.items():
        if isinstance(value, Mapping):
            yield from _secret_values(value)
        elif isinstance(value, str) and len(value) >= 4 and _SECRET_OPTION.search(str(name)):
            yield value
