"""docker-compose.yml, for real: the image builds (with the C work kernel), three
nodes and a miner come up under podman-compose, the miner mines against node1,
the nodes agree on a tip above height 10, and a transfer sent with pouw-cli from
the host through node1's published port is mined and seen on the other nodes.

The module shares one testnet (tests/containers/conftest.py); the tests run in
file order, each building on the chain the miner keeps extending.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consensus.params import COIN

from .conftest import NODES, REPO, ComposeNet

pytestmark = pytest.mark.containers


FAUCET_ADDRESS = "dpw1uv2g5n2nrr4e2p49c94k9zdedtxfjuaatyetyd"  # the compose miner's default --address
WALLET_PASSWORD = "containers-test"


def wait_until(net: ComposeNet, what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; on timeout fail with the last state and the logs."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - a node still starting answers with errors
            last = exc
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}\n{net.logs()}")
        time.sleep(interval)


def health(net: ComposeNet, node: str) -> dict[str, Any]:
    with urllib.request.urlopen(net.url(node) + "health", timeout=5) as response:
        assert response.status == 200
        return json.load(response)


def cli(net: ComposeNet, datadir: Path, *args: str, node: str | None = None, timeout: float = 120) -> str:
    """pouw-cli on the host (this checkout's), optionally against a node's published RPC port."""
    cmd = [sys.executable, "-m", "client.cli", "--network", "dev", "--datadir", str(datadir)]
    if node is not None:
        cmd += ["--rpcport", str(net.ports[node]), "--rpcuser", net.rpc_user, "--rpcpassword", net.rpc_password]
    env = {**os.environ, "POUW_WALLET_PASSWORD": WALLET_PASSWORD}
    proc = subprocess.run([*cmd, *args], check=False, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"pouw-cli {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
    return proc.stdout.strip()


def test_nodes_serve_health_on_published_loopback_ports(testnet: ComposeNet) -> None:
    for node in NODES:
        body = wait_until(testnet, f"{node} /health", lambda node=node: health(testnet, node), timeout=120)
        assert body["network"] == "dev"
        assert body["status"] in ("ready", "syncing")
        # published on the host's loopback only
        mapping = testnet.podman("port", testnet.container(node), "28732/tcp").stdout.split()
        assert mapping == [f"127.0.0.1:{testnet.ports[node]}"], mapping


def test_image_healthcheck_user_and_kernel(testnet: ComposeNet) -> None:
    for node in NODES:
        name = testnet.container(node)
        # podman schedules health checks through systemd timers; without systemd run them by hand
        proc = testnet.podman("healthcheck", "run", name, check=False)
        assert proc.returncode == 0, f"{node} health check: {proc.stdout}{proc.stderr}"
        assert testnet.podman("exec", name, "id", "-u").stdout.strip() == "10001"
        # the tools inside find the node through POUW_DATADIR=/data and its cookie
        assert int(testnet.podman("exec", name, "pouw-cli", "--network", "dev", "getblockcount").stdout) >= 0
    kernel = testnet.podman("exec", testnet.container("miner"), "python", "-c",
                            "import miner.kernel as k; print(k.active_path)").stdout.strip()
    assert kernel != "reference", "the image's miner runs without the C work kernel"


SOURCE_DIGEST = """
import hashlib, importlib, pathlib, sys
h = hashlib.sha256()
for pkg in ("consensus", "miner", "node", "p2p"):
    root = pathlib.Path(importlib.import_module(pkg).__file__).parent
    for f in sorted(root.rglob("*.py")):
        h.update(f"{pkg}/{f.relative_to(root)}".encode() + b"\\0" + f.read_bytes())
print(h.hexdigest())
"""


def test_image_holds_this_checkouts_code(testnet: ComposeNet) -> None:
    """A stale build cache once shipped old wheels after a code change; the image must run this tree."""
    here = subprocess.run([sys.executable, "-c", SOURCE_DIGEST], check=True, cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    there = testnet.podman("exec", testnet.container("node1"), "python", "-c", SOURCE_DIGEST).stdout.strip()
    assert there == here, "the image's consensus/miner/node/p2p differ from this checkout's"


def test_rpc_needs_the_configured_credentials(testnet: ComposeNet) -> None:
    request = urllib.request.Request(testnet.url("node1"), method="POST",
                                     data=b'{"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}')
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=10)
    assert excinfo.value.code == 401
    token = base64.b64encode(f"{testnet.rpc_user}:{testnet.rpc_password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert isinstance(json.load(response)["result"], int)


def test_miner_mines_against_node1(testnet: ComposeNet) -> None:
    rpc = testnet.rpc("node1")
    height = wait_until(testnet, "node1 to reach height 3 from the miner",
                        lambda: (h := rpc.call("getblockcount")) >= 3 and h, timeout=180)
    blockhash = rpc.call("getblockhash", height)
    assert rpc.call("getblock", blockhash, 1)["hash"] == blockhash
    assert rpc.call("getaccount", FAUCET_ADDRESS)["immature"], "the miner's rewards go elsewhere"


class NotAgreed(Exception):
    """The nodes' tips, peers and bans while they do not yet agree."""


def test_nodes_agree_on_a_tip_above_height_10(testnet: ComposeNet) -> None:
    clients = {node: testnet.rpc(node) for node in NODES}

    def agreed() -> tuple[int, str]:
        tips = {node: (c.call("getblockcount"), c.call("getbestblockhash")) for node, c in clients.items()}
        heights = {h for h, _ in tips.values()}
        hashes = {b for _, b in tips.values()}
        if len(hashes) == 1 and min(heights) > 10:
            return next(iter(tips.values()))
        # not yet: what a timeout reports (a node's peers and bans outlast its last log lines)
        raise NotAgreed({node: {"height": tips[node][0], "tip": tips[node][1][:16],
                                "peers": c.call("getconnectioncount"),
                                "banned": [f"{b['address']}: {b['reason']}" for b in c.call("listbanned")]}
                         for node, c in clients.items()})

    height, tip = wait_until(testnet, "all three nodes on one tip above height 10", agreed, timeout=300)
    for node in NODES:
        assert health(testnet, node)["peers"] >= 1, f"{node} has no peers"
    assert testnet.rpc("node3").call("getblockhash", height) == tip


def test_transfer_from_the_host_is_mined(testnet: ComposeNet, tmp_path: Path) -> None:
    sender, receiver = tmp_path / "sender", tmp_path / "receiver"
    assert cli(testnet, sender, "wallet", "import-dev-faucet").splitlines()[-1] == FAUCET_ADDRESS
    cli(testnet, receiver, "wallet", "create")
    to = cli(testnet, receiver, "wallet", "address")
    out = cli(testnet, sender, "wallet", "send", to, "1", "--wait", "1", "--timeout", "180", node="node1",
              timeout=240)
    txid = out.splitlines()[0]
    assert len(txid) == 64, out
    assert testnet.rpc("node1").call("gettransaction", txid)["confirmations"] >= 1

    def mined_on(node: str) -> bool:
        info = testnet.rpc(node).call("gettransaction", txid)
        return info["confirmations"] >= 1 and info

    for node in ("node2", "node3"):
        info = wait_until(testnet, f"{txid} confirmed on {node}", lambda node=node: mined_on(node), timeout=120)
        assert info["confirmations"] >= 1
        assert testnet.rpc(node).call("getaccount", to)["balance"] == 1 * COIN
    # and the receiver's wallet sees it through another node's published port
    assert json.loads(cli(testnet, receiver, "--json", "wallet", "balance", node="node3"))["balance"] == COIN
