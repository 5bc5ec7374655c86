# Sourced, not run: points podman at a work folder of this repository and writes the
# configuration this kind of machine needs there (build-image.sh, podman.sh and the tests
# source it).
#
#   CONTAINER_WORK   the work folder (default: <repo>/build/podman); it holds
#                    containers.conf, storage.conf, the image store (storage/), podman's
#                    run state (run/), its networks (networks/) and temporary files (tmp/).
#
# Nothing outside CONTAINER_WORK is configured, and the system's own store
# (/var/lib/containers/storage) is not used; podman 4.3 still keeps a blob-info cache in
# /var/lib/containers/cache and netavark its state in /run/containers/networks
# (docs/container.md lists what is left outside).
#
# Why each setting (measured on a Debian 12 machine without systemd, cgroups in hybrid mode):
#   runtime = "runc"          crun 1.8 fails with "cgroups in hybrid mode not supported"
#   cgroup_manager = cgroupfs no systemd to ask for cgroups
#   events_logger = "file"    no journald
#   default_ulimits           podman's defaults (nofile 1048576) are above this machine's hard
#                             limits: "setrlimit RLIMIT_NOFILE: Operation not permitted"; use
#                             the hard limits of the shell that configures it, capped at podman's
#                             (nproc also at kernel.pid_max). `podman build` ignores them, and a
#                             `podman run --ulimit` replaces them all: pass $CONTAINER_ULIMITS

_container_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONTAINER_WORK="${CONTAINER_WORK:-$_container_repo/build/podman}"
mkdir -p "$CONTAINER_WORK"
CONTAINER_WORK="$(cd "$CONTAINER_WORK" && pwd)"
mkdir -p "$CONTAINER_WORK"/{storage,run,networks,tmp}

_container_limit() {  # the hard limit `ulimit -H$1`, capped at $2 ("unlimited" counts as the cap)
  local hard
  hard="$(ulimit -H"$1")"
  if [ "$hard" = unlimited ] || [ "$hard" -gt "$2" ]; then echo "$2"; else echo "$hard"; fi
}
# nproc above kernel.pid_max fails the same way (measured: 32768 works, 32769 does not)
_container_pid_max="$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 4194304)"
[ "$_container_pid_max" -lt 4194304 ] || _container_pid_max=4194304

# `podman build` does not apply default_ulimits to its RUN steps: build-image.sh passes these
CONTAINER_ULIMITS="nofile=$(_container_limit n 1048576):$(_container_limit n 1048576) nproc=$(_container_limit u "$_container_pid_max"):$(_container_limit u "$_container_pid_max")"
cat >"$CONTAINER_WORK/containers.conf.$$" <<EOF
# written by cluster/container/podman-env.sh; rewritten whenever it is sourced
[containers]
default_ulimits = ["${CONTAINER_ULIMITS% *}", "${CONTAINER_ULIMITS#* }"]

[engine]
$( { command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ]; } && echo 'runtime = "runc"')
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CONTAINER_WORK/run/events.log"
tmp_dir = "$CONTAINER_WORK/run/libpod"
image_copy_tmp_dir = "$CONTAINER_WORK/tmp"
volume_path = "$CONTAINER_WORK/storage/volumes"

[network]
network_backend = "netavark"
network_config_dir = "$CONTAINER_WORK/networks"
EOF
cat >"$CONTAINER_WORK/storage.conf.$$" <<EOF
# written by cluster/container/podman-env.sh; rewritten whenever it is sourced
[storage]
driver = "overlay"
graphroot = "$CONTAINER_WORK/storage"
runroot = "$CONTAINER_WORK/run"
EOF
mv -f "$CONTAINER_WORK/containers.conf.$$" "$CONTAINER_WORK/containers.conf"
mv -f "$CONTAINER_WORK/storage.conf.$$" "$CONTAINER_WORK/storage.conf"
unset -f _container_limit
unset _container_repo _container_pid_max

export CONTAINERS_CONF="$CONTAINER_WORK/containers.conf"
export CONTAINERS_STORAGE_CONF="$CONTAINER_WORK/storage.conf"
export TMPDIR="$CONTAINER_WORK/tmp"
export CONTAINER_WORK CONTAINER_ULIMITS
