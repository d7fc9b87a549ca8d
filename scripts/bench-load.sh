#!/usr/bin/env bash
# The load benchmark: slotgate against direct, cluster-aware access to a real Redis Cluster
# (3 masters + 3 replicas on free loopback ports, started and removed by the bench itself).
#
#   scripts/bench-load.sh [--quick] [--rounds N] [--secs S] [--only NAME,...]
#
#   --quick      1 round of 1 s per target and workload: a smoke test of about a minute.
#   --rounds N   rounds per workload, each running every target once (default 3).
#   --secs S     measured seconds per run (default 4).
#   --only LIST  only these workloads, e.g. --only get-p1,mget-10.
#
# A full run takes about five minutes. It prints a table (throughput, latency percentiles,
# slotgate's CPU per request, memory and backend connections) and writes the same figures to
# target/bench-load.json (or under $CARGO_TARGET_DIR). Numbers from a machine that is busy with
# other work are noisy; compare the ratios, which are measured under the same noise.
#
# SLOTGATE_BENCH_CONFIG=FILE runs slotgate with that config file.
#
# An A/B run compares a change with an older slotgate binary in one interleaved run:
#
#   cp target/release/slotgate /tmp/slotgate-baseline     # built at the old commit
#   SLOTGATE_BENCH_BASELINE=/tmp/slotgate-baseline scripts/bench-load.sh --rounds 4
#
# Every round of every workload then runs a third target, "baseline" (that binary, with the same
# config and flags), beside direct and slotgate, so both binaries meet the same noise. A second
# table gives both binaries' req/s, p99, CPU per request and RSS and the ratio slotgate/baseline
# (total and median round); the JSON adds settings.baseline and, per workload, "baseline" and
# "vs_baseline". Copy the old binary out of target/ first: this script rebuilds
# target/release/slotgate from the working tree before it runs.
set -euo pipefail

# A relative path names a file from where the script was started, not from the cd below.
if [ -n "${SLOTGATE_BENCH_BASELINE:-}" ] && [[ "$SLOTGATE_BENCH_BASELINE" != /* ]]; then
    export SLOTGATE_BENCH_BASELINE="$PWD/$SLOTGATE_BENCH_BASELINE"
fi

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
