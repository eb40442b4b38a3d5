"""The state transition: accounts, transfers, fees, deferred rewards and the job market
(PROTOCOL §3, §5, §6).

``apply_block(view, block, network)`` reads stored state through a ``StateView``
and returns a ``StateDiff`` to write plus the ``StateDiff`` that undoes it; it
never mutates anything itself.  The store commits both in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from . import encoding as enc
from .block import Block
from .encoding import BIN20, BIN32, U8, U64, Bin, ListOf, Tuple
from .errors import InvalidBlock, InvalidTx
from .hashing import leaf_hash, root_from_path
from .lthash import LANE_BYTES, LtHash
from .params import MAX_JOB_N, MAX_K, MAX_MATRIX_DIM, MAX_TX_SIZE, Network, subsidy
from .reasons import Reason
from .tx import TX_VERSION, FraudProof, JobAccept, JobPost, JobResult, Transfer, Tx, claim_of
from .work import ENTRY_MAX, ENTRY_MIN, matrix_commitment, result_commitment

U64_MAX = (1 << 64) - 1
OPEN, CLAIMED, SETTLED, REFUNDED, LAPSED = 0, 1, 2, 3, 4
JOB_STATUS_NAMES = {OPEN: "open", CLAIMED: "claimed", SETTLED: "settled", REFUNDED: "refunded",
                    LAPSED: "lapsed"}
ACTIVE_STATUSES = (OPEN, CLAIMED)  # a useful block may name only these (§5)
NO_ADDRESS = bytes(20)
NO_CLAIM = bytes(32)
ACCOUNT_RECORD, JOB_RECORD = 1, 2


@dataclass(frozen=True)
class Account:
    balance: int = 0
    nonce: int = 0

    def to_list(self) -> list[int]:
        return [self.balance, self.nonce]


EMPTY_ACCOUNT = Account()


@dataclass(frozen=True)
class Job:
    """A posted job (§6); its id is the posting txid."""

    poster: bytes
    m: int
    n: int
    k: int
    h_a: bytes
    h_b: bytes
    reward: int
    expiry: int
    status: int = OPEN
    worker: bytes = NO_ADDRESS
    claim: bytes = NO_CLAIM
    bond: int = 0
    claim_height: int = 0

    def to_list(self) -> list[Any]:
        return [self.poster, self.m, self.n, self.k, self.h_a, self.h_b, self.reward, self.expiry,
                self.status, self.worker, self.claim, self.bond, self.claim_height]

    @property
    def escrow(self) -> int:
        """What the job holds: the reward while OPEN, reward + bond while CLAIMED, else nothing."""
        if self.status == OPEN:
            return self.reward
        if self.status == CLAIMED:
            return self.reward + self.bond
        return 0

    def unclaimed(self, status: int) -> "Job":
        """The job with its claim cleared and the given status."""
        return replace(self, status=status, worker=NO_ADDRESS, claim=NO_CLAIM, bond=0, claim_height=0)


ACCOUNT_SCHEMA = Tuple(U64, U64)
JOB_SCHEMA = Tuple(BIN20, U64, U64, U64, BIN32, BIN32, U64, U64, U8, BIN20, BIN32, U64, U64)


# --- the state commitment (§3a) ---------------------------------------------------------

def account_record(address: bytes, account: Account) -> bytes:
    """``[1, address, balance, nonce]``."""
    return enc.encode([ACCOUNT_RECORD, address, account.balance, account.nonce])


def job_record(job_id: bytes, job: Job) -> bytes:
    """``[2, job_id, poster, m, n, k, H_A, H_B, reward, expiry, status, worker, claim, bond, claim_height]``."""
    return enc.encode([JOB_RECORD, job_id, *job.to_list()])


def state_records(accounts: Iterable[tuple[bytes, Account]], jobs: Iterable[tuple[bytes, Job]]) -> Iterator[bytes]:
    """The records of a whole state; accounts with zero balance and nonce are not in it."""
    for address, account in accounts:
        if account != EMPTY_ACCOUNT:
            yield account_record(address, account)
    for job_id, job in jobs:
        yield job_record(job_id, job)


class StateView(Protocol):
    """Read access to committed state, as seen at the parent of the block being applied."""

    def account(self, address: bytes) -> Account | None: ...

    def job(self, job_id: bytes) -> Job | None: ...

    def jobs_due(self, height: int) -> Iterable[bytes]: ...

    def block_payout(self, height: int) -> tuple[bytes, int]:
        """(miner, total fees) of the block at ``height`` on the branch being extended."""
        ...

    def lanes(self) -> LtHash:
        """The LtHash of this state (§3a)."""
        ...


@dataclass
class StateDiff:
    """Values to write (None deletes), due-index entries to add/remove, and the state's
    LtHash lanes after it (2048 bytes; None leaves them as they are).

    The due index is a multiset: a job's expiry entry and its claim's lapse
    entry can name the same (height, job_id), so a store must count entries and
    ``due_remove`` takes away one occurrence each.
    """

    accounts: dict[bytes, Account | None] = field(default_factory=dict)
    jobs: dict[bytes, Job | None] = field(default_factory=dict)
    due_add: list[tuple[int, bytes]] = field(default_factory=list)
    due_remove: list[tuple[int, bytes]] = field(default_factory=list)
    lanes: bytes | None = None

    def to_list(self) -> list[Any]:
        return [
            [[a, v.to_list() if v else []] for a, v in sorted(self.accounts.items())],
            [[j, v.to_list() if v else []] for j, v in sorted(self.jobs.items())],
            [[h, j] for h, j in self.due_add],
            [[h, j] for h, j in self.due_remove],
            self.lanes or b"",
        ]

    def encode(self) -> bytes:
        return enc.encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "StateDiff":
        v = enc.decode(data, _DIFF_SCHEMA, 1 << 30, "state diff")
        accounts = {a: _optional(Account, ACCOUNT_SCHEMA, x) for a, x in v[0]}
        jobs = {j: _optional(Job, JOB_SCHEMA, x) for j, x in v[1]}
        if v[4] and len(v[4]) != LANE_BYTES:
            raise enc.DecodeError(f"state diff lanes must be {LANE_BYTES} bytes")
        return cls(accounts, jobs, [(h, j) for h, j in v[2]], [(h, j) for h, j in v[3]], v[4] or None)

    @property
    def state_root(self) -> bytes | None:
        return None if self.lanes is None else LtHash.from_bytes(self.lanes).root()


def _optional(cls: type, schema: Tuple, value: list[Any]) -> Any:
    if not value:
        return None
    schema.check(value, cls.__name__)
    return cls(*value)


class _OptionalValue(enc.Schema):
    def check(self, value: Any, where: str) -> None:
        if type(value) is not list:
            raise enc.DecodeError(f"{where}: expected array")


_ENTRY = lambda key: Tuple(key, _OptionalValue())  # noqa: E731
_DIFF_SCHEMA = Tuple(ListOf(_ENTRY(BIN20), 1 << 24), ListOf(_ENTRY(BIN32), 1 << 24),
                     ListOf(Tuple(U64, BIN32), 1 << 24), ListOf(Tuple(U64, BIN32), 1 << 24),
                     Bin(max_size=LANE_BYTES))


class Overlay:
    """Pending state on top of a view; records the prior value of every key it touches."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self._accounts: dict[bytes, Account] = {}
        self._jobs: dict[bytes, Job | None] = {}
        self._old_accounts: dict[bytes, Account | None] = {}
        self._old_jobs: dict[bytes, Job | None] = {}
        self._due: list[tuple[int, bytes]] = []

    def account(self, address: bytes) -> Account:
        if address not in self._accounts:
            stored = self.view.account(address)
            self._old_accounts[address] = stored
            self._accounts[address] = stored or EMPTY_ACCOUNT
        return self._accounts[address]

    def set_account(self, address: bytes, account: Account) -> None:
        self.account(address)
        self._accounts[address] = account

    def credit(self, address: bytes, amount: int) -> None:
        acct = self.account(address)
        if acct.balance + amount > U64_MAX:
            raise InvalidTx(Reason.BALANCE_OVERFLOW, address.hex())
        self.set_account(address, Account(acct.balance + amount, acct.nonce))

    def job(self, job_id: bytes) -> Job | None:
        if job_id not in self._jobs:
            stored = self.view.job(job_id)
            self._old_jobs[job_id] = stored
            self._jobs[job_id] = stored
        return self._jobs[job_id]

    def set_job(self, job_id: bytes, job: Job) -> None:
        self.job(job_id)
        self._jobs[job_id] = job

    def add_due(self, height: int, job_id: bytes) -> None:
        self._due.append((height, job_id))

    def changes(self) -> tuple[dict[bytes, Account | None], dict[bytes, Job | None]]:
        """Accounts and jobs whose value differs from the view's (None: the record goes)."""
        accounts = {a: (v if v != EMPTY_ACCOUNT else None) for a, v in self._accounts.items()
                    if (v if v != EMPTY_ACCOUNT else None) != self._old_accounts[a]}
        jobs = {j: v for j, v in self._jobs.items() if v != self._old_jobs[j]}
        return accounts, jobs

    def diff_and_undo(self) -> tuple[StateDiff, StateDiff]:
        """The changes as a forward diff and its undo, each with the lanes of the state it leaves."""
        accounts, jobs = self.changes()
        added = [*(account_record(a, v) for a, v in accounts.items() if v is not None),
                 *(job_record(j, v) for j, v in jobs.items() if v is not None)]
        old_accounts = {a: self._old_accounts[a] for a in accounts}
        old_jobs = {j: self._old_jobs[j] for j in jobs}
        removed = [*(account_record(a, v) for a, v in old_accounts.items() if v is not None),
                   *(job_record(j, v) for j, v in old_jobs.items() if v is not None)]
        before = self.view.lanes()
        after = before.copy().update(added, removed)
        diff = StateDiff(accounts, jobs, list(self._due), [], after.to_bytes())
        undo = StateDiff(old_accounts, old_jobs, [], list(self._due), before.to_bytes())
        return diff, undo


