"""Dataset identities by the OpenLineage naming conventions.

Local files: namespace `file`, name the absolute path. Object stores and HDFS:
namespace `scheme://authority` (`s3://bucket`, `gs://bucket`, `hdfs://namenode:8020`),
name the path inside it without the leading slash.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

LOCAL_NAMESPACE = "file"


def dataset_identity(location: str) -> tuple[str, str]:
    """(namespace, name) of a file or object at `location` (a path or a URL)."""
    parts = urlsplit(location)
    if parts.scheme and parts.scheme != "file" and len(parts.scheme) > 1:  # "C:" is a drive, not a scheme
        return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")
    path = parts.path if parts.scheme == "file" else location
    return LOCAL_NAMESPACE, os.path.abspath(path)


def datasource_uri(namespace: str, name: str) -> str:
    """The URI of a dataset, for the dataSource facet."""
    if namespace == LOCAL_NAMESPACE:
        return f"file://{name}"
    return f"{namespace}/{name}"
