#!/usr/bin/env bash
# Instructions per request of one or more slotgate binaries, counted by valgrind's callgrind: the
# same binary and workload give the same count to within about 0.3%, however busy the machine
# is, so a change of 1-2% that the load benchmark's noise hides shows here.
#
#   scripts/bench-instructions.sh [--requests N] [--clients C] [--pipeline P] [--test T] [--random]
#                                 BINARY...
#
#   --requests N  requests measured (default 200000), after 2,000 unmeasured ones
#   --clients C   redis-benchmark connections (default 4)
#   --pipeline P  requests per pipeline (default 16)
#   --test T      redis-benchmark test: set, get, ... (default set)
#   --random      keys spread over the keyspace (redis-benchmark -r 100000), so over every
#                 master; otherwise one key, one master
#
# Each binary runs alone under callgrind with one worker and the slow log off (under valgrind
# every request is slow, and logging each one would be measured instead), against the local
# cluster of scripts/local-cluster.sh, which is started if it is not running. The figure counts
# the whole process from the first measured request to the exit, in user space: the kernel's
# side of the syscalls is not in it, so compare binaries, not workloads. Needs valgrind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUESTS=200000
CLIENTS=4
PIPELINE=16
TEST=set
RANDOM_KEYS=()
SPREAD=""
BINARIES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --requests) REQUESTS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --pipeline) PIPELINE=$2; shift 2 ;;
        --test) TEST=$2; shift 2 ;;
        --random) RANDOM_KEYS=(-r 100000); SPREAD=", random keys"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) BINARIES+=("$1"); shift ;;
    esac
done
[ ${#BINARIES[@]} -gt 0 ] || { echo "bench-instructions: name at least one binary" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "bench-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 2; }

if ! redis-cli -p 7000 ping >/dev/null 2>&1; then
    "$ROOT/scripts/local-cluster.sh" start-bg >/dev/null
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf 'slowlog:\n  log_slower_than_us: -1\n' > "$WORK/slotgate.yaml"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts $1 under callgrind on $PORT with any further arguments; true once it answers PING,
# false (its log on stderr) if it exits or stays silent for 30 s.
start() {
    local bin=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
        "$bin" "$@" --listen "127.0.0.1:$PORT" --seed 127.0.0.1:7000 \
        --metrics-listen "127.0.0.1:$((PORT + 1000))" --workers 1 --log-level warn \
        >"$WORK/slotgate.log" 2>&1 &
    pid=$!
    for _ in $(seq 150); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    return 1
}

PORT=6390
for bin in "${BINARIES[@]}"; do
    while ! port_free "$PORT" || ! port_free $((PORT + 1000)); do PORT=$((PORT + 1)); done
    # A binary older than the slow log rejects its key: it has no slow log to turn off.
    if ! start "$bin" --config "$WORK/slotgate.yaml" && ! start "$bin"; then
        echo "bench-instructions: $bin did not start:" >&2
        cat "$WORK/slotgate.log" >&2
        exit 1
    fi
    bench() { timeout 600 redis-benchmark -p "$PORT" -P "$PIPELINE" -c "$CLIENTS" "${RANDOM_KEYS[@]}" -q -t "$TEST" "$@" >/dev/null; }
    bench -n 2000
    callgrind_control -z "$pid" >/dev/null
    bench -n "$REQUESTS"
    kill -TERM "$pid"
    wait "$pid" || true
    total=$(callgrind_annotate "$WORK/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
    echo "$bin: $((total / REQUESTS)) instructions per request ($TEST, $REQUESTS requests, $CLIENTS clients, pipeline $PIPELINE$SPREAD)"
    PORT=$((PORT + 1))
done