# --- transactions ----------------------------------------------------------------

def check_tx_stateless(tx: Tx, network: Network) -> None:
    """Rules that need no state: version, chain, size, signature, payload sanity (§3)."""
    if tx.version != TX_VERSION:
        raise InvalidTx(Reason.BAD_VERSION, f"tx version {tx.version}")
    if tx.chain_id != network.chain_id:
        raise InvalidTx(Reason.BAD_CHAIN_ID, f"tx for chain {tx.chain_id}, this is {network.chain_id}")
    if len(tx.encode()) > MAX_TX_SIZE:
        raise InvalidTx(Reason.TX_TOO_LARGE)
    p = tx.payload
    if isinstance(p, Transfer) and p.amount < 1:
        raise InvalidTx(Reason.BAD_AMOUNT, "transfer amount must be at least 1")
    if isinstance(p, JobPost):
        _check_job_dims(p, network)
        if p.reward < 1:
            raise InvalidTx(Reason.BAD_REWARD, "job reward must be at least 1")
    if not tx.signature_valid():
        raise InvalidTx(Reason.BAD_SIGNATURE)


def job_dims_error(m: int, n: int, k: int, network: Network) -> str | None:
    """Why (m, n, k) cannot be a job on ``network`` (§3 JOB_POST), or None."""
    k_low = network.k_range(network.r_min)[0]
    for name, d in (("m", m), ("n", n)):
        if d % 32 or not 32 <= d <= MAX_MATRIX_DIM:
            return f"{name}={d} must be a multiple of 32 from 32 to {MAX_MATRIX_DIM}"
    if n > MAX_JOB_N:
        return f"n={n} is over {MAX_JOB_N} (a fraud proof carries a whole row of C)"
    if k % 64 or not k_low <= k <= MAX_K:
        return f"k={k} must be a multiple of 64 from {k_low} to {MAX_K}"
    return None


