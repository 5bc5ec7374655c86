"""Dataset identities by the OpenLineage naming conventions.

Local files: namespace `file`, name the absolute path. Object stores and HDFS:
namespace `scheme://authority` (`s3://bucket`, `gs://bucket`, `hdfs://namenode:8020`),
name the path inside it without the leading slash; the Hadoop spellings of a store's
scheme name the same store (`s3a://`, `s3n://` are `s3://`; `gcs://` is `gs://`). A
dataset's data source is the store itself: `file://<host>` for local files, the
namespace for the others. Its storage layer is the store's scheme (`file`, `s3`, `gs`).
"""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

LOCAL_NAMESPACE = "file"
#: another spelling of a store's scheme -> the scheme the naming conventions use
_SAME_STORE = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}


def dataset_identity(location: str) -> tuple[str, str]:
    """(namespace, name) of a file or object at `location` (a path or a URL)."""
    parts = urlsplit(location)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:  # "C:" is a drive, not a scheme
        scheme = _SAME_STORE.get(parts.scheme.lower(), parts.scheme.lower())
        return f"{scheme}://{parts.netloc}", parts.path.lstrip("/")
    path = parts.path if parts.scheme == "file" else location
    return LOCAL_NAMESPACE, os.path.abspath(path)


def storage_layer(location: str) -> str:
    """The storage facet's `storageLayer` of a dataset at `location`: `file` for a local
    file, else its store's scheme (`s3`, `gs`, `abfss`, ...)."""
    namespace, _ = dataset_identity(location)
    return namespace.split("://", 1)[0] if "://" in namespace else namespace


def datasource_uri(namespace: str) -> str:
    """The URI of the storage a dataset is in, for the dataSource facet: the local
    filesystem (`file://<host>`) or the bucket or cluster (the namespace). One source for all
    of a store's datasets: consumers (Marquez) key data sources by name, so a per-file URI
    would leave the source with whichever file was written last."""
    if namespace == LOCAL_NAMESPACE:
        return f"file://{_host()}"
    return namespace


def _host() -> str:
    """This machine's name, when it can be a URI's host (else `localhost`)."""
    host = socket.gethostname()
    return host if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", host) else "localhost"
