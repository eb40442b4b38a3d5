"""The job-market client (PROTOCOL §6): post a product A·B as jobs, fetch each delivered C,
verify it (Freivalds; H_C against the claim when it fails), and accept it — or prove the fraud.

Everything goes through a node's RPC and ``/matrix`` routes, like the miner does::

    client = MarketClient(RpcClient(url, user, password), network, key)
    C = client.matmul(A, B, reward=5 * COIN)      # exact A·B (int32) from the network

``matmul`` pads any shape to the protocol's multiples, splits a product that one job
cannot hold (n > 16384, k > 8192, or simply large) into jobs over tiles of C and
slices of k, posts them all at once so miners take them in parallel, and assembles
the verified pieces exactly.
"""
from __future__ import annotations

import http.client
import io
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from consensus.fraud import build_fraud_proof, wrong_entries
from consensus.keys import PrivateKey, decode_address, encode_address
from consensus.params import MAX_JOB_N, MAX_K, MAX_MATRIX_DIM, Network
from consensus.state import job_dims_error, operand_error
from consensus.tx import JobAccept, JobPost, Payload, make_tx
from .rpc import RpcClient, RpcError
from .rpccodes import RpcCode

from .verify import ROUNDS, claim_matches, mismatched_rows

log = logging.getLogger(__name__)

DEFAULT_FEE = 10_000  # base units per tx, at least
FEE_PER_BYTE = 2  # above the default relay minimum of 1 unit per byte (fraud proofs are large)
DEFAULT_EXPIRY = 120  # blocks a job stays open
MAX_EXPIRY_BLOCKS = 2**32  # the longest a job may stay open (its expiry height is a u64)
POLL_SECONDS = 1.0
TIP_WAIT_SECONDS = 30.0  # the longest wait for a new block in one call
SETTLE_PARALLEL = 4  # claimed results fetched and verified at a time (their C can come from different peers)
DEFAULT_REPOSTS = 2  # times matmul posts a piece again whose job ended without a result
TILE_M = 4096  # rows of C per job when splitting (each job is one miner's matmul)
TILE_N = 4096
_TRANSPOSE_BLOCK = 1 << 20  # bytes of lines a transposing copy moves at a time (stays in L2)


class MarketClientError(Exception):
    """A job that cannot be posted or settled; the message says why."""


class MatricesGone(MarketClientError):
    """The node no longer holds a job's A or B (pruned a challenge window after the job ended)."""


class NotClaimed(MarketClientError):
    """The job is not (or no longer) CLAIMED: its result lapsed, was accepted, or was proved wrong."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a delivered C: ``ok``, or the reason and a wrong entry."""

    ok: bool
    reason: str = ""
    wrong: tuple[int, int] | None = None


@dataclass
class Piece:
    """One job of a split product: the block of C it computes and the k-slice it sums."""

    rows: slice
    cols: slice
    a: np.ndarray
    b: np.ndarray
    job_id: str = ""  # its first post's
    reward: int = 0
    reposts: int = 0  # posted again after ending without a result


def npy_parts(array: np.ndarray) -> list[bytes | memoryview]:
    """The .npy file of a C- or Fortran-ordered ``array`` as [its header, its data where it lies]:
    a request body sent part by part, with no copy of the data (``np.save`` into memory made
    four: a 16 MiB buffer at a time, its bytes, the growing file, the file's bytes)."""
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    data = array if array.flags.c_contiguous else array.T  # Fortran order: the transpose's C order
    return [header.getvalue(), memoryview(data).cast("B")]


def npy_bytes(array: np.ndarray) -> bytes:
    return b"".join(npy_parts(array))


