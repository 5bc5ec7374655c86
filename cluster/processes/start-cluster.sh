#!/usr/bin/env bash
# Start a Dask cluster as plain processes on this machine: one `dask scheduler` and
# N `dask worker` processes, each with a log file and a pid file in a run directory.
# Stop it with stop-cluster.sh (same --run-dir).
#
#   cluster/processes/start-cluster.sh --workers 4 --memory-limit 4GiB
#   cluster/processes/start-cluster.sh --host 10.0.0.5 --port 8786 --dashboard-port off
#
# Every option also reads an environment variable (CLUSTER_HOST, CLUSTER_PORT, ...);
# they are not named DASK_* because dask reads every DASK_* variable as configuration.
set -euo pipefail

usage() {
    cat <<EOF
usage: $0 [options]
  --host HOST             IPv4 address or host name to bind (CLUSTER_HOST, default 127.0.0.1)
  --port PORT             scheduler port (CLUSTER_PORT, default 8786)
  --dashboard-port PORT   dashboard port on the same host, or "off" (CLUSTER_DASHBOARD_PORT, default 8787)
  --workers N             worker processes (CLUSTER_WORKERS, default 2)
  --threads N             threads per worker (CLUSTER_THREADS, default 1)
  --memory-limit SIZE     memory per worker, e.g. 4GiB (CLUSTER_MEMORY_LIMIT, default auto)
  --local-directory DIR   workers' spill directory (CLUSTER_LOCAL_DIRECTORY, default RUN_DIR/spill)
  --run-dir DIR           logs and pid files (CLUSTER_RUN_DIR, default ./dask-cluster)
  --timeout SECONDS       how long to wait for the cluster (CLUSTER_TIMEOUT, default 60)
  --tls-ca FILE --tls-cert FILE --tls-key FILE
                          serve tls:// with these PEM files (CLUSTER_TLS_CA, CLUSTER_TLS_CERT, CLUSTER_TLS_KEY)
The dask command is \${DASK:-dask}: activate the project's venv or set DASK=.venv/bin/dask.
EOF
}

HOST=${CLUSTER_HOST:-127.0.0.1}   # loopback by default: never all interfaces unless asked
PORT=${CLUSTER_PORT:-8786}
DASHBOARD_PORT=${CLUSTER_DASHBOARD_PORT:-8787}
WORKERS=${CLUSTER_WORKERS:-2}
THREADS=${CLUSTER_THREADS:-1}     # the engine's per-partition work is CPU-bound pandas/Arrow
MEMORY_LIMIT=${CLUSTER_MEMORY_LIMIT:-auto}
RUN_DIR=${CLUSTER_RUN_DIR:-./dask-cluster}
LOCAL_DIRECTORY=${CLUSTER_LOCAL_DIRECTORY:-}
TIMEOUT=${CLUSTER_TIMEOUT:-60}
TLS_CA=${CLUSTER_TLS_CA:-} TLS_CERT=${CLUSTER_TLS_CERT:-} TLS_KEY=${CLUSTER_TLS_KEY:-}
DASK=${DASK:-dask}

while (($#)); do
    [[ $1 == -h || $1 == --help ]] && { usage; exit 0; }
    (($# >= 2)) || { echo "error: $1 needs a value" >&2; exit 2; }
    case $1 in
        --host) HOST=$2 ;;
        --port) PORT=$2 ;;
        --dashboard-port) DASHBOARD_PORT=$2 ;;
        --workers) WORKERS=$2 ;;
        --threads) THREADS=$2 ;;
        --memory-limit) MEMORY_LIMIT=$2 ;;
        --local-directory) LOCAL_DIRECTORY=$2 ;;
        --run-dir) RUN_DIR=$2 ;;
        --timeout) TIMEOUT=$2 ;;
        --tls-ca) TLS_CA=$2 ;;
        --tls-cert) TLS_CERT=$2 ;;
        --tls-key) TLS_KEY=$2 ;;
        *) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift 2
done

