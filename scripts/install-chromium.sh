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

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: chromium missing and apt-get not available; install Chromium yourself." >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-chromium: not root and no sudo; cannot install chromium." >&2
    exit 1
fi

echo "install-chromium: installing chromium with apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: apt-get finished but chromium is still not on PATH." >&2
    exit 1
fi
