#!/usr/bin/env bash
# The full check, the same locally and in CI (.ci/run): formatting, lints, then every test
# target. The integration tests start real Redis Cluster nodes, so Redis comes first.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh harness_selftest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-redis.sh
scripts/install-chromium.sh

# A minimal rustup profile has neither rustfmt nor clippy.
if ! cargo fmt --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
    rustup component add clippy
fi

echo "== cargo fmt --all -- --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test --all-targets"
cargo test --all-targets "$@"
