#!/usr/bin/env python3
"""Benchmark the job market on a local dev network (PROTOCOL §6): two pouwd processes
(the poster's node and the miner's node, connected over loopback p2p), the miner loop
in this process, and a job client that keeps it saturated, in a process of its own.

Measured in one run, each with the load average when it was taken:
1. the client's verification cost (Freivalds ×2, what accepting a good C costs) against
   the job's compute, for n×n×n products of ``--verify-sizes`` and the ``--saturate`` shape
   (``--verification-only``: this table alone): "compute" is the miner
   kernel's plain int8 product (``kernel.gemm``, --threads threads) of the same
   operands, timed in the same run; wall time and CPU time (all threads), best of 3
   (target ≤ 1 %); beside it Freivalds on numpy's float64 GEMM (the fallback without
   the C extension), H_C, which the client computes only for a C that fails, and the time
   to read A, B and C once with the same threads, a floor no check can go below;
2. the miner's MAC rate on synthetic matrices, before and after (the mean of both, so that a
   shared host's drift over the run weighs on both sides alike), and on jobs of the same shape
   (``--saturate`` m,k,n) while a client keeps ``--depth`` jobs waiting for a miner (target:
   jobs ≥ 0.95× synthetic); beside it the same ratio per CPU-second of the miner and its
   node, which leaves out the CPU that the poster's node and client take on a shared host;
3. the useful-MAC share meanwhile: the miner's MACs on job products over all its MACs,
   and the chain's figure from getmarketinfo over the blocks of that phase once its jobs
   have settled (target ≥ 90 %), and with the blocks of the drain after it too (the miner
   mines mostly synthetic work there while the client settles the last jobs); the chain's
   MACs are the work its blocks' difficulty implies, so over the phase's N blocks the luck
   of finding them moves that figure by about 1/√N (printed beside it);
   2 and 3 are measured twice, both pouwd at the default getmatrix rate (an internet
   setting) and then both restarted with ``--matrix-rate`` ``--lan-rate`` (a LAN setting),
   with the median time the miner's node took to receive, and to check and store, each
   operand it fetched (from its log);
4. end-to-end latency for ``--latency-jobs`` jobs of each ``--sizes`` (n×n×n), one after
   another: from the post to C verified (and its accept sent), and to the client's ``wait``
   returning it (once the accept is mined), median and range;
5. one ``--saturate`` job step by step with nothing else running: the wall and CPU
   seconds of each step (post, the miner's node fetching A and B, the miner taking the
   job, handing C in, the client settling), per process: what a job costs besides its
   product.

``--steps-only N`` measures only 5, for N jobs one after another (the median of each
figure), and stops: what a job costs outside the kernel, in about a minute.

``--verify-against CHECKOUT`` times this checkout's check of the same shapes against another
built checkout's (``git worktree add``, then ``python setup.py build_ext --inplace`` there),
each in a process of its own, in turns, and stops.

    python scripts/bench_market.py [--sizes 1024,4096] [--latency-jobs 3] [--saturate 4096,8192,4096] [--seconds 120]
                                   [--depth 16] [--lan-rate 0] [--steps-only N]
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.market import MarketClient, MarketClientError, NotClaimed  # noqa: E402
from client.rpc import RpcClient, RpcError, cookie_auth  # noqa: E402
from client.verify import claim_matches, mismatched_rows  # noqa: E402
from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.keys import PrivateKey, encode_address  # noqa: E402
from consensus.params import COIN, DEV  # noqa: E402
from consensus.tx import Transfer, claim_of, make_tx  # noqa: E402
from consensus.work import commit_result  # noqa: E402
from miner import kernel  # noqa: E402
from miner.jobs import JobLimits, JobTaker, rank_for  # noqa: E402
from miner.template import mining_shape  # noqa: E402
from miner.worker import Miner  # noqa: E402
from node.config import DEFAULT_MATRIX_RATE_MB  # noqa: E402
from tests.functional.framework import NodeProcess, sync_blocks  # noqa: E402
from tests.functional.p2putil import wait_connected  # noqa: E402

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


def operands(m: int, k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(-64, 65, size=(m, k), dtype=np.int8), rng.integers(-64, 65, size=(k, n), dtype=np.int8)


def load() -> str:
    return "load %.2f" % os.getloadavg()[0]


def node_cpu(node: NodeProcess) -> float:
    """CPU seconds so far of a pouwd (``/proc/<pid>/stat``: user + system)."""
    fields = Path(f"/proc/{node.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(node: NodeProcess) -> float:
    """CPU seconds so far of the miner (this process: its kernel threads and its job taking; the
    poster's client runs elsewhere) and of its node."""
    return time.process_time() + node_cpu(node)


def best_of(runs: int, work: Callable[[], object]) -> tuple[float, float]:
    """The best wall and CPU seconds (this process, all threads) of ``runs`` calls."""
    wall = cpu = float("inf")
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        work()
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def ms(seconds: tuple[float, float]) -> str:
    """Wall / CPU seconds as milliseconds."""
    return f"{seconds[0] * 1e3:.1f} / {seconds[1] * 1e3:.1f} ms"


def read_once(arrays: list[np.ndarray], threads: int) -> None:
    """Read every byte of ``arrays`` once, split over ``threads`` threads (numpy's max frees the
    interpreter): what any check of C against A and B must at least do."""
    parts = [part for array in arrays for part in np.array_split(array.reshape(-1).view(np.uint8), threads)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.max, parts))


