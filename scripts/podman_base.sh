#!/usr/bin/env bash
# Build a local Debian bookworm base image for the pouw Dockerfile, without any
# image registry: debootstrap a minimal root (python3 3.11, venv, CA certificates)
# from Debian's package mirror and import it into podman.
#
#   scripts/podman_base.sh [IMAGE]        # default localhost/pouw-base:bookworm
#   POUW_BASE_FORCE=1 scripts/podman_base.sh   # rebuild even if the image exists
#
# Then: podman build --build-arg BASE=localhost/pouw-base:bookworm ...
# The image holds Debian's python3 (3.11) at /usr/bin/python3; the Dockerfile
# only needs `python3` on PATH, so an official python:3.11-slim-bookworm works too.
set -euo pipefail

IMAGE="${1:-${POUW_BASE_IMAGE:-localhost/pouw-base:bookworm}}"
SUITE="${POUW_BASE_SUITE:-bookworm}"
MIRROR="${POUW_BASE_MIRROR:-}"   # empty: debootstrap's default Debian mirror

log() { echo "podman_base: $*" >&2; }

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { log "$tool is not installed (see scripts/ci_containers_setup.sh)"; exit 2; }
done

if [[ "${POUW_BASE_FORCE:-0}" != 1 ]] && podman image exists "$IMAGE"; then
    log "$IMAGE already exists; set POUW_BASE_FORCE=1 to rebuild"
    exit 0
fi

root="$(mktemp -d /var/tmp/pouw-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
log "debootstrap $SUITE (minbase) into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$root" ${MIRROR:+"$MIRROR"} >"$root.log" 2>&1 || {
    log "debootstrap failed; last lines of $root.log:"; tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Keep the image small: no apt lists or caches, no docs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
       "$root"/usr/share/doc/* "$root"/usr/share/man/*
log "importing as $IMAGE"
tar --numeric-owner -C "$root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
log "done in $((SECONDS - start)) s: $(podman image inspect --format '{{.Id}} {{.Size}}' "$IMAGE")"
