"""The mining loop: template → work → submit, refreshed on every new tip (PROTOCOL §4, §5).

A background thread long-polls ``getblocktemplate`` with the current tip as
``longpollid``; when the tip moves it flags the work in hand as stale, so the loop
drops it between two matmuls and never submits a block for an old tip.  A job's
product (seconds of work) is not finished on the old tip: the kernel stops at its next
256-row panel and the loop goes on with the rest under the new tip's template.

The loop never spins against the node: it builds no header whose timestamp the node
would hold (it waits for the clock when median time past runs ahead, §5), and after a
rejected block it says why and backs off, 1 s doubling to 60 s, until a block is accepted.

With a ``JobTaker`` the loop mines on jobs (§6): it takes an open job, computes A·B once
(``kernel.matmul_rows``, the 2-for-1 path: a useful block if a tile wins), claims the job
with it and takes the next open job; without one, or while no job is open, it mines
synthetic matrices.  A winning tile stops the product at its next panel too: the block is
submitted and the rest of the product mined under the next block's template, so a large
job can win more than one block, as many as its MACs are worth.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from consensus.block import WorkSpec
from consensus.reasons import Reason
from consensus.work import OperandRoots, assemble_block

from . import kernel
from .jobs import JobTaker, JobWork
from .odds import expected_blocks, expected_macs
from client.rpc import RpcClient, RpcClientError
from .synthetic import synthetic_matrices
from .template import REFRESH_SECONDS, Template
from .units import duration, si

BACKOFF_FIRST = 1.0  # seconds after the first rejected block in a row
BACKOFF_MAX = 60.0
RATE_WINDOW_SECONDS = 60.0
JOB_CHECK_SECONDS = 5.0  # how often the loop looks for a job, or checks that its job is still open


@dataclass
class MinerStats:
    """Counts since start; rates over the last ``RATE_WINDOW_SECONDS`` of wall time, pauses
    included, so they compare with the node's network rate (``pouw_network_macs_per_second``)."""

    started: float = field(default_factory=lambda: time.monotonic())
    macs: int = 0
    useful_macs: int = 0  # MACs on jobs' matrices
    tiles: int = 0
    matmuls: int = 0
    found: int = 0
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    clock_waits: int = 0  # times the loop waited for the clock instead of building a held block
    last_reject: str = ""
    block_macs: float = math.inf  # expected MACs per block at the current target and shape
    expected_blocks: float = 0.0  # the blocks the lottery owes the work so far (found / this: luck)
    _marks: deque = field(default_factory=deque)  # (time, macs, tiles) about once a second

    def __post_init__(self) -> None:
        self._marks.append((self.started, 0, 0))

    def add_matmul(self, macs: int, tiles: int, useful: bool = False, odds: float = 0.0) -> None:
        """A kernel call's work; ``odds``: the blocks it could be expected to win (``miner.odds``)."""
        self.expected_blocks += odds
        self.macs += macs
        self.useful_macs += macs if useful else 0
        self.tiles += tiles
        self.matmuls += 1
        now = time.monotonic()
        if now - self._marks[-1][0] >= 1.0:
            self._marks.append((now, self.macs, self.tiles))
        while len(self._marks) > 1 and now - self._marks[1][0] >= RATE_WINDOW_SECONDS:
            self._marks.popleft()

    def _rate(self, index: int) -> float:
        since, *counts = self._marks[0]
        elapsed = time.monotonic() - since
        return ((self.macs, self.tiles)[index] - counts[index]) / elapsed if elapsed > 0 else 0.0

    def mac_rate(self) -> float:
        return self._rate(0)

    def useful_share(self) -> float | None:
        """The share of all MACs so far that were on jobs' matrices (None before the first)."""
        return self.useful_macs / self.macs if self.macs else None

    def tickets_per_second(self) -> float:
        return self._rate(1)

    def expected_seconds_to_block(self) -> float:
        rate = self.mac_rate()
        return self.block_macs / rate if rate > 0 else math.inf