def operand_error(kind: str, array: np.ndarray, network: Network) -> str | None:
    """Why an int8 matrix cannot be a job's A (m×k) or B (k×n) on ``network`` (§1, §3, §4), or None."""
    if array.ndim != 2:
        return f"{kind} must be a 2-D matrix, got {array.ndim} dimensions"
    if array.dtype != np.int8:
        return f"{kind} must be int8, got {array.dtype}"
    rows, cols = array.shape
    m, n, k = (rows, 32, cols) if kind == "A" else (32, cols, rows)
    problem = job_dims_error(m, n, k, network)
    if problem:
        return f"{kind} is {rows}×{cols}: {problem}"
    if array.size and (int(array.min()) < ENTRY_MIN or int(array.max()) > ENTRY_MAX):
        return f"{kind} has entries outside [{ENTRY_MIN}, {ENTRY_MAX}]"
    return None


def _check_job_dims(p: JobPost, network: Network) -> None:
    problem = job_dims_error(p.m, p.n, p.k, network)
    if problem:
        raise InvalidTx(Reason.BAD_JOB_DIMS, problem)


def escrow_of(tx: Tx) -> int:
    """What a tx takes from its sender beyond the fee."""
    p = tx.payload
    if isinstance(p, Transfer):
        return p.amount
    if isinstance(p, JobPost):
        return p.reward
    if isinstance(p, JobResult):
        return p.bond
    return 0


