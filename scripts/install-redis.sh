#!/usr/bin/env bash
# Makes sure redis-server and redis-cli (Redis 7 or newer) are installed, because the integration
# tests and scripts/local-cluster.sh start real Redis Cluster nodes. Safe to run repeatedly: it does
# nothing when both tools are already there.
set -euo pipefail

have_redis() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

# The harness passes Redis 7 options (e.g. --enable-debug-command); Redis 6 would refuse to start
# with an error far from the cause, so fail here instead.
check_version() {
    local version major
    version=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
    major=${version%%.*}
    if [ -z "$major" ] || [ "$major" -lt 7 ]; then
        echo "install-redis: need Redis 7 or newer, found '${version:-unknown}' ($(command -v redis-server))." >&2
        echo "install-redis: use Debian 12+/Ubuntu 24.04+, or the packages.redis.io apt repository." >&2
        exit 1
    fi
    echo "install-redis: using redis-server $version, $(redis-cli --version)"
}

if have_redis; then
    check_version
    exit 0
fi

# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
# On macOS: 'brew install redis'.
apt_install install-redis redis-server redis-tools

# The Debian package may start its own redis-server on 6379. Nothing here uses it (tests start
# their own nodes), so stop it rather than let it take CPU and memory; it was not running before,
# since redis-server was not installed.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
elif command -v service >/dev/null 2>&1; then
    $SUDO service redis-server stop >/dev/null 2>&1 || true
fi

if ! have_redis; then
    echo "install-redis: apt-get finished but redis-server/redis-cli are still not on PATH." >&2
    exit 1
fi
check_version
