#!/usr/bin/env bash
# Install what tests/containers needs: podman with runc (Debian packages),
# debootstrap (for the local base image), podman-compose (PyPI, its own venv),
# and a containers.conf for a machine without systemd. Fails soft: when something
# cannot be installed it says why and returns 0, and the container test then
# skips with the reason.
#
#   bash scripts/ci_containers_setup.sh        # install; print the CONTAINERS_CONF line
#   source scripts/ci_containers_setup.sh      # the same, and export CONTAINERS_CONF
#
# Environment: POUW_CONTAINERS_DIR (default /var/tmp/pouw-containers) holds the
# containers.conf and the podman-compose venv (bin/podman-compose there is where
# tests/containers looks after $PATH).

_pouw_containers_setup() {
    local dir="${POUW_CONTAINERS_DIR:-/var/tmp/pouw-containers}"
    local repo; repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    local say="ci_containers_setup:"
    local python="${PYTHON:-python3}"

    if [[ "$(uname -s)" != Linux ]]; then
        echo "$say not Linux; the container test will skip"; return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        echo "$say not root (podman here runs rootful); the container test will skip"; return 0
    fi
    local missing=()
    local tool
    for tool in podman runc debootstrap; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    # netavark + aardvark-dns give compose services DNS names (node1, node2, ...)
    dpkg -s aardvark-dns >/dev/null 2>&1 || missing+=(aardvark-dns)
    if (( ${#missing[@]} )); then
        if ! command -v apt-get >/dev/null; then
            echo "$say missing ${missing[*]} and no apt-get to install them; the container test will skip"
            return 0
        fi
        echo "$say installing podman runc debootstrap netavark aardvark-dns (missing: ${missing[*]})"
        if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
               && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                    podman runc debootstrap netavark aardvark-dns conmon catatonit iptables \
                    uidmap fuse-overlayfs slirp4netns ca-certificates tar; } >"${TMPDIR:-/tmp}/pouw-apt.log" 2>&1; then
            echo "$say apt-get failed; the container test will skip. Last lines:"
            tail -5 "${TMPDIR:-/tmp}/pouw-apt.log" | sed 's/^/    /'
            return 0
        fi
    fi

    if ! { mkdir -p "$dir" && cp "$repo/docker/containers.conf" "$dir/containers.conf"; }; then
        echo "$say cannot write $dir/containers.conf; the container test will use docker/containers.conf"
        return 0
    fi
    export CONTAINERS_CONF="$dir/containers.conf"

    if ! command -v podman-compose >/dev/null && [[ ! -x "$dir/venv/bin/podman-compose" ]]; then
        echo "$say installing podman-compose into $dir/venv"
        if ! { "$python" -m venv "$dir/venv" \
               && "$dir/venv/bin/python" -m pip install --quiet podman-compose; } >"${TMPDIR:-/tmp}/pouw-pip.log" 2>&1; then
            echo "$say pip install podman-compose failed; the container test will skip. Last lines:"
            tail -5 "${TMPDIR:-/tmp}/pouw-pip.log" | sed 's/^/    /'
            rm -rf "$dir/venv"
            return 0
        fi
    fi

    if ! podman info >/dev/null 2>&1; then
        echo "$say podman is installed but 'podman info' fails; the container test will fail or skip:"
        podman info 2>&1 | tail -3 | sed 's/^/    /'
        return 0
    fi
    echo "$say ready: $(podman --version), runc $(runc --version | awk 'NR==1{print $3}'), CONTAINERS_CONF=$CONTAINERS_CONF"
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
}

_pouw_containers_setup
unset -f _pouw_containers_setup
# Sourced: leave the caller's shell options alone; executed: always succeed.
return 0 2>/dev/null || exit 0
