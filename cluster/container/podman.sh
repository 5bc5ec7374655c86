#!/usr/bin/env bash
# podman with the store and configuration `make image` uses (build/podman/):
#
#   cluster/container/podman.sh images
#   cluster/container/podman.sh run --rm registry.example.com/sales-engine:0.1.0 engine --version
#
# Any podman command works; CONTAINER_WORK names another work folder.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/podman-env.sh"
exec podman "$@"
