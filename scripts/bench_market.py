#!/usr/bin/env python3
"""Benchmark the job market on a local dev network (PROTOCOL §6): two pouwd processes
(the poster's node and the miner's node, connected over loopback p2p), the miner loop
in this process, and a job client that keeps it saturated.

Measured side by side in one run:
1. the miner's MAC rate on synthetic matrices, then on jobs of the same shape while a
   client keeps four jobs open (target: jobs ≥ 0.95× synthetic);
2. the useful-MAC share meanwhile: the miner's MACs on jobs over all its MACs, and the
   chain's figure from getmarketinfo (target ≥ 90 %);
3. end-to-end latency from post to verified result (the client's ``wait``) for
   one job of each ``--sizes`` (n×n×n);
4. the client's verification cost (claim + Freivalds ×2) against the job's compute at
   the measured rate (target ≤ 1 %).

    python scripts/bench_market.py [--sizes 1024,4096] [--seconds 40] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.market import MarketClient, verify_result  # noqa: E402
from client.rpc import RpcClient, RpcError, cookie_auth  # noqa: E402
from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.keys import PrivateKey, encode_address  # noqa: E402
from consensus.params import COIN, DEV  # noqa: E402
from consensus.tx import Transfer, make_tx  # noqa: E402
from miner.jobs import JobTaker, rank_for  # noqa: E402
from miner.template import mining_shape  # noqa: E402
from miner.worker import Miner  # noqa: E402
from tests.functional.framework import NodeProcess, sync_blocks  # noqa: E402

WORKER = PrivateKey(b"\x42" * 32)


def say(text: str) -> None:
    """The miner's and the job taker's messages, on stderr (the table goes to stdout)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def client_of(node: NodeProcess) -> RpcClient:
    user, password = cookie_auth(node.datadir, DEV.name)
    return RpcClient(node.url, user, password, timeout=600)