command -v "$DASK" >/dev/null || { echo "error: no '$DASK' command; activate the venv or set DASK" >&2; exit 2; }
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
LOCAL_DIRECTORY=${LOCAL_DIRECTORY:-$RUN_DIR/spill}
for pid_file in "$RUN_DIR"/*.pid; do
    if [[ -e $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "error: a cluster is already running from $RUN_DIR (stop it with stop-cluster.sh --run-dir $RUN_DIR)" >&2
        exit 1
    fi
done
rm -f "$RUN_DIR"/*.pid

# TLS: all three files or none. Scheduler and workers prove themselves to each other
# with certificates signed by the CA, and so must every client (dask requires it).
PROTOCOL=tcp TLS_ARGS=()
if [[ -n $TLS_CA$TLS_CERT$TLS_KEY ]]; then
    for file in "$TLS_CA" "$TLS_CERT" "$TLS_KEY"; do
        [[ -r $file ]] || { echo "error: TLS needs readable --tls-ca, --tls-cert and --tls-key files" >&2; exit 2; }
    done
    PROTOCOL=tls TLS_ARGS=(--tls-ca-file "$TLS_CA" --tls-cert "$TLS_CERT" --tls-key "$TLS_KEY")
fi
ADDRESS=$PROTOCOL://$HOST:$PORT

# The dashboard (HTTP, no authentication) listens on the same host as the scheduler;
# workers' own dashboards likewise, on any free port.
if [[ $DASHBOARD_PORT == off ]]; then
    SCHEDULER_DASHBOARD=(--no-dashboard) WORKER_DASHBOARD=(--no-dashboard)
else
    SCHEDULER_DASHBOARD=(--dashboard-address "$HOST:$DASHBOARD_PORT") WORKER_DASHBOARD=(--dashboard-address "$HOST:0")
fi

# Each process in the background, detached from this shell's terminal (nohup, stdin
# from /dev/null) and in its own process group (set -m), so that stop-cluster.sh can
# end a worker's nanny and the worker process it forks together.
set -m
launch() {  # launch NAME ARGS...: start `dask ARGS...`, logging to RUN_DIR/NAME.log
    local name=$1
    shift
    nohup "$DASK" "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
}

fail() {  # stop what was started, show the logs' ends, exit non-zero
    echo "error: $1" >&2
    for log in "$RUN_DIR"/*.log; do
        echo "--- last lines of $log" >&2
        tail -n 5 "$log" >&2 || true
    done
    bash "$(dirname "$0")/stop-cluster.sh" --run-dir "$RUN_DIR" >&2 || true
    exit 1
}
trap 'fail "interrupted"' INT TERM  # the processes are in their own groups: Ctrl-C alone would not reach them

alive() {  # alive NAME: the process of RUN_DIR/NAME.pid is still running
    kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }  # bash's /dev/tcp: no extra tools
if port_open; then
    echo "error: $HOST:$PORT is already in use (choose another --port)" >&2
    exit 1
fi

launch scheduler scheduler --host "$HOST" --port "$PORT" --protocol "$PROTOCOL" \
    "${SCHEDULER_DASHBOARD[@]}" "${TLS_ARGS[@]}"

deadline=$((SECONDS + TIMEOUT))
until port_open; do  # the port answers once the scheduler listens
    alive scheduler || fail "the scheduler exited (see $RUN_DIR/scheduler.log)"
    ((SECONDS < deadline)) || fail "the scheduler did not listen on $HOST:$PORT within $TIMEOUT s"
    sleep 0.2
done

for ((i = 1; i <= WORKERS; i++)); do
    launch "worker-$i" worker "$ADDRESS" --name "worker-$i" --host "$HOST" \
        --nthreads "$THREADS" --memory-limit "$MEMORY_LIMIT" --local-directory "$LOCAL_DIRECTORY" \
        "${WORKER_DASHBOARD[@]}" "${TLS_ARGS[@]}"
done

# A worker is ready when it logs "Registered to:" (its handshake with the scheduler).
for ((i = 1; i <= WORKERS; i++)); do
    until grep -q "Registered to:" "$RUN_DIR/worker-$i.log" 2>/dev/null; do
        alive "worker-$i" || fail "worker-$i exited (see $RUN_DIR/worker-$i.log)"
        ((SECONDS < deadline)) || fail "worker-$i did not register with $ADDRESS within $TIMEOUT s"
        sleep 0.2
    done
done

TLS_ENV=""
if [[ $PROTOCOL == tls ]]; then  # the engine, a client, needs a certificate from the same CA too
    printf -v TLS_ENV 'ENGINE__CLUSTER__TLS=files ENGINE__CLUSTER__TLS_CA_FILE=%q ENGINE__CLUSTER__TLS_CERT=%q ENGINE__CLUSTER__TLS_KEY=%q ' \
        "$TLS_CA" "$TLS_CERT" "$TLS_KEY"
fi
echo "scheduler: $ADDRESS"
# The dashboard's URL as the scheduler logged it (it moves to another port if taken).
[[ $DASHBOARD_PORT == off ]] || echo "dashboard: $(sed -n 's/.*dashboard at: *//p' "$RUN_DIR/scheduler.log" | head -n 1)"
echo "workers:   $WORKERS x $THREADS thread(s), memory limit $MEMORY_LIMIT, logs and pids in $RUN_DIR"
echo "run:       ${TLS_ENV}engine run INPUT --mode distributed --scheduler $ADDRESS"
echo "stop:      $(dirname "$0")/stop-cluster.sh --run-dir $RUN_DIR"
