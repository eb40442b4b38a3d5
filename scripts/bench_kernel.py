"""Mining throughput against the machine's limit and the libraries users run (PROTOCOL §4).

Contenders, all on one thread count:

* ours, in this process: ``mine`` (tickets only), ``mine_c`` (also writes C' = A'·B'),
  ``matmul`` (``kernel.matmul``: exact A·B recovered in the kernel, plus the winning tiles) and
  ``plain`` (the same kernel as a plain int8 GEMM: no noise, fold or tickets);
* anchors, each in a fresh subprocess of its own as a user would run it (3 warm-ups there):
  ``onednn_int8`` = oneDNN's int8 GEMM through torch: ``torch._int_mm`` (s8·s8→s32) where torch
  runs it on oneDNN (AVX-512 VNNI, AVX-VNNI), else oneDNN's u8·s8 matmul under a quantized Linear
  on torch's "onednn" engine (where torch runs _int_mm on a fallback loop instead: AVX2-only
  CPUs); a probe with oneDNN's verbose log on says which, and the anchor is skipped, with the
  reason, when neither runs on oneDNN or torch is not installed; ``fbgemm_int8`` = the quantized
  Linear on the "fbgemm" engine (FBGEMM's u8·s8 GEMM, torch's int8 inference on x86).  Without
  VNNI both multiply with vpmaddubsw, whose int16 pair sums saturate: exact on the operands here
  (entries in [−64, 64]), not on a miner's A', B' in [−127, 127], which ours multiplies exactly;
  and ``numpy_f32`` (float32 matmul, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its
  environment, since they slow it);
* ``reference``: the numpy reference miner, one run (sizes up to 2048 only);
* ``peak``: the physical limit of the ISA the kernel runs on: a throughput loop of the path's
  multiply instruction in the C extension (TDPBSSD on ``amx``, vpdpbusd on the VNNI paths,
  vpmaddubsw with the vpmaddwd that widens it to int32 on ``avx2``) run on all the threads at
  once, MACs per second of the wall clock; "of peak" is against it.  One core's MACs per cycle
  and clock are printed beside it, and how much of threads × one core's the threads reach
  together (below 1 where they share a core's vector units, as SMT siblings do).  On the
  AMX path the vpdpbusd peak is printed too, and ``mine_vnni`` (mine on the AVX-512 VNNI path)
  runs beside the others.

All of these are timed round-robin (the first round a warm-up), so that a shared machine's load
hits every contender alike; a turn is two calls back to back, the second timed, as in a loop;
figures are medians of ``--repeat`` rounds.  An anchor times its own calls in its process, and
gets SETTLE_S afterwards for its library's threads to stop spinning.  The PoUW overhead is mine/plain time − 1, the median over rounds.

``--against OTHER.so`` also runs ``mine``, ``matmul`` and ``plain`` on another build of the kernel
extension (``mine_against``, ``matmul_against``, ``plain_against``), in the same rounds, and prints the median of each round's
time ratio: a change to the kernel measured side by side with the build before it.

``--clock cpu`` (with ``--threads 1``) times each call by its process's CPU time instead of the
wall clock, in our process and in each anchor's alike: on a shared or virtual machine the time
a call spends preempted or stolen is then not counted against it, so ratios hold under load.

    python scripts/bench_kernel.py [--json] [--shapes 1024 2048 4096] [--r 64] [--threads N] [--repeat 9]
    python scripts/bench_kernel.py --threads 1 --clock cpu
    python scripts/bench_kernel.py --against /tmp/_kernel_before.so [--b-cols]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from types import ModuleType
from typing import Callable

import numpy as np

from consensus.block import Header, Ticket, WorkSpec
from miner import kernel

CONTENDERS = ("mine", "mine_c", "matmul", "plain", "mine_vnni", "mine_against", "matmul_against", "plain_against", "onednn_int8",
              "fbgemm_int8", "numpy_f32", "reference")
VNNI_PATH = "avx512"
ANCHORS = ("onednn_int8", "fbgemm_int8", "numpy_f32")
ANCHOR_WARMUPS = 3
SETTLE_S = 0.25
REFERENCE_MAX = 2048
SLOW_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def operands(size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size)
    return (rng.integers(-64, 65, (size, size), dtype=np.int8), rng.integers(-64, 65, (size, size), dtype=np.int8))


# --- anchors: one fresh process each, driven round by round ----------------------------------

class AnchorUnavailable(Exception):
    """The anchor's library is missing, or does not run the anchor on this CPU."""


