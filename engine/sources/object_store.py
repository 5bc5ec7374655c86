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
3 attempts in all (`max_attempts` 2: botocore counts the retries), a 5 s connect timeout and a 20 s read timeout (`storage.options`
`config_kwargs` overrides them), and s3fs's own retries cut from 5 to 2 (docs/storage.md
has the resulting waits). engine.storage.objects publishes outputs to object storage
with the same filesystem and errors.

Whose fault a failure is decides its exit code (`storage_errors`): the store failing
(500, 503, SlowDown after the retries), unreachable, or refusing the credentials
themselves (an unknown key, a bad signature, an expired token) is a ServiceError (exit 5);
a missing or forbidden input object, for credentials the store accepts, is an input error
(exit 3).
"""

from __future__ import annotations

import copy
import errno
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
SCHEMES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "abfss": "azure", "az": "azure"}
_PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
#: schemes fsspec does not know, as the protocol of the same store
_PROTOCOLS = {"s3n": "s3"}
#: bounded retries and timeouts (see the module's description); s3fs's own retry loop,
#: which covers a transfer broken mid-way, runs each call at most twice
_S3_CONFIG = {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 2, "mode": "standard"}}
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
#: a store's error codes that refuse the credentials themselves (not what they may do):
#: S3's and STS's, and Azure's; and the exceptions of a refused token refresh (Google)
_REFUSED_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException",
                        "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId", "UnrecognizedClientException",
                        "InvalidSecurity", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed", "NotSignedUp",
                        "AccountProblem", "AuthenticationFailed", "InvalidAuthenticationInfo"}
_REFUSED_CREDENTIALS_TYPES = {"RefreshError"}
#: a store's error codes that say the store itself is failing or overloaded (besides any 5xx or 429 answer)
_STORE_FAILING = {"InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
                  "RequestLimitExceeded", "TooManyRequests", "ServerBusy", "OperationTimedOut"}
#: what s3fs turns a 500 (EREMOTEIO) and a 503 or SlowDown (EBUSY) into, after its retries
_STORE_FAILING_ERRNOS = {getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY}


def url_scheme(location: str) -> str | None:
    """The URL scheme of an INPUT, output or dataset location (lower case); None for a
    local path (`C:` is a drive, not a scheme)."""
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    return scheme if len(scheme) > 1 else None


def is_url(location: str) -> bool:
    """True for a URL other than `file://`: object storage, a database, a plug-in's source."""
    return url_scheme(location) not in (None, "file")


def is_object_url(location: str) -> bool:
    """True when `location` is an object-storage URL (`s3://`, `gs://`, `abfs://`, ...)."""
    return url_scheme(location) in SCHEMES


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
    protocol = _PROTOCOLS.get(scheme, scheme)
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if _ENVIRONMENT.match(k)))
    key = (protocol, json.dumps(options or {}, sort_keys=True, default=str), environment)
    with _filesystems_lock:
        if key not in _filesystems:
            _filesystems[key] = _open_filesystem(protocol, extra, dict(options or {}))
        return _filesystems[key]


def _open_filesystem(scheme: str, extra: str, options: dict[str, Any]) -> Any:
    import fsspec

    if extra == "s3":
        options["config_kwargs"] = _merged(_S3_CONFIG, options.get("config_kwargs") or {})
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


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `defaults` with `given` over them, nested mappings merged key by key (so
    `retries: {max_attempts: 5}` keeps the default retry mode). Nothing in it is shared
    with either: botocore rewrites its `retries` in place."""
    merged = copy.deepcopy(dict(defaults))
    for name, value in given.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merged(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def object_key(fs: Any, url: str) -> str:
    """`url` as the filesystem names it: `bucket/key`."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in _PROTOCOLS:
        url = f"{_PROTOCOLS[scheme.lower()]}://{rest}"
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
    """An input error when the bucket (container) of `path` does not exist (any other
    failure of the store's answer is raised as it is)."""
    bucket = path.split("/", 1)[0]
    try:
        probe_bucket(fs, scheme, bucket)
    except FileNotFoundError:
        raise InputDataError(f"{_url(scheme, bucket)}: no such bucket") from None


