#!/usr/bin/env bash
# slotgate in front of a local Redis Cluster (3 masters + 3 replicas on 127.0.0.1:7000-7005), for
# trying slotgate out and for benchmarks.
#
#   scripts/local-cluster.sh [start] [-- SLOTGATE_ARGS...]
#       Install Redis if missing, build slotgate (release), start the cluster (or reuse the one
#       already running from an earlier start), then run slotgate in the foreground on
#       127.0.0.1:6380 (metrics on 127.0.0.1:8379). Ctrl-C stops slotgate; the cluster keeps
#       running until `scripts/local-cluster.sh stop`.
#   scripts/local-cluster.sh start-bg | --background [-- SLOTGATE_ARGS...]
#       The same with slotgate in the background (log in .local-cluster/slotgate.log); returns
#       once `redis-cli -p 6380 ping` answers PONG.
#   scripts/local-cluster.sh stop
#       Stop slotgate (started by this script, foreground or background) and the cluster nodes,
#       and remove .local-cluster/.
#   scripts/local-cluster.sh status
#
# SLOTGATE_BIN=/path/to/slotgate skips the build and runs that binary instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA="$ROOT/.local-cluster"
PORTS=(7000 7001 7002 7003 7004 7005)
# One replica per master.
REPLICAS_EXPECTED=$(( ${#PORTS[@]} / 2 ))
NODE_TIMEOUT_MS=5000
LISTEN_PORT=6380
LISTEN="127.0.0.1:$LISTEN_PORT"
SEED="127.0.0.1:${PORTS[0]}"
METRICS="127.0.0.1:8379"
# cargo puts the binary under $CARGO_TARGET_DIR when that is set (relative to where cargo runs,
# which is $ROOT below).
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
[ "${TARGET_DIR#/}" = "$TARGET_DIR" ] && TARGET_DIR="$ROOT/$TARGET_DIR"
BIN="${SLOTGATE_BIN:-$TARGET_DIR/release/slotgate}"

log() { echo "local-cluster: $*"; }
die() {
    echo "local-cluster: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# True if something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp: no extra tools).
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if the Redis on $1 is a node of this checkout's cluster, judged by its data directory, so
# that we never reuse or shut down somebody else's Redis.
is_our_node() {
    local dir
    dir=$(timeout 2 redis-cli -p "$1" config get dir 2>/dev/null | sed -n 2p) || return 1
    [ "$dir" = "$DATA/$1" ]
}

# kill -0 also succeeds for a zombie, which a killed background slotgate stays until its new
# parent reaps it (some container inits do that late).
alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || true
    [ "$state" != Z ]
}

log_tail() {
    if [ -f "$1" ]; then
        echo "--- last lines of $1:" >&2
        tail -n 20 "$1" >&2
    fi
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        "$ROOT/scripts/install-redis.sh"
    fi
}

build_slotgate() {
    if [ -n "${SLOTGATE_BIN:-}" ]; then
        log "using SLOTGATE_BIN=$BIN (no build)"
    else
        command -v cargo >/dev/null 2>&1 || die "cargo not found; install the Rust toolchain (https://rustup.rs)."
        log "building slotgate (cargo build --release)"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed; see the errors above."
    fi
    [ -x "$BIN" ] || die "slotgate binary not found at $BIN."
}

start_node() {
    local port=$1 dir="$DATA/$1"
    mkdir -p "$dir"
    redis-server --port "$port" --bind 127.0.0.1 --protected-mode no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$NODE_TIMEOUT_MS" --save "" --appendonly no \
        || die "redis-server on port $port did not start."
}

wait_pong() {
    local port=$1
    for _ in $(seq 100); do
        [ "$(timeout 2 redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ] && return 0
        sleep 0.1
    done
    return 1
}

# A node's nodes.conf lists every member once the cluster has been created, and the masters' lines
# carry their slot ranges; a fresh node lists only itself.
formed() {
    local conf="$DATA/$1/nodes.conf"
    [ -f "$conf" ] && awk -v want="${#PORTS[@]}" '
        $1 != "vars" { n++; if (NF >= 9) slots = 1 }
        END { exit !(n >= want && slots) }' "$conf"
}

# Each node's slot -> master map, as "port ranges..." lines; equal across nodes once they agree.
slot_map() {
    { timeout 2 redis-cli -p "$1" cluster nodes 2>/dev/null || true; } | awk '
        $3 ~ /master/ && NF >= 9 {
            split($2, a, /[:@]/); line = a[2]
            for (i = 9; i <= NF; i++) if ($i !~ /^\[/) line = line " " $i
            print line
        }' | sort
}

# cluster_state:ok on every node is not enough right after create: nodes briefly disagree about
# who serves which slot. Wait until every node is ok and all report the same slot map.
wait_cluster_ok() {
    local deadline=$((SECONDS + 60)) port first map ok
    while :; do
        ok=1
        first=$(slot_map "${PORTS[0]}")
        [ -n "$first" ] || ok=0
        for port in "${PORTS[@]}"; do
            if ! timeout 2 redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
                ok=0
                break
            fi
            map=$(slot_map "$port")
            if [ "$map" != "$first" ]; then
                ok=0
                break
            fi
        done
        # Replicas attach a moment after the slots are assigned; a cluster without them would
        # not survive the first failover a user tries.
        if [ "$ok" = 1 ] && [ "$(timeout 2 redis-cli -p "${PORTS[0]}" cluster nodes 2>/dev/null | grep -c slave)" -lt "$REPLICAS_EXPECTED" ]; then
            ok=0
        fi
        [ "$ok" = 1 ] && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "cluster not ok after 60 s; node views:" >&2
            for port in "${PORTS[@]}"; do
                echo "--- $port:" >&2
                timeout 2 redis-cli -p "$port" cluster nodes >&2 || true
            done
            die "giving up; logs are in $DATA/<port>/redis.log. Start over with: scripts/local-cluster.sh stop"
        fi
        sleep 0.2
    done
}

start_cluster() {
    local port busy=() reused=0 started=0 nformed=0 bus
    for port in "${PORTS[@]}"; do
        bus=$((port + 10000))
        if is_our_node "$port"; then
            reused=$((reused + 1))
        elif port_open "$port" || port_open "$bus"; then
            busy+=("$port")
        fi
    done
    if [ "${#busy[@]}" -gt 0 ]; then
        die "ports ${busy[*]} (or their bus ports +10000) are in use, and not by a node of $DATA.
  If that is a cluster left from an earlier run, stop it: scripts/local-cluster.sh stop
  (run it in the checkout that started it), or shut a node down: redis-cli -p PORT shutdown nosave"
    fi

    mkdir -p "$DATA"
    # Keeps the data out of git without touching the repository's .gitignore.
    echo '*' >"$DATA/.gitignore"
    for port in "${PORTS[@]}"; do
        if ! is_our_node "$port"; then
            start_node "$port"
            started=$((started + 1))
        fi
    done
    for port in "${PORTS[@]}"; do
        if ! wait_pong "$port"; then
            log_tail "$DATA/$port/redis.log"
            die "redis-server on port $port does not answer PING."
        fi
        if formed "$port"; then nformed=$((nformed + 1)); fi
    done
    [ "$reused" -gt 0 ] && log "reusing $reused running node(s) from an earlier start"
    [ "$started" -gt 0 ] && log "started $started node(s) on ports ${PORTS[0]}-${PORTS[${#PORTS[@]} - 1]}, data in $DATA"

    if [ "$nformed" -eq 0 ]; then
        log "creating the cluster (3 masters, 1 replica each)"
        local addrs=()
        for port in "${PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$DATA/create.log" 2>&1 || {
            cat "$DATA/create.log" >&2
            die "redis-cli --cluster create failed. Start over with: scripts/local-cluster.sh stop"
        }
    elif [ "$nformed" -lt "${#PORTS[@]}" ]; then
        die "only $nformed of ${#PORTS[@]} nodes in $DATA belong to a formed cluster (an interrupted create?).
  Start over with: scripts/local-cluster.sh stop"
    else
        log "cluster already formed (nodes.conf), skipping create"
    fi
    wait_cluster_ok
    log "cluster ok: seed $SEED"
}

check_listen_free() {
    local pidfile="$DATA/slotgate.pid"
    if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then
        die "slotgate is already running (pid $(cat "$pidfile")); stop it with: scripts/local-cluster.sh stop"
    fi
    port_open "$LISTEN_PORT" && die "something already listens on $LISTEN; stop it first."
    port_open "${METRICS##*:}" && die "something already listens on $METRICS; stop it first."
    return 0
}

run_foreground() {
    check_listen_free
    log "slotgate on $LISTEN (metrics $METRICS); Ctrl-C stops slotgate, the cluster keeps running"
    log "(stop the cluster with: scripts/local-cluster.sh stop)"
    # exec keeps this pid, so `stop` from another terminal can find slotgate too.
    echo "$$" >"$DATA/slotgate.pid"
    exec "$BIN" --listen "$LISTEN" --seed "$SEED" --metrics-listen "$METRICS" "$@"
}

run_background() {
    check_listen_free
    local pid
    nohup "$BIN" --listen "$LISTEN" --seed "$SEED" --metrics-listen "$METRICS" "$@" \
        >"$DATA/slotgate.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$DATA/slotgate.pid"
    for _ in $(seq 300); do
        if [ "$(timeout 2 redis-cli -p "$LISTEN_PORT" ping 2>/dev/null)" = "PONG" ]; then
            log "slotgate (pid $pid) answers on $LISTEN, metrics on $METRICS, log in $DATA/slotgate.log"
            log "stop everything with: scripts/local-cluster.sh stop"
            return 0
        fi
        if ! alive "$pid"; then
            rm -f "$DATA/slotgate.pid"
            log_tail "$DATA/slotgate.log"
            die "slotgate exited before answering PING."
        fi
        sleep 0.1
    done
    log_tail "$DATA/slotgate.log"
    die "slotgate (pid $pid) did not answer PING on $LISTEN within 30 s; it is still running, stop it with: scripts/local-cluster.sh stop"
}

stop_all() {
    local pidfile="$DATA/slotgate.pid" pid port
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if alive "$pid"; then
            log "stopping slotgate (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    for port in "${PORTS[@]}"; do
        if is_our_node "$port"; then
            timeout 5 redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
        # A node that does not answer (e.g. stopped) but whose pid file says it is ours.
        pid=$(cat "$DATA/$port/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    for _ in $(seq 50); do
        local up=0
        for port in "${PORTS[@]}"; do is_our_node "$port" && up=1; done
        [ "$up" = 0 ] && break
        sleep 0.1
    done
    for port in "${PORTS[@]}"; do
        if port_open "$port" && ! is_our_node "$port"; then
            log "note: port $port is still in use by something that is not ours; left alone"
        fi
    done
    rm -rf "$DATA"
    log "stopped; removed $DATA"
}

status() {
    local port role state
    for port in "${PORTS[@]}"; do
        if is_our_node "$port"; then
            role=$(timeout 2 redis-cli -p "$port" role 2>/dev/null | head -n 1) || true
            state=$(timeout 2 redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_state://p') || true
            echo "node 127.0.0.1:$port  $role  cluster_state:$state"
        else
            echo "node 127.0.0.1:$port  not running"
        fi
    done
    if [ -f "$DATA/slotgate.pid" ] && alive "$(cat "$DATA/slotgate.pid")"; then
        echo "slotgate pid $(cat "$DATA/slotgate.pid") on $LISTEN: $(timeout 2 redis-cli -p "$LISTEN_PORT" ping 2>&1)"
    else
        echo "slotgate: not running"
    fi
}

cmd=${1:-start}
[ "$#" -gt 0 ] && shift
mode=""
case "$cmd" in
start)
    mode=foreground
    if [ "${1:-}" = "--background" ] || [ "${1:-}" = "-b" ]; then
        mode=background
        shift
    fi
    ;;
start-bg | --background | -b) mode=background ;;
stop) stop_all; exit 0 ;;
status) status; exit 0 ;;
-h | --help | help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac
[ "${1:-}" = "--" ] && shift

ensure_redis
build_slotgate
start_cluster
if [ "$mode" = background ]; then
    run_background "$@"
else
    run_foreground "$@"
fi
