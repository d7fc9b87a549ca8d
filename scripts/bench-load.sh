#!/usr/bin/env bash
# The load benchmark: slotgate against direct, cluster-aware access to a real Redis Cluster
# (3 masters + 3 replicas on free loopback ports, started and removed by the bench itself).
#
#   scripts/bench-load.sh [--quick] [--rounds N] [--secs S] [--only NAME,...]
#
#   --quick      1 round of 1 s per target and workload: a smoke test of about a minute.
#   --rounds N   rounds per workload, each running direct and slotgate once (default 3).
#   --secs S     measured seconds per run (default 4).
#   --only LIST  only these workloads, e.g. --only get-p1,mget-10.
#
# A full run takes about five minutes. It prints a table (throughput, latency percentiles,
# slotgate's CPU per request, memory and backend connections) and writes the same figures to
# target/bench-load.json (or under $CARGO_TARGET_DIR). Numbers from a machine that is busy with
# other work are noisy; compare the ratios, which are measured under the same noise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { echo "bench-load: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    "$ROOT/scripts/install-redis.sh"
fi

# 1,000 idle clients hold 1,000 sockets through slotgate and 3,000 in direct mode (one per
# master), all in this process tree.
WANT_FDS=16384
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$WANT_FDS" ]; then
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$WANT_FDS" ]; then
        ulimit -Sn "$WANT_FDS"
    else
        ulimit -Sn "$hard"
    fi
    log "raised the open-file limit from $soft to $(ulimit -Sn)"
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt 4500 ]; then
    log "warning: open-file limit $(ulimit -Sn) is too low for the 1,000-connection workload"
fi

log "building slotgate (cargo build --release)"
cargo build --release
exec cargo bench --bench load -- --bench "$@"