def run_miner(node: NodeProcess, shape: tuple[int, int, int, int], threads: int, seconds: float,
              jobs: JobTaker | None) -> Miner:
    miner = Miner(client_of(node), client_of(node), WORKER.address, shape, threads, log=lambda text: None,
                  jobs=jobs)
    thread = threading.Thread(target=miner.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    miner.stop_event.set()
    thread.join(120)
    return miner


def operands(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(-64, 65, size=(n, n), dtype=np.int8), rng.integers(-64, 65, size=(n, n), dtype=np.int8)


def keep_jobs_open(client: MarketClient, n: int, stop: threading.Event, done: list[float]) -> None:
    """Post n×n×n jobs so that four are always waiting; settle each as its result arrives."""
    rng = np.random.default_rng(1)
    pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    while not stop.is_set():
        while len(pending) < 4:
            a, b = operands(n, rng)
            pending[client.post(a, b, COIN)] = (a, b)
        for job_id in list(pending):
            try:
                job = client.job(job_id)
            except RpcError:  # the post is not in a block yet
                continue
            if job["status"] == "claimed" and job["claim"] not in done:
                _, _, txid = client.settle(job_id, *pending[job_id])
                if txid is not None:  # accepted or proved; else C is not there yet: try again
                    done.append(job["claim"])
            elif job["status"] in ("settled", "lapsed", "refunded"):
                pending.pop(job_id)
        stop.wait(0.5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1024,4096", help="n of the n×n×n jobs timed end to end")
    p.add_argument("--saturate", type=int, default=2048, help="n of the jobs that keep the miner busy")
    p.add_argument("--seconds", type=float, default=40.0, help="length of each rate measurement")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench_market_"))
    poster = NodeProcess(0, root, "dev", ["--max-outbound", "0"])
    mnode = NodeProcess(1, root, "dev")
    try:
        poster.start()
        mnode.extra_args = ["--connect", poster.p2p_address]
        mnode.start()
        faucet = dev_faucet_key()
        fund = make_tx(faucet, DEV.chain_id, poster.getaccount(encode_address(DEV.hrp, faucet.address))["pending_nonce"],
                       10_000, Transfer(WORKER.address, 1000 * COIN))
        poster.sendrawtransaction(fund.encode().hex())
        n = args.saturate
        shape = (n, n, n, rank_for(DEV, n))
        print(f"dev network, {args.threads} threads, jobs of {n}³ to saturate, {args.seconds:.0f} s per rate; "
              f"funding the worker ...", flush=True)
        run_miner(mnode, mining_shape(DEV), args.threads, 1.0, None)  # warm up
        while poster.getaccount(encode_address(DEV.hrp, WORKER.address))["balance"] == 0:
            run_miner(mnode, mining_shape(DEV), args.threads, 5.0, None)
            sync_blocks([poster, mnode])
        synthetic = run_miner(mnode, shape, args.threads, args.seconds, None)
        syn_rate = synthetic.stats.macs / args.seconds

        poster_client = MarketClient(client_of(poster), DEV, faucet, log=lambda text: None)
        stop, settled = threading.Event(), []
        feeder = threading.Thread(target=keep_jobs_open, args=(poster_client, n, stop, settled), daemon=True)
        feeder.start()
        while not client_of(mnode).call("listjobs", "open"):  # mine the posts into a block first
            run_miner(mnode, mining_shape(DEV), args.threads, 5.0, None)
        height0 = poster.getblockcount()
        taker = JobTaker(client_of(mnode), DEV, WORKER, say=lambda text: None)
        on_jobs = run_miner(mnode, shape, args.threads, args.seconds, taker)
        job_rate = on_jobs.stats.macs / args.seconds
        share = on_jobs.stats.useful_macs / on_jobs.stats.macs if on_jobs.stats.macs else 0.0
        stop.set()
        feeder.join(60)
        chain_share = poster.getmarketinfo(max(1, poster.getblockcount() - height0))["useful_mac_share"]

        rows = []
        rng = np.random.default_rng(7)
        for size in sizes:
            a, b = operands(size, rng)
            taker = JobTaker(client_of(mnode), DEV, WORKER, say=say)
            miner = Miner(client_of(mnode), client_of(mnode), WORKER.address, shape, args.threads,
                          log=say, jobs=taker)
            thread = threading.Thread(target=miner.run, daemon=True)
            thread.start()
            start = time.perf_counter()
            job_id = poster_client.post(a, b, size ** 3)  # 1 unit a MAC: more per MAC than the feeder's jobs
            c = poster_client.wait([job_id], 1800, {job_id: (a, b)}, 0.2)[job_id]
            latency = time.perf_counter() - start
            miner.stop_event.set()
            thread.join(120)
            job = poster_client.job(job_id)
            t = time.perf_counter()
            verdict = verify_result(job, a, b, c, DEV)
            verify_s = time.perf_counter() - t
            compute_s = size ** 3 / job_rate
            rows.append((size, latency, verify_s, compute_s, verdict.ok))
    finally:
        poster.cleanup()
        mnode.cleanup()

    print(f"\n{'figure':<52}{'value':>14}  target")
    print(f"{'synthetic mining, ' + str(n) + '³':<52}{syn_rate / 1e9:>10.1f} GMAC/s")
    print(f"{'mining on jobs, ' + str(n) + '³ (fetch, 2-for-1, claim included)':<52}{job_rate / 1e9:>10.1f} GMAC/s")
    print(f"{'jobs / synthetic':<52}{job_rate / syn_rate:>14.3f}  ≥ 0.95")
    print(f"{'useful-MAC share (the miner: job MACs / all MACs)':<52}{share:>14.1%}  ≥ 90 %")
    print(f"{'useful-MAC share (the chain: settled / chain MACs)':<52}{chain_share:>14.1%}")
    print(f"{'jobs settled meanwhile':<52}{len(settled):>14}")
    for size, latency, verify_s, compute_s, ok in rows:
        print(f"{f'{size}³: post → verified result':<52}{latency:>12.1f} s")
        print(f"{f'{size}³: verification / compute ({verify_s * 1e3:.1f} ms / {compute_s * 1e3:.0f} ms)':<52}"
              f"{verify_s / compute_s:>14.2%}  ≤ 1 %{'' if ok else '  (RESULT REJECTED)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
