#!/usr/bin/env python3
"""Benchmark the consensus reference of the work function (PROTOCOL §4).

Prints a table: reference fold throughput (GMAC/s) for square shapes with r=64,
and the time to verify one block proof (consensus.work.proof_error) at several k.
Medians over repeats; run on an otherwise idle machine for stable numbers.

    python scripts/bench_work.py [--repeat N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from consensus import work
from consensus.block import Header, Ticket, WorkSpec
from consensus.params import MAX_TARGET


def header_for(a: np.ndarray, b: np.ndarray, r: int) -> Header:
    (m, k), n = a.shape, b.shape[1]
    return Header(2, 4, 1, bytes(32), 1_790_000_005, MAX_TARGET, bytes(32), bytes(32), bytes(20), 0,
                  WorkSpec(m, n, k, r, work.commit_a(a), work.commit_b(b)), Ticket(0, 0, bytes(32)))


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def fold_gmacs(size: int, r: int, repeat: int) -> float:
    rng = np.random.default_rng(size)
    a = rng.integers(-64, 65, size=(size, size), dtype=np.int8)
    b = rng.integers(-64, 65, size=(size, size), dtype=np.int8)
    h = header_for(a, b, r)
    s = work.seeds(h)
    a2, b2 = work.noisy_operands(a, b, s, r)
    seconds = timed(lambda: work.all_tiles(a2, b2, s, h), repeat)
    return size**3 / seconds / 1e9


def verify_ms(k: int, r: int, repeat: int) -> float:
    rng = np.random.default_rng(k)
    a = rng.integers(-64, 65, size=(256, k), dtype=np.int8)
    b = rng.integers(-64, 65, size=(k, 256), dtype=np.int8)
    h = header_for(a, b, r)
    s = work.seeds(h)
    a2, b2 = work.noisy_operands(a, b, s, r)
    lanes = work.tile_fold(a2[:32], b2[:, :32], r)
    tile = work.TileResult(0, 0, lanes, work.ticket_digest(s.s_a, 0, 0, lanes), True)
    block = work.assemble_block(h, a, b, tile)
    assert work.proof_error(block.header, block.proof) is None
    return timed(lambda: work.proof_error(block.header, block.proof), repeat) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'measure':<40} {'value':>12}")
    for size in (512, 1024):
        print(f"{f'reference fold {size}^3, r=64 (GMAC/s)':<40} {fold_gmacs(size, 64, args.repeat):>12.3f}")
    for k in (1024, 4096):
        print(f"{f'verify one block proof k={k}, r=64 (ms)':<40} {verify_ms(k, 64, args.repeat * 4):>12.2f}")


if __name__ == "__main__":
    main()
