# pouw node image: pouwd, pouw-cli and pouw-miner (with the C work kernel) in a venv.
#
#   docker build -t pouw .
#   docker run --rm -p 127.0.0.1:28732:28732 -e POUW_RPC_USER=u -e POUW_RPC_PASSWORD=p pouw
#
# Without an image registry (podman, see docs/containers.md):
#   scripts/podman_base.sh                       # localhost/pouw-base:bookworm
#   podman build --build-arg BASE=localhost/pouw-base:bookworm \
#       -v /etc/ssl/certs/ca-certificates.crt:/etc/host-ca.crt:ro \
#       --build-arg PIP_CERT=/etc/host-ca.crt -t pouw .
#
# BASE must be a Debian bookworm image with python3 (3.11+) on PATH and python3 -m venv
# working: the official python:3.11-slim-bookworm or the debootstrapped base above.
# Both stages use the same BASE, so the venv's interpreter is the same in each.
ARG BASE=python:3.11-slim-bookworm

# ---- builder: compile the project wheel (with miner._kernel) and all dependency wheels,
#      and install them into the venv the runtime stage gets
FROM ${BASE} AS builder
# A CA bundle for pip (a file mounted into the build); empty: the image's own CAs.
ARG PIP_CERT=
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C compiler for miner/_kernel.c; Python's headers come with the official python
# images and from Debian's python3-dev otherwise.
RUN set -eux; \
    apt-get update; \
    pkgs="gcc libc6-dev"; \
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || pkgs="$pkgs python3-dev"; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY consensus ./consensus
COPY miner ./miner
COPY node ./node
COPY p2p ./p2p
COPY client ./client
COPY docker/check_wheel.py ./docker/
# An empty PIP_CERT must not reach pip as "--cert ''"; a set one also covers the
# isolated build environment's own pip through the environment.
RUN set -eux; \
    if [ -n "$PIP_CERT" ]; then export PIP_CERT; else unset PIP_CERT; fi; \
    /opt/build/bin/pip wheel --wheel-dir /wheels .; \
    ls -l /wheels; \
    /opt/build/bin/python docker/check_wheel.py /wheels
# The runtime venv, from the wheels only. Built here and copied whole (COPY --from is
# cached by content; a RUN that bind-mounts /wheels from this stage is not, under
# buildah, and kept stale wheels after a code change).
RUN set -eux; \
    python3 -m venv /opt/pouw; \
    /opt/pouw/bin/pip install --no-index --find-links /wheels pouw; \
    /opt/pouw/bin/pip uninstall -y pip; \
    find /opt/pouw -name __pycache__ -prune -exec rm -rf {} +

# ---- runtime: the venv, no compiler, a non-root user
FROM ${BASE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/pouw/bin:$PATH \
    POUW_DATADIR=/data
RUN set -eux; \
    useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin pouw; \
    mkdir -p /data; \
    chown 10001:10001 /data
# Same BASE as the builder, so the venv's interpreter link and paths hold here.
COPY --from=builder /opt/pouw /opt/pouw
RUN /opt/pouw/bin/python -c 'import node.daemon, p2p, miner.kernel as k; print("work kernel:", k.active_path)'
COPY docker/entrypoint.sh /usr/local/bin/pouw-entrypoint
COPY docker/healthcheck.py /usr/local/lib/pouw-healthcheck.py
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# dev network: 28732 JSON-RPC/REST/health, 28733 p2p
EXPOSE 28732 28733
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/pouw/bin/python", "/usr/local/lib/pouw-healthcheck.py"]
ENTRYPOINT ["/usr/local/bin/pouw-entrypoint"]
# Env POUW_* beats flags (node/config.py), so flags here stay overridable by env.
CMD ["pouwd", "--network", "dev", "--rpc-bind", "0.0.0.0", "--bind", "0.0.0.0"]
