#!/usr/bin/env python3
"""Real difficulty on dev (PROTOCOL §5): one pouwd --network dev and pouw-miner flat out,
started today, long after the genesis timestamp. Reports the block interval over N blocks
once converged — the mean, which ASERT steers to T = 5 s (target ± 20 %), and the median,
which for memoryless mining is T·ln 2 ≈ 3.5 s — then stops the miner for a pause,
restarts it, and counts the blocks until the target is back near its converged value.

    python scripts/devnet_difficulty.py [--converge 40] [--blocks 100] [--pause 600]
"""
from __future__ import annotations

import argparse
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet import DevNode, start_miner  # noqa: E402


def headers_since(node: DevNode, start: int) -> list[dict]:
    tip = node.call("getblockcount")
    return [node.call("getblockheader", node.call("getblockhash", h)) for h in range(start, tip + 1)]


def wait_height(node: DevNode, height: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while node.call("getblockcount") < height:
        if time.monotonic() > deadline:
            raise SystemExit(f"height {height} not reached in {timeout:.0f} s (at {node.call('getblockcount')})")
        time.sleep(1.0)


def stop_miner(miner: subprocess.Popen) -> None:
    miner.send_signal(signal.SIGINT)
    try:
        miner.wait(15)
    except subprocess.TimeoutExpired:
        miner.kill()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--converge", type=int, default=40, help="blocks to let ASERT settle first")
    p.add_argument("--blocks", type=int, default=100, help="blocks whose intervals are measured")
    p.add_argument("--pause", type=int, default=600, help="seconds the miner stops (0: skip)")
    p.add_argument("--rpc-port", type=int, default=28932)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pouw_difficulty_"))
    node = DevNode(0, root, args.rpc_port, args.rpc_port + 1)
    node.start([])
    miner = None
    try:
        node.wait_ready(lambda: False)
        miner = start_miner(node, root)
        began = time.monotonic()
        wait_height(node, args.converge + args.blocks, timeout=(args.converge + args.blocks) * 60)
        measured = headers_since(node, args.converge)[: args.blocks + 1]
        intervals = [b["time"] - a["time"] for a, b in zip(measured, measured[1:])]
        targets = [int(h["target"], 16) for h in measured]
        mean, median = statistics.mean(intervals), statistics.median(intervals)
        settled = statistics.median(targets)
        print(f"started {time.time() - 1_790_000_000:.0f} s after the genesis timestamp; "
              f"{args.converge + args.blocks} blocks in {time.monotonic() - began:.0f} s")
        print(f"blocks {args.converge}..{args.converge + args.blocks}: mean interval {mean:.2f} s "
              f"(T = 5 s ± 20 %: {'met' if 4.0 <= mean <= 6.0 else 'NOT met'}), median {median:.1f} s "
              f"(memoryless mining: T·ln 2 = {5 * math.log(2):.2f} s); median target {settled:#x}")
        if args.pause:
            stop_miner(miner)
            before = node.call("getblockcount")
            print(f"miner stopped at height {before} for {args.pause} s", flush=True)
            time.sleep(args.pause)
            miner = start_miner(node, root)
            resumed = time.monotonic()
            bound = args.pause // 4 + 60  # about pause / (T − 1 s) blocks, plus slack (docs/protocol.md §5)
            recovered = peak = None
            while recovered is None and time.monotonic() - resumed < 1800:
                time.sleep(2.0)
                after = headers_since(node, before + 1)
                if len(after) < 3:
                    continue
                # the block after the pause carries its parent's target; the one after it the rise
                peak = max(range(len(after)), key=lambda i: int(after[i]["target"], 16))
                recovered = next((h for h in after[peak:] if int(h["target"], 16) <= settled * 1.5), None)
            if recovered is None or peak is None:
                print("target did not come back within 30 minutes")
                return 1
            risen = int(after[peak]["target"], 16) / settled
            blocks = recovered["height"] - after[peak]["height"]
            print(f"after the pause: the target rose to {risen:.1f}× the settled one; back within 1.5× after "
                  f"{blocks} blocks ({time.monotonic() - resumed:.0f} s; bound ≈ {bound} blocks): "
                  f"{'met' if blocks <= bound else 'NOT met'}")
        return 0
    finally:
        if miner is not None and miner.poll() is None:
            stop_miner(miner)
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