NPY_DTYPES = (np.dtype(np.int8), np.dtype("<i4"))  # A and B; C
MAX_NPY_BYTES = MAX_JOB_N * MAX_JOB_N * 4  # the largest a job's matrix can be: its C
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def receive_npy(body: http.client.HTTPResponse) -> np.ndarray:
    """An int8 or int32 .npy read from ``body`` (an HTTP answer: ``read``, ``readinto`` and
    ``length``, the bytes left) straight into its array, in its own order: one copy, where
    holding the body as bytes first cost two more. ValueError if the header is malformed,
    names another dtype, or does not match the bytes that follow it."""
    version = np.lib.format.read_magic(body)
    if version not in _NPY_HEADERS:
        raise ValueError(f".npy version {version} is not supported")
    shape, fortran, dtype = _NPY_HEADERS[version](body)
    if dtype not in NPY_DTYPES:
        raise ValueError(f"dtype {dtype} is neither int8 nor int32")
    size = math.prod(shape) * dtype.itemsize
    if size > MAX_NPY_BYTES:
        raise ValueError(f"shape {shape} is larger than any job's matrix")
    if body.length != size:
        raise ValueError(f"{body.length} bytes follow a header of shape {shape} and dtype {dtype}, not {size}")
    array = np.empty(shape, dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A")).cast("B")
    done = 0
    while done < size:
        got = body.readinto(view[done:])
        if not got:
            raise ValueError(f"the body ended after {done} of {size} bytes")
        done += got
    return array


def download_npy(rpc: RpcClient, key: str) -> np.ndarray:
    """``GET /matrix/<key>.npy``: the matrix, read straight into its array."""
    return rpc.download(f"/matrix/{key}.npy", receive_npy)


def in_order(array: np.ndarray, fortran: bool) -> np.ndarray:
    """A 2-D ``array`` in Fortran (column-major) or C order, itself if it already is. A copy
    that transposes goes about 1 MiB of lines at a time: numpy's strided copy of a whole
    int8 matrix reads every byte from another cache line, 4× slower (a 32 MiB B: 280 → 65 ms)."""
    if array.flags.f_contiguous if fortran else array.flags.c_contiguous:
        return array
    out = np.empty(array.shape, array.dtype, order="F" if fortran else "C")
    across = array.shape[1] if fortran else array.shape[0]  # the extent of each block's lines
    step = max(8, _TRANSPOSE_BLOCK // max(1, across * array.itemsize))
    for start in range(0, array.shape[0] if fortran else array.shape[1], step):
        if fortran:
            out[start:start + step] = array[start:start + step]
        else:
            out[:, start:start + step] = array[:, start:start + step]
    return out


def verify_result(job: dict[str, Any], a: np.ndarray, b: np.ndarray, c: np.ndarray, network: Network,
                  rounds: int = ROUNDS) -> Verdict:
    """Freivalds mod 2^61 − 1; on a mismatch, H_C against the claim, then one wrong entry.

    A C that passes is A·B (but with probability p^−rounds) whichever node served it, so
    accepting it pays for what was received; the node that stored C checked it against the
    claim already. Only a fraud proof needs C to be the claimed one, so only a C that fails
    is hashed here (docs/market.md, "What checking costs")."""
    m, n = job["m"], job["n"]
    if c.shape != (m, n) or c.dtype != np.dtype("<i4"):
        return Verdict(False, f"C is {c.dtype} {c.shape}, the job needs int32 ({m}, {n})")
    rows = mismatched_rows(a, b, c, rounds)
    if not rows:
        return Verdict(True)
    worker = decode_address(job["worker"], network.hrp)
    if not claim_matches(worker, bytes.fromhex(job["claim"]), c):
        return Verdict(False, "C does not match the worker's claim")
    (i, j), *_ = wrong_entries(a, b, c, rows[:1])
    return Verdict(False, f"C[{i}, {j}] is wrong", (i, j))


def pad_to(array: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``array`` zero-padded to rows×cols, in C order (itself when it already is both)."""
    if array.shape == (rows, cols):
        return np.ascontiguousarray(array)
    out = np.zeros((rows, cols), dtype=array.dtype)
    out[:array.shape[0], :array.shape[1]] = array
    return out


def _round_up(x: int, step: int) -> int:
    return -(-x // step) * step


def split_product(a: np.ndarray, b: np.ndarray, network: Network, tile_m: int = TILE_M,
                  tile_n: int = TILE_N) -> list[Piece]:
    """Jobs whose results, summed over k-slices and placed by tile, are A·B (zero padding)."""
    m, k = a.shape
    n = b.shape[1]
    k_low = network.k_range(network.r_min)[0]
    tile_m = min(_round_up(max(tile_m, 32), 32), MAX_MATRIX_DIM)
    tile_n = min(_round_up(max(tile_n, 32), 32), MAX_JOB_N)
    k_slices = max(1, -(-k // MAX_K))
    k_step = max(_round_up(-(-k // k_slices), 64), k_low)
    pieces = []
    for r0 in range(0, m, tile_m):
        rows = slice(r0, min(m, r0 + tile_m))
        pm = _round_up(rows.stop - rows.start, 32)
        for c0 in range(0, n, tile_n):
            cols = slice(c0, min(n, c0 + tile_n))
            pn = _round_up(cols.stop - cols.start, 32)
            for k0 in range(0, k, k_step):
                ks = slice(k0, min(k, k0 + k_step))
                pa = pad_to(a[rows, ks], pm, k_step)
                pb = pad_to(b[ks, cols], k_step, pn)
                pieces.append(Piece(rows, cols, pa, pb))
    return pieces


def assemble_product(pieces: Sequence[Piece], products: Sequence[np.ndarray], m: int, n: int) -> np.ndarray:
    """A·B (int32, m×n) from the pieces of ``split_product`` and each piece's product: placed by
    tile and cropped, and where k was split, summed in int64 (``MarketClientError`` if the sum
    does not fit int32).  Without a k-split each tile is one exact int32 product, copied once."""
    split_k = len({(p.rows.start, p.cols.start) for p in pieces}) < len(pieces)
    out = np.zeros((m, n), dtype=np.int64 if split_k else np.int32)
    for p, c in zip(pieces, products):
        out[p.rows, p.cols] += c[:p.rows.stop - p.rows.start, :p.cols.stop - p.cols.start]
    if not split_k:
        return out
    if out.size and (out.min() < -(2**31) or out.max() >= 2**31):
        raise MarketClientError("A·B does not fit int32")
    return out.astype(np.int32)


class MarketClient:
    """A poster's view of the market through one node; ``key`` signs its transactions."""

    def __init__(self, rpc: RpcClient, network: Network, key: PrivateKey | None = None,
                 fee: int = DEFAULT_FEE, log: Callable[[str], None] = log.info) -> None:
        self.rpc = rpc
        self.network = network
        self.key = key
        self.fee = fee
        self.say = log
        self.counts: Counter[str] = Counter()  # posted, accepted, fraud_proven, undelivered, reposted
        self._send_lock = threading.Lock()  # one nonce at a time when threads share this client
        self._count_lock = threading.Lock()

    @property
    def address(self) -> str:
        if self.key is None:
            raise MarketClientError("this needs a key to sign with")
        return encode_address(self.network.hrp, self.key.address)

    # --- matrices ----------------------------------------------------------------------
    def upload(self, kind: str, array: np.ndarray, **query: str) -> str:
        """Store a matrix on the node (checked there against the protocol's rules); its key.
        B travels column-major, the order the node keeps it in (its committed lines are the
        columns), so the node neither transposes it to hash it nor rewrites it."""
        if kind == "B":
            array = in_order(array, fortran=True)
        q = "&".join(f"{k}={v}" for k, v in query.items())
        reply = self.rpc.http("PUT", f"/matrix/{kind}" + (f"?{q}" if q else ""), npy_parts(array))
        return json.loads(reply)["key"]

    def download(self, key: str) -> np.ndarray:
        """A matrix by key (the node fetches it from peers if it lacks it)."""
        return download_npy(self.rpc, key)

    # --- transactions ---------------------------------------------------------------------
    def send(self, payload: Payload) -> str:
        if self.key is None:
            raise MarketClientError("this needs a key to sign with")
        with self._send_lock:
            nonce = self.rpc.call("getaccount", self.address)["pending_nonce"]
            tx = make_tx(self.key, self.network.chain_id, nonce, self.fee, payload)
            size_fee = FEE_PER_BYTE * (len(tx.encode()) + 16)  # the larger fee encodes a few bytes longer
            if size_fee > tx.fee:
                tx = make_tx(self.key, self.network.chain_id, nonce, size_fee, payload)
            return self.rpc.call("sendrawtransaction", tx.encode().hex())

    def post(self, a: np.ndarray, b: np.ndarray, reward: int, expiry_blocks: int = DEFAULT_EXPIRY) -> str:
        """Upload A and B, sign and send a JOB_POST; the job id."""
        for kind, array in (("A", a), ("B", b)):
            problem = operand_error(kind, array, self.network)
            if problem:
                raise MarketClientError(problem)
        if a.shape[1] != b.shape[0]:
            raise MarketClientError(f"A is {a.shape[0]}×{a.shape[1]} but B is {b.shape[0]}×{b.shape[1]}")
        self._check_terms(a.shape[0], b.shape[1], a.shape[1], reward, expiry_blocks)
        h_a, h_b = self.upload("A", a), self.upload("B", b)
        return self._send_post(a.shape[0], b.shape[1], a.shape[1], h_a, h_b, reward, expiry_blocks)

    def post_again(self, job: dict[str, Any], reward: int, expiry_blocks: int = DEFAULT_EXPIRY) -> str:
        """Post ``job`` (as ``getjob`` shows it) again under the same H_A and H_B, which its node
        must still hold (for a challenge window after the job ended): nothing is uploaded again.
        The new job id; ``MatricesGone`` if the node no longer holds A or B."""
        matrices = job.get("matrices") or {}
        gone = [kind for kind in ("A", "B") if not (matrices.get(kind) or {}).get("held")]
        if gone:
            raise MatricesGone(f"the node no longer holds {' and '.join(gone)} of job {job['job_id']}")
        self._check_terms(job["m"], job["n"], job["k"], reward, expiry_blocks)
        return self._send_post(job["m"], job["n"], job["k"], job["H_A"], job["H_B"], reward, expiry_blocks)

    def _check_terms(self, m: int, n: int, k: int, reward: int, expiry_blocks: int) -> None:
        problem = job_dims_error(m, n, k, self.network)
        if problem:
            raise MarketClientError(problem)
        if reward < 1:
            raise MarketClientError("the reward must be at least 1 base unit")
        if not 1 <= expiry_blocks <= MAX_EXPIRY_BLOCKS:
            raise MarketClientError(f"a job stays open 1 to {MAX_EXPIRY_BLOCKS} blocks, not {expiry_blocks}")

    def _send_post(self, m: int, n: int, k: int, h_a: str, h_b: str, reward: int, expiry_blocks: int) -> str:
        """Sign and send the JOB_POST of A and B stored under ``h_a``, ``h_b``; the job id."""
        height = self.rpc.call("getblockcount")
        job_id = self.send(JobPost(m, n, k, bytes.fromhex(h_a), bytes.fromhex(h_b), reward, height + 1 + expiry_blocks))
        self._count("posted")
        return job_id

    def _count(self, outcome: str) -> None:
        with self._count_lock:
            self.counts[outcome] += 1

    def job(self, job_id: str) -> dict[str, Any]:
        return self.rpc.call("getjob", job_id)

    def jobs(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Several jobs as ``job`` gives them, in one request (a JSON-RPC batch); None for a job
        the node does not know (its JOB_POST is not in a block yet)."""
        out: dict[str, dict[str, Any] | None] = {}
        for job_id, answer in zip(job_ids, self.rpc.batch([("getjob", job_id) for job_id in job_ids])):
            if isinstance(answer, RpcError):
                if answer.code != RpcCode.INVALID_ADDRESS_OR_KEY:
                    raise answer
                answer = None
            out[job_id] = answer
        return out

    def wait_for_block(self, tip: str, seconds: float) -> str:
        """The best block's hash once it is another than ``tip``, or after ``seconds`` (at most
        ``TIP_WAIT_SECONDS``, and well inside the RPC client's timeout), held on the node
        (``waitfornewblock``)."""
        seconds = min(seconds, TIP_WAIT_SECONDS, self.rpc.timeout / 2)
        return self.rpc.call("waitfornewblock", max(1, round(seconds * 1000)), tip)["hash"]

    # --- settling -----------------------------------------------------------------------------
    def check(self, job_id: str, a: np.ndarray | None = None,
              b: np.ndarray | None = None) -> tuple[dict[str, Any], Verdict, np.ndarray | None]:
        """Fetch and verify the claimed result of a CLAIMED job: (job, verdict, C)."""
        job = self.job(job_id)
        if job["status"] != "claimed":
            raise NotClaimed(f"job {job_id} is {job['status']}, not claimed")
        a = self.download(job["H_A"]) if a is None else a
        b = self.download(job["H_B"]) if b is None else b
        try:
            c = self.download(job["claim"])
        except Exception as exc:  # noqa: BLE001 - not delivered (yet): the claim will lapse
            return job, Verdict(False, f"C not available: {exc}"), None
        return job, verify_result(job, a, b, c, self.network), c

    def settle(self, job_id: str, a: np.ndarray | None = None,
               b: np.ndarray | None = None) -> tuple[Verdict, np.ndarray | None, str | None]:
        """Verify a claimed result; accept a right one, prove a wrong one (returns the txid sent)."""
        job, verdict, c = self.check(job_id, a, b)
        if verdict.ok:
            txid = self.send(JobAccept(bytes.fromhex(job_id)))
            self._count("accepted")
            self.say(f"job {job_id[:16]}…: result verified (Freivalds ×{ROUNDS}); accepted in {txid[:16]}…")
            return verdict, c, txid
        if verdict.wrong is not None and c is not None:
            a = self.download(job["H_A"]) if a is None else a
            b = self.download(job["H_B"]) if b is None else b
            i, j = verdict.wrong
            txid = self.send(build_fraud_proof(bytes.fromhex(job_id), a, b, c, i, j))
            self._count("fraud_proven")
            self.say(f"job {job_id[:16]}…: WRONG result ({verdict.reason}); fraud proof sent in {txid[:16]}…")
            return verdict, None, txid
        self._count("undelivered")
        self.say(f"job {job_id[:16]}…: {verdict.reason}")
        return verdict, None, None

    def wait(self, job_ids: list[str], timeout: float, inputs: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
             poll: float = POLL_SECONDS,
             repost: Callable[[str, dict[str, Any]], str] | None = None) -> dict[str, np.ndarray]:
        """Settle every job as its result arrives until all are accepted; their C by job id (the
        C verified here, not fetched again once its accept is mined).
        It waits on the node for a new best block (``waitfornewblock``) and looks at the jobs (all
        in one batch) once the tip moved, since their states move only with the chain; a claim
        whose C could not be had yet is tried again every ``poll`` seconds meanwhile.
        The results claimed since the last look are settled ``SETTLE_PARALLEL`` at a time, oldest
        claim first, so one slow transfer of C from one worker's node does not hold back those
        from others (C's from one node share its per-peer rate either way).  A job that ends
        without a result (refunded: no miner took it before it expired; lapsed: its worker never
        delivered C) fails the wait, unless ``repost(first id, the ended job as getjob shows it)``
        posts it again and returns the new job's id: that job's C is then returned under the
        first id."""
        done: dict[str, np.ndarray] = {}
        latest = {job_id: job_id for job_id in job_ids}  # first id → the id of its latest post
        answered: dict[str, str] = {}  # job id → the claim we sent an accept or fraud proof for
        verified: dict[str, np.ndarray] = {}  # job id → the C accepted here: A·B, kept until it settles
        deadline = time.monotonic() + timeout

        def settle(first: str, job_id: str) -> str | None:
            a, b = (inputs or {}).get(first, (None, None))  # inputs by first id
            try:
                verdict, c, txid = self.settle(job_id, a, b)
            except NotClaimed:  # it moved on since the look (a lapse, another's fraud proof): next round
                return None
            if verdict.ok and c is not None:
                verified[job_id] = c
            return txid

        tip, best = None, self.rpc.call("getbestblockhash")  # the best block at the last look, and now
        claimed: list[tuple[int, str, str, str]] = []  # (claim height, first id, job id, claim) to settle
        with ThreadPoolExecutor(SETTLE_PARALLEL, thread_name_prefix="settle") as pool:
            while True:
                if best != tip:  # a job's state moves only with the chain: look again once the tip moved
                    tip, claimed = best, []
                    pending = {first: job_id for first, job_id in latest.items() if first not in done}
                    states = self.jobs(list(pending.values()))
                    for first, job_id in pending.items():
                        job = states[job_id]
                        if job is None:  # the JOB_POST is not in a block yet
                            continue
                        status = job["status"]
                        if status == "settled":  # accepted by this key (here or in another process)
                            done[first] = self._settled_product(job_id, job, verified.pop(job_id, None))
                        elif status in ("refunded", "lapsed"):
                            if repost is None:
                                raise MarketClientError(f"job {job_id} ended {status} without a result")
                            latest[first] = repost(first, job)
                        elif status == "claimed":
                            claimed.append((job["claim_height"], first, job_id, job["claim"]))
                    claimed.sort()  # oldest claim first
                claimed = [c for c in claimed if answered.get(c[2]) != c[3]]  # each claim answered once
                sent = pool.map(settle, [c[1] for c in claimed], [c[2] for c in claimed])
                for (_, _, job_id, claim), txid in zip(claimed, sent):
                    if txid is not None:
                        answered[job_id] = claim
                if len(done) == len(job_ids):
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MarketClientError(f"timed out: {len(done)} of {len(job_ids)} jobs settled")
                # a claim to try again: again after a poll at the latest; else nothing moves before a block
                best = self.wait_for_block(tip, min(left, poll) if claimed else left)

    def _settled_product(self, job_id: str, job: dict[str, Any], verified: np.ndarray | None) -> np.ndarray:
        """The C of a settled job: the one verified here, else fetched and checked against its claim
        (accepted elsewhere: another process of this key)."""
        if verified is not None:
            return verified
        c = self.download(job["claim"])
        if not claim_matches(decode_address(job["worker"], self.network.hrp), bytes.fromhex(job["claim"]), c):
            raise MarketClientError(f"the node served a C for job {job_id} that is not the claimed one")
        return c

    def matmul(self, a: np.ndarray, b: np.ndarray, reward: int, *, timeout: float = 3600.0,
               expiry_blocks: int = DEFAULT_EXPIRY, tile_m: int = TILE_M, tile_n: int = TILE_N,
               reposts: int = DEFAULT_REPOSTS, poll: float = POLL_SECONDS) -> np.ndarray:
        """A·B (int32), computed by the network's miners, every piece verified before it is paid.
        ``reward`` is shared among the pieces by their MACs.  A piece whose job ends without a
        result is posted again, at most ``reposts`` times: one refunded at expiry costs only the
        new post's fee, one lapsed costs its reward again (a lapsed reward is burned); its A and B
        are uploaded again if the node pruned them meanwhile.  ``poll``: seconds between looks
        at the pieces' jobs."""
        a, b = np.asarray(a), np.asarray(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise MarketClientError(f"cannot multiply {a.shape} by {b.shape}")
        for kind, x in (("A", a), ("B", b)):
            if x.dtype != np.int8 or (x.size and (int(x.min()) < -64 or int(x.max()) > 64)):
                raise MarketClientError(f"{kind} must be int8 with entries in [-64, 64]")
        pieces = split_product(a, b, self.network, tile_m, tile_n)
        macs = sum(p.a.shape[0] * p.b.shape[1] * p.a.shape[1] for p in pieces)
        for p in pieces:
            p.reward = max(1, reward * p.a.shape[0] * p.b.shape[1] * p.a.shape[1] // macs)
            p.job_id = self.post(p.a, p.b, p.reward, expiry_blocks)
        self.say(f"posted {len(pieces)} job(s) for a {a.shape[0]}×{a.shape[1]} · {b.shape[0]}×{b.shape[1]} product")
        by_id = {p.job_id: p for p in pieces}

        def repost(first: str, job: dict[str, Any]) -> str:
            piece, ended, status = by_id[first], job["job_id"], job["status"]
            if piece.reposts >= reposts:
                raise MarketClientError(f"job {ended} ended {status} without a result, "
                                        f"and its piece was posted again {reposts} time(s) already")
            piece.reposts += 1
            try:
                job_id = self.post_again(job, piece.reward, expiry_blocks)
            except MatricesGone:  # pruned meanwhile: upload the piece again
                job_id = self.post(piece.a, piece.b, piece.reward, expiry_blocks)
            self._count("reposted")
            self.say(f"job {ended[:16]}… ended {status} without a result: posted again as {job_id[:16]}…")
            return job_id

        results = self.wait(list(by_id), timeout, {p.job_id: (p.a, p.b) for p in pieces}, poll, repost)
        return assemble_product(pieces, [results[p.job_id] for p in pieces], a.shape[0], b.shape[1])
