"""Blocks a job's product wins (PROTOCOL §4): one header for the whole product against the
product in parts, side by side in one run.

One header (``kernel.matmul``): a second winning tile of the same header cannot be submitted
(the block it would make is the one already found), so a product holding λ winning tickets on
average yields 1 − e^−λ blocks.  In parts (``kernel.matmul_rows``, what ``pouw-miner`` and
``MiningSession`` do): the kernel stops at the end of the 256-row panel in which a tile wins,
and the rest of the product is mined under a fresh header (the next block's), so the product
yields close to λ blocks; what is lost is the rest of the winning panel.  On the devnet a
4096×8192·8192×4096 filler holds λ ≈ 0.69 (137 GMAC against about 199 GMAC a dev block
credits).

The lottery is run on 4096×384·384×64 products (the filler's 16 panels, MACs cut down) with a
target that puts λ winning tiles in a product; every product gets fresh headers.  The restart
cost is timed at the filler's shape: one call against one call a panel (every tile winning,
the most stops a product can have), best of ``--repeat``, after a warm-up.

    python scripts/bench_lottery.py [--products 600] [--lam 0.69] [--repeat 3] [--no-restart]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from consensus.block import Header, Ticket, WorkSpec  # noqa: E402
from miner import kernel  # noqa: E402

LOTTERY_SHAPE = (4096, 384, 64)  # m, n, k
FILLER_SHAPE = (4096, 4096, 8192)
R = 64


def spec_of(a: np.ndarray, b: np.ndarray) -> WorkSpec:
    (m, k), n = a.shape, b.shape[1]
    return WorkSpec(m, n, k, R, kernel.commit_a(a), kernel.commit_b(b))


def header(spec: WorkSpec, nonce: int, target: int) -> Header:
    return Header(2, 4, 7, bytes(32), 1_700_000_000, target, bytes(32), bytes(32), bytes(20), nonce, spec,
                  Ticket(0, 0, bytes(32)))


def in_parts(a: np.ndarray, b: np.ndarray, spec: WorkSpec, nonce: int, target: int) -> tuple[int, int]:
    """(blocks, kernel calls) of one product mined in parts, a fresh header after every stop."""
    partial, stop = kernel.PartialProduct.of_shape(a.shape[0], b.shape[1]), np.zeros(1, np.uint8)
    blocks = calls = 0
    while not partial.done:
        stop[0] = 0
        blocks += bool(kernel.matmul_rows(a, b, header(spec, nonce + calls, target), partial, stop))
        calls += 1
    return blocks, calls


def lottery(products: int, lam: float) -> None:
    m, n, k = LOTTERY_SHAPE
    rng = np.random.default_rng(2026)
    a, b = rng.integers(-64, 65, (m, k), dtype=np.int8), rng.integers(-64, 65, (k, n), dtype=np.int8)
    spec = spec_of(a, b)
    target = int(lam * 2**256) // (m * n * k)  # expected winning tiles a product: m·n·k·target / 2^256 = λ
    one = sum(bool(kernel.matmul(a, b, header(spec, 2 * p << 32, target))[1]) for p in range(products))
    parts = [in_parts(a, b, spec, (2 * p + 1) << 32, target) for p in range(products)]
    blocks = sum(found for found, _ in parts)
    sigma = math.sqrt(products * lam) / products
    print(f"lottery: {products} products of {m}×{k}·{k}×{n}, λ = {lam:g} winning tiles a product "
          f"(one σ of a count/product near λ: {sigma:.3f})")
    print("| policy | blocks | blocks a product | expected | of λ |\n|---|---|---|---|---|")
    print(f"| one header (kernel.matmul) | {one} | {one / products:.3f} | 1 − e^−λ = {1 - math.exp(-lam):.3f} "
          f"| {one / products / lam:.0%} |")
    print(f"| in parts (kernel.matmul_rows) | {blocks} | {blocks / products:.3f} | below λ = {lam:.3f} "
          f"| {blocks / products / lam:.0%} |")
    print(f"kernel calls a product in parts: {sum(c for _, c in parts) / products:.2f}")


def restart_cost(repeat: int) -> None:
    m, n, k = FILLER_SHAPE
    rng = np.random.default_rng(7)
    a = rng.integers(-64, 65, (m, k), dtype=np.int8)
    b = np.asfortranarray(rng.integers(-64, 65, (k, n), dtype=np.int8))  # as the node serves B
    spec, everything = spec_of(a, b), (1 << 256) - 1  # every tile wins: the kernel stops at every panel
    kernel.matmul(a, b, header(spec, 0, everything))  # warm-up: threads, workspace
    timings = {"one call": [], "a call a panel": []}
    calls = 0
    for _ in range(repeat):
        start = time.perf_counter()
        kernel.matmul(a, b, header(spec, 1, everything))
        timings["one call"].append(time.perf_counter() - start)
        start = time.perf_counter()
        calls = in_parts(a, b, spec, 2, everything)[1]
        timings["a call a panel"].append(time.perf_counter() - start)
    one, parts = min(timings["one call"]), min(timings["a call a panel"])
    print(f"\nrestart cost at {m}×{k}·{k}×{n} ({kernel.active_path}, best of {repeat}): one call {one:.3f} s, "
          f"{calls} calls {parts:.3f} s: {(parts - one) / (calls - 1) * 1e3:.1f} ms a stop "
          f"({(parts - one) / (calls - 1) / one:.2%} of the product)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=600)
    parser.add_argument("--lam", type=float, default=0.69, help="winning tiles a product, on average")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-restart", action="store_true", help="skip timing the restart at the filler's shape")
    args = parser.parse_args()
    lottery(args.products, args.lam)
    if not args.no_restart:
        restart_cost(args.repeat)


if __name__ == "__main__":
    main()
