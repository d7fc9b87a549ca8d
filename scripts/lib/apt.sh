# Sourced by the install scripts: installs Debian packages with apt-get, as root or through sudo.
# Usage: apt_install TAG PACKAGE...   (TAG prefixes the messages, e.g. "install-redis").

apt_install() {
    local tag=$1
    shift
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$tag: $* missing and apt-get not available; install them yourself." >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "$tag: not root and no sudo; cannot install $*." >&2
            return 1
        fi
        sudo="sudo"
    fi
    echo "$tag: installing $* with apt-get"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}
