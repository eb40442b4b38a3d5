#!/usr/bin/env python3
"""A local dev network on this machine: N pouwd nodes (dev network, connected to each
other over loopback), one pouw-miner that takes jobs, a job stream (an int8 MLP's
inference on scikit-learn's digits, plus filler products, posted as jobs and verified,
scripts/jobstream.py), the dev faucet imported into a wallet, and a live status view
until Ctrl-C, which stops everything cleanly.

    bash scripts/devnet.sh [--datadir .devnet] [--nodes 3] [--fresh] [--duration SECONDS] [--no-jobs]

Whatever ends the devnet — Ctrl-C, SIGTERM, SIGHUP, a closed output pipe, an error
here, even SIGKILL — its nodes, miner and job stream stop with it: the first four lead to the
orderly shutdown below, and every child asks the kernel for SIGTERM when this
process dies (Linux ``PR_SET_PDEATHSIG``).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.keys import encode_address  # noqa: E402
from client.cliutil import number_flag  # noqa: E402
from client.rpc import RpcClient, RpcClientError, cookie_auth  # noqa: E402
from jobstream import add_filler_flags  # noqa: E402 (scripts/, beside this file)
from miner.units import duration, si  # noqa: E402

NETWORK = "dev"
MATRIX_RATE = 0.0  # the nodes share one host, as on a LAN: matrices move unpaced (pouwd's own default is 8 MiB/s)
MATRIX_STORE_MB = 8192  # sixteen fillers keep 3.9 GB on the miner's and the stream's nodes (pouwd's default: 4096)
WALLET_PASSWORD = "devnet"
FAUCET_ADDRESS = encode_address("dpw", dev_faucet_key().address)
RECENT_BLOCKS = 6
JOBSTREAM_STATUS = "jobstream.json"
MINER_STATUS = "miner.json"
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def die_with_parent():
    """A ``preexec_fn``: the child gets SIGTERM when this process dies, however it dies."""
    parent = os.getpid()
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child in a session of its own (a terminal's Ctrl-C reaches only us; we stop it in order)
    that still dies with this process."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent(), env=env)


class Console:
    """stdout that may vanish (``devnet.sh | tee log`` and the tee is gone): the first failed
    write asks the devnet to stop, and later output is dropped instead of raising."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        self.on_lost = on_lost
        self.lost = False

    def say(self, text: str) -> None:
        if self.lost:
            return
        try:
            print(text, flush=True)
        except (BrokenPipeError, OSError):
            self.lost = True
            try:  # no further writes, not even Python's own flush at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except OSError:
                pass
            self.on_lost()


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

    def start(self, peers: list[str], matrix_rate: float) -> None:
        args = [sys.executable, "-m", "node.daemon", "--network", NETWORK, "--datadir", str(self.datadir),
                "--rpc-port", str(self.rpc_port), "--bind", "127.0.0.1", "--port", str(self.p2p_port),
                "--matrix-rate", f"{matrix_rate:g}", "--matrix-store-mb", str(MATRIX_STORE_MB)]
        for peer in peers:
            args += ["--addnode", peer]
        self.process = spawn(args, self.datadir / "pouwd.log")

    def wait_ready(self, stopping: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping():
            if self.process is not None and self.process.poll() is not None:
                raise SystemExit(f"node{self.index} exited; see {self.datadir / 'pouwd.log'}")
            try:
                user, password = cookie_auth(self.datadir, NETWORK)
                self.client = RpcClient(self.url, user, password, timeout=10)
                self.client.call("getblockcount")
                return
            except RpcClientError:
                time.sleep(0.2)
        if stopping():
            raise SystemExit("interrupted while starting the devnet")
        raise SystemExit(f"node{self.index} did not answer on {self.url}; see {self.datadir / 'pouwd.log'}")

    def call(self, method: str, *params):
        if self.client is None:
            raise RpcClientError(f"node{self.index} has not answered yet")
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
    subprocess.run([sys.executable, "-m", "client.cli", "--network", NETWORK, "--datadir", str(node.datadir),
                    "wallet", "import-dev-faucet"], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def interrupt(child: subprocess.Popen | None) -> None:
    """Stop a child as Ctrl-C would (SIGINT), killing it if it has not gone within 15 s."""
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()


def wallet_cli(node: DevNode, *args: str) -> str:
    env = {**os.environ, "POUW_WALLET_PASSWORD": os.environ.get("POUW_WALLET_PASSWORD", WALLET_PASSWORD)}
    out = subprocess.run([sys.executable, "-m", "client.cli", "--network", NETWORK, "--datadir", str(node.datadir),
                          "--rpc-url", node.url, "wallet", *args], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def miner_key(node: DevNode, root: Path) -> str:
    """The miner's own address in node0's wallet (it signs job results and pays their bonds),
    made and funded from the faucet on the devnet's first start."""
    saved = root / "miner-address"
    if saved.exists():
        return saved.read_text().strip()
    address = wallet_cli(node, "new-address", "--label", "miner").splitlines()[-1]
    wallet_cli(node, "send", address, "1000", "--from", FAUCET_ADDRESS)
    saved.write_text(address)
    return address


def start_miner(node: DevNode, root: Path, address: str = FAUCET_ADDRESS, jobs: bool = True) -> subprocess.Popen:
    """pouw-miner flat out against ``node`` (ASERT, PROTOCOL §5, brings block times to T), taking jobs
    with ``address``'s key from the node's wallet."""
    args = [sys.executable, "-m", "miner.cli", "--network", NETWORK, "--datadir", str(node.datadir),
            "--rpc-url", node.url, "--address", address, "--quiet", "--status-file", str(root / MINER_STATUS),
            *([] if jobs else ["--no-jobs"])]
    env = {**os.environ, "POUW_WALLET_PASSWORD": os.environ.get("POUW_WALLET_PASSWORD", WALLET_PASSWORD)}
    (root / MINER_STATUS).unlink(missing_ok=True)  # a resumed devnet's last run left its figures
    return spawn(args, root / "miner.log", env)


def start_jobstream(node: DevNode, root: Path, fillers: int, filler_shape: tuple[int, int, int]) -> subprocess.Popen:
    """The job stream (scripts/jobstream.py): MLP inference and filler products posted through ``node``."""
    args = [sys.executable, str(REPO / "scripts" / "jobstream.py"), "--network", NETWORK, "--rpc-url", node.url,
            "--datadir", str(node.datadir), "--status", str(root / JOBSTREAM_STATUS), "--fillers", str(fillers),
            "--filler-shape", ",".join(map(str, filler_shape))]
    return spawn(args, root / "jobstream.log")


def jobs_line(root: Path) -> list[str]:
    """The job stream's figures, from its status file."""
    try:
        s = json.loads((root / JOBSTREAM_STATUS).read_text())
    except (OSError, ValueError):
        return ["jobs: the job stream is starting (training its model)"]
    jobs = s.get("jobs") or {}
    share = s.get("useful_mac_share")
    lines = [f"jobs  posted {s['posted']}  claimed {jobs.get('claimed', 0)}  settled {jobs.get('settled', 0)}  "
             f"lapsed {jobs.get('lapsed', 0)}  refunded {jobs.get('refunded', 0)}  fraud proven {s['fraud_proven']}  "
             f"reposted {s.get('reposted', 0)}"
             f"  useful-MAC share {'—' if share is None else f'{share:.1%}'} (last 1000 blocks)"]
    if s.get("rows"):
        lines.append(f"digits MLP: {s['rows']} test rows through the network, int8 accuracy "
                     f"{s['int8_accuracy']:.1%} (same model locally {s['int8_local_accuracy']:.1%}; float model "
                     f"{s['float_accuracy']:.1%}); {s['filler_products']} filler products")
    else:
        lines.append(f"digits MLP: float model {s['float_accuracy']:.1%}; first batch on its way")
    if s.get("last_error"):
        lines.append(f"job stream: {s['last_error'][:160]}")
    return lines


def miner_line(root: Path) -> str:
    """The miner's figures, from its status file (``pouw-miner --status-file``)."""
    try:
        s = json.loads((root / MINER_STATUS).read_text())
    except (OSError, ValueError):
        return "miner: starting"
    try:
        share, jobs = s.get("useful_share"), s.get("jobs")
        line = (f"miner  {si(s['mac_rate'], 'MAC/s')}  blocks found {s['found']}  accepted {s['accepted']}  "
                f"stale {s['stale']}")
        if jobs is not None:
            line += (f"  {'—' if share is None else f'{share:.0%}'} of its MACs on jobs  jobs taken "
                     f"{jobs['taken']}  claimed {jobs['claimed']}  paid {jobs['paid']} "
                     f"(+{jobs['reward'] / 1e8:g} coins)")
    except (AttributeError, KeyError, TypeError, ValueError):  # another pouw-miner's format: the view goes on
        return f"miner: its status file {root / MINER_STATUS} is not one this devnet reads"
    return line


def block_age(seconds: float) -> str:
    """How long ago a block was stamped; a timestamp ahead of this clock says so."""
    return f"{duration(seconds)} ago" if seconds >= 0 else f"{duration(-seconds)} ahead of this clock"


def status(nodes: list[DevNode], root: Path | None = None, miner_root: Path | None = None) -> str:
    """The live view: the chain, the miner (its status file under ``miner_root``), the job stream
    (its status file under ``root``), each node, the recent blocks."""
    lines = []
    first = nodes[0]
    try:
        mining = first.call("getmininginfo")
        lines.append(f"dev network  height {mining['blocks']}  tip difficulty {mining['difficulty']:.3g}  "
                     f"network {si(mining['networkmacps'], 'MAC/s')}  mempool {mining['pooledtx']} txs  "
                     f"useful blocks {mining['useful']['useful_block_share']:.0%}")
        lines.append(f"state root {mining['state_root']}")
    except RpcClientError as exc:
        lines.append(f"node0 unreachable: {exc}")
    if miner_root is not None:
        lines.append(miner_line(miner_root))
    if root is not None:
        lines.extend(jobs_line(root))
    lines.append(f"{'node':<6}{'rpc':<24}{'height':>8}  {'tip':<18}{'peers (in/out)':>15}  matrices held")
    for node in nodes:
        try:
            info = node.call("getblockchaininfo")
            net = node.call("getnetworkinfo")
            market = node.call("getmarketinfo")  # the window the stream asks for: the node computes it once a tip
            peers = f"{net['connections']} ({net['connections_in']}/{net['connections_out']})"
            lines.append(f"node{node.index:<2}{node.url:<24}{info['blocks']:>8}  {info['bestblockhash'][:16]:<18}"
                         f"{peers:>15}  {market['matrices_held']}, {si(market['matrix_bytes'], 'B')} of "
                         f"{si(MATRIX_STORE_MB * 2**20, 'B')}")
        except RpcClientError as exc:
            lines.append(f"node{node.index:<2}{node.url:<24}  unreachable ({exc})")
    lines.append("recent blocks:")
    try:
        tip = first.call("getblockcount")
        now = time.time()
        for height in range(tip, max(0, tip - RECENT_BLOCKS), -1):
            block = first.call("getblock", first.call("getblockhash", height), 1)
            useful = "useful" if block["useful"] else "synthetic"
            lines.append(f"  {height:>7}  {block['hash'][:16]}  {block['ntx']:>3} txs  {si(block['macs'], 'MAC'):>11}  "
                         f"{useful:<9}  {block_age(now - block['time'])}")
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
    p.add_argument("--no-jobs", action="store_true", help="no job stream, and a miner that takes no jobs")
    add_filler_flags(p)
    p.add_argument("--matrix-rate", type=number_flag(0, kind=float), default=MATRIX_RATE, metavar="MIB/S",
                   help="MiB of matrices each node serves each peer a second (default 0: unpaced, as on a LAN; "
                        "8 is pouwd's default, an internet setting)")
    p.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    p.add_argument("--status-interval", type=float, default=10.0, metavar="SECONDS",
                   help="how often the status is printed when stdout is not a terminal")
    args = p.parse_args()
    root = Path(args.datadir).expanduser().resolve()
    if args.fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    nodes = [DevNode(i, root, args.rpc_port + 10 * i, args.rpc_port + 10 * i + 1) for i in range(args.nodes)]
    stop = {"now": False}

    def request_stop(*_: object) -> None:
        stop["now"] = True

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    console = Console(request_stop)
    miner: subprocess.Popen | None = None
    jobstream: subprocess.Popen | None = None
    try:
        for node in nodes:
            node.start([f"127.0.0.1:{other.p2p_port}" for other in nodes if other is not node], args.matrix_rate)
        for node in nodes:
            node.wait_ready(lambda: stop["now"])
        import_faucet(nodes[0])
        if not args.no_miner:
            address = FAUCET_ADDRESS if args.no_jobs else miner_key(nodes[0], root)
            miner = start_miner(nodes[0], root, address, jobs=not args.no_jobs)
        if not args.no_jobs:
            # posted on another node: A and B travel over p2p
            jobstream = start_jobstream(nodes[-1], root, args.fillers, args.filler_shape)
        console.say(f"devnet up: {len(nodes)} nodes, faucet wallet in {nodes[0].datadir / NETWORK / 'wallet.json'} "
                    f"(password '{WALLET_PASSWORD}'), Ctrl-C to stop")
        started = time.monotonic()
        jobs_root, miner_root = (None if args.no_jobs else root), (None if args.no_miner else root)
        tty = sys.stdout.isatty()
        last_print = 0.0
        while not stop["now"]:
            if args.duration is not None and time.monotonic() - started > args.duration:
                break
            if miner is not None and miner.poll() is not None:
                console.say(f"the miner exited ({miner.returncode}); see {root / 'miner.log'}")
                miner = None
            if tty:
                console.say("\033[2J\033[H" + status(nodes, jobs_root, miner_root))
            elif time.monotonic() - last_print >= args.status_interval:
                console.say(status(nodes, jobs_root, miner_root))
                last_print = time.monotonic()
            time.sleep(1.0)
    finally:
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        console.say("stopping the devnet ...")
        for child in (jobstream, miner):
            interrupt(child)
        for node in nodes:
            node.stop()
        console.say(f"devnet stopped. Data and logs are in {root} (nodeN/pouwd.log, miner.log, jobstream.log); "
                    f"run again to resume, or with --fresh to start over.")
    return 0

if __name__ == "__main__":
    sys.exit(main())
