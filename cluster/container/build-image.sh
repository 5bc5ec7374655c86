#!/usr/bin/env bash
# Builds the engine's container image (`make image`; docs/container.md):
#
#   1. installs podman and what it needs here (runc, netavark, aardvark-dns, iptables), and
#      mmdebstrap when the base has to be made, from Debian's packages when they are
#      missing (as root, like `make test` does for its packages);
#   2. configures podman in a work folder (podman-env.sh: build/podman/);
#   3. takes the base image BASE (default docker.io/library/debian:bookworm-slim) when a
#      registry has it, otherwise builds localhost/debian-base:bookworm from Debian's
#      packages with mmdebstrap (once; it stays in the work folder's store);
#   4. builds cluster/container/Containerfile with the host's package index and CA bundle
#      mounted for the build only (pip-mounts.py), tags it
#      registry.example.com/sales-engine:VERSION (what cluster/kubernetes/ names) and
#      localhost/sales-engine:VERSION, and IMAGE:VERSION when IMAGE is set;
#   5. saves it as an OCI archive, build/sales-engine-VERSION.oci.tar.
#
# An image built from the same sources (Containerfile, these scripts, pyproject.toml,
# README.md, engine/) is not built again: the hash of those files is its label
# sales-engine.source-hash. FORCE=1 builds anyway (podman's layer cache still applies).
#
# Environment: BASE, IMAGE, FORCE, CONTAINER_WORK, DEBIAN_MIRROR (for mmdebstrap).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