def verification_cost(shapes: list[tuple[int, int, int]], threads: int) -> list[str]:
    """Rows: m×k×n, kernel.gemm, Freivalds (C and numpy), H_C, reading A, B and C once (wall /
    CPU ms), and verification / compute against that floor / compute."""
    rng = np.random.default_rng(3)
    worker = WORKER.address
    rows = []
    for m, k, n in shapes:
        a, b = operands(m, k, n, rng)
        kernel.gemm(a[:256, :256].copy(), b[:256, :256].copy(), threads=threads)  # warm up
        c = kernel.gemm(a, b, threads=threads)
        claim = claim_of(worker, commit_result(c))
        gemm = best_of(3, lambda: kernel.gemm(a, b, threads=threads))
        freivalds = best_of(3, lambda: mismatched_rows(a, b, c))
        fallback = best_of(3, lambda: mismatched_rows(a, b, c, path="numpy"))
        hashing = best_of(3, lambda: claim_matches(worker, claim, c))
        floor = best_of(3, lambda: read_once([a, b, c], threads))
        assert claim_matches(worker, claim, c) and not mismatched_rows(a, b, c)
        ratio = [freivalds[i] / gemm[i] for i in (0, 1)]
        rows.append(f"{m}×{k}×{n}: compute {ms(gemm)}, Freivalds {ms(freivalds)} (numpy: {ms(fallback)}), "
                    f"H_C if it fails {ms(hashing)}, reading A, B, C once {ms(floor)} → verification / compute "
                    f"{ratio[0]:.1%} wall, {ratio[1]:.1%} CPU; that floor / compute {floor[0] / gemm[0]:.1%} wall "
                    f"({load()})")
        say(rows[-1])
    return rows


_CHECK_WORKER = """
import sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from client.verify import mismatched_rows
from consensus.work import int8_product
m, k, n = map(int, sys.argv[2:5])
rng = np.random.default_rng(3)
a, b = rng.integers(-64, 65, size=(m, k), dtype=np.int8), rng.integers(-64, 65, size=(k, n), dtype=np.int8)
c = int8_product(a, b).astype(np.int32)
assert not mismatched_rows(a, b, c)
print("ready", flush=True)
for _ in sys.stdin:
    start = time.perf_counter()
    mismatched_rows(a, b, c)
    print(time.perf_counter() - start, flush=True)
"""