def apply_tx(state: Overlay, tx: Tx, height: int, network: Network) -> None:
    """Apply one tx (stateless rules assumed checked) at ``height``; raises InvalidTx."""
    sender = tx.sender_address
    acct = state.account(sender)
    if tx.nonce != acct.nonce:
        raise InvalidTx(Reason.BAD_NONCE, f"expected nonce {acct.nonce}, got {tx.nonce}")
    cost = tx.fee + escrow_of(tx)
    if cost > acct.balance:
        raise InvalidTx(Reason.INSUFFICIENT_FUNDS, f"needs {cost}, has {acct.balance}")
    p = tx.payload
    if isinstance(p, JobPost) and p.expiry <= height:
        raise InvalidTx(Reason.BAD_EXPIRY, f"expiry {p.expiry} not after height {height}")
    state.set_account(sender, Account(acct.balance - cost, acct.nonce + 1))
    if isinstance(p, Transfer):
        state.credit(p.to, p.amount)
    elif isinstance(p, JobPost):
        state.set_job(tx.txid, Job(sender, p.m, p.n, p.k, p.h_a, p.h_b, p.reward, p.expiry))
        state.add_due(p.expiry, tx.txid)
    elif isinstance(p, JobResult):
        _apply_result(state, sender, p, height, network)
    elif isinstance(p, FraudProof):
        _apply_fraud_proof(state, sender, p, height)
    elif isinstance(p, JobAccept):
        _apply_accept(state, sender, p)


def _known_job(state: Overlay, job_id: bytes) -> Job:
    job = state.job(job_id)
    if job is None:
        raise InvalidTx(Reason.UNKNOWN_JOB, job_id.hex())
    return job