VERSION="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)"
[ -n "$VERSION" ] || { echo "build-image: no version in pyproject.toml" >&2; exit 1; }
NAME="registry.example.com/sales-engine"
LOCAL_NAME="localhost/sales-engine"
ARCHIVE="$ROOT/build/sales-engine-$VERSION.oci.tar"
DEFAULT_BASE="docker.io/library/debian:bookworm-slim"
LOCAL_BASE="localhost/debian-base:bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY="${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"

say() { echo "build-image: $*" >&2; }
elapsed() { echo "$(( $(date +%s) - START ))s"; }
START="$(date +%s)"

# --- 1. the tools ------------------------------------------------------------------------
install_debs() {  # install_debs PACKAGE... (only those whose probe is missing)
  local missing=() pair package probe
  for pair in "$@"; do
    package="${pair%%:*}"; probe="${pair#*:}"
    if [ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1; then :; else missing+=("$package"); fi
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "needs these Debian packages: ${missing[*]} (apt-get install -y ${missing[*]}, as root)"
    exit 1
  fi
  say "installing ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}
# podman with runc (crun 1.8 cannot run on this machine's hybrid cgroups), netavark and
# aardvark-dns (container networks with names), iptables (netavark's firewall). A user
# other than root with podman of their own uses it as it is.
if [ "$(id -u)" -eq 0 ] || ! command -v podman >/dev/null 2>&1; then
  install_debs podman:podman runc:/usr/sbin/runc netavark:/usr/lib/podman/netavark \
               aardvark-dns:/usr/lib/podman/aardvark-dns iptables:/usr/sbin/iptables
fi

# shellcheck source=podman-env.sh
source "$HERE/podman-env.sh"
exec 9>"$CONTAINER_WORK/build.lock"
flock 9  # one build at a time per work folder (the context and pip folders are shared)

# --- 2. up to date? ------------------------------------------------------------------------
# The build context holds only what the Containerfile copies, taken once: the hash is of
# exactly what is built, whatever changes in the working tree meanwhile.
CONTEXT="$CONTAINER_WORK/context"
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
tar -c --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md engine | tar -x -C "$CONTEXT"
source_hash() {
  {
    for file in Containerfile build-image.sh podman-env.sh pip-mounts.py; do
      printf '%s %s\n' "$(sha256sum <"$HERE/$file" | cut -d' ' -f1)" "$file"
    done
    (cd "$CONTEXT" && find . -type f | LC_ALL=C sort | while IFS= read -r file; do
      printf '%s %s\n' "$(sha256sum <"$file" | cut -d' ' -f1)" "$file"
    done)
  } | sha256sum | cut -d' ' -f1
}
HASH="$(source_hash)"
label() { podman image inspect --format '{{index .Labels "sales-engine.source-hash"}}' "$1" 2>/dev/null || true; }
if [ -z "${FORCE:-}" ] && [ "$(label "$NAME:$VERSION")" = "$HASH" ] && [ -f "$ARCHIVE" ] \
   && [ "$(cat "$ARCHIVE.source-hash" 2>/dev/null)" = "$HASH" ]; then
  rm -rf "$CONTEXT"
  say "$NAME:$VERSION is up to date (sources $HASH); FORCE=1 builds it again"
  [ -z "${IMAGE:-}" ] || podman tag "$NAME:$VERSION" "$IMAGE:$VERSION"
  echo "$NAME:$VERSION"
  exit 0
fi

# --- 3. the base -----------------------------------------------------------------------------
base_from_debian() {
  if podman image exists "$LOCAL_BASE"; then return 0; fi
  install_debs mmdebstrap:mmdebstrap
  say "no registry has $DEFAULT_BASE: building $LOCAL_BASE from Debian's packages (mmdebstrap)"
  local tar="$CONTAINER_WORK/tmp/debian-base.tar"
  # minbase with merged /usr and the documentation, manual pages and translations left
  # out, as Debian's own -slim images (about 75 MB)
  mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/apt "$1"/var/log/dpkg.log' \
    bookworm "$tar" \
    "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_MIRROR bookworm-updates main" \
    "deb $DEBIAN_SECURITY bookworm-security main" >&2
  podman import --change 'CMD ["/bin/bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tar" "$LOCAL_BASE" >/dev/null
  rm -f "$tar"
}
if [ -n "${BASE:-}" ]; then
  podman image exists "$BASE" || podman pull -q "$BASE" >/dev/null
elif podman image exists "$DEFAULT_BASE" || timeout 120 podman pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
  BASE="$DEFAULT_BASE"
else
  base_from_debian
  BASE="$LOCAL_BASE"
fi
say "base $BASE ($(elapsed))"

# --- 4. the build ------------------------------------------------------------------------------
# The host's package index and CA bundle, mounted for the build's RUN steps only.
PIP_FOLDER="$CONTAINER_WORK/pip"
rm -rf "$PIP_FOLDER"
listing="$( (python3 -m pip config list 2>/dev/null || true) )"
mounts=(-v "$PIP_FOLDER:/run/build:ro")
while IFS= read -r line; do
  [ -n "$line" ] && mounts+=(-v "$line:ro")
done < <(printf '%s\n' "$listing" | python3 "$HERE/pip-mounts.py" "$PIP_FOLDER")

previous="$(podman image inspect --format '{{.Id}}' "$NAME:$VERSION" 2>/dev/null || true)"
tags=(-t "$NAME:$VERSION" -t "$LOCAL_NAME:$VERSION")
[ -z "${IMAGE:-}" ] || tags+=(-t "$IMAGE:$VERSION")
ulimits=()
for limit in $CONTAINER_ULIMITS; do ulimits+=(--ulimit "$limit"); done
common=(--layers --pull=never --format oci -f "$HERE/Containerfile" "${ulimits[@]}"
        --build-arg "BASE=$BASE" --build-arg PIP_CONFIG_REQUIRED=1)
# 4a. The stages that install Python packages, with the index and CA bundle mounted. The
# runtime stage is left out: `podman build -v` mounts into every RUN step and leaves the
# empty mount points in that step's layer.
podman build "${common[@]}" --target app "${mounts[@]}" "$CONTEXT" >&2
# 4b. The image, with nothing mounted: the stages above come from the layer cache (a pip
# step that ran again would fail for want of /run/build/pip.conf).
podman build "${common[@]}" "${tags[@]}" \
  --label "org.opencontainers.image.title=sales-engine" \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.base.name=$BASE" \
  --label "sales-engine.source-hash=$HASH" \
  "$CONTEXT" >&2
rm -rf "$CONTEXT" "$PIP_FOLDER"
built="$(podman image inspect --format '{{.Id}}' "$NAME:$VERSION")"
if [ -n "$previous" ] && [ "$previous" != "$built" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true  # the image this one replaces, if nothing else uses it
fi
say "built $NAME:$VERSION ($(elapsed))"

# --- 5. the archive ---------------------------------------------------------------------------
mkdir -p "$(dirname "$ARCHIVE")"
rm -f "$ARCHIVE.tmp" "$ARCHIVE.source-hash"
podman save --format oci-archive -o "$ARCHIVE.tmp" "$NAME:$VERSION"
mv -f "$ARCHIVE.tmp" "$ARCHIVE"
echo "$HASH" >"$ARCHIVE.source-hash"
size="$(podman image inspect --format '{{.Size}}' "$NAME:$VERSION")"
say "saved $ARCHIVE; image $((size / 1000000)) MB uncompressed ($(elapsed))"
echo "$NAME:$VERSION"
