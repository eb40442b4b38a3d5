"""pouw-miner: mine against any pouwd over JSON-RPC, taking jobs from the market (PROTOCOL §6).

    pouw-miner --network regtest --address rpw1… [--rpc-url URL | --rpc-port P] [--threads N] [--shape m,n,k --rank r]
               [--no-jobs | --wallet DATADIR] [--max-job-macs N] [--min-job-price COINS]

To take jobs the miner signs JOB_RESULTs (and pays their bonds) with the key of
``--address`` from the pouw-cli wallet in ``--wallet`` (default ``--datadir``), unlocked
with ``$POUW_WALLET_PASSWORD``; without one it says why and mines synthetic matrices. It takes
no job paying less than ``--min-job-price`` coins per 10^12 multiply-adds (TMAC), and none
whose reward does not exceed the fee of claiming it.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path

from consensus.errors import AddressError
from consensus.keys import decode_address
from consensus.params import MAX_MATRIX_DIM, NETWORKS

from client import wallet
from client.cliutil import CliError, dimensions_flag, number_flag, parse_amount, write_status_file
from client.rpc import RpcClient, RpcClientError, cookie_auth
from consensus.keys import PrivateKey
from consensus.params import Network

from . import kernel
from .jobs import JobLimits, JobTaker
from .template import mining_shape
from .worker import Miner, status_line, status_record

STATUS_SECONDS = 1.0


def _price(text: str) -> int:
    """--min-job-price: coins per TMAC → base units per TMAC."""
    try:
        return parse_amount(text, "price")
    except CliError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pouw-miner", description="Mine pouw blocks against a node over JSON-RPC.")
    p.add_argument("--network", choices=sorted(NETWORKS), default="main")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--rpc-url", "--rpcurl", "--rpc", dest="rpc", metavar="URL",
                       help="node RPC URL (default http://127.0.0.1:<network rpc port>/)")
    where.add_argument("--rpc-port", "--rpcport", dest="rpc_port", type=int, metavar="PORT",
                       help="node RPC port on 127.0.0.1")
    p.add_argument("--datadir", default=os.environ.get("POUW_DATADIR", "~/.pouw"),
                   help="where to find the node's .cookie (default ~/.pouw)")
    p.add_argument("--rpc-user", "--rpcuser", dest="rpc_user", metavar="USER",
                   help="RPC user (default: the node's cookie file)")
    p.add_argument("--rpc-password", "--rpcpassword", dest="rpc_password", metavar="PASSWORD")
    p.add_argument("--address", required=True, help="bech32m address that receives the block rewards")
    p.add_argument("--threads", type=number_flag(1, kernel.MAX_THREADS), default=None,
                   help="kernel threads (default: all cores)")
    p.add_argument("--shape", type=dimensions_flag("m,n,k", MAX_MATRIX_DIM), metavar="m,n,k",
                   help="m,n,k of the matmul (default 512,512 and k up to 1024)")
    p.add_argument("--rank", type=int, help="noise rank r (default the network's smallest)")
    p.add_argument("--blocks", type=number_flag(1), default=None, help="stop after this many accepted blocks")
    p.add_argument("--min-interval", type=number_flag(0, kind=float), default=0.0, metavar="SECONDS",
                   help="pause this long after each found block (paces a devnet whose target is at pow_limit)")
    p.add_argument("--no-jobs", action="store_true", help="mine synthetic matrices only, take no jobs")
    p.add_argument("--wallet", metavar="DATADIR",
                   help="datadir of the pouw-cli wallet holding --address's key, which signs job results "
                        "(default --datadir; password from $POUW_WALLET_PASSWORD)")
    p.add_argument("--max-job-macs", type=number_flag(1), default=JobLimits().max_macs, metavar="N",
                   help=f"take jobs of at most N multiply-adds (m·n·k; default {JobLimits().max_macs})")
    p.add_argument("--min-job-price", type=_price, default=0, metavar="COINS",
                   help="take jobs paying at least COINS per 10^12 multiply-adds (default 0: any job whose "
                        "reward exceeds the fee of claiming it)")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument("--status-file", type=Path, metavar="PATH",
                   help="write the status as JSON to PATH (replaced atomically) every second and at the end")
    return p


def job_key(args: argparse.Namespace, network: Network) -> PrivateKey:
    """The key of ``--address`` from the wallet, or WalletError saying why there is none."""
    path = wallet.wallet_path(Path(args.wallet or args.datadir).expanduser(), network)
    if not path.exists():
        raise wallet.WalletError(f"no wallet at {path} to sign job results with")
    keystore = wallet.load(path, network)
    keystore.find(args.address)
    if wallet.PASSWORD_ENV not in os.environ and not sys.stdin.isatty():
        raise wallet.WalletError(f"set {wallet.PASSWORD_ENV} to unlock the wallet at {path}")
    return keystore.unlock(wallet.read_password()).signing_key(args.address)


def _shape(args: argparse.Namespace) -> tuple[int, int, int, int]:
    network = NETWORKS[args.network]
    m, n, k, r = mining_shape(network)
    if args.rank:
        r = args.rank
        k = network.k_range(r)[0]
    if args.shape:
        m, n, k = args.shape
    if not network.allowed_dims(m, n, k, r):
        low, high = network.k_range(r) if network.allowed_r(r) else (0, 0)
        raise SystemExit(f"pouw-miner: shape {m},{n},{k} with rank {r} is not allowed on {network.name}: "
                         f"m, n multiples of 32; r a power of two in {network.r_min}..{network.r_max}; "
                         f"k a multiple of r in {low}..{high}")
    return m, n, k, r


def _clients(args: argparse.Namespace) -> tuple[RpcClient, RpcClient]:
    network = NETWORKS[args.network]
    url = args.rpc or f"http://127.0.0.1:{args.rpc_port or network.rpc_port}/"
    if args.rpc_user and args.rpc_password:
        user, password = args.rpc_user, args.rpc_password
    else:
        user, password = cookie_auth(Path(args.datadir).expanduser(), network.name)
    return RpcClient(url, user, password, timeout=30), RpcClient(url, user, password, timeout=120)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    network = NETWORKS[args.network]
    try:
        address = decode_address(args.address, network.hrp)
    except AddressError as exc:
        print(f"pouw-miner: bad --address: {exc}", file=sys.stderr)
        return 1
    shape = _shape(args)
    try:
        client, watcher_client = _clients(args)
        info = client.call("getblockchaininfo")
    except RpcClientError as exc:
        print(f"pouw-miner: {exc}", file=sys.stderr)
        return 1
    if info["chain"] != network.name:
        print(f"pouw-miner: the node is on {info['chain']}, not {network.name}", file=sys.stderr)
        return 1
    tty = sys.stderr.isatty() and not args.quiet
    say = lambda text: print(("\r\033[K" if tty else "") + text, file=sys.stderr, flush=True)  # noqa: E731
    jobs = None
    if not args.no_jobs:
        try:
            jobs = JobTaker(client, network, job_key(args, network), JobLimits(args.max_job_macs, args.min_job_price),
                            say=say)
        except wallet.WalletError as exc:
            say(f"pouw-miner: taking no jobs: {exc} (--no-jobs says you meant that)")
    miner = Miner(client, watcher_client, address, shape, args.threads, log=say, min_interval=args.min_interval,
                  jobs=jobs)
    print(f"pouw-miner: {network.name} height {info['blocks']}, shape {shape[0]}x{shape[1]}x{shape[2]} r={shape[3]}, "
          f"kernel {kernel.active_path}, threads {args.threads or kernel.default_threads()}", file=sys.stderr)
    status = threading.Thread(target=_status_loop, args=(miner, tty, args.quiet, args.status_file), daemon=True)
    status.start()
    try:
        miner.run(args.blocks)
    except KeyboardInterrupt:
        pass
    except RpcClientError as exc:
        print(f"\npouw-miner: {exc}", file=sys.stderr)
        return 1
    finally:
        miner.stop_event.set()
    print(("\n" if tty else "") + "pouw-miner: stopped; " + status_line(miner.stats, jobs), file=sys.stderr)
    if args.status_file is not None and (problem := write_status(args.status_file, miner)):
        print(problem, file=sys.stderr)
    return 0


def write_status(path: Path, miner: Miner) -> str | None:
    """The miner's figures (``status_record``) as JSON, replacing ``path`` atomically; why it could
    not be written, or None."""
    try:
        write_status_file(path, {**status_record(miner.stats, miner.jobs), "time": time.time()})
    except OSError as exc:
        return f"pouw-miner: cannot write the status file: {exc}"
    return None


def _status_loop(miner: Miner, tty: bool, quiet: bool, status_file: Path | None) -> None:
    last, last_problem = 0.0, -math.inf
    while not miner.stop_event.wait(STATUS_SECONDS):
        if status_file is not None and (problem := write_status(status_file, miner)) \
                and time.monotonic() - last_problem >= 60:  # said once a minute at most; mining goes on
            last_problem = time.monotonic()
            print(problem, file=sys.stderr, flush=True)
        if quiet:
            continue
        if tty:
            print("\r\033[K" + status_line(miner.stats, miner.jobs), end="", file=sys.stderr, flush=True)
        elif time.monotonic() - last >= 10:
            last = time.monotonic()
            print(status_line(miner.stats, miner.jobs), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
