"""The node's side of the job market (PROTOCOL §6, §7): which jobs exist, which matrices the
node holds and serves, fetching missing ones from peers, and pruning what no live job needs.

C is served (to peers and over RPC) only once its JOB_RESULT is in the best chain: before
that anyone who saw C could copy H_C, and the claim binds it to the worker only on chain.

A and B of a job are fetched as soon as the node sees its JOB_POST (``prefetch``: in the
mempool or in a block), so the operands travel while the post waits for a block and
miners work on earlier jobs; a matrix already held (the same commitment, e.g. fixed
weights B across jobs) is never fetched again. Each matrix comes whole from one peer,
so an A or B that contradicts its commitment bans the peer that served it (a C need not
match a claim that a copier put on chain under its own address: no ban); the next peer
is asked. Different matrices start at different peers, so A and B can come from two.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from consensus.state import CLAIMED, JOB_STATUS_NAMES, LAPSED, OPEN, SETTLED, Job
from consensus.tx import JobPost, JobResult, Payload

from .accepts import AcceptHeights
from .matrices import MatrixError, MatrixStore, StoredMatrix, StoreUnwritable

log = logging.getLogger(__name__)

UPLOAD_GRACE_SECONDS = 24 * 3600  # an uploaded matrix no job names yet is kept this long
RESULT_STATUSES = (CLAIMED, SETTLED, LAPSED)  # a job whose claim is on the best chain
STATS_WINDOW = 1000  # blocks the useful-MAC share is measured over
PREFETCH_PARALLEL = 2  # matrices prefetched at a time (a job's A and B)
PREFETCH_QUEUE = 64  # matrices waiting to be prefetched; the posts beyond are fetched on demand
PREFETCH_FILL = 0.75  # prefetching stops at this fraction of the store (the rest: on demand, uploads, C)


NAMING_MATRICES = (JobPost, JobResult)  # the payloads ``keys_named`` finds keys in


def keys_named(payload: Payload) -> tuple[bytes, ...]:
    """The matrix keys a tx's payload names: A and B of a JOB_POST, the claim of a JOB_RESULT."""
    if isinstance(payload, JobPost):
        return payload.h_a, payload.h_b
    if isinstance(payload, JobResult):
        return (payload.claim,)
    return ()


def final_by(job: Job, window: int, accepted: int | None = None) -> int | None:
    """A height by which the job's outcome was final (§6), or None while it can still change.
    A settled job was final at its accept (``accepted``: its height, where known; see
    ``node.accepts``). Else a claim is settled by its poster or lapses within ``window`` blocks
    of the claim, whatever the job's expiry; only a refund waits for the expiry (or for a
    fraud proof after it)."""
    if job.status in (OPEN, CLAIMED):
        return None
    if job.status == SETTLED and accepted is not None:
        return accepted
    if job.status in (SETTLED, LAPSED):
        return job.claim_height + window
    return max(job.expiry, job.claim_height + window)


class MatrixPeers(Protocol):
    """What fetching needs from p2p (``p2p.P2PNode``)."""

    def matrix_peers(self) -> list[int]: ...
    async def fetch_lines(self, peer_id: int, key: bytes, count: int, width: int) -> list[memoryview] | None: ...
    def punish(self, peer_id: int, reason: str) -> None: ...


@dataclass(frozen=True)
class Wanted:
    """A matrix to fetch: its key and kind, ``count`` committed lines of ``width`` bytes, and
    for C the job and worker it is stored under."""

    key: bytes
    kind: str
    count: int
    width: int
    job_id: bytes | None = None
    worker: bytes | None = None

    @property
    def size(self) -> int:
        return self.count * self.width

    @classmethod
    def of_job(cls, key: bytes, kind: str, job_id: bytes, job: Job) -> Wanted:
        if kind == "C":
            return cls(key, kind, job.m, 4 * job.n, job_id, job.worker)
        return cls(key, kind, job.m if kind == "A" else job.n, job.k)


class MarketError(Exception):
    """A job-market request that cannot be served (unknown key, peers without the data…)."""


