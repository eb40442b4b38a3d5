"""Taking jobs (PROTOCOL §6): choose an open job by reward per MAC, fetch its A and B through
the node and check them against H_A/H_B, mine on them (useful blocks), recover A·B from the
first template (the 2-for-1 path), hand C to the node and claim the job with JOB_RESULT.

The miner's key signs the JOB_RESULT and pays its bond; the job's reward and the bond
come back when the poster accepts (or the bond alone if the claim lapses).
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Collection

import numpy as np

from consensus.block import WorkSpec
from consensus.work import OperandRoots
from consensus.keys import PrivateKey, encode_address
from consensus.params import MAX_K, Network
from consensus.tx import JobResult, claim_of, make_tx

from client.market import TILE_M, TILE_N, download_npy, in_order, npy_parts
from client.rpc import RpcClient, RpcClientError, RpcError
from client.rpccodes import RpcCode

from .kernel import PartialProduct, commit_result, operand_roots

log = logging.getLogger(__name__)

DEFAULT_FEE = 10_000
MIN_BLOCKS_LEFT = 2  # skip jobs expiring sooner: the result would not be mined in time


TMAC = 10**12  # the MACs a price is quoted for


@dataclass(frozen=True)
class JobLimits:
    """What this miner takes: at most ``max_macs`` per job (m·n·k; by default the largest piece
    ``client.market``'s matmul posts), paying at least ``min_price`` base units per TMAC."""

    max_macs: int = TILE_M * TILE_N * MAX_K
    min_price: int = 0

    def takes(self, macs: int, reward: int, fee: int) -> bool:
        """Is a job of ``macs`` paying ``reward`` worth claiming at ``fee``? Never one whose
        reward does not exceed the fee: its claim would lose money even when paid."""
        return macs <= self.max_macs and reward > fee and reward * TMAC >= self.min_price * macs


@dataclass
class JobStats:
    taken: int = 0
    claimed: int = 0
    paid: int = 0
    lapsed: int = 0
    lost: int = 0  # bonds lost to fraud proofs
    reward: int = 0  # job rewards received (base units)
    last_problem: str = ""


@dataclass
class JobWork:
    """A job this miner is working on: its matrices, the work spec a useful block names, and
    what happened to its result."""

    job_id: bytes
    job: dict[str, Any]
    a: np.ndarray
    b: np.ndarray
    spec: WorkSpec
    roots: OperandRoots = field(repr=False)
    claim: bytes | None = None
    result_txid: str | None = None
    c: np.ndarray | None = field(default=None, repr=False)
    partial: PartialProduct | None = field(default=None, repr=False)  # A·B as far as computed

    @property
    def macs(self) -> int:
        return self.spec.m * self.spec.n * self.spec.k


def rank_for(network: Network, k: int) -> int | None:
    """The smallest allowed rank r whose block k range holds ``k`` (§1), or None."""
    r = network.r_min
    while r <= network.r_max:
        low, high = network.k_range(r)
        if low <= k <= high and k % r == 0:
            return r
        r *= 2
    return None


def result_bytes(job: dict[str, Any]) -> int:
    """The size of a job's C (m×n int32), as ``listjobs`` gives the job."""
    return 4 * job["m"] * job["n"]


def delivery_budget(network: Network, matrix_rate: float, seconds_per_block: float | None = None) -> float:
    """The bytes of C a miner's claims may leave waiting for their posters (§6). A poster fetches
    a result from the worker's node, at most ``matrix_rate`` bytes a second per peer (the node's
    ``--matrix-rate``; 0: unlimited), and a claim not accepted within the challenge window
    lapses: the bond comes back but the poster's reward is burned. So what waits must go out
    within half the window: its blocks at the target time, or at ``seconds_per_block`` where the
    chain has been running faster than that (``BlockPace``)."""
    if matrix_rate <= 0:
        return math.inf
    block_time = min(network.block_time, seconds_per_block) if seconds_per_block is not None else network.block_time
    return matrix_rate * network.challenge_window * block_time / 2


class BlockPace:
    """The chain's recent pace as a miner sees it: seconds per block between the first times it
    saw each of the last ``span`` heights (a monotonic clock), once it has watched ``enough`` of
    them; until then, the pace its blocks' own time stamps tell, where it was given one
    (``stamped``). A chain runs faster than its target while its difficulty catches up with new
    hash power, and a challenge window of blocks is then shorter in seconds."""

    def __init__(self, enough: int, span: int = 64, clock: Callable[[], float] = time.monotonic) -> None:
        self.enough, self.span, self.clock = enough, span, clock
        self._seen: deque[tuple[float, int]] = deque()  # (first seen, height), heights rising
        self._stamped: float | None = None

    def stamped(self, low: tuple[int, int], high: tuple[int, int]) -> None:
        """The pace between two blocks of the best chain, ``(height, time stamp)`` each, at least
        ``enough`` heights apart: a miner started while the chain runs fast budgets by it from
        its first job. Miners set the stamps (within the median-time-past and future-drift
        rules, §5), so what the miner watches itself replaces them once it has a window of it."""
        (low_height, low_time), (high_height, high_time) = low, high
        if high_height - low_height >= self.enough:
            self._stamped = max(0, high_time - low_time) / (high_height - low_height)

    def wants_stamps(self) -> bool:
        """Whether the miner has neither a watched pace nor a stamped one yet."""
        return self._stamped is None and self._watched() is None

    def saw(self, height: int) -> None:
        if self._seen and height <= self._seen[-1][1]:
            return  # a height seen before (or a reorg to a shorter chain): its first sight stands
        self._seen.append((self.clock(), height))
        while self._seen[-1][1] - self._seen[0][1] > self.span:
            self._seen.popleft()

    def seconds_per_block(self) -> float | None:
        """The watched pace; before ``enough`` blocks have been watched arriving, the stamped one
        (None without it)."""
        watched = self._watched()
        return self._stamped if watched is None else watched

    def _watched(self) -> float | None:
        if len(self._seen) < 2 or self._seen[-1][1] - self._seen[0][1] < self.enough:
            return None
        (first, low), (last, high) = self._seen[0], self._seen[-1]
        return (last - first) / (high - low)


class JobTaker:
    def __init__(self, client: RpcClient, network: Network, key: PrivateKey, limits: JobLimits = JobLimits(),
                 fee: int = DEFAULT_FEE, say: Callable[[str], None] = log.info) -> None:
        self.client = client
        self.network = network
        self.key = key
        self.limits = limits
        self.fee = fee
        self.say = say
        self.stats = JobStats()
        self.address = encode_address(network.hrp, key.address)
        self.claimed: dict[bytes, JobWork] = {}  # results sent, not yet final
        self.skipped: set[bytes] = set()  # jobs this miner cannot or will not do
        self.holding_back = False  # its claims' results wait for as much as its node can serve in time
        self.pace = BlockPace(network.challenge_window)

    # --- choosing ----------------------------------------------------------------------
    def choose(self, exclude: Collection[bytes] = (), taken: Collection[bytes] = ()) -> JobWork | None:
        """The open job with the best reward per MAC that the limits take, other than those in
        ``exclude`` and those ``taken`` (the one being computed, those being handed in), its
        matrices checked; among equals, one whose A and B the node already holds (prefetched),
        so the loop need not wait for a transfer. None of those whose C would leave more waiting
        for posters than ``delivery_budget`` allows (one claim at a time is always allowed): its
        claim would lapse before the poster could fetch its result. The Cs of the jobs taken
        wait too, once they are claimed a moment later, and so do those of its claims still in
        the node's mempool (``mempool_workers``: a restarted miner never sent them itself)."""
        height, network, jobs, claims = self.client.batch([("getblockcount",), ("getnetworkinfo",),
                                                           ("listjobs", "open"), ("listjobs", "claimed", self.address)])
        for answer in (height, network, jobs, claims):
            if isinstance(answer, RpcError):
                raise answer
        rate = network.get("matrixrate", 0)  # a node without the field: as if unlimited
        ours = [job for job in jobs if bytes.fromhex(job["job_id"]) in taken
                or self.address in job.get("mempool_workers", ())]  # taken, or claimed in the mempool
        waiting = self._waiting([*claims, *ours])
        skip = self.skipped | set(self.claimed) | set(exclude) | {bytes.fromhex(job["job_id"]) for job in ours}
        self.pace.saw(height)
        if self.network.halflife is not None and self.pace.wants_stamps():
            self._read_stamps(height)
        budget = delivery_budget(self.network, rate, self.pace.seconds_per_block())
        candidates, held_back = [], 0
        for job in jobs:
            job_id = bytes.fromhex(job["job_id"])
            macs = job["m"] * job["n"] * job["k"]
            if (job_id in skip or not self.limits.takes(macs, job["reward"], self.fee)
                    or job["expiry"] - height < MIN_BLOCKS_LEFT or rank_for(self.network, job["k"]) is None):
                continue
            if waiting and waiting + result_bytes(job) > budget:
                held_back += 1
                continue
            held = all((job.get("matrices") or {}).get(kind, {}).get("held") for kind in ("A", "B"))
            candidates.append((-job["reward"] / macs, not held, job["job_id"], job))
        self._note_holding_back(held_back > 0 and not candidates, waiting, rate)
        for *_, job in sorted(candidates):
            work = self._prepare(job)
            if work is not None:
                return work
        return None

    def _read_stamps(self, height: int) -> None:
        """Give ``pace`` the time stamps of the tip and of the block ``span`` below it (above
        genesis, stamped long before a chain starts). Only where the target follows the pace
        (not regtest, whose blocks come when a test asks for them); a chain too short yet, or
        a tip that moved between the calls, waits for the next look."""
        low = max(1, height - self.pace.span)
        if height - low < self.pace.enough:
            return
        hashes = self.client.batch([("getblockhash", low), ("getblockhash", height)])
        if any(isinstance(h, RpcError) for h in hashes):
            return
        headers = self.client.batch([("getblockheader", h) for h in hashes])
        if any(isinstance(h, RpcError) for h in headers):
            return
        self.pace.stamped(*((h["height"], h["time"]) for h in headers))

    def _waiting(self, jobs: list[dict[str, Any]]) -> int:
        """Bytes of C that this miner's claims leave waiting for their posters: those it sent and
        not yet saw final, and those of ``jobs``: the claimed jobs the chain holds under its
        address and its claims in the mempool (a restarted miner, or another one with its key,
        never sent them itself), and the jobs it has taken and not claimed yet."""
        sizes = {job_id: work.c.nbytes for job_id, work in self.claimed.items() if work.c is not None}
        for job in jobs:
            sizes.setdefault(bytes.fromhex(job["job_id"]), result_bytes(job))
        return sum(sizes.values())

    def _note_holding_back(self, holding: bool, waiting: int, rate: float) -> None:
        """Say when the miner starts and stops leaving jobs for want of time to deliver."""
        if holding and not self.holding_back:
            self.say(f"taking no more jobs for now: {waiting / 2**20:.0f} MiB of results wait for their posters, "
                     f"and the node serves {rate / 2**20:g} MiB/s to each peer (half a "
                     f"{self.network.challenge_window}-block window at most); mining on without a job")
        elif self.holding_back and not holding:
            self.say("taking jobs again: the results waiting for posters fit the window")
        self.holding_back = holding

    def _prepare(self, job: dict[str, Any]) -> JobWork | None:
        job_id = bytes.fromhex(job["job_id"])
        try:
            a, b = download_npy(self.client, job["H_A"]), download_npy(self.client, job["H_B"])
        except RpcClientError as exc:
            self._skip(job_id, f"cannot fetch the matrices of job {job['job_id'][:16]}…: {exc}")
            return None
        roots = (operand_roots(a, b) if a.dtype == np.int8 and b.dtype == np.int8 and a.shape == (job["m"], job["k"])
                 and b.shape == (job["k"], job["n"]) else None)  # B comes column-major: its columns hashed in place
        if roots is None or roots.h_a.hex() != job["H_A"] or roots.h_b.hex() != job["H_B"]:
            self._skip(job_id, f"the matrices served for job {job['job_id'][:16]}… do not match H_A/H_B")
            return None
        r = rank_for(self.network, job["k"])
        assert r is not None
        spec = WorkSpec(job["m"], job["n"], job["k"], r, bytes.fromhex(job["H_A"]), bytes.fromhex(job["H_B"]),
                        job_id)
        self.stats.taken += 1
        self.say(f"took job {job['job_id'][:16]}… {job['m']}×{job['n']}×{job['k']} for {job['reward']} units")
        # B stays column-major, as the node serves it: the kernel packs it from its columns
        return JobWork(job_id, job, in_order(a, fortran=False), b, spec, roots)

    def _skip(self, job_id: bytes, why: str) -> None:
        self.skipped.add(job_id)
        self.stats.last_problem = why
        self.say(why)

    # --- delivering ------------------------------------------------------------------------
    def deliver(self, work: JobWork, c: np.ndarray) -> bool:
        """Hand C to the node and claim the job; False (with a message) if it cannot be done."""
        c32 = np.ascontiguousarray(c, dtype="<i4")
        bond = -(-work.job["reward"] // 10)
        account = self.client.call("getaccount", self.address)
        if account["balance"] < bond + self.fee:  # not skipped for good: the balance may grow
            self.stats.last_problem = (f"balance {account['balance']} of {self.address} cannot cover the bond "
                                       f"{bond} + fee {self.fee} for job {work.job['job_id'][:16]}…")
            self.say(self.stats.last_problem + "; mining on without claiming it")
            return False
        try:
            self.client.http("PUT", f"/matrix/C?worker={self.address}&job_id={work.job_id.hex()}", npy_parts(c32))
            claim = claim_of(self.key.address, commit_result(c32))
            tx = make_tx(self.key, self.network.chain_id, account["pending_nonce"], self.fee,
                         JobResult(work.job_id, claim, bond))
            work.result_txid = self.client.call("sendrawtransaction", tx.encode().hex())
        except RpcClientError as exc:
            self._skip(work.job_id, f"could not claim job {work.job['job_id'][:16]}…: {exc}")
            return False
        work.claim, work.c = claim, c32
        self.claimed[work.job_id] = work
        self.stats.claimed += 1
        self.say(f"claimed job {work.job['job_id'][:16]}… (bond {bond}) in tx {work.result_txid[:16]}…")
        return True

    def poll(self) -> None:
        """Follow claimed jobs to their end: paid on accept, bond back on lapse, bond lost to fraud."""
        claims = list(self.claimed.items())
        try:  # each claim's job and result tx, all in one request
            answers = self.client.batch([call for job_id, work in claims
                                         for call in (("getjob", job_id.hex()), ("gettransaction", work.result_txid))])
        except RpcClientError:
            return
        for (job_id, work), job, tx in zip(claims, answers[::2], answers[1::2]):
            dropped = isinstance(tx, RpcError) and tx.code == RpcCode.INVALID_ADDRESS_OR_KEY  # no such tx
            if isinstance(job, RpcError) or (isinstance(tx, RpcError) and not dropped):
                continue
            mined = None if dropped else tx["confirmations"] > 0  # None: nothing was bonded
            mine = job.get("claim") == (work.claim or b"").hex()
            if mined is None:  # the result tx was dropped: nothing was bonded
                self.say(f"job {job_id.hex()[:16]}…: our result tx was dropped")
            elif not mined:
                continue  # still in the mempool
            elif job["status"] == "settled" and mine:
                self.stats.paid += 1
                self.stats.reward += job["reward"]
                self.say(f"job {job_id.hex()[:16]}… accepted: paid {job['reward']} + bond back")
            elif job["status"] == "lapsed" and mine:
                self.stats.lapsed += 1
                self.say(f"job {job_id.hex()[:16]}… lapsed: bond back, no reward")
            elif job["status"] == "claimed" and mine:
                continue
            else:
                self.stats.lost += 1
                self.say(f"job {job_id.hex()[:16]}…: our claim is gone ({job['status']}), bond lost")
            del self.claimed[job_id]
