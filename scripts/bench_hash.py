"""Merkle leaf hashing of the market's matrices (PROTOCOL §2): hashlib against every kernel path.

The lines hashed are those a commitment hashes: the rows of a 4096×8192 int8 A (8 KiB each),
the columns of an 8192×4096 int8 B kept column-major as the node stores it (8 KiB each, where
they lie) and the rows of a 4096×4096 int32 C (16 KiB each), 32, 32 and 64 MiB.  Contenders:
``hashlib`` (``consensus.work.leaf_hashes``, OpenSSL one row at a time) and ``kernel.leaf_hashes``
on each path of ``kernel.leaf_paths()`` with 1 and 2 threads, timed round-robin (the first round
a warm-up) so that a shared machine's load hits them alike; GB/s are medians of ``--repeat``
rounds.  ``--clock cpu`` counts the process's CPU time instead of the wall clock: GB/s per
CPU-second, which is what the hashing costs a busy machine.

Then the Merkle nodes above those leaves, in milliseconds: the 128 group roots of 4096 row
hashes (A's, group 32) and the whole root of 16384 (the largest C's rows), by
``consensus.hashing.roots_of_groups`` (hashlib, one node at a time) against
``kernel.merkle_roots`` on each path, timed the same way.

    python scripts/bench_hash.py [--repeat 5] [--clock wall|cpu] [--paths avx512 shani] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import CLOCKS, round_robin  # noqa: E402

from consensus import work  # noqa: E402
from consensus.hashing import roots_of_groups  # noqa: E402
from miner import kernel  # noqa: E402

THREADS = (1, 2)


def matrices() -> dict[str, np.ndarray]:
    """The committed lines of each matrix, as the commitments hand them to the hasher."""
    rng = np.random.default_rng(2026)
    a = rng.integers(-64, 65, (4096, 8192), dtype=np.int8)
    b = np.asfortranarray(rng.integers(-64, 65, (8192, 4096), dtype=np.int8))
    c = rng.integers(-2**31, 2**31, (4096, 4096), dtype=np.int32)
    return {"A rows": a, "B columns": b.T, "C rows": c}


def contenders(paths: list[str]) -> dict[str, Callable[[np.ndarray], object]]:
    out: dict[str, Callable[[np.ndarray], object]] = {"hashlib": work.leaf_hashes}
    for path in paths:
        for threads in THREADS:
            out[f"{path}/{threads}"] = lambda lines, p=path, t=threads: kernel.leaf_hashes(lines, t, p)
    return out


def bench(repeat: int, clock: str, paths: list[str]) -> dict:
    out: dict = {"clock": clock, "repeat": repeat, "load_avg_before": [round(x, 2) for x in os.getloadavg()],
                 "gb_s": {}}
    fns = contenders(paths)
    for name, lines in matrices().items():
        assert all(fn(lines) == work.leaf_hashes(lines) for fn in fns.values())
        times = round_robin({key: (lambda fn=fn: fn(lines)) for key, fn in fns.items()}, repeat, CLOCKS[clock])
        out["gb_s"][name] = {key: round(lines.nbytes / statistics.median(t) / 1e9, 3) for key, t in times.items()}
    out["merkle_ms"] = merkle(repeat, clock, paths)
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def merkle(repeat: int, clock: str, paths: list[str]) -> dict:
    """Milliseconds of each Merkle contender (see the module's docstring), medians."""
    rng = np.random.default_rng(2027)
    cases = {"4096 → 128 group roots": (4096, 32), "16384 → root": (16384, 16384)}
    fns = {"hashlib": roots_of_groups} | {path: partial(kernel.merkle_roots, path=path) for path in paths}
    out = {}
    for name, (count, group) in cases.items():
        hashes = [row.tobytes() for row in rng.integers(0, 256, (count, 32), dtype=np.uint8)]
        assert all(fn(hashes, group) == roots_of_groups(hashes, group) for fn in fns.values())
        times = round_robin({key: (lambda fn=fn: fn(hashes, group)) for key, fn in fns.items()}, repeat, CLOCKS[clock])
        out[name] = {key: round(statistics.median(t) * 1e3, 3) for key, t in times.items()}
    return out


def print_table(result: dict) -> None:
    print(f"leaf hashing, GB/s ({result['clock']} clock, median of {result['repeat']}), "
          f"load average {result['load_avg_before']} before, {result['load_avg_after']} after")
    keys = list(next(iter(result["gb_s"].values())))
    print(f"{'':10}" + "".join(f"{key:>13}" for key in keys))
    for name, row in result["gb_s"].items():
        print(f"{name:10}" + "".join(f"{row[key]:>13.3f}" for key in keys))
        print(f"{'  ×hashlib':10}" + "".join(f"{row[key] / row['hashlib']:>13.2f}" for key in keys))
    print(f"\nMerkle nodes over the leaf hashes, ms ({result['clock']} clock, median of {result['repeat']})")
    keys = list(next(iter(result["merkle_ms"].values())))
    print(f"{'':24}" + "".join(f"{key:>10}" for key in keys))
    for name, row in result["merkle_ms"].items():
        print(f"{name:24}" + "".join(f"{row[key]:>10.3f}" for key in keys))
        print(f"{'  ×hashlib':24}" + "".join(f"{row['hashlib'] / row[key]:>10.1f}" for key in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--paths", nargs="+", default=[p for p in kernel.leaf_paths() if p != "hashlib"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = bench(args.repeat, args.clock, args.paths)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
