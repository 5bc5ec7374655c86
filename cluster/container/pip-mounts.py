"""The host's package index for an image build, without leaving it in the image.

Reads what `pip config list` prints on standard input (the configuration files and PIP_*
variables the host's pip uses) and writes into FOLDER:

  pip.conf   index-url, extra-index-url, find-links and trusted-host as the host has them,
             local folders (file:// URLs and paths) rewritten to where the build mounts
             them, and `cert` naming ca.crt (a copy of the host's CA bundle) when the host
             has one;
  ca.crt     that copy.

It prints one `HOST_FOLDER:CONTAINER_FOLDER` a line: the local index folders to mount
read-only. build-image.sh mounts FOLDER at /run/build and those folders under
/run/build-index for the build's RUN steps only (`podman build -v`), so neither the
index nor the certificates are in any layer. Client certificates and keys are left out.

    python3 -m pip config list | python3 pip-mounts.py FOLDER
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

MOUNT = "/run/build"
INDEXES = "/run/build-index"
DEFAULT_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# later wins: the files' [global], then [install], then PIP_* variables
PRECEDENCE = {"global": 0, "install": 1, ":env:": 2}


def host_settings(listing: str) -> dict[str, str]:
    entries = []
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if not sep or section not in PRECEDENCE:
            continue
        try:
            entries.append((PRECEDENCE[section], name, str(ast.literal_eval(value))))
        except (ValueError, SyntaxError):
            continue
    return {name: value for _, name, value in sorted(entries, key=lambda entry: entry[0])}


class Mounts:
    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def at(self, folder: Path) -> str:
        """Where the build sees a host folder."""
        key = str(folder.resolve())
        if key not in self.folders:
            self.folders[key] = f"{INDEXES}/{len(self.folders) + 1}"
        return self.folders[key]


def local_path(location: str) -> Path | None:
    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" not in location and location.startswith("/"):
        return Path(location)
    return None


def index_location(location: str, mounts: Mounts) -> str | None:
    """An index URL: a local one is mounted with its parent, as a PEP 503 index's pages
    may link to files beside it (../../files/...)."""
    path = local_path(location)
    if path is None:
        return location
    if not path.is_dir():
        return None
    return f"file://{mounts.at(path.parent)}/{path.name}"


def links_location(location: str, mounts: Mounts) -> str | None:
    """A find-links entry: a folder of wheels, a page, or a URL."""
    path = local_path(location)
    if path is None:
        return location
    if path.is_dir():
        return mounts.at(path)
    if path.is_file():
        return f"{mounts.at(path.parent)}/{path.name}"
    return None


def main(folder: Path, listing: str) -> None:
    settings = host_settings(listing)
    mounts = Mounts()
    lines = ["[global]"]
    if "index-url" in settings:
        if (index := index_location(settings["index-url"], mounts)) is not None:
            lines.append(f"index-url = {index}")
    extra = [index_location(url, mounts) for url in settings.get("extra-index-url", "").split()]
    if extra := [url for url in extra if url]:
        lines.append("extra-index-url = " + " ".join(extra))
    links = [links_location(url, mounts) for url in settings.get("find-links", "").split()]
    if links := [url for url in links if url]:
        lines.append("find-links = " + " ".join(links))
    if settings.get("trusted-host"):
        lines.append(f"trusted-host = {settings['trusted-host']}")
    for name in ("timeout", "default-timeout", "retries"):
        if name in settings:
            lines.append(f"{name} = {settings[name]}")

    folder.mkdir(parents=True, exist_ok=True)
    bundle = settings.get("cert") or (DEFAULT_BUNDLE if Path(DEFAULT_BUNDLE).is_file() else "")
    if bundle and Path(bundle).is_file():
        shutil.copyfile(bundle, folder / "ca.crt")
        lines.append(f"cert = {MOUNT}/ca.crt")
    elif (folder / "ca.crt").exists():
        (folder / "ca.crt").unlink()
    (folder / "pip.conf").write_text("\n".join(lines) + "\n")
    for host, inside in mounts.folders.items():
        print(f"{host}:{inside}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.umask(0o022)
    main(Path(sys.argv[1]), sys.stdin.read())
