#!/usr/bin/env bash
# The failover benchmark: a steady load through slotgate (the release binary, as a child process)
# while one master of a real Redis Cluster (3 masters + 3 replicas on free loopback ports, started
# and removed by the bench itself) is SIGKILLed.
#
#   scripts/bench-failover.sh [--rounds N] [--node-timeout-ms MS] [--clients N] [--rate R]
#                             [--warmup-secs S] [--after-secs S] [--hold-timeout-ms MS]
#
#   --rounds N            rounds, each on a fresh cluster, killing the masters in turn (default 1).
#   --node-timeout-ms MS  cluster-node-timeout of the Redis nodes (default 2000).
#   --clients N           client connections at pipeline 1, pinned to the masters in turn (default 30).
#   --rate R              total requests per second; 0 runs the clients flat out (default 3000).
#   --warmup-secs S       load before the kill (default 3).
#   --after-secs S        load after the promotion is seen (default 3).
#   --hold-timeout-ms MS  slotgate's backend.hold_timeout_ms (default 17000, its own default).
#
# A round takes about 15-20 s. It prints a table (errors, kill -> promotion, promotion -> first
# success on the killed shard, kill -> last error, latency of the other shards during the outage
# and of the requests held on the killed one) and writes the same figures to
# target/bench-failover.json (or under $CARGO_TARGET_DIR); slotgate's log of round N is in
# target/bench-failover-slotgate-N.log.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { echo "bench-failover: $*" >&2; }

"$ROOT/scripts/install-redis.sh"

log "building slotgate (cargo build --release)"
cargo build --release
exec cargo bench --bench failover -- --bench "$@"
