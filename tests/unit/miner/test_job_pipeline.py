"""The mining loop's job pipeline (PROTOCOL §6): while one job's product is computed, the next
open job is chosen and fetched, so that a miner with jobs waiting goes from one product to
the next without a synthetic matmul between them."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Collection

from miner.worker import JOB_CHECK_SECONDS, Miner


class OpenJobs:
    """A job taker over ``count`` open jobs: ``choose`` hands out the next one, or None when none
    is left (what it hands out stands in for a ``JobWork``: only its ``job_id`` matters), and
    notes which jobs the loop said it had taken (their Cs count against the delivery budget)."""

    def __init__(self, count: int) -> None:
        self.left = [SimpleNamespace(job_id=f"job {i}".encode()) for i in range(count)]
        self.taken: list[set[bytes]] = []

    def poll(self) -> None:
        pass

    def choose(self, exclude: Collection[bytes] = (), taken: Collection[bytes] = ()) -> SimpleNamespace | None:
        self.taken.append(set(taken))
        return self.left.pop(0) if self.left else None


def loop_steps(miner: Miner, steps: int, clock: list[float]) -> list[bytes | None]:
    """What the loop would mine at each of ``steps`` iterations (a job's id, or None: synthetic
    matrices), taking each job's product as done when its iteration ends, as ``run`` does;
    the job thread's choice is waited for before the next iteration, as if each product took
    longer than fetching the next job. ``clock`` is the loop's clock, a second an iteration."""
    mined = []
    for _ in range(steps):
        miner._follow_jobs()
        mined.append(miner.job.job_id if miner.job is not None else None)
        if miner.job is not None:
            miner.job = None  # its product computed and handed in
            miner._job_checked = float("-inf")
        if miner._choosing is not None:
            miner._choosing.result()
        clock[0] += 1.0
    return mined


def test_the_next_job_is_fetched_while_one_is_computed(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("miner.worker.time.monotonic", lambda: clock[0])
    jobs = OpenJobs(4)
    miner = Miner.__new__(Miner)
    miner.jobs = jobs
    miner.job = None
    miner._job_checked = float("-inf")
    miner._polled = float("-inf")
    miner._choosing = miner._ready = None
    miner._handing_in, miner._handing_lock = set(), threading.Lock()
    miner.log = lambda text: None
    miner._chooser = ThreadPoolExecutor(1)
    try:
        mined = loop_steps(miner, 6, clock)
    finally:
        miner._chooser.shutdown()
    assert 1.0 < JOB_CHECK_SECONDS  # an iteration is shorter than the pause between looks for jobs
    # the first iteration has nothing fetched yet; then the four jobs back to back, then none is open
    assert mined == [None, b"job 0", b"job 1", b"job 2", b"job 3", None]
    # each next job is chosen while the one before it is computed, which is counted as taken
    assert jobs.taken[:5] == [set(), {b"job 0"}, {b"job 1"}, {b"job 2"}, {b"job 3"}]
