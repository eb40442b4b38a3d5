"""Mining throughput side by side (PROTOCOL §4): the C kernel mining, the same kernel as a
plain int8 GEMM, numpy float32 matmul, the numpy reference miner and torch._int_mm (if
importable).  One thread count for all.

The PoUW overhead compares ``mine`` with ``plain`` (the same kernel, packing, tile loop and
threads, without noise, fold or tickets).  Those two are timed round-robin in a group of
their own, before any third-party library runs: OpenBLAS and OpenMP worker threads keep
spinning for a while after a call, and whichever contender ran next used to lose a core to
them.  ``mine_c`` is mining that also writes C' = A'·B' (what ``kernel.matmul`` runs), the
strict like-for-like partner of ``plain``, which writes C as well.

    python scripts/bench_kernel.py [--json] [--shapes 1024 2048] [--r 64] [--threads N] [--repeat 9]
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

SETTLE_S = 0.5  # lets other libraries' spinning worker threads go to sleep before timing


def timings(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds per run of each of ``fns``, round-robin so that a noisy machine's load hits
    every contender alike; the first round is a warm-up and is dropped."""
    time.sleep(SETTLE_S)
    times: dict[str, list[float]] = {key: [] for key in fns}
    for rep in range(repeat + 1):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            if rep:
                times[key].append(time.perf_counter() - start)
    return times


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
    header = Header(2, 4, 1, bytes(32), 0, 1 << 200, bytes(32), bytes(32), bytes(20), 0,
                    WorkSpec(size, size, size, r, bytes(32), bytes(32)), Ticket(0, 0, bytes(32)))
    af, bf = a.astype(np.float32), b.astype(np.float32)
    gmacs = size ** 3 / 1e9
    ours = {
        "mine": lambda: kernel.mine(header, a, b, threads=threads),
        "mine_c": lambda: kernel.run(header, a, b, want_product=True, threads=threads),
        "plain": lambda: kernel.gemm(a, b, block=r, threads=threads),
    }
    others = {key: fn for key, fn in {
        "numpy_f32": lambda: af @ bf,
        "torch_int8": torch_int8(a, b, threads),
    }.items() if fn is not None}
    times = timings(ours, repeat)
    times |= timings(others, min(repeat, 3))  # slow and only for orientation
    times |= timings({"reference": lambda: kernel.mine(header, a, b, path="numpy")}, 1)
    out: dict = {"shape": [size, size, size], "r": r, "threads": threads, "path": kernel.active_path}
    for key in ("mine", "mine_c", "plain", "numpy_f32", "reference", "torch_int8"):
        t = times.get(key)
        out[f"{key}_gmacs"] = round(gmacs / statistics.median(t), 2) if t else None
        out[f"{key}_gmacs_range"] = [round(gmacs / max(t), 2), round(gmacs / min(t), 2)] if t else None
    # per-round ratios: both contenders of a round saw the same machine load
    ratios = [m / p - 1 for m, p in zip(times["mine"], times["plain"])]
    out["overhead"] = round(statistics.median(ratios), 4)
    out["overhead_range"] = [round(min(ratios), 4), round(max(ratios), 4)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per shape")
    parser.add_argument("--shapes", type=int, nargs="+", default=[1024, 2048], help="m = n = k")
    parser.add_argument("--r", type=int, default=64)
    parser.add_argument("--threads", type=int, default=kernel.default_threads())
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    for size in args.shapes:
        row = bench(size, args.r, args.threads, args.repeat)
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{size}^3 r={args.r} threads={args.threads} path={row['path']} (GMAC/s: median [min–max])")
        for key in ("mine", "mine_c", "plain", "numpy_f32", "reference", "torch_int8"):
            rng_ = row[f"{key}_gmacs_range"]
            span = f"  [{rng_[0]}–{rng_[1]}]" if rng_ else ""
            print(f"  {key + '_gmacs':18} {row[key + '_gmacs']}{span}")
        low, high = row["overhead_range"]
        print(f"  PoUW overhead (mine/plain time - 1, median of rounds): {row['overhead']:+.1%} "
              f"[{low:+.1%}–{high:+.1%}]; mine / numpy f32: {row['mine_gmacs'] / row['numpy_f32_gmacs']:.2f}x")


if __name__ == "__main__":
    main()
