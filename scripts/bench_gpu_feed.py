#!/usr/bin/env python3
"""What a GPU miner would ask of the job market (PROTOCOL §1, §6): for job shapes m×k×n, the
time a CUDA GPU takes for the int8 product (torch's ``_int_mm``, int8 × int8 → int32, the job's
C), against the time to bring A and B to it and C back over the host link, and the bytes per
second of matrices the market would have to deliver to keep it on jobs.

Needs PyTorch with a CUDA device (not a dependency of pouw: run it where one is installed).
Each figure is the median of ``--repeat`` timed runs after warm-up, timed with CUDA events.

    python scripts/bench_gpu_feed.py [--shapes 4096,8192,4096 16384,8192,16384] [--repeat 20]
"""
from __future__ import annotations

import argparse
import statistics
import sys


def timed(torch, fn, repeat: int) -> float:
    """Median seconds of ``fn`` on the current CUDA stream, after three warm-up calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["4096,8192,4096", "16384,8192,16384"], help="m,k,n of each job")
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed here: this benchmark needs it with a CUDA device", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'m×k×n':<20}{'product':>10}{'TOPS':>8}{'A, B in':>10}{'C out':>10}{'MACs/byte':>11}"
          f"{'matrices to feed it':>22}")
    for shape in args.shapes:
        m, k, n = (int(x) for x in shape.split(","))
        gen = torch.Generator().manual_seed(1)
        a = torch.randint(-64, 65, (m, k), dtype=torch.int8, generator=gen).pin_memory()
        b = torch.randint(-64, 65, (k, n), dtype=torch.int8, generator=gen).pin_memory()
        c_host = torch.empty((m, n), dtype=torch.int32).pin_memory()
        a_dev = a.cuda()
        b_dev = b.cuda().t().contiguous().t()  # column-major, as nodes store B: cuBLAS's fast int8 layout (TN)
        c_dev = torch._int_mm(a_dev, b_dev)
        exact = (c_dev[:8].cpu().to(torch.int64) == a[:8].to(torch.int64) @ b.to(torch.int64)).all().item()  # rows checked on the host
        product = timed(torch, lambda: torch._int_mm(a_dev, b_dev), args.repeat)
        b_cols = b.t().contiguous().pin_memory()  # B's columns, as the node serves them
        upload = timed(torch, lambda: (a_dev.copy_(a, non_blocking=True), b_dev.t().copy_(b_cols, non_blocking=True)),
                       args.repeat)
        download = timed(torch, lambda: c_host.copy_(c_dev, non_blocking=True), args.repeat)
        moved = m * k + k * n + 4 * m * n  # the job's operands in, its C out
        macs = m * n * k
        print(f"{f'{m}×{k}×{n}':<20}{product * 1e3:>8.2f}ms{2 * macs / product / 1e12:>8.0f}"
              f"{upload * 1e3:>8.2f}ms{download * 1e3:>8.2f}ms{macs / moved:>11.0f}"
              f"{moved / product / 1e9:>17.0f} GB/s" + ("" if exact else "  (C WRONG)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
