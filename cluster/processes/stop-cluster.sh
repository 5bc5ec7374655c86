#!/usr/bin/env bash
# Stop the cluster that start-cluster.sh started from a run directory: SIGTERM to every
# process in its pid files (workers before the scheduler), a bounded
# wait, then SIGKILL for stragglers. Safe to run when nothing runs.
#
#   cluster/processes/stop-cluster.sh [--run-dir DIR] [--timeout SECONDS]
set -euo pipefail

RUN_DIR=${CLUSTER_RUN_DIR:-./dask-cluster}
TIMEOUT=${CLUSTER_STOP_TIMEOUT:-20}
while (($#)); do
    (($# >= 2)) || { echo "usage: $0 [--run-dir DIR] [--timeout SECONDS]" >&2; exit 2; }
    case $1 in
        --run-dir) RUN_DIR=$2 ;;
        --timeout) TIMEOUT=$2 ;;
        *) echo "usage: $0 [--run-dir DIR] [--timeout SECONDS]" >&2; exit 2 ;;
    esac
    shift 2
done

pid_files=()
for pid_file in "$RUN_DIR"/worker-*.pid "$RUN_DIR"/scheduler.pid; do
    [[ -e $pid_file ]] && pid_files+=("$pid_file")
done
if ((${#pid_files[@]} == 0)); then
    echo "no Dask cluster running from $RUN_DIR (no pid files)"
    exit 0
fi

# Each process leads its own process group (start-cluster.sh uses set -m). SIGTERM goes
# to the leader, so a worker's nanny closes its worker process cleanly; SIGKILL goes to
# the whole group (-PID), so nothing the nanny forked survives it.
running() { kill -0 -- "-$1" 2>/dev/null; }

pids=()
for pid_file in "${pid_files[@]}"; do
    pid=$(cat "$pid_file")
    if running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    fi
done

deadline=$((SECONDS + TIMEOUT))
for pid in "${pids[@]}"; do
    while running "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if running "$pid"; then
        echo "process group $pid still running after $TIMEOUT s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
done

rm -f "${pid_files[@]}"
echo "stopped ${#pids[@]} process(es) from $RUN_DIR (logs kept)"
