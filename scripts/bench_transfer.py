#!/usr/bin/env python3
"""Benchmark a job's operands moving between two pouwd processes over p2p (PROTOCOL §7
``getmatrix``/``matrix``): what the receiving and the sending node spend on it.

Two dev-network pouwd on loopback, the second connected to the first. A client posts a job of
``--shape`` m,k,n (random int8 A and B uploaded to the first node); the second node sees the
JOB_POST and fetches A and B (``m·k + k·n`` bytes) from the first. Per job: the wall seconds from
the post to both operands stored, and the CPU seconds (user + system, ``/proc``) of the
receiving and of the sending node meanwhile.

``--against CHECKOUT`` runs the same with another built checkout's pouwd (``git worktree add``,
then ``python setup.py build_ext --inplace`` there), the two in turns, ``--rounds`` times, and
prints both and their ratios.

    python scripts/bench_transfer.py [--shape 4096,8192,4096] [--jobs 3] [--rounds 3]
                                     [--matrix-rate 0] [--against CHECKOUT]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_market import client_of, fetch_times, log_length, node_cpu, operands

from client.market import MarketClient  # noqa: E402 (bench_market put the checkout on the path)
from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.params import COIN, DEV  # noqa: E402
from tests.functional.framework import REPO, NodeProcess, wait_until  # noqa: E402
from tests.functional.p2putil import wait_connected  # noqa: E402


def transfers(repo: Path, shape: tuple[int, int, int], jobs: int, rate: str,
              rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """(wall s, receiver CPU s, sender CPU s) of each of ``jobs`` posts, the pouwd of ``repo``."""
    m, k, n = shape
    root = Path(tempfile.mkdtemp(prefix="bench_transfer_"))
    store = ["--matrix-store-mb", "8192", "--matrix-rate", rate]
    sender = NodeProcess(0, root, "dev", ["--max-outbound", "0", *store], repo=repo)
    receiver = NodeProcess(1, root, "dev", store, repo=repo)
    rows = []
    try:
        sender.start()
        receiver.extra_args += ["--connect", sender.p2p_address]
        receiver.start()
        wait_connected(receiver, sender.p2p_address)
        client = MarketClient(client_of(sender), DEV, dev_faucet_key(), log=lambda text: None)
        for _ in range(jobs):
            a, b = operands(m, k, n, rng)
            skip, received = log_length(receiver), node_cpu(receiver)
            client.post(a, b, COIN, expiry_blocks=1000)  # the upload is the sender's: counted from here
            start, sent = time.perf_counter(), node_cpu(sender)
            wait_until(lambda: fetch_times(receiver, skip)[0] >= 2, 300, 0.02, "both operands stored")
            rows.append((time.perf_counter() - start, node_cpu(receiver) - received, node_cpu(sender) - sent))
    finally:
        for node in (sender, receiver):
            if node.process is not None:
                node.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def summary(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.median(column) for column in zip(*rows))  # type: ignore[return-value]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="4096,8192,4096", help="m,k,n of the jobs whose A and B move")
    p.add_argument("--jobs", type=int, default=3, help="jobs posted per round")
    p.add_argument("--rounds", type=int, default=3, help="turns each checkout takes")
    p.add_argument("--matrix-rate", default="0", help="both nodes' --matrix-rate, MiB/s a peer (0: unpaced)")
    p.add_argument("--against", type=Path, metavar="CHECKOUT", help="another built checkout to run in turns")
    args = p.parse_args()
    shape = tuple(int(x) for x in args.shape.split(","))
    m, k, n = shape
    sides = {"here": REPO, **({"other": args.against.resolve()} if args.against else {})}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in sides}
    rng = np.random.default_rng(5)
    print(f"{len(sides)} checkout(s), {args.rounds} rounds of {args.jobs} jobs of {m}×{k}×{n}: "
          f"{(m * k + k * n) / 2**20:.0f} MiB of operands each, --matrix-rate {args.matrix_rate}", flush=True)
    for turn in range(args.rounds):
        for name, repo in sides.items():
            rows = transfers(repo, shape, args.jobs, args.matrix_rate, rng)
            results[name] += rows
            wall, rx, tx = summary(rows)
            print(f"  round {turn + 1}, {name}: wall {wall:.2f} s, receiver {rx:.3f} CPU-s, sender {tx:.3f} CPU-s "
                  f"(medians of {len(rows)})", flush=True)
    print("\nmedians over all rounds (wall s; receiving node CPU-s; sending node CPU-s):")
    medians = {name: summary(rows) for name, rows in results.items()}
    for name, (wall, rx, tx) in medians.items():
        print(f"  {name:<6} {sides[name]}: {wall:.2f}; {rx:.3f}; {tx:.3f}")
    if "other" in medians:
        here, other = medians["here"], medians["other"]
        print("  here / other: " + "; ".join(f"{h / o:.3f}" for h, o in zip(here, other)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