def verification_against(other: Path, shapes: list[tuple[int, int, int]], rounds: int) -> list[str]:
    """Rows: m×k×n, Freivalds of this checkout and of the one at ``other`` (its client package and
    its build) on the same operands, each in a process of its own, taking turns for ``rounds``
    rounds after one warm-up each: the medians and the median of the rounds' time ratios."""
    rows = []
    for m, k, n in shapes:
        sides = [subprocess.Popen([sys.executable, "-c", _CHECK_WORKER, str(root), str(m), str(k), str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for root in (REPO, other)]
        try:
            for side in sides:
                if side.stdout.readline().strip() != "ready":
                    raise SystemExit(f"the check of {m}×{k}×{n} did not start")

            def once(side: subprocess.Popen) -> float:
                side.stdin.write("go\n")
                side.stdin.flush()
                return float(side.stdout.readline())

            for side in sides:
                once(side)
            times = [[once(side) for side in sides] for _ in range(rounds)]
        finally:
            for side in sides:
                side.stdin.close()
                side.wait()
        here, there = (statistics.median(t[i] for t in times) for i in (0, 1))
        ratio = statistics.median(t[0] / t[1] for t in times)
        rows.append(f"{m}×{k}×{n}: Freivalds here {here * 1e3:.1f} ms, at {other} {there * 1e3:.1f} ms (medians of "
                    f"{rounds} turns each) → here / there ×{ratio:.3f}, the median of the turns' ratios ({load()})")
        say(rows[-1])
    return rows


class Feeder:
    """Posts m×k×n jobs so that ``depth`` wait for a miner (posted, not yet claimed) while
    ``posting``; settles each as its result arrives, until ``stop``. A posted job reaches a
    miner only after a block and a transfer of its operands, so several must wait. Posting
    and settling run on threads of their own (one client key: its sends take turns), so a
    settlement (fetch C, verify, accept) does not hold the next post back."""

    def __init__(self, client: MarketClient, shape: tuple[int, int, int], depth: int, seed: int, posting, stop) -> None:
        self.client, self.shape, self.depth, self.seed = client, shape, depth, seed
        self.posting, self.stop = posting, stop
        self._lock = threading.Lock()
        self.pending: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.waiting = 0  # posted, not yet claimed (as of the last look)
        self.settled: list[str] = []
        self.problems: list[str] = []
        self.retried: Counter[str] = Counter()  # settle attempts put off (tried again), by reason
        self.post_seconds: list[float] = []
        self.settle_seconds: list[float] = []

    def run(self) -> None:
        poster = threading.Thread(target=self.post_loop, daemon=True)
        poster.start()
        self.settle_loop()
        poster.join(120)

    def figures(self) -> dict:
        return {"settled": len(self.settled), "problems": len(self.problems), "retried": dict(self.retried.most_common(3)),
                "post_s": float(np.median(self.post_seconds)) if self.post_seconds else 0.0,
                "settle_s": float(np.median(self.settle_seconds)) if self.settle_seconds else 0.0}


    def post_loop(self) -> None:
        m, k, n = self.shape
        rng = np.random.default_rng(self.seed)  # operands no other feeder posts (a node never fetches one twice)
        base_a, base_b = operands(m, k, n, rng)
        while not self.stop.is_set():
            if not self.posting.is_set() or self.waiting >= self.depth:
                self.stop.wait(0.2)
                continue
            a, b = base_a.copy(), base_b.copy()
            a[0], b[:, 0] = rng.integers(-64, 65, size=k, dtype=np.int8), rng.integers(-64, 65, size=k, dtype=np.int8)
            start = time.perf_counter()
            job_id = self.client.post(a, b, COIN, expiry_blocks=1000)
            self.post_seconds.append(time.perf_counter() - start)
            with self._lock:
                self.pending[job_id] = (a, b)
                self.waiting += 1

    def settle_loop(self) -> None:
        """Settle claimed results one at a time, oldest claim first: the worker's node serves C
        at its per-peer rate, so settling several at once only splits that rate and makes all of
        them late (at 8 MiB/s and four at a time, 14 of 22 claims lapsed on the fast dev chain,
        against 8 of 19 one at a time). The jobs are looked at (one batch) only once the tip
        moved, as ``MarketClient.wait`` does (``waitfornewblock``); a claim whose C is not there yet
        is tried again."""
        tip, best, looked_at, open_jobs = None, self.client.rpc.call("getbestblockhash"), set(), 0
        claimed: list[tuple[int, str]] = []
        while not self.stop.is_set():
            with self._lock:
                pending = dict(self.pending)
            if best != tip:
                tip, looked_at, open_jobs, claimed = best, set(pending), 0, []
                for job_id, job in self.client.jobs(list(pending)).items():
                    if job is None or job["status"] == "open":  # the post is not in a block yet, or open
                        open_jobs += 1
                    elif job["status"] == "claimed":
                        claimed.append((job["claim_height"], job_id))
                    elif job["status"] in ("settled", "lapsed", "refunded"):
                        with self._lock:
                            self.pending.pop(job_id)
                claimed.sort()
            for _, job_id in claimed:
                if job_id in pending:
                    self.settle(job_id, *pending[job_id])
            with self._lock:  # and those posted since
                claimed = [c for c in claimed if c[1] in self.pending]
                self.waiting = open_jobs + sum(job_id not in looked_at for job_id in self.pending)
            best = self.client.wait_for_block(tip, 0.2)

    def settle(self, job_id: str, a: np.ndarray, b: np.ndarray) -> None:
        start = time.perf_counter()
        try:
            verdict, _, txid = self.client.settle(job_id, a, b)
        except (RpcError, NotClaimed) as exc:  # e.g. the mempool not yet on the claim's block; a lapse
            self.retried[without_ids(str(exc))] += 1
            return  # looked at again next round
        if txid is None:  # C is not there yet: try again
            self.retried[without_ids(verdict.reason)] += 1
        else:  # accepted or proved
            self.settle_seconds.append(time.perf_counter() - start)
            with self._lock:
                self.pending.pop(job_id)
            self.settled.append(job_id)
            if not verdict.ok:
                self.problems.append(f"{job_id[:16]}…: {verdict.reason}")


def without_ids(reason: str) -> str:
    """A reason with its hashes and numbers left out, to count alike ones together."""
    return re.sub(r"[0-9a-f]{16,}…?|\d+(\.\d+)?", "#", reason)[:90]


def feed(url: str, auth: tuple[str, str], shape: tuple[int, int, int], depth: int, seed: int, posting, stop,
         pending, results) -> None:
    """A Feeder's life in a process of its own: ``pending`` tells the bench how many of its jobs
    are not yet over; its figures go to ``results`` once ``stop`` is set."""
    client = MarketClient(RpcClient(url, *auth, timeout=600), DEV, dev_faucet_key(), log=lambda text: None)
    feeder = Feeder(client, shape, depth, seed, posting, stop)
    worker = threading.Thread(target=feeder.run, daemon=True)
    worker.start()
    while worker.is_alive():
        pending.value = len(feeder.pending)
        worker.join(0.2)
    results.put(feeder.figures())


class FeederProcess:
    """The poster's client (a Feeder) in a process of its own, as a poster is another program:
    its posting, downloading and checking never hold the miner's interpreter, and the miner's
    process CPU time is the miner's alone."""

    def __init__(self, node: NodeProcess, shape: tuple[int, int, int], depth: int, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.posting, self.stop, self.pending, self.results = (context.Event(), context.Event(),
                                                               context.Value("i", 1), context.Queue())
        self.posting.set()
        self.process = context.Process(target=feed, daemon=True, args=(
            node.url, cookie_auth(node.datadir, DEV.name), shape, depth, seed, self.posting, self.stop, self.pending,
            self.results))
        self.process.start()

    def finish(self) -> dict:
        """Stop it; its figures."""
        self.stop.set()
        try:
            figures = self.results.get(timeout=300)
        except queue.Empty:
            raise RuntimeError(f"the feeder process gave no figures (exit code {self.process.exitcode})") from None
        self.process.join(60)
        return figures


def synthetic_mining(mnode: NodeProcess, shape: tuple[int, int, int, int], args) -> tuple[float, float, str]:
    """The miner on synthetic matrices of the jobs' shape for ``args.seconds``: MACs per second,
    MACs per CPU-second of the miner and its node, and the load average."""
    cpu0 = cpu_seconds(mnode)
    synthetic = run_miner(mnode, shape, args.threads, args.seconds, None)
    return synthetic.stats.macs / args.seconds, synthetic.stats.macs / (cpu_seconds(mnode) - cpu0), load()


def market_figures(node: NodeProcess, since: int, until: int = -1) -> dict:
    """getmarketinfo over the blocks after ``since`` up to ``until`` (-1: the tip)."""
    return node.getmarketinfo(max(1, (node.getblockcount() if until == -1 else until) - since), until)


FETCHED = re.compile(r"fetched ([AB]) .* received in ([0-9.]+) s, checked and stored in ([0-9.]+) s")


def fetch_times(node: NodeProcess, skip_lines: int) -> tuple[int, float, float]:
    """(operands fetched, median seconds receiving one, median seconds checking and storing one)
    from the node's log past its first ``skip_lines`` lines."""
    lines = node.log_path.read_text(errors="replace").splitlines()[skip_lines:]
    times = [(float(m[2]), float(m[3])) for m in map(FETCHED.search, lines) if m]
    if not times:
        return 0, 0.0, 0.0
    return len(times), float(np.median([t[0] for t in times])), float(np.median([t[1] for t in times]))


def log_length(node: NodeProcess) -> int:
    return len(node.log_path.read_text(errors="replace").splitlines())


def restart(nodes: list[NodeProcess], rate: str) -> None:
    """Restart both pouwd with ``--matrix-rate rate`` (the miner's node dials the poster's)."""
    for node in nodes:
        node.stop()
    for node in nodes:
        node.start(["--matrix-rate", rate])
    wait_connected(nodes[1], nodes[0].p2p_address)


def market_phase(label: str, seed: int, rate: str, poster: NodeProcess, mnode: NodeProcess, args, shape,
                 limits) -> dict:
    """The miner on jobs for ``args.seconds`` while a client keeps ``args.depth`` waiting, both
    pouwd at getmatrix rate ``rate``; then the open jobs drained and settled. Its figures."""
    m, n, k, _ = shape
    restart([poster, mnode], rate)
    say(f"{label}: both pouwd at --matrix-rate {rate}")
    jobs_before = market_figures(poster, poster.getblockcount())["jobs"]  # by status, the whole chain
    skip = log_length(mnode)
    feeder = FeederProcess(poster, (m, k, n), args.depth, seed)
    while not client_of(mnode).call("listjobs", "open"):  # mine the posts into a block first
        run_miner(mnode, mining_shape(DEV), args.threads, 5.0, None)
    height0 = poster.getblockcount()
    taker = JobTaker(client_of(mnode), DEV, WORKER, limits, say=lambda text: None)
    cpu0 = cpu_seconds(mnode)
    on_jobs = run_miner(mnode, shape, args.threads, args.seconds, taker)
    rate_figure, load_figure = on_jobs.stats.macs / args.seconds, load()
    cpu_rate = on_jobs.stats.macs / (cpu_seconds(mnode) - cpu0)
    share = on_jobs.stats.useful_macs / on_jobs.stats.macs if on_jobs.stats.macs else 0.0
    sync_blocks([poster, mnode])
    height1 = poster.getblockcount()
    at_end = market_figures(poster, height0)
    fetches = fetch_times(mnode, skip)
    feeder.posting.clear()  # drain: the miner takes what is open, the client settles it
    drain = JobTaker(client_of(mnode), DEV, WORKER, limits, say=lambda text: None)
    drain_until = time.monotonic() + 600
    while feeder.pending.value and feeder.process.is_alive() and time.monotonic() < drain_until:
        run_miner(mnode, shape, args.threads, 5.0, drain)
    client_figures = feeder.finish()
    sync_blocks([poster, mnode])
    settled, with_drain = market_figures(poster, height0, height1), market_figures(poster, height0)
    figures = {"label": label, "rate": rate, "job_rate": rate_figure, "cpu_rate": cpu_rate, "load": load_figure,
               "share": share, "height0": height0, "height1": height1, "height2": poster.getblockcount(),
               "at_end": at_end, "settled": settled, "with_drain": with_drain, "jobs": client_figures["settled"],
               "problems": client_figures["problems"], "taken": taker.stats.taken, "fetches": fetches,
               "found": on_jobs.stats.found, "expected_blocks": on_jobs.stats.expected_blocks,
               "post_s": client_figures["post_s"], "settle_s": client_figures["settle_s"],
               "retried": client_figures["retried"],
               "ended": {status: count - jobs_before[status] for status, count in with_drain["jobs"].items()}}
    say(f"{label}: {figures}")
    return figures


NOT_PREFETCHED = " (not prefetched)"
Step = tuple[str, float, float, float, float]  # what; wall s; CPU-s of this process, the miner's node, the poster's


@contextmanager
def cpu_step(rows: list[Step], what: str, poster: NodeProcess, mnode: NodeProcess) -> Iterator[None]:
    """One step timed alone: wall seconds, and CPU seconds of this process (the miner or the
    client, whichever runs the step), of the miner's node and of the poster's node."""
    wall, own, nodes = time.perf_counter(), time.process_time(), (node_cpu(mnode), node_cpu(poster))
    yield
    rows.append((what, time.perf_counter() - wall, time.process_time() - own, node_cpu(mnode) - nodes[0],
                 node_cpu(poster) - nodes[1]))


def job_steps(poster: NodeProcess, mnode: NodeProcess, shape: tuple[int, int, int, int], limits: JobLimits,
              threads: int, seed: int = 11) -> list[Step]:
    """One job of ``shape`` step by step, nothing else running: the CPU it costs outside the
    kernel's product, the worker's side (the miner and its node) and the poster's."""
    m, n, k, _ = shape
    a, b = operands(m, k, n, np.random.default_rng(seed))  # new operands: neither node holds them
    client = MarketClient(client_of(poster), DEV, dev_faucet_key(), log=lambda text: None)
    taker = JobTaker(client_of(mnode), DEV, WORKER, limits, say=say)
    others = {bytes.fromhex(job["job_id"]) for job in client_of(mnode).call("listjobs", "open")}
    rows: list[Step] = []
    skip = log_length(mnode)
    with cpu_step(rows, "the client posts it (A, B uploaded to its node)", poster, mnode):
        job_id = client.post(a, b, COIN, expiry_blocks=1000)
    with cpu_step(rows, "the miner's node fetches A, B (on seeing the post)", poster, mnode):
        deadline = time.monotonic() + 120
        while fetch_times(mnode, skip)[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    if fetch_times(mnode, skip)[0] < 2:
        rows[-1] = (rows[-1][0] + NOT_PREFETCHED, *rows[-1][1:])
    while not any(job["job_id"] == job_id for job in client_of(mnode).call("listjobs", "open")):
        run_miner(mnode, mining_shape(DEV), threads, 2.0, None)  # the post into a block
    with cpu_step(rows, "the miner takes it (GET A, B from its node; H_A, H_B)", poster, mnode):
        work = taker.choose(others)
    assert work is not None and work.job_id.hex() == job_id, "the miner took another job"
    c = kernel.gemm(a, b, threads=threads)
    with cpu_step(rows, "the miner hands C in (H_C, PUT C, JOB_RESULT)", poster, mnode):
        assert taker.deliver(work, c), taker.stats.last_problem
    while client.job(job_id)["status"] != "claimed":
        run_miner(mnode, mining_shape(DEV), threads, 2.0, None)  # the claim into a block
    with cpu_step(rows, "the client settles it (C over p2p, Freivalds, JOB_ACCEPT)", poster, mnode):
        verdict, _, txid = client.settle(job_id, a, b)
    assert verdict.ok and txid, verdict.reason
    return rows


def median_steps(runs: list[list[Step]]) -> list[Step]:
    """Each step's figures, the median over the runs; a step some runs marked (the miner's node
    had not fetched A and B in time) says in how many."""
    steps = []
    for run_steps in zip(*runs):
        labels = [step[0] for step in run_steps]
        label = labels[0].removesuffix(NOT_PREFETCHED)
        marked = sum(each.endswith(NOT_PREFETCHED) for each in labels)
        if marked:
            label += f" (not prefetched in {marked} of {len(runs)})" if len(runs) > 1 else NOT_PREFETCHED
        steps.append((label, *(statistics.median(column) for column in list(zip(*run_steps))[1:])))
    return steps


def print_steps(steps: list[Step], shape: tuple[int, int, int, int], jobs: int, threads: int, note: str = "") -> None:
    m, n, k, _ = shape
    median = f"the median of {jobs} jobs, " if jobs > 1 else ""
    print(f"\none {m}×{k}×{n} job step by step ({median}nothing else running{'; ' + note if note else ''}, "
          f"{threads} threads)")
    print(f"  {'step':<58}{'wall s':>6}{'CPU-s: this process':>20}{'miner node':>11}{'poster node':>12}")
    for what, wall, own, miner_node, poster_node in steps:
        print(f"  {what:<58}{wall:>6.2f}{own:>20.2f}{miner_node:>11.2f}{poster_node:>12.2f}")
    print(f"  {'all steps':<58}{sum(s[1] for s in steps):>6.2f}{sum(s[2] for s in steps):>20.2f}"
          f"{sum(s[3] for s in steps):>11.2f}{sum(s[4] for s in steps):>12.2f}", flush=True)


def spread(values: list[float]) -> str:
    """Median (least–most) seconds."""
    return f"{float(np.median(values)):.1f} s ({min(values):.1f}–{max(values):.1f})"


class TimedClient(MarketClient):
    """A market client that notes when it verified each job's C (and sent its accept)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.verified_at: dict[str, float] = {}

    def settle(self, job_id: str, a: np.ndarray | None = None, b: np.ndarray | None = None):
        verdict, c, txid = super().settle(job_id, a, b)
        if verdict.ok:
            self.verified_at[job_id] = time.perf_counter()
        return verdict, c, txid


def time_to_result(poster: NodeProcess, mnode: NodeProcess, faucet: PrivateKey, size: int, jobs: int,
                   shape: tuple[int, int, int, int], threads: int, limits: JobLimits, rng: np.random.Generator) -> str:
    """``jobs`` size³ jobs posted one after another to a miner mining ``shape`` between them: from
    each post to its C verified (and its accept sent), and to the client's ``wait`` returning it
    (the accept mined); with the chain's mean block interval meanwhile."""
    taker = JobTaker(client_of(mnode), DEV, WORKER, limits, say=say)
    miner = Miner(client_of(mnode), client_of(mnode), WORKER.address, shape, threads, log=say, jobs=taker)
    thread = threading.Thread(target=miner.run, daemon=True)
    thread.start()
    client = TimedClient(client_of(poster), DEV, faucet, log=lambda text: None)
    to_verified, to_result, parts = [], [], []
    height, began = poster.getblockcount(), time.perf_counter()
    try:
        for _ in range(jobs):
            a, b = operands(size, size, size, rng)
            start = time.perf_counter()
            job_id = client.post(a, b, size ** 3, expiry_blocks=1000)  # 1 unit a MAC: more than the feeder's
            try:
                client.wait([job_id], 1800, {job_id: (a, b)}, 0.2)
            except MarketClientError as exc:
                parts.append(f"no verified result after {time.perf_counter() - start:.0f} s (job "
                             f"{client.job(job_id)['status']}; {exc}; the miner: "
                             f"{taker.stats.last_problem or 'no problem reported'})")
                break
            to_result.append(time.perf_counter() - start)
            to_verified.append(client.verified_at[job_id] - start)
    finally:
        miner.stop_event.set()
        thread.join(120)
    interval = (time.perf_counter() - began) / max(1, poster.getblockcount() - height)
    if to_result:
        parts.insert(0, f"post → C verified {spread(to_verified)}, → the result returned (its accept mined) "
                        f"{spread(to_result)}; a block every {interval:.1f} s")
    row = f"{size}³, {len(to_result)} job(s): {'; '.join(parts)} ({load()})"
    say(row)
    return row


def rate_label(rate: str) -> str:
    return "unlimited" if float(rate) == 0 else f"{float(rate):g} MiB/s"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1024,4096", help="n of the n×n×n jobs timed end to end")
    p.add_argument("--latency-jobs", type=int, default=3, help="jobs of each --sizes timed end to end")
    p.add_argument("--verify-sizes", default="1024,2048,4096", help="n of the n×n×n products whose check is timed")
    p.add_argument("--saturate", default="4096,8192,4096", help="m,k,n of the jobs that keep the miner busy")
    p.add_argument("--seconds", type=float, default=120.0, help="length of each rate measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--depth", type=int, default=16, help="jobs the client keeps waiting for a miner")
    p.add_argument("--verification-only", action="store_true", help="time the check against the compute, then stop")
    p.add_argument("--verify-against", type=Path, metavar="CHECKOUT",
                   help="time this checkout's check against another's (built) in turns, then stop")
    p.add_argument("--rounds", type=int, default=11, help="turns each side takes with --verify-against")
    p.add_argument("--steps-only", type=int, metavar="N",
                   help="time N --saturate jobs step by step (the median of each figure), then stop")
    p.add_argument("--lan-rate", default="0",
                   help="--matrix-rate of the LAN phase, MiB/s per peer (default 0: unlimited)")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    m, k, n = (int(x) for x in args.saturate.split(","))
    r = rank_for(DEV, k)
    if r is None:
        p.error(f"no rank allows k={k} on the dev network")
    verify_shapes = [(n_, n_, n_) for n_ in map(int, args.verify_sizes.split(","))] + [(m, k, n)]
    if args.verify_against:
        print("\n".join(verification_against(args.verify_against.resolve(), verify_shapes, args.rounds)))
        return 0
    verify_rows = []
    if not args.steps_only:
        print(f"dev network, {args.threads} threads; verification cost first ({load()})", flush=True)
        verify_rows = verification_cost(verify_shapes, args.threads)
    if args.verification_only:
        print("\n".join(verify_rows))
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench_market_"))
    store = ["--matrix-store-mb", "16384"]  # the saturating jobs' matrices stay until their jobs expire
    poster = NodeProcess(0, root, "dev", ["--max-outbound", "0", *store])
    mnode = NodeProcess(1, root, "dev", store)
    limits = JobLimits(max_macs=max(m * n * k, max(sizes) ** 3))
    try:
        poster.start()
        mnode.extra_args += ["--connect", poster.p2p_address]
        mnode.start()
        faucet = dev_faucet_key()
        fund = make_tx(faucet, DEV.chain_id, poster.getaccount(encode_address(DEV.hrp, faucet.address))["pending_nonce"],
                       10_000, Transfer(WORKER.address, 10_000 * COIN))
        poster.sendrawtransaction(fund.encode().hex())
        shape = (m, n, k, r)
        print(f"jobs of {m}×{k}×{n} to saturate, {args.seconds:.0f} s per rate; funding the worker ...", flush=True)
        run_miner(mnode, mining_shape(DEV), args.threads, 1.0, None)  # warm up
        while poster.getaccount(encode_address(DEV.hrp, WORKER.address))["balance"] == 0:
            run_miner(mnode, mining_shape(DEV), args.threads, 5.0, None)
            sync_blocks([poster, mnode])
        if args.steps_only:  # at the LAN rate, as after the phases
            restart([poster, mnode], args.lan_rate)
            print_steps(median_steps([job_steps(poster, mnode, shape, limits, args.threads, 11 + i)
                                      for i in range(args.steps_only)]), shape, args.steps_only, args.threads)
            return 0
        before = synthetic_mining(mnode, shape, args)
        phases = [market_phase("internet", 1, f"{DEFAULT_MATRIX_RATE_MB:g}", poster, mnode, args, shape, limits),
                  market_phase("LAN", 2, args.lan_rate, poster, mnode, args, shape, limits)]
        after = synthetic_mining(mnode, shape, args)
        syn_rate, syn_cpu_rate = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2

        rng = np.random.default_rng(7)
        latency_rows = [time_to_result(poster, mnode, faucet, size, args.latency_jobs, shape, args.threads, limits,
                                       rng) for size in sizes]
        steps = job_steps(poster, mnode, shape, limits, args.threads)
    finally:
        poster.cleanup()
        mnode.cleanup()
        shutil.rmtree(root, ignore_errors=True)  # gigabytes of matrices

    print("\nverification (wall / CPU, best of 3; compute = kernel.gemm, the same operands):")
    for row in verify_rows:
        print("  " + row)
    print(f"\n{'figure':<58}{'value':>14}  target")
    print(f"{f'synthetic mining, {m}×{k}×{n}, before and after the phases':<58}{syn_rate / 1e9:>10.1f} GMAC/s"
          f"  ({before[0] / 1e9:.1f}, {before[2]}; {after[0] / 1e9:.1f}, {after[2]})")
    for ph in phases:
        print(f"\n{ph['label']}: both pouwd at --matrix-rate {ph['rate']} ({rate_label(ph['rate'])} per peer), "
              f"{args.depth} jobs kept waiting")
        at_end, settled, first = ph["at_end"], ph["settled"], ph["height0"] + 1
        count, receive, store = ph["fetches"]
        on_jobs = f"  mining on jobs, {m}×{k}×{n} ({ph['load']})"
        chain_now = f"  useful-MAC share (the chain, blocks {first}..{ph['height1']}, at once)"
        chain_settled = f"  useful-MAC share (the chain, blocks {first}..{ph['height1']}, settled)"
        chain_drain = f"    with the drain's blocks too ({first}..{ph['height2']})"
        print(f"{on_jobs:<58}{ph['job_rate'] / 1e9:>10.1f} GMAC/s")
        print(f"{'  jobs / synthetic':<58}{ph['job_rate'] / syn_rate:>14.3f}  ≥ 0.95")
        print(f"{'    the same per CPU-second of the miner and its node':<58}{ph['cpu_rate'] / syn_cpu_rate:>14.3f}")
        print(f"{'  useful-MAC share (the miner: job products / all MACs)':<58}{ph['share']:>14.1%}  ≥ 90 %")
        print(f"{chain_now:<58}{at_end['useful_mac_share']:>14.1%}")
        print(f"{chain_settled:<58}{settled['useful_mac_share']:>14.1%}  ≥ 90 %")
        print(f"{'    settled job MACs / chain MACs':<58}{settled['settled_macs']:>14.3g} / {settled['chain_macs']:.3g}")
        luck = f"    the chain's MACs are its {settled['window']} blocks' work: block luck alone"
        print(f"{luck:<58}{1 / math.sqrt(settled['window']):>13.0%}  (one σ)")
        print(f"{chain_drain:<58}{ph['with_drain']['useful_mac_share']:>14.1%}")
        print(f"{'  blocks the miner found / the lottery owed its MACs':<58}{ph['found']:>8} / "
              f"{ph['expected_blocks']:.1f}")
        print(f"{'  jobs taken by the miner; settled (rejected results)':<58}{ph['taken']:>8}; {ph['jobs']} "
              f"({ph['problems']})")
        print(f"{'  operands its node fetched; median s receiving / storing':<58}{count:>8}; "
              f"{receive:.2f} / {store:.2f}")
        print(f"{'  the client: median s per post / per settlement':<58}{ph['post_s']:>8.2f} / {ph['settle_s']:.2f}")
        print(f"{'  jobs of the phase (its drain too): settled; lapsed (burned)':<58}{ph['ended']['settled']:>8}; "
              f"{ph['ended']['lapsed']}")
        for reason, times in ph["retried"].items():
            print(f"    settlements put off {times}×: {reason}")
    print(f"\npost → verified result, both pouwd at the LAN rate ({rate_label(args.lan_rate)}), median (range):")
    for row in latency_rows:
        print("  " + row)
    print_steps(steps, shape, 1, args.threads, f"the product itself: {m * n * k / syn_rate:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