class JobMarket:
    """Jobs from the chain's state, matrices from the store, rows from peers."""

    def __init__(self, chain, store: MatrixStore, peers: MatrixPeers | None = None) -> None:
        self.chain = chain
        self.store = store
        self.peers = peers
        self._fetching: dict[bytes, tuple[Wanted, asyncio.Future]] = {}  # under way, by key
        self._prefetch_slots = asyncio.Semaphore(PREFETCH_PARALLEL)
        self._prefetch_waiting = 0
        self.fetched = 0  # matrices fetched from peers (prefetched or asked for)
        self.bytes_served = 0
        self._chain_stats: tuple[tuple[bytes, int, int], dict[str, Any]] | None = None  # ((tip, window, end), figures)
        self.accepts = AcceptHeights(chain, 2 * chain.network.challenge_window)  # older accepts: final_by's bound

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
    def rows(self, key: bytes, first: int, count: int, max_bytes: int) -> list[memoryview] | None:
        entry = self.held(key)
        if entry is None:
            return None
        rows = self.store.rows(key, first, count, max_bytes)
        self.bytes_served += sum(len(r) for r in rows or ())
        return rows

    # --- fetching from peers ---------------------------------------------------------------
    async def fetch(self, key: bytes) -> StoredMatrix:
        """The matrix for ``key``, from the store or else from peers (one fetch per key at a time,
        shared with a prefetch under way); ``StoreUnwritable`` if it cannot be stored."""
        held = self.held(key)
        if held is not None:
            return held
        if key not in self._fetching:
            named = self.job_naming(key)
            if named is None:
                raise MarketError(f"no job names {key.hex()} as its A, B or claimed result")
            job_id, job, kind = named
            self._start(Wanted.of_job(key, kind, job_id, job))
        return await asyncio.shield(self._fetching[key][1])

    def prefetch(self, post: JobPost) -> None:
        """Start fetching a posted job's A and B unless held or under way (on the event loop):
        at most ``PREFETCH_PARALLEL`` at a time, ``PREFETCH_QUEUE`` waiting, and only while the
        store stays under ``PREFETCH_FILL`` of its bound, counting what is being fetched."""
        if self.peers is None:
            return
        for wanted in (Wanted(post.h_a, "A", post.m, post.k), Wanted(post.h_b, "B", post.n, post.k)):
            if wanted.key in self.store or wanted.key in self._fetching:
                continue
            if self._prefetch_waiting >= PREFETCH_QUEUE:
                log.debug("not prefetching %s %s: %d matrices wait", wanted.kind, wanted.key.hex(),
                          self._prefetch_waiting)
                continue
            if self.store.usage() + self._bytes_coming() + wanted.size > PREFETCH_FILL * self.store.max_bytes:
                log.debug("not prefetching %s %s: the store is nearly full", wanted.kind, wanted.key.hex())
                continue
            self._start(wanted, prefetch=True)

    def _start(self, wanted: Wanted, prefetch: bool = False) -> None:
        task = asyncio.ensure_future(self._prefetch(wanted) if prefetch else self._fetch(wanted))
        self._fetching[wanted.key] = (wanted, task)

        def done(_: asyncio.Future) -> None:
            self._fetching.pop(wanted.key, None)
            if prefetch and not task.cancelled() and task.exception() is not None:
                log.info("prefetch of %s failed: %s", wanted.key.hex(), task.exception())
        task.add_done_callback(done)

    def _bytes_coming(self) -> int:
        return sum(wanted.size for wanted, _ in self._fetching.values())

    async def _prefetch(self, wanted: Wanted) -> StoredMatrix:
        self._prefetch_waiting += 1
        try:
            await self._prefetch_slots.acquire()
        finally:
            self._prefetch_waiting -= 1
        try:
            return await self._fetch(wanted)
        finally:
            self._prefetch_slots.release()

    async def _fetch(self, wanted: Wanted) -> StoredMatrix:
        """Fetch the whole matrix from one peer, then check and store it; a peer whose matrix
        contradicts the key is banned and the next one asked."""
        peer_ids = self.peers.matrix_peers() if self.peers is not None else []
        if not peer_ids:
            raise MarketError("this node has no peers to fetch matrices from")
        start = wanted.key[0] % len(peer_ids)  # different matrices start at different peers
        for peer_id in peer_ids[start:] + peer_ids[:start]:
            began = time.monotonic()
            lines = await self.peers.fetch_lines(peer_id, wanted.key, wanted.count, wanted.width)  # type: ignore[union-attr]
            if lines is None:
                continue
            received = time.monotonic()
            try:
                entry = await asyncio.to_thread(self._store_lines, wanted, lines)
            except StoreUnwritable:
                raise
            except MatrixError as exc:
                problem = f"peer {peer_id} served a {wanted.kind} that does not match {wanted.key.hex()}: {exc}"
                if wanted.kind == "C":  # the claim binds the worker on chain, not necessarily the C's
                    log.info("%s", problem)  # (a copied claim), so the peer is not to blame
                else:
                    self.peers.punish(peer_id, problem)  # type: ignore[union-attr]
                continue
            self.fetched += 1
            log.info("fetched %s %s (%d bytes) from peer %d: received in %.2f s, checked and stored in %.2f s",
                     wanted.kind, wanted.key.hex(), entry.size, peer_id, received - began, time.monotonic() - received)
            return entry
        raise MarketError(f"no peer served {wanted.kind} {wanted.key.hex()}")

    def _store_lines(self, wanted: Wanted, lines: list[memoryview]) -> StoredMatrix:
        """Check lines fetched from a peer against the key and store them (MatrixError if they
        do not match it or break the protocol's rules)."""
        upload = self.store.write_lines_upload(wanted.kind, lines)
        entry = self.store.put_file(wanted.kind, upload, worker=wanted.worker, job_id=wanted.job_id,
                                    vet=lambda key: None if key == wanted.key else "it does not match its key")
        return entry

    # --- figures -------------------------------------------------------------------------------
    def stats(self, window: int = STATS_WINDOW, height: int | None = None) -> dict[str, Any]:
        """Jobs by status, and over the ``window`` blocks ending at ``height`` (the tip by default):
        useful blocks, the MACs of jobs settled (claimed in those blocks and accepted since)
        against the MACs the chain's work represents (each block at least its own matmul) — the
        useful-MAC share (§6) — and the bytes of matrices served. The chain's part is computed once
        per tip, window and height."""
        tip = self.chain.tip
        end = tip.height if height is None else height
        if self._chain_stats is None or self._chain_stats[0] != (tip.hash, window, end):
            self._chain_stats = ((tip.hash, window, end), self._chain_figures(end, window))
        return {**self._chain_stats[1], "bytes_served": self.bytes_served, "matrices_fetched": self.fetched,
                "matrices_held": len(self.store.entries()), "matrix_bytes": self.store.usage()}

    def _chain_figures(self, end: int, window: int) -> dict[str, Any]:
        chain = self.chain
        first = max(1, end - window + 1)
        chain_macs = useful_blocks = 0
        for height in range(first, end + 1):
            header = chain.header(chain.hash_at(height))
            w = header.work
            chain_macs += max(header.block_work, w.m * w.n * w.k)  # at least the block's own matmul
            useful_blocks += header.work.job_id != bytes(32)
        by_status = {name: 0 for name in JOB_STATUS_NAMES.values()}
        settled_macs = 0
        for _, job in self.jobs():
            by_status[JOB_STATUS_NAMES[job.status]] += 1
            if job.status == SETTLED and first <= job.claim_height <= end:
                settled_macs += job.m * job.n * job.k
        return {"window": end - first + 1, "first": first, "last": end, "jobs": by_status,
                "useful_blocks": useful_blocks, "settled_macs": settled_macs, "chain_macs": chain_macs,
                "useful_mac_share": settled_macs / chain_macs if chain_macs else 0.0}

    # --- pruning -----------------------------------------------------------------------------
    def prune(self, pooled: Iterable[Payload] = ()) -> list[bytes]:
        """Drop matrices that only final jobs name, a window after each became final
        (``final_by``, a settled job's accept read from the blocks by ``accepts``), and uploads
        no job has named for a day; each held matrix's jobs come from the job key index. What
        the ``pooled`` txs (in the mempool) name stays: A and B of a post, the C of a result (a
        worker's same C again has the same claim)."""
        tip = self.chain.tip.height
        window = self.chain.network.challenge_window
        self.accepts.update()
        view = self.chain.tip_state_view()
        needed: set[bytes] = {key for payload in pooled for key in keys_named(payload)}
        released: set[bytes] = set()
        for entry in self.store.entries():
            jobs = [(job_id, view.job(job_id)) for job_id, _ in view.jobs_naming(entry.key)]
            done = [job is not None and (end := final_by(job, window, self.accepts.height(job_id))) is not None
                    and tip > end + window for job_id, job in jobs]
            if not all(done):
                needed.add(entry.key)
            elif jobs:
                released.add(entry.key)
        gone = self.store.prune(needed, released, UPLOAD_GRACE_SECONDS)
        if gone:
            log.info("pruned %d matrices no live job needs", len(gone))
        return gone
