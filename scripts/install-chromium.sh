#!/usr/bin/env bash
# Makes sure a headless Chromium is installed: the status page's test loads the page in it, as an
# operator's browser would. Safe to run repeatedly: it does nothing when Chromium is there.
set -euo pipefail

for browser in chromium chromium-browser; do
    if command -v "$browser" >/dev/null 2>&1; then
        echo "install-chromium: using $("$browser" --version 2>/dev/null | head -n 1)"
        exit 0
    fi
done

# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
apt_install install-chromium chromium

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: apt-get finished but chromium is still not on PATH." >&2
    exit 1
fi