class TipWatcher(threading.Thread):
    """Long-polls the node and records each template whose tip differs from the last seen."""

    def __init__(self, client: RpcClient, longpollid: str, on_error: Callable[[str], None],
                 on_change: Callable[[], None] = lambda: None) -> None:
        super().__init__(daemon=True, name="tip-watcher")
        self.client = client
        self.longpollid = longpollid
        self.on_error = on_error
        self.on_change = on_change
        self.changed = threading.Event()
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                tpl = self.client.call("getblocktemplate", {"longpollid": self.longpollid})
            except RpcClientError as exc:
                self.on_error(str(exc))
                self.stop_event.wait(2.0)
                continue
            with self._lock:
                if tpl["longpollid"] == self.longpollid:
                    continue
                self._latest = tpl
                self.longpollid = tpl["longpollid"]
                self.changed.set()
            self.on_change()

    def take(self) -> dict[str, Any] | None:
        with self._lock:
            tpl, self._latest = self._latest, None
            self.changed.clear()
            return tpl

    def seen(self, longpollid: str) -> None:
        """The loop has this tip's template: it is no change, and one recorded before is not newer
        (or, if the tip moved again meanwhile, the next long poll answers at once)."""
        with self._lock:
            self.longpollid = longpollid
            self._latest = None
            self.changed.clear()


