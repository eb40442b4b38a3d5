#!/usr/bin/env python3
"""A local dev network on this machine: N pouwd nodes (dev network, connected to each
other over loopback), one pouw-miner, the dev faucet imported into a wallet, and a
live status view until Ctrl-C, which stops everything cleanly.

    bash scripts/devnet.sh [--datadir .devnet] [--nodes 3] [--fresh] [--duration SECONDS]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.keys import encode_address  # noqa: E402
from miner.rpcclient import RpcClient, RpcClientError, cookie_auth  # noqa: E402

NETWORK = "dev"
WALLET_PASSWORD = "devnet"
FAUCET_ADDRESS = encode_address("dpw", dev_faucet_key().address)
RECENT_BLOCKS = 6


class DevNode:
    def __init__(self, index: int, root: Path, rpc_port: int, p2p_port: int) -> None:
        self.index, self.rpc_port, self.p2p_port = index, rpc_port, p2p_port
        self.datadir = root / f"node{index}"
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.client: RpcClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/"

    def start(self, peers: list[str]) -> None:
        args = [sys.executable, "-m", "node.daemon", "--network", NETWORK, "--datadir", str(self.datadir),
                "--rpc-port", str(self.rpc_port), "--bind", "127.0.0.1", "--port", str(self.p2p_port)]
        for peer in peers:
            args += ["--addnode", peer]
        with open(self.datadir / "pouwd.log", "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"node{self.index} exited; see {self.datadir / 'pouwd.log'}")
            try:
                user, password = cookie_auth(self.datadir, NETWORK)
                self.client = RpcClient(self.url, user, password, timeout=10)
                self.client.call("getblockcount")
                return
            except RpcClientError:
                time.sleep(0.2)
        raise SystemExit(f"node{self.index} did not answer on {self.url}; see {self.datadir / 'pouwd.log'}")

    def call(self, method: str, *params):
        assert self.client is not None
        return self.client.call(method, *params)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.call("stop")
        except RpcClientError:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def import_faucet(node: DevNode) -> None:
    if (node.datadir / NETWORK / "wallet.json").exists():
        return
    env = {**os.environ, "POUW_WALLET_PASSWORD": os.environ.get("POUW_WALLET_PASSWORD", WALLET_PASSWORD)}
    subprocess.run([sys.executable, "-m", "node.cli", "--network", NETWORK, "--datadir", str(node.datadir),
                    "wallet", "import-dev-faucet"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def start_miner(node: DevNode, root: Path) -> subprocess.Popen:
    """pouw-miner flat out against ``node``: ASERT (PROTOCOL §5) brings block times to T."""
    args = [sys.executable, "-m", "miner.cli", "--network", NETWORK, "--datadir", str(node.datadir),
            "--rpc", node.url, "--address", FAUCET_ADDRESS, "--quiet"]
    with open(root / "miner.log", "ab") as log:
        return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def si(value: float) -> str:
    """1234567 -> '1.23 M' (for MAC rates that span kilo to tera)."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.2f} {prefix}"
    return f"{value:.0f} "


def status(nodes: list[DevNode]) -> str:
    lines = []
    first = nodes[0]
    try:
        mining = first.call("getmininginfo")
        lines.append(f"dev network  height {mining['blocks']}  difficulty {mining['difficulty']:.3g}  "
                     f"network {si(mining['networkmacps'])}MAC/s  mempool {mining['pooledtx']} txs  "
                     f"useful blocks {mining['useful']['useful_block_share']:.0%}")
        lines.append(f"state root {mining['state_root']}")
    except RpcClientError as exc:
        lines.append(f"node0 unreachable: {exc}")
    lines.append(f"{'node':<6}{'rpc':<24}{'height':>8}  {'tip':<18}{'peers':>6}")
    for node in nodes:
        try:
            info = node.call("getblockchaininfo")
            peers = node.call("getconnectioncount")
            lines.append(f"node{node.index:<2}{node.url:<24}{info['blocks']:>8}  {info['bestblockhash'][:16]:<18}"
                         f"{peers:>6}")
        except RpcClientError as exc:
            lines.append(f"node{node.index:<2}{node.url:<24}  unreachable ({exc})")
    lines.append("recent blocks:")
    try:
        tip = first.call("getblockcount")
        now = time.time()
        for height in range(tip, max(0, tip - RECENT_BLOCKS), -1):
            block = first.call("getblock", first.call("getblockhash", height), 1)
            useful = "useful" if block["useful"] else "synthetic"
            lines.append(f"  {height:>7}  {block['hash'][:16]}  {block['ntx']:>3} txs  {block['macs'] / 1e6:8.1f} MMAC "
                         f"{useful:<9}  {now - block['time']:6.0f}s ago")
    except RpcClientError:
        pass
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datadir", default=str(REPO / ".devnet"), help="where the nodes keep their data")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rpc-port", type=int, default=28732, help="first node's RPC port; others add 10 each")
    p.add_argument("--fresh", action="store_true", help="delete the devnet's data first")
    p.add_argument("--no-miner", action="store_true")
    p.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    args = p.parse_args()
    root = Path(args.datadir).expanduser().resolve()
    if args.fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    nodes = [DevNode(i, root, args.rpc_port + 10 * i, args.rpc_port + 10 * i + 1) for i in range(args.nodes)]
    stop = {"now": False}

    def on_signal(signum, frame) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    miner: subprocess.Popen | None = None
    try:
        for node in nodes:
            node.start([f"127.0.0.1:{other.p2p_port}" for other in nodes if other is not node])
        for node in nodes:
            node.wait_ready()
        import_faucet(nodes[0])
        if not args.no_miner:
            miner = start_miner(nodes[0], root)
        print(f"devnet up: {len(nodes)} nodes, faucet wallet in {nodes[0].datadir / NETWORK / 'wallet.json'} "
              f"(password '{WALLET_PASSWORD}'), Ctrl-C to stop", flush=True)
        started = time.monotonic()
        tty = sys.stdout.isatty()
        last_print = 0.0
        while not stop["now"]:
            if args.duration is not None and time.monotonic() - started > args.duration:
                break
            if miner is not None and miner.poll() is not None:
                print(f"the miner exited ({miner.returncode}); see {root / 'miner.log'}", flush=True)
                miner = None
            if tty:
                print("\033[2J\033[H" + status(nodes), flush=True)
            elif time.monotonic() - last_print >= 10:
                print(status(nodes), flush=True)
                last_print = time.monotonic()
            time.sleep(1.0)
    finally:
        print("stopping the devnet ...", flush=True)
        if miner is not None and miner.poll() is None:
            miner.send_signal(signal.SIGINT)
            try:
                miner.wait(15)
            except subprocess.TimeoutExpired:
                miner.kill()
        for node in nodes:
            node.stop()
        print(f"devnet stopped. Data and logs are in {root} (nodeN/pouwd.log, miner.log); "
              f"run again to resume, or with --fresh to start over.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