PROBE_SIZE = 256


def import_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise AnchorUnavailable(str(exc)) from exc
    return torch


def torch_int8_call(route: str, a: np.ndarray, b: np.ndarray, threads: int) -> tuple[Callable[[], object], str]:
    """A·B the way torch users reach an int8 GEMM: ``int_mm`` = ``torch._int_mm`` (s8·s8→s32); the
    others a quantized Linear on that quantized engine ("onednn", "fbgemm"): A + 128 as u8 with zero
    point 128 against B as s8, requantised to u8 (the route of int8 inference; the requantising is
    n² against the n³ of the product)."""
    torch = import_torch()
    torch.set_num_threads(threads)
    described = f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"
    if route == "int_mm":
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return (lambda: torch._int_mm(ta, tb)), f"{described}, _int_mm"
    if route not in torch.backends.quantized.supported_engines:
        raise AnchorUnavailable(f"{described} has no {route} quantized engine")
    torch.backends.quantized.engine = route
    x = torch._make_per_tensor_quantized_tensor(torch.from_numpy((a.astype(np.int16) + 128).astype(np.uint8)), 1.0, 128)
    w = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(b.T)), 1.0, 0)
    packed = torch.ops.quantized.linear_prepack(w, None)
    out_scale = float(a.shape[1] * 64)
    return (lambda: torch.ops.quantized.linear(x, packed, out_scale, 0)), f"{described}, quantized Linear on {route}"


