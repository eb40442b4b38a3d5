"""Mining throughput side by side (PROTOCOL §4): the C kernel mining, the same kernel as a
plain int8 GEMM, numpy float32 matmul, the numpy reference miner and torch._int_mm (if
importable).  Medians of several round-robin runs, one thread count for all.

    python scripts/bench_kernel.py [--json] [--shapes 1024 2048] [--r 64] [--threads N] [--repeat 7]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Callable

import numpy as np

from consensus.block import Header, Ticket, WorkSpec
from miner import kernel


def median_seconds(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Round-robin over ``fns`` so that a noisy machine's load hits every contender alike."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    for rep in range(repeat + 1):  # the first round is a warm-up
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            if rep:
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def torch_int8(a: np.ndarray, b: np.ndarray, threads: int) -> Callable[[], object] | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return lambda: torch._int_mm(ta, tb)


def bench(size: int, r: int, threads: int, repeat: int) -> dict:
    rng = np.random.default_rng(size)
    a = rng.integers(-64, 65, (size, size), dtype=np.int8)
    b = rng.integers(-64, 65, (size, size), dtype=np.int8)
    # commitments are per job, not per template: placeholders keep the setup cheap
    header = Header(1, 4, 1, bytes(32), 0, 1 << 200, bytes(32), bytes(20), 0,
                    WorkSpec(size, size, size, r, bytes(32), bytes(32)), Ticket(0, 0, bytes(32)))
    af, bf = a.astype(np.float32), b.astype(np.float32)
    macs = size ** 3 / 1e9
    runs: dict[str, Callable[[], object] | None] = {
        "mine_gmacs": lambda: kernel.mine(header, a, b, threads=threads),
        "plain_gmacs": lambda: kernel.gemm(a, b, block=r, threads=threads),
        "numpy_f32_gmacs": lambda: af @ bf,
        "reference_gmacs": lambda: kernel.mine(header, a, b, path="numpy"),
        "torch_int8_gmacs": torch_int8(a, b, threads),
    }
    out: dict = {"shape": [size, size, size], "r": r, "threads": threads, "path": kernel.active_path}
    fast = {key: fn for key, fn in runs.items() if fn is not None and key != "reference_gmacs"}
    seconds = median_seconds(fast, repeat) | median_seconds({"reference_gmacs": runs["reference_gmacs"]}, 1)
    for key in runs:
        out[key] = round(macs / seconds[key], 2) if key in seconds else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per shape")
    parser.add_argument("--shapes", type=int, nargs="+", default=[1024, 2048], help="m = n = k")
    parser.add_argument("--r", type=int, default=64)
    parser.add_argument("--threads", type=int, default=kernel.default_threads())
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    for size in args.shapes:
        row = bench(size, args.r, args.threads, args.repeat)
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{size}^3 r={args.r} threads={args.threads} path={row['path']} (GMAC/s, medians)")
        for key in ("mine_gmacs", "plain_gmacs", "numpy_f32_gmacs", "reference_gmacs", "torch_int8_gmacs"):
            print(f"  {key:18} {row[key]}")
        print(f"  PoUW overhead (plain/mine - 1): {row['plain_gmacs'] / row['mine_gmacs'] - 1:+.1%}; "
              f"mine / numpy f32: {row['mine_gmacs'] / row['numpy_f32_gmacs']:.2f}x")


if __name__ == "__main__":
    main()