def _apply_result(state: Overlay, worker: bytes, p: JobResult, height: int, network: Network) -> None:
    """JOB_RESULT: escrow the bond and mark the job CLAIMED with the worker's claim (§6)."""
    job = _known_job(state, p.job_id)
    if job.status != OPEN or height > job.expiry:
        raise InvalidTx(Reason.JOB_NOT_OPEN, p.job_id.hex())
    if p.bond < -(-job.reward // 10):
        raise InvalidTx(Reason.BOND_TOO_SMALL, f"bond must be at least ceil(reward/10) = {-(-job.reward // 10)}")
    state.set_job(p.job_id, replace(job, status=CLAIMED, worker=worker, claim=p.claim, bond=p.bond,
                                    claim_height=height))
    state.add_due(height + network.challenge_window, p.job_id)


def _apply_accept(state: Overlay, sender: bytes, p: JobAccept) -> None:
    """JOB_ACCEPT by the poster of a CLAIMED job: SETTLED, reward + bond to the worker (§6)."""
    job = _known_job(state, p.job_id)
    if job.status != CLAIMED:
        raise InvalidTx(Reason.JOB_NOT_CLAIMED, p.job_id.hex())
    if sender != job.poster:
        raise InvalidTx(Reason.NOT_POSTER, "only the job's poster can accept its result")
    state.credit(job.worker, job.reward + job.bond)
    state.set_job(p.job_id, replace(job, status=SETTLED))


def _apply_fraud_proof(state: Overlay, prover: bytes, p: FraudProof, height: int) -> None:
    """FRAUD_PROOF on a CLAIMED job: the bond to the prover, the job reopened (or refunded
    past its expiry) (§6)."""
    job = _known_job(state, p.job_id)
    if job.status != CLAIMED:
        raise InvalidTx(Reason.JOB_NOT_CLAIMED, p.job_id.hex())
    code = fraud_proof_error(job, p)
    if code:
        raise InvalidTx(code, p.job_id.hex())
    state.credit(prover, job.bond)
    if height > job.expiry:
        state.credit(job.poster, job.reward)
        state.set_job(p.job_id, job.unclaimed(REFUNDED))
    else:
        state.set_job(p.job_id, job.unclaimed(OPEN))


def _line_root(data: bytes, index: int, size: int, path: tuple[bytes, ...]) -> bytes | None:
    return root_from_path(leaf_hash(data), index, size, path)


def fraud_proof_error(job: Job, p: FraudProof) -> Reason | None:
    """Check the claim, the three audit paths and that ``dot(a_row, b_col) ≠ c_row[j]`` (§6)."""
    if claim_of(job.worker, p.h_c) != job.claim:
        return Reason.BAD_FRAUD_CLAIM
    if not (p.i < job.m and p.j < job.n):
        return Reason.BAD_FRAUD_INDEX
    if len(p.a_row) != job.k or len(p.b_col) != job.k or len(p.c_row) != 4 * job.n:
        return Reason.BAD_FRAUD_SIZE
    root_a = _line_root(p.a_row, p.i, job.m, p.a_path)
    if root_a is None or matrix_commitment(job.m, job.k, root_a) != job.h_a:
        return Reason.BAD_FRAUD_A_PATH
    root_b = _line_root(p.b_col, p.j, job.n, p.b_path)
    if root_b is None or matrix_commitment(job.n, job.k, root_b) != job.h_b:
        return Reason.BAD_FRAUD_B_PATH
    root_c = _line_root(p.c_row, p.i, job.m, p.c_path)
    if root_c is None or result_commitment(job.m, job.n, root_c) != p.h_c:
        return Reason.BAD_FRAUD_C_PATH
    a_row = np.frombuffer(p.a_row, np.int8).astype(np.int64)
    dot = int(a_row @ np.frombuffer(p.b_col, np.int8).astype(np.int64))
    claimed = int.from_bytes(p.c_row[4 * p.j:4 * p.j + 4], "little", signed=True)
    if dot == claimed:
        return Reason.NOT_FRAUD
    return None


# --- blocks -------------------------------------------------------------------------

def _job_events(state: Overlay, height: int, network: Network) -> None:
    """End-of-block job events, in job_id order (§6): a claim made ``window`` blocks ago
    lapses (bond back to the worker, reward burned); an OPEN job expiring now is refunded."""
    for job_id in sorted(set(state.view.jobs_due(height))):
        job = state.job(job_id)
        if job is None:
            continue
        if job.status == CLAIMED and job.claim_height + network.challenge_window == height:
            state.credit(job.worker, job.bond)
            state.set_job(job_id, replace(job, status=LAPSED))
        elif job.status == OPEN and job.expiry == height:
            state.credit(job.poster, job.reward)
            state.set_job(job_id, replace(job, status=REFUNDED))


def block_fees(block: Block) -> int:
    return sum(t.fee for t in block.txs)


def apply_effects(view: StateView, txs: Iterable[Tx], height: int, network: Network,
                  payout: tuple[bytes, int] | None, stateless_checked: bool = False) -> tuple[StateDiff, StateDiff]:
    """A block's effects in §5 order — every tx, the job events due at ``height``, then the
    matured reward ``payout = (miner, amount)`` — as (diff, undo), lanes included.

    Raises ``InvalidBlock`` with ``BAD_TX`` naming the first failing tx and its code, or
    with ``JOB_EVENT_OVERFLOW`` / ``REWARD_OVERFLOW``.
    """
    state = Overlay(view)
    for index, tx in enumerate(txs):
        try:
            if not stateless_checked:
                check_tx_stateless(tx, network)
            apply_tx(state, tx, height, network)
        except InvalidTx as exc:
            raise InvalidBlock.bad_tx(index, tx.txid, exc.code, exc.detail) from None
    try:
        _job_events(state, height, network)
    except InvalidTx as exc:
        raise InvalidBlock(Reason.JOB_EVENT_OVERFLOW, str(exc)) from None
    if payout is not None:
        try:
            state.credit(*payout)
        except InvalidTx as exc:
            raise InvalidBlock(Reason.REWARD_OVERFLOW, str(exc)) from None
    return state.diff_and_undo()


def matured_payout(view: StateView, height: int, network: Network) -> tuple[bytes, int] | None:
    """(miner, subsidy + fees) of block ``height − maturity``, paid when ``height`` connects (§5)."""
    paid_height = height - network.coinbase_maturity
    if paid_height < 1:
        return None
    miner, fees = view.block_payout(paid_height)
    return miner, subsidy(paid_height) + fees


def check_useful_job(view: StateView, block: Block) -> None:
    """A block naming a job must match an OPEN or CLAIMED job at the parent's state (§5)."""
    w = block.header.work
    if w.job_id == NO_CLAIM:
        return
    job = view.job(w.job_id)
    if job is None:
        raise InvalidBlock(Reason.UNKNOWN_JOB, w.job_id.hex())
    if job.status not in ACTIVE_STATUSES:
        raise InvalidBlock(Reason.JOB_NOT_ACTIVE, f"{w.job_id.hex()} is {JOB_STATUS_NAMES[job.status]}")
    if (job.m, job.n, job.k, job.h_a, job.h_b) != (w.m, w.n, w.k, w.h_a, w.h_b):
        raise InvalidBlock(Reason.JOB_MISMATCH, w.job_id.hex())


def apply_block(view: StateView, block: Block, network: Network,
                stateless_checked: bool = False) -> tuple[StateDiff, StateDiff]:
    """Apply a block on its parent's state and check its ``state_root``; returns (diff, undo).

    ``stateless_checked`` says the caller already ran ``check_tx_stateless`` on every
    tx (e.g. in worker processes), so it is not repeated here.
    """
    h = block.header
    check_useful_job(view, block)
    diff, undo = apply_effects(view, block.txs, h.height, network, matured_payout(view, h.height, network),
                               stateless_checked)
    if diff.state_root != h.state_root:
        raise InvalidBlock(Reason.BAD_STATE_ROOT, f"header {h.state_root.hex()}, state {diff.state_root.hex()}")
    return diff, undo