def probe_bucket(fs: Any, scheme: str, bucket: str) -> None:
    """Ask the store for `bucket` (one listing of at most one key on S3; the container's
    own description elsewhere): FileNotFoundError when it does not exist, the store's
    error when it cannot be reached or refuses. Reads nothing else, writes nothing."""
    if SCHEMES[scheme] == "s3":
        fs.call_s3("list_objects_v2", Bucket=bucket, MaxKeys=1)
    else:
        fs.info(bucket)


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
    denied to credentials the store accepts, is an input error (exit 3). Writing the
    outputs, the store refuses the run (ServiceError, exit 5). In either case a store that
    cannot be reached, that fails (5xx, SlowDown, after the retries), or that refuses the
    credentials themselves (an unknown key, a bad signature, an expired token) is a
    ServiceError (exit 5), as a database refusing a password is. No credentials found: a
    configuration error (exit 2)."""
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
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        reason = failure_reason(Exception(error.strerror), options)  # the store's message, not "[Errno 16] ..."
    code, status = store_answer(error)
    if isinstance(error, PermissionError) and reading and code in (None, "403"):
        code = _code_of_refusal(url, options) or code  # a HEAD's refusal has no code: ask again
    if code in _REFUSED_CREDENTIALS or status == 401 or names & _REFUSED_CREDENTIALS_TYPES:
        return ServiceError(f"{url}: object storage at {endpoint(url, options)} refused the credentials "
                            f"({_with_code(reason, code)})")
    if (code in _STORE_FAILING or (status is not None and (status >= 500 or status == 429))
            or (code is None and isinstance(error, OSError) and error.errno in _STORE_FAILING_ERRNOS)):
        return ServiceError(f"{url}: object storage at {endpoint(url, options)} failed the request "
                            f"({_with_code(reason, code)})")
    if isinstance(error, FileNotFoundError):
        return refused(f"{url}: no such bucket or object ({reason})")
    if isinstance(error, PermissionError):
        return refused(f"{url}: access denied ({reason})")
    if isinstance(error, OSError) or names & _STORE_ERRORS:
        return refused(f"{url}: {'cannot be read' if reading else 'cannot be written'} ({reason})")
    return None


def store_answer(error: BaseException) -> tuple[str | None, int | None]:
    """The error code and HTTP status of the store's answer behind `error` (s3fs keeps
    botocore's error as the cause of the OSError it raises; gcsfs and Azure errors carry
    them), or (None, None) when no answer is known."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            code = response["Error"].get("Code")
            return (str(code) if code else None), (status if isinstance(status, int) else None)
        status = getattr(current, "status_code", None)
        if status is None and not isinstance(current, OSError):
            status = getattr(current, "code", None)  # gcsfs's HttpError
        if isinstance(status, int) and not isinstance(status, bool):
            code = getattr(current, "error_code", None)
            return (str(code) if code else None), status
        current = current.__cause__ or current.__context__
    return None, None


def _code_of_refusal(url: str, options: Mapping[str, Any]) -> str | None:
    """Why S3 refused to read the object `url`, when the refusal came without a code (a
    HEAD's answer has no body): the code of the same refusal to a one-byte GET
    (InvalidAccessKeyId, AccessDenied, ...), or None."""
    if SCHEMES.get(urlsplit(url).scheme.lower()) != "s3" or url.endswith("/") or glob.has_magic(url):
        return None
    try:
        fs = filesystem(url, options)
        bucket, _, key = object_key(fs, url).partition("/")
        if key:
            fs.call_s3("get_object", Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].close()
    except Exception as error:  # the answer is what is asked for
        return store_answer(error)[0]
    return None


def _with_code(reason: str, code: str | None) -> str:
    return f"{code}: {reason}" if code and not code.isdigit() and code not in reason else reason


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