class Backoff:
    """The pause after a rejected block: doubles from ``first`` up to ``cap``; ``reset`` on acceptance."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Miner:
    """Mines against a node until stopped: on jobs when it has a ``JobTaker``, else (and between
    jobs) on synthetic matrices of one shape."""

    def __init__(self, client: RpcClient, watcher_client: RpcClient, address: bytes,
                 shape: tuple[int, int, int, int], threads: int | None = None,
                 log: Callable[[str], None] = print, min_interval: float = 0.0,
                 backoff: Backoff | None = None, jobs: JobTaker | None = None) -> None:
        self.client = client
        self.watcher_client = watcher_client
        self.address = address
        self.m, self.n, self.k, self.r = shape
        self.threads = threads
        self.log = log
        self.min_interval = min_interval
        self.backoff = backoff or Backoff()
        self.stats = MinerStats()
        self.stop_event = threading.Event()
        self.synthetic = synthetic_matrices(hashlib.sha256(address + os.urandom(16)).digest(), self.m, self.n, self.k)
        self.synthetic_roots = kernel.operand_roots(*self.synthetic, threads)
        self.synthetic_spec = WorkSpec(self.m, self.n, self.k, self.r, self.synthetic_roots.h_a,
                                       self.synthetic_roots.h_b)
        self.jobs = jobs
        self.job: JobWork | None = None
        self._switch = np.zeros(1, np.uint8)  # set by a new tip or a winning tile: a job's product stops
        self._job_checked = -math.inf
        self._chooser: ThreadPoolExecutor | None = None  # while running with jobs: chooses and fetches
        self._deliverer: ThreadPoolExecutor | None = None  # … hands products in, in the order computed
        self._choosing: Future | None = None  # the next job, being chosen and fetched meanwhile
        self._ready: JobWork | None = None  # the next job, its matrices fetched
        self._handing_in: set[bytes] = set()  # jobs computed whose product is not handed in yet
        self._handing_lock = threading.Lock()
        self._polled = -math.inf  # when the job thread last followed the claimed jobs

    def _work(self) -> tuple[object, object, WorkSpec, OperandRoots]:
        """(A, B, work spec, their group roots) to mine now: the current job's, else the synthetic ones."""
        if self.job is not None:
            return self.job.a, self.job.b, self.job.spec, self.job.roots
        return (*self.synthetic, self.synthetic_spec, self.synthetic_roots)

    def _follow_jobs(self) -> None:
        """Keep the next job coming: a background thread follows what was claimed, chooses the
        next open job and fetches its matrices while the loop computes the current one (or
        mines synthetic matrices); the loop takes it up when it is ready, and the thread goes
        for the one after it at once. When none was open it asks again every few seconds, and
        at once after a new block or a product handed in."""
        if self._chooser is None:
            return
        if self._choosing is not None and self._choosing.done():
            try:
                self._ready = self._choosing.result()
            except RpcClientError as exc:
                self.log(f"job market: {exc}")
            self._choosing = None
        if self.job is None and self._ready is not None:
            self.job, self._ready = self._ready, None
            self._job_checked = -math.inf  # a job was open, so more may be: fetch the next one meanwhile
        if (self._choosing is None and self._ready is None
                and time.monotonic() - self._job_checked >= JOB_CHECK_SECONDS):
            self._job_checked = time.monotonic()
            with self._handing_lock:
                busy = {*self._handing_in, *((self.job.job_id,) if self.job else ())}
            self._choosing = self._chooser.submit(self._poll_and_choose, busy)

    def _deliver(self, job: JobWork, product: object) -> None:
        """Hand the product in on the delivery thread (upload of C, its commitment, the claim
        tx) while the loop mines on and the job thread fetches the next job: the upload of a
        large C takes about as long as computing it. Until it is handed in, the job is not
        chosen again (its product is computed once)."""
        with self._handing_lock:
            self._handing_in.add(job.job_id)

        def deliver() -> None:
            try:
                self.jobs.deliver(job, product)  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 — a lost delivery is reported, never fatal to mining
                self.log(f"job market: delivering job {job.job_id.hex()[:16]}… failed: {exc!r}")
            finally:
                with self._handing_lock:
                    self._handing_in.discard(job.job_id)
        self._deliverer.submit(deliver)  # type: ignore[union-attr]

    def _poll_and_choose(self, busy: set[bytes]) -> JobWork | None:
        """Follow the claimed jobs (every few seconds: two RPCs per claim, dozens while results
        wait for their posters), then choose and fetch the next job."""
        if time.monotonic() - self._polled >= JOB_CHECK_SECONDS:
            self._polled = time.monotonic()
            self.jobs.poll()  # type: ignore[union-attr]
        return self.jobs.choose(taken=busy)  # type: ignore[union-attr]

    def run(self, max_blocks: int | None = None) -> None:
        template = Template.from_json(self.client.call("getblocktemplate"))
        watcher = TipWatcher(self.watcher_client, template.longpollid, lambda e: self.log(f"node: {e}"),
                             lambda: self._switch.fill(1))
        watcher.start()

        def taken(obj: dict[str, Any]) -> Template:
            """A template the loop mines on; its tip is then no change to the watcher."""
            watcher.seen(obj["longpollid"])
            return Template.from_json(obj)

        fetched = time.monotonic()
        nonce = int.from_bytes(os.urandom(4), "little") << 32
        if self.jobs is not None:
            self._chooser = ThreadPoolExecutor(1, thread_name_prefix="job-chooser")
            self._deliverer = ThreadPoolExecutor(1, thread_name_prefix="job-deliverer")
        try:
            while not self.stop_event.is_set():
                if max_blocks is not None and self.stats.accepted >= max_blocks:
                    return
                self._switch[0] = 0  # cleared before the watcher is asked: a tip it sees from now on is flagged
                fresh = watcher.take() if watcher.changed.is_set() else None
                if fresh is not None or time.monotonic() - fetched > REFRESH_SECONDS:
                    template = taken(fresh or self.client.call("getblocktemplate"))
                    fetched = time.monotonic()
                    if fresh is not None:
                        self._job_checked = -math.inf  # a new block opens the jobs it posts: look at once
                wait = template.clock_wait(int(time.time()))
                if wait:
                    self.stats.clock_waits += 1
                    self.log(f"the chain's median time past is ahead of the clock: the next block may be "
                             f"stamped no earlier than {template.mintime}; waiting {wait}s for the clock")
                    self.stop_event.wait(wait)
                    continue
                self._follow_jobs()
                a, b, spec, roots = self._work()
                job, rows = self.job, spec.m
                panel = kernel.PANEL_ROWS if job is not None else None  # a job's product is mined in parts
                self.stats.block_macs = expected_macs(template.target, spec.m, spec.n, spec.k, panel)
                header = template.header_for(self.address, nonce, spec, int(time.time()))
                nonce += 1
                if job is not None:  # a job's product is computed once (under one or more headers), then handed in
                    job.partial = job.partial or kernel.PartialProduct.of_shape(spec.m, spec.n)
                    before = job.partial.rows_done
                    winners = kernel.matmul_rows(a, b, header, job.partial, self._switch, self.threads)
                    rows = job.partial.rows_done - before
                    if job.partial.done:
                        self._deliver(job, job.partial.product)
                        self.job = None
                        self._job_checked = -math.inf  # look for the next job at once
                else:
                    winners = kernel.mine(header, a, b, self.threads)
                self.stats.add_matmul(rows * spec.n * spec.k, (rows // 32) * (spec.n // 32), useful=job is not None,
                                      odds=expected_blocks(template.target, rows, spec.n, spec.k, panel))
                if not winners:
                    continue
                self.stats.found += 1
                if watcher.changed.is_set() or self.client.call("getbestblockhash") != template.prev_hash.hex():
                    self.stats.stale += 1  # the tip moved while we computed: never submit for an old tip
                else:
                    self.stop_event.wait(self._submit(assemble_block(header, a, b, winners[0], template.txs, roots)))
                # the new tip's template at once (after a stale find, the watcher's long poll may not have answered)
                template = taken(self.client.call("getblocktemplate"))
                fetched = time.monotonic()
        finally:
            watcher.stop_event.set()
            if self._chooser is not None:
                self._chooser.shutdown(wait=False, cancel_futures=True)
                self._chooser, self._choosing, self._ready = None, None, None
            if self._deliverer is not None:
                self._deliverer.shutdown(wait=False)  # products computed are still handed in
                self._deliverer = None

    def _submit(self, block) -> float:
        """Submit a found block; returns how long to pause before mining again."""
        reason = self.client.call("submitblock", block.encode().hex())
        if reason is None:
            self.stats.accepted += 1
            self.backoff.reset()
            self.log(f"block {block.hash.hex()} at height {block.header.height} accepted")
            return self.min_interval
        self.stats.rejected += 1
        self.stats.last_reject = str(reason)
        delay = self.backoff.next()
        if reason == Reason.TIME_TOO_NEW:  # held for its timestamp; we never stamp past our clock: the node's is behind
            self.log(f"block {block.hash.hex()} held by the node: {reason} (the node's clock is behind this "
                     f"machine's); waiting {delay:g}s for its clock")
            return delay
        self.log(f"block {block.hash.hex()} rejected: {reason}; backing off {delay:g}s")
        return delay


def status_record(stats: MinerStats, jobs: JobTaker | None = None) -> dict:
    """The figures of ``status_line`` as JSON-ready values (``pouw-miner --status-file``)."""
    record = {"mac_rate": stats.mac_rate(), "found": stats.found, "accepted": stats.accepted,
              "rejected": stats.rejected, "stale": stats.stale, "macs": stats.macs,
              "expected_blocks": stats.expected_blocks,
              "useful_share": stats.useful_share(), "jobs": None}
    if jobs is not None:
        j = jobs.stats
        record["jobs"] = {"taken": j.taken, "claimed": j.claimed, "paid": j.paid, "reward": j.reward}
    return record


def status_line(stats: MinerStats, jobs: JobTaker | None = None) -> str:
    rejected = f" (last: {stats.last_reject})" if stats.rejected else ""
    line = (f"{si(stats.mac_rate(), 'MAC/s')}  {si(stats.tickets_per_second(), 'tickets/s')}  "
            f"next block expected in {duration(stats.expected_seconds_to_block())}  found {stats.found}  "
            f"accepted {stats.accepted}  rejected {stats.rejected}{rejected}  stale {stats.stale}")
    if jobs is not None:
        j = jobs.stats
        line += (f"  jobs taken {j.taken} claimed {j.claimed} paid {j.paid} (+{j.reward / 1e8:g} coins)"
                 f"  useful {stats.useful_share() or 0.0:.0%}")
    return line