def runs_on_onednn(route: str) -> bool:
    """Whether torch runs ``route`` on oneDNN here: an "exec" line of a GEMM primitive in oneDNN's
    verbose log of a small product (on VNNI cores _int_mm shows as "gemm_api", the quantized
    Linear as "matmul").  Where torch does not hand _int_mm to oneDNN (seen on an AVX2-only Zen 3)
    it runs a plain loop of its own at about 1 GMAC/s, which is no anchor."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    probe = subprocess.run([sys.executable, __file__, "--probe", route], env=env, capture_output=True, text=True,
                           timeout=120)
    return any(line.startswith(("onednn_verbose", "dnnl_verbose")) and ",exec," in line
               and (",gemm_api," in line or ",matmul," in line) for line in probe.stdout.splitlines())


def probe_child(route: str) -> None:
    """Subprocess side of runs_on_onednn: one small product on ``route``."""
    a = np.ones((PROBE_SIZE, PROBE_SIZE), dtype=np.int8)
    try:
        call, _ = torch_int8_call(route, a, a, 1)
    except AnchorUnavailable:
        return
    call()


def anchor_routes() -> dict[str, str]:
    """The route of each torch anchor (see torch_int8_call), decided once a run: oneDNN's is
    _int_mm where torch runs it on oneDNN, else the quantized Linear on the onednn engine where
    that does, else "" (no anchor)."""
    onednn = next((route for route in ("int_mm", "onednn") if runs_on_onednn(route)), "")
    return {"onednn_int8": onednn, "fbgemm_int8": "fbgemm", "numpy_f32": ""}


def anchor_call(name: str, route: str, a: np.ndarray, b: np.ndarray,
                threads: int) -> tuple[Callable[[], object], str]:
    """The anchor's call on A, B (by its route) and a description of what runs it (raises
    AnchorUnavailable)."""
    if name == "onednn_int8" and not route:
        import_torch()  # not installed: that is the reason
        raise AnchorUnavailable("torch runs neither _int_mm nor a quantized Linear on oneDNN here")
    if name in ("onednn_int8", "fbgemm_int8"):
        return torch_int8_call(route, a, b, threads)
    af, bf = a.astype(np.float32), b.astype(np.float32)
    try:
        from threadpoolctl import threadpool_info
        blas = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                         f"threads={i.get('num_threads')}" for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        blas = "BLAS kernel unknown (threadpoolctl not installed)"
    return (lambda: af @ bf), blas


def anchor_child(name: str, route: str, size: int, threads: int, clock: Callable[[], float]) -> None:
    """Subprocess side: warms up, prints {"runs_on": ...} (or {"why": ...} and exits), then for
    every "run" line on stdin makes two calls and prints the seconds of the second."""
    a, b = operands(size)
    try:
        call, runs_on = anchor_call(name, route, a, b, threads)
    except AnchorUnavailable as exc:
        print(json.dumps({"why": str(exc)}), flush=True)
        return
    for _ in range(ANCHOR_WARMUPS):
        call()
    print(json.dumps({"runs_on": runs_on}), flush=True)
    for _ in sys.stdin:
        call()  # back to back with the timed call, as in a loop: the library's threads awake
        start = clock()
        call()
        print(clock() - start, flush=True)


class Anchor:
    """An anchor in a fresh process of its own (none of our threads or libraries in it), with the
    same thread count; each call() runs it once there and returns the seconds it took."""

    def __init__(self, name: str, route: str, size: int, threads: int, clock: str) -> None:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        if name == "numpy_f32":
            for key in SLOW_BLAS_ENV:
                env.pop(key, None)
        self.proc = subprocess.Popen([sys.executable, __file__, "--anchor", name, "--route", route,
                                      "--shapes", str(size), "--threads", str(threads), "--clock", clock],
                                     env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        hello = json.loads(line) if line else {"why": self.proc.stderr.read().strip().splitlines()[-1:]}
        self.runs_on = hello.get("runs_on") or hello.get("why")
        self.available = "runs_on" in hello

    def __call__(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        seconds = float(self.proc.stdout.readline())
        time.sleep(SETTLE_S)  # its library threads spin for a while after a call
        return seconds

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# --- the round-robin ----------------------------------------------------------------------------

def round_robin(fns: dict[str, Callable[[], object]], repeat: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per run of each of ``fns``, round-robin so that a noisy machine's load hits every
    contender alike; the first round is a warm-up.  Each turn is two calls back to back of which
    the second is timed (an Anchor does the same in its process and reports the seconds)."""
    times: dict[str, list[float]] = {key: [] for key in fns}
    for rep in range(repeat + 1):
        for key, fn in fns.items():
            if isinstance(fn, Anchor):
                got = fn()
            else:
                fn()
                start = clock()
                fn()
                got = clock() - start
            if rep:
                times[key].append(got)
    return times


def peak(threads: int, path: str | None = None, prefix: str = "peak") -> dict:
    """The limit for ``threads`` threads (measured with all of them running the loop at once), one
    core's MACs per cycle and clock, and the first over threads × one core's."""
    macs_per_cycle, ghz = kernel.peak(path)
    together = kernel.peak_together(threads, path)
    alone = macs_per_cycle * ghz * 1e9 * threads
    return {f"{prefix}_gmacs": round(together / 1e9, 1), f"{prefix}_macs_per_cycle": round(macs_per_cycle, 1),
            f"{prefix}_clock_ghz": round(ghz, 2), f"{prefix}_scaling": round(together / alone, 2) if alone else None}


def other_vnni() -> str | None:
    """The VNNI path to run beside an AMX one (None when the kernel runs on VNNI or below)."""
    return VNNI_PATH if kernel.active_path == "amx" and VNNI_PATH in kernel.available_paths() else None


