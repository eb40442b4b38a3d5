"""Container health check: GET /health of the pouwd running as PID 1.

The RPC port is resolved the way pouwd resolved it — node.config.load_config on
PID 1's own arguments and the container's environment — so a changed --network
or --rpc-port needs no change here. Healthy: HTTP 200 with status "ready" or
"syncing". When PID 1 is not pouwd (the image running pouw-miner or pouw-cli)
there is nothing to check and the check passes.

    python healthcheck.py                       # check PID 1's pouwd
    python healthcheck.py --wait URL... [--timeout S]
        # wait until every URL (a /health endpoint) answers 200; docker/entrypoint.sh
        # uses this for POUW_WAIT_FOR, so a miner starts only once its node serves,
        # also where compose's depends_on conditions are not enforced (podman < 4.6)
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

TIMEOUT = 4.0


def pouwd_args() -> list[str] | None:
    """PID 1's pouwd arguments, or None when PID 1 is not pouwd."""
    argv = [a.decode() for a in Path("/proc/1/cmdline").read_bytes().split(b"\0")[:-1]]
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "pouwd":
            return argv[i + 1:]
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "node.daemon":
            return argv[i + 2:]
    return None


def fetch(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return json.load(response)


def wait(urls: list[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                fetch(url)
                break
            except Exception as exc:  # noqa: BLE001 - not up yet, whatever the reason
                if time.monotonic() >= deadline:
                    print(f"pouw: gave up after {timeout:g} s waiting for {url}: {exc}", file=sys.stderr)
                    return 1
                time.sleep(1)
        print(f"pouw: {url} is up", file=sys.stderr)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--wait"]:
        rest = sys.argv[2:]
        timeout = 300.0
        if "--timeout" in rest:
            i = rest.index("--timeout")
            timeout = float(rest[i + 1])
            del rest[i:i + 2]
        return wait(rest, timeout)
    args = pouwd_args()
    if args is None:
        print("PID 1 is not pouwd; nothing to check")
        return 0
    from node.config import load_config

    cfg = load_config(args)
    host = "127.0.0.1" if cfg.rpc_bind in ("0.0.0.0", "", "::") else cfg.rpc_bind
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{cfg.effective_rpc_port}/health"
    try:
        body = fetch(url)
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with the reason
        print(f"{url}: {exc}")
        return 1
    print(f"{url}: {body}")
    return 0 if body.get("status") in ("ready", "syncing") else 1


if __name__ == "__main__":
    sys.exit(main())
