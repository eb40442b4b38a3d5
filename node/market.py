"""The node's side of the job market (PROTOCOL §6, §7): which jobs exist, which matrices the
node holds and serves, fetching missing ones from peers, and pruning what no live job needs.

C is served (to peers and over RPC) only once its JOB_RESULT is in the best chain: before
that anyone who saw C could copy H_C, and the claim binds it to the worker only on chain.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Iterator

import numpy as np

from consensus.state import CLAIMED, JOB_STATUS_NAMES, LAPSED, OPEN, SETTLED, Job

from .matrices import MatrixError, MatrixStore, StoredMatrix, StoreUnwritable

log = logging.getLogger(__name__)

FetchRows = Callable[[bytes, int, int], Awaitable["list[bytes] | None"]]
MAX_REPLY_BYTES = 4 * 1024 * 1024  # PROTOCOL §7: a matrix reply carries at most 4 MiB
UPLOAD_GRACE_SECONDS = 24 * 3600  # an uploaded matrix no job names yet is kept this long
RESULT_STATUSES = (CLAIMED, SETTLED, LAPSED)  # a job whose claim is on the best chain
STATS_WINDOW = 1000  # blocks the useful-MAC share is measured over


class MarketError(Exception):
    """A job-market request that cannot be served (unknown key, peers without the data…)."""


class JobMarket:
    """Jobs from the chain's state, matrices from the store, rows from peers."""

    def __init__(self, chain, store: MatrixStore, fetch_rows: FetchRows | None = None) -> None:
        self.chain = chain
        self.store = store
        self.fetch_rows = fetch_rows
        self._fetching: dict[bytes, asyncio.Task] = {}
        self.bytes_served = 0
        self._chain_stats: tuple[tuple[bytes, int], dict[str, Any]] | None = None  # ((tip, window), figures)

    # --- jobs --------------------------------------------------------------------------
    def jobs(self, status: str | None = None) -> Iterator[tuple[bytes, Job]]:
        """Every job at the tip (a scan of the job records), optionally of one status name."""
        for job_id, job in self.chain.tip_state_view().jobs():
            if status is None or JOB_STATUS_NAMES[job.status] == status:
                yield job_id, job

    def job_naming(self, key: bytes) -> tuple[bytes, Job, str] | None:
        """A job whose A, B or claim (while on the best chain) is ``key``: (job_id, job, kind),
        from the job key index."""
        view = self.chain.tip_state_view()
        for job_id, kind in view.jobs_naming(key):
            job = view.job(job_id)
            if job is not None and (kind != "C" or job.status in RESULT_STATUSES):
                return job_id, job, kind
        return None

    def servable(self, entry: StoredMatrix) -> bool:
        """A and B always; C only while its claim is on the best chain."""
        if entry.kind != "C":
            return True
        job = self.chain.job(entry.job_id) if entry.job_id else None
        return job is not None and job.claim == entry.key and job.status in RESULT_STATUSES

    def held(self, key: bytes) -> StoredMatrix | None:
        """The stored matrix for ``key`` if this node may serve it."""
        entry = self.store.get(key)
        return entry if entry is not None and self.servable(entry) else None

    # --- p2p MatrixSource ------------------------------------------------------------------
    def rows(self, key: bytes, first: int, count: int, max_bytes: int) -> list[bytes] | None:
        entry = self.held(key)
        if entry is None:
            return None
        rows = self.store.rows(key, first, count, max_bytes)
        self.bytes_served += sum(len(r) for r in rows or ())
        return rows

    # --- fetching from peers ---------------------------------------------------------------
    async def fetch(self, key: bytes) -> StoredMatrix:
        """The matrix for ``key``, from the store or else from peers (one fetch per key at a time);
        ``StoreUnwritable`` if it cannot be stored."""
        held = self.held(key)
        if held is not None:
            return held
        if key not in self._fetching:
            self._fetching[key] = asyncio.ensure_future(self._fetch(key))
        try:
            return await asyncio.shield(self._fetching[key])
        finally:
            if self._fetching.get(key) is not None and self._fetching[key].done():
                self._fetching.pop(key, None)

    async def _fetch(self, key: bytes) -> StoredMatrix:
        named = self.job_naming(key)
        if named is None:
            raise MarketError(f"no job names {key.hex()} as its A, B or claimed result")
        if self.fetch_rows is None:
            raise MarketError("this node has no peers to fetch matrices from")
        job_id, job, kind = named
        count, width, dtype = {"A": (job.m, job.k, np.int8), "B": (job.n, job.k, np.int8),
                               "C": (job.m, 4 * job.n, np.dtype("<i4"))}[kind]
        lines: list[bytes] = []
        while len(lines) < count:
            want = min(count - len(lines), max(1, MAX_REPLY_BYTES // width))
            got = await self.fetch_rows(key, len(lines), want)
            if not got or any(len(r) != width for r in got) or len(got) > want:
                raise MarketError(f"no peer served lines {len(lines)}… of {kind} {key.hex()}")
            lines.extend(got)
        array = np.frombuffer(b"".join(lines), dtype=dtype).reshape(count, -1)
        matrix = array.T if kind == "B" else array
        upload = await asyncio.to_thread(self.store.write_upload, matrix)
        try:
            entry = await asyncio.to_thread(self.store.put_file, kind, upload,
                                            worker=job.worker if kind == "C" else None,
                                            job_id=job_id if kind == "C" else None)
        except StoreUnwritable:
            raise
        except MatrixError as exc:
            raise MarketError(f"peers served a {kind} that does not match {key.hex()}: {exc}") from None
        if entry.key != key:
            self.store.remove(entry.key)
            raise MarketError(f"peers served a {kind} that does not match {key.hex()}")
        log.info("fetched %s %s (%d bytes) from peers", kind, key.hex(), entry.size)
        return entry

    # --- figures -------------------------------------------------------------------------------
    def stats(self, window: int = STATS_WINDOW) -> dict[str, Any]:
        """Jobs by status, and over the last ``window`` blocks: useful blocks, the MACs of jobs
        settled (claimed in the window and accepted) against the MACs the chain's work
        represents (each block at least its own matmul) — the useful-MAC share (§6) — and the
        bytes of matrices served. The chain's part is computed once per tip and window."""
        tip = self.chain.tip
        if self._chain_stats is None or self._chain_stats[0] != (tip.hash, window):
            self._chain_stats = ((tip.hash, window), self._chain_figures(tip.height, window))
        return {**self._chain_stats[1], "bytes_served": self.bytes_served,
                "matrices_held": len(self.store.entries()), "matrix_bytes": self.store.usage()}

    def _chain_figures(self, tip: int, window: int) -> dict[str, Any]:
        chain = self.chain
        first = max(1, tip - window + 1)
        chain_macs = useful_blocks = 0
        for height in range(first, tip + 1):
            header = chain.header(chain.hash_at(height))
            w = header.work
            chain_macs += max(header.block_work, w.m * w.n * w.k)  # at least the block's own matmul
            useful_blocks += header.work.job_id != bytes(32)
        by_status = {name: 0 for name in JOB_STATUS_NAMES.values()}
        settled_macs = 0
        for _, job in self.jobs():
            by_status[JOB_STATUS_NAMES[job.status]] += 1
            if job.status == SETTLED and job.claim_height >= first:
                settled_macs += job.m * job.n * job.k
        return {"window": tip - first + 1, "jobs": by_status, "useful_blocks": useful_blocks,
                "settled_macs": settled_macs, "chain_macs": chain_macs,
                "useful_mac_share": settled_macs / chain_macs if chain_macs else 0.0}

    # --- pruning -----------------------------------------------------------------------------
    def prune(self) -> list[bytes]:
        """Drop matrices only final jobs name once their window has passed, and uploads no job
        has named for a day; each held matrix's jobs come from the job key index."""
        tip = self.chain.tip.height
        window = self.chain.network.challenge_window
        view = self.chain.tip_state_view()
        needed: set[bytes] = set()
        released: set[bytes] = set()
        for entry in self.store.entries():
            jobs = [view.job(job_id) for job_id, _ in view.jobs_naming(entry.key)]
            done = [job is not None and job.status not in (OPEN, CLAIMED)
                    and tip > max(job.expiry, job.claim_height + window) + window for job in jobs]
            if not all(done):
                needed.add(entry.key)
            elif jobs:
                released.add(entry.key)
        gone = self.store.prune(needed, released, UPLOAD_GRACE_SECONDS)
        if gone:
            log.info("pruned %d matrices no live job needs", len(gone))
        return gone