def load_build(path: str) -> ModuleType:
    """Another build of the kernel extension (a copy of its .so), loaded beside this one."""
    spec = importlib.util.spec_from_file_location(kernel._kernel.__name__, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--against: {path} is not a loadable extension module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_build(build: ModuleType, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with ``kernel`` running on ``build`` for its duration."""
    def run() -> object:
        own, kernel._kernel = kernel._kernel, build
        try:
            return call()
        finally:
            kernel._kernel = own
    return run


def bench(size: int, r: int, threads: int, repeat: int, routes: dict[str, str], clock: str = "wall",
          against: ModuleType | None = None, b_cols: bool = False) -> dict:
    a, b = operands(size)
    if b_cols:  # as the node stores and serves a job's B: the kernel packs it from its columns
        b = np.asfortranarray(b)
    # commitments are per job, not per template: placeholders keep the setup cheap
    header = Header(2, 4, 1, bytes(32), 0, 1 << 200, bytes(32), bytes(32), bytes(20), 0,
                    WorkSpec(size, size, size, r, bytes(32), bytes(32)), Ticket(0, 0, bytes(32)))
    out: dict = {"shape": [size, size, size], "r": r, "threads": threads, "path": kernel.active_path,
                 "clock": clock, "b_cols": b_cols, "load_avg": round(os.getloadavg()[0], 2)}
    anchors = {name: Anchor(name, routes[name], size, threads, clock) for name in ANCHORS}
    for name, anchor in anchors.items():
        out[f"{name}_runs_on"] = anchor.runs_on
    out |= peak(threads)
    vnni = other_vnni()
    if vnni:
        out |= peak(threads, vnni, "vnni_peak")
    times = round_robin({
        "mine": lambda: kernel.mine(header, a, b, threads=threads),
        "mine_c": lambda: kernel.run(header, a, b, want_product=True, threads=threads),
        "matmul": lambda: kernel.matmul(a, b, header, threads=threads),
        "plain": lambda: kernel.gemm(a, b, block=r, threads=threads),
    } | ({"mine_vnni": lambda: kernel.mine(header, a, b, threads=threads, path=vnni)} if vnni else {})
      | ({"mine_against": on_build(against, lambda: kernel.mine(header, a, b, threads=threads)),
          "matmul_against": on_build(against, lambda: kernel.matmul(a, b, header, threads=threads)),
          "plain_against": on_build(against, lambda: kernel.gemm(a, b, block=r, threads=threads))} if against else {})
      | {name: anchor for name, anchor in anchors.items() if anchor.available}, repeat, CLOCKS[clock])
    for anchor in anchors.values():
        anchor.close()
    if size <= REFERENCE_MAX:
        times |= round_robin({"reference": lambda: kernel.mine(header, a, b, path="numpy")}, 1, CLOCKS[clock])
    gmacs = size ** 3 / 1e9
    for key in CONTENDERS:
        t = times.get(key)
        out[f"{key}_gmacs"] = round(gmacs / statistics.median(t), 2) if t else None
        out[f"{key}_gmacs_range"] = [round(gmacs / max(t), 2), round(gmacs / min(t), 2)] if t else None
    out["torch_int8_gmacs"] = out["onednn_int8_gmacs"]  # the key's earlier name
    for key in ("mine", "matmul", "plain"):
        if times.get(f"{key}_against"):  # > 1: this build is faster
            out[f"{key}_speedup"] = round(statistics.median(o / t for o, t in zip(times[f"{key}_against"], times[key])), 4)
    ratios = [m / p - 1 for m, p in zip(times["mine"], times["plain"])]
    out["overhead"] = round(statistics.median(ratios), 4)
    out["overhead_range"] = [round(min(ratios), 4), round(max(ratios), 4)]
    return out


def print_table(row: dict) -> None:
    size, peak_gmacs = row["shape"][0], row["peak_gmacs"]
    print(f"{size}^3 r={row['r']} threads={row['threads']} path={row['path']} clock={row['clock']} "
          f"load={row['load_avg']}  "
          f"peak ({row['path']}) {peak_gmacs} GMAC/s with {row['threads']} threads at once "
          f"({row['peak_scaling']} of {row['threads']} x {row['peak_macs_per_cycle']} MAC/cycle x "
          f"{row['peak_clock_ghz']} GHz, one core's)")
    if "vnni_peak_gmacs" in row:
        print(f"  vpdpbusd peak ({VNNI_PATH}) {row['vnni_peak_gmacs']} GMAC/s ({row['vnni_peak_scaling']} of "
              f"{row['threads']} x {row['vnni_peak_macs_per_cycle']} MAC/cycle x {row['vnni_peak_clock_ghz']} GHz)")
    print(f"  {'GMAC/s':24} {'median':>8} {'[min-max]':>18} {'of peak':>8}")
    for key in CONTENDERS:
        value, span = row[f"{key}_gmacs"], row[f"{key}_gmacs_range"]
        if value is None:
            print(f"  {key:24} {'-':>8}")
            continue
        share = f"{value / peak_gmacs:8.2f}" if peak_gmacs else ""
        print(f"  {key:24} {value:8.1f} {f'[{span[0]:.0f}-{span[1]:.0f}]':>18} {share}")
    low, high = row["overhead_range"]
    line = f"  PoUW overhead (mine/plain - 1): {row['overhead']:+.1%} [{low:+.1%} .. {high:+.1%}]"
    for name, library in (("onednn_int8", "oneDNN"), ("fbgemm_int8", "FBGEMM")):
        if row[f"{name}_gmacs"]:
            line += (f"; mine/{library} {row['mine_gmacs'] / row[f'{name}_gmacs']:.2f}, "
                     f"matmul/{library} {row['matmul_gmacs'] / row[f'{name}_gmacs']:.2f}")
    if "mine_speedup" in row:
        line += (f"; against the other build: mine ×{row['mine_speedup']:.3f}, matmul ×{row['matmul_speedup']:.3f}, "
                 f"plain ×{row['plain_speedup']:.3f}")
    if row.get("mine_vnni_gmacs") and row.get("vnni_peak_gmacs"):
        line += f"; mine_vnni of the vpdpbusd peak {row['mine_vnni_gmacs'] / row['vnni_peak_gmacs']:.2f}"
    print(line)
    for name in ANCHORS:
        print(f"  {name} ran on: {row[f'{name}_runs_on']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per shape")
    parser.add_argument("--shapes", type=int, nargs="+", default=[1024, 2048, 4096], help="m = n = k")
    parser.add_argument("--r", type=int, default=64)
    parser.add_argument("--threads", type=int, default=kernel.default_threads())
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per contender (median reported)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="time calls by the wall clock, or by CPU time (needs --threads 1)")
    parser.add_argument("--b-cols", action="store_true",
                        help="our contenders get B column-major, as a miner gets a job's B from its node")
    parser.add_argument("--against", metavar="OTHER.so",
                        help="another build of miner/_kernel*.so to run mine and plain on, side by side")
    parser.add_argument("--anchor", choices=ANCHORS, help=argparse.SUPPRESS)  # the subprocess sides
    parser.add_argument("--route", default="", help=argparse.SUPPRESS)
    parser.add_argument("--probe", choices=("int_mm", "onednn"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1 (idle library threads spinning would count as work)")
    if args.probe:
        probe_child(args.probe)
        return
    if args.anchor:
        anchor_child(args.anchor, args.route, args.shapes[0], args.threads, CLOCKS[args.clock])
        return
    against = load_build(args.against) if args.against else None
    routes = anchor_routes()
    for size in args.shapes:
        row = bench(size, args.r, args.threads, args.repeat, routes, args.clock, against, args.b_cols)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print_table(row)


if __name__ == "__main__":
    main()
