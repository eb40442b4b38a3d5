"""State transition (PROTOCOL §3, §3a, §5, §6): transfers, fees, deferred rewards, the job
market, the state root, undo, and the supply that always balances."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from consensus import work
from consensus.block import EMPTY_PROOF, Block, WorkSpec
from consensus.errors import InvalidBlock, InvalidTx
from consensus.genesis import genesis_block
from consensus.hashing import audit_path, leaf_hash
from consensus.keys import PrivateKey
from consensus.memstate import MemoryState
from consensus.params import COIN, REGTEST, subsidy
from consensus.reasons import Reason
from consensus.state import (CLAIMED, LAPSED, OPEN, REFUNDED, SETTLED, Account, StateDiff, apply_block,
                             apply_effects, check_tx_stateless, matured_payout)
from consensus.supply import supply
from consensus.tx import FraudProof, JobAccept, JobPost, JobResult, Transfer, Tx, claim_of, make_tx

from .chainmaker import funded_state, snapshot

GENESIS = genesis_block(REGTEST).header
KEYS = [PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
POSTER, WORKER, PROVER = KEYS[0], KEYS[1], KEYS[2]
MINER = b"\xaa" * 20
WINDOW = REGTEST.challenge_window
MATURITY = REGTEST.coinbase_maturity


class Chain:
    """Applies blocks to a MemoryState at consecutive heights and keeps undo records."""

    def __init__(self, view: MemoryState) -> None:
        self.view, self.height, self.undos = view, 0, []
        self.fees: dict[int, int] = {}
        self.alloc = sum(a.balance for a in view.accounts.values())

    def connect(self, txs: tuple[Tx, ...] = (), miner: bytes = MINER, work_dims: WorkSpec | None = None) -> None:
        height = self.height + 1
        diff, _ = apply_effects(self.view, txs, height, REGTEST, matured_payout(self.view, height, REGTEST))
        header = GENESIS.replace(height=height, miner=miner, state_root=diff.state_root)
        if work_dims:
            header = header.replace(work=work_dims)
        diff, undo = apply_block(self.view, Block(header, EMPTY_PROOF, txs), REGTEST)
        encoded = StateDiff.decode(undo.encode())
        assert encoded == undo
        self.view.apply(diff)
        self.height = height
        self.fees[height] = sum(t.fee for t in txs)
        self.view.payouts[height] = (miner, self.fees[height])
        self.undos.append(encoded)

    def disconnect(self) -> None:
        self.view.apply(self.undos.pop())
        del self.view.payouts[self.height], self.fees[self.height]
        self.height -= 1

    def supply(self):
        pending = sum(f for h, f in self.fees.items() if h > self.height - MATURITY)
        return supply(REGTEST, self.height, self.view.accounts.values(), self.view.jobs.values(), pending,
                      self.alloc)

    def assert_consistent(self) -> None:
        """Incremental lanes equal a recomputation from every record; the supply balances."""
        assert self.view.lanes() == self.view.recomputed()
        assert self.supply().balanced, self.supply()


def funded(amount: int = 1000 * COIN) -> Chain:
    return Chain(funded_state(REGTEST, {k.address: (amount, 0) for k in KEYS}))


def transfer(i: int, nonce: int, to: bytes, amount: int, fee: int = 10) -> Tx:
    return make_tx(KEYS[i], REGTEST.chain_id, nonce, fee, Transfer(to, amount))


def test_transfer_moves_funds_and_fee_pays_miner_after_maturity() -> None:
    chain = funded(1000)
    chain.connect((transfer(0, 0, KEYS[1].address, 300, fee=7),))
    v = chain.view
    assert v.accounts[KEYS[0].address] == Account(693, 1)
    assert v.accounts[KEYS[1].address] == Account(1300, 0)
    for _ in range(MATURITY - 1):
        chain.connect()
    assert MINER not in v.accounts
    chain.connect()
    assert v.accounts[MINER].balance == subsidy(1) + 7
    chain.assert_consistent()


INVALID_TXS = [
    (lambda: transfer(0, 1, b"\x01" * 20, 5), "bad-nonce"),
    (lambda: transfer(0, 0, b"\x01" * 20, 10**6), "insufficient-funds"),
    (lambda: make_tx(KEYS[0], 3, 0, 1, Transfer(b"\x01" * 20, 5)), "bad-chain-id"),
    (lambda: make_tx(KEYS[0], 4, 0, 1, Transfer(b"\x01" * 20, 0)), "bad-amount"),
    (lambda: replace(make_tx(KEYS[0], 4, 0, 1, Transfer(b"\x01" * 20, 5)), version=1), "bad-version"),
    (lambda: replace(transfer(0, 0, b"\x01" * 20, 5), signature=bytes(64), _txid=None), "bad-signature"),
    (lambda: make_tx(KEYS[0], 4, 0, 1, JobPost(32, 32, 64, bytes(32), bytes(32), 0, 100)), "bad-reward"),
    (lambda: make_tx(KEYS[0], 4, 0, 1, JobPost(33, 32, 64, bytes(32), bytes(32), 5, 100)), "bad-job-dims"),
    (lambda: make_tx(KEYS[0], 4, 0, 1, JobPost(32, 32, 64, bytes(32), bytes(32), 5, 1)), "bad-expiry"),
]


@pytest.mark.parametrize("tx, reason", INVALID_TXS)
def test_invalid_tx_makes_block_invalid(tx, reason: str) -> None:
    chain = funded(1000)
    with pytest.raises(InvalidBlock) as exc:
        chain.connect((tx(),))
    assert exc.value.code == "bad-tx" and reason in exc.value.detail
    assert exc.value.tx_code == reason  # the block carries the tx's own code


@pytest.mark.parametrize("tx, reason", INVALID_TXS)
def test_tx_stateless_marks_the_rules_checked_without_state(tx, reason: str) -> None:
    """``Reason.tx_stateless`` (a peer relaying such a tx is banned) holds for what
    ``check_tx_stateless`` refuses, and not for what fails only against the state."""
    try:
        check_tx_stateless(tx(), REGTEST)
    except InvalidTx as exc:
        assert exc.code == reason and exc.code.tx_stateless
    else:
        assert not Reason(reason).tx_stateless

def test_double_spend_in_one_block() -> None:
    chain = funded(1000)
    with pytest.raises(InvalidBlock, match="bad-nonce"):
        chain.connect((transfer(0, 0, b"\x01" * 20, 5), transfer(0, 0, b"\x02" * 20, 5)))


def test_wrong_state_root_is_rejected() -> None:
    chain = funded(1000)
    header = GENESIS.replace(height=1, miner=MINER)  # the genesis root, but this state differs
    with pytest.raises(InvalidBlock) as exc:
        apply_block(chain.view, Block(header, EMPTY_PROOF, ()), REGTEST)
    assert exc.value.code == "bad-state-root"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 400), st.integers(0, 50)),
                         max_size=4), min_size=1, max_size=14))
def test_apply_then_undo_restores_exact_state(blocks: list) -> None:
    chain = funded(1000)
    before = [snapshot(chain.view)]
    nonces = [0] * 4
    for spec in blocks:
        txs = []
        for frm, to, amount, fee in spec:
            txs.append(transfer(frm, nonces[frm], KEYS[to].address, amount, fee))
            nonces[frm] += 1
        try:
            chain.connect(tuple(txs))
        except InvalidBlock:
            for frm, *_ in spec:
                nonces[frm] -= 1
            continue
        before.append(snapshot(chain.view))
    while chain.undos:
        before.pop()
        chain.disconnect()
        assert snapshot(chain.view) == before[-1]


# --- job market -------------------------------------------------------------------

@pytest.fixture(scope="module")
def job_matrices() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return (rng.integers(-64, 65, size=(64, 64), dtype=np.int8), rng.integers(-64, 65, size=(64, 32), dtype=np.int8))


def nonce_of(chain: Chain, key: PrivateKey) -> int:
    return (chain.view.account(key.address) or Account()).nonce


def post_job(chain: Chain, a: np.ndarray, b: np.ndarray, reward: int = 1000, expiry: int = 30) -> bytes:
    tx = make_tx(POSTER, REGTEST.chain_id, nonce_of(chain, POSTER), 1,
                 JobPost(a.shape[0], b.shape[1], a.shape[1], work.commit_a(a), work.commit_b(b), reward, expiry))
    chain.connect((tx,))
    return tx.txid


def result_tx(chain: Chain, job_id: bytes, c: np.ndarray, bond: int = 100, key: PrivateKey = WORKER) -> Tx:
    claim = claim_of(key.address, work.commit_result(c))
    return make_tx(key, REGTEST.chain_id, nonce_of(chain, key), 1, JobResult(job_id, claim, bond))


def accept_tx(chain: Chain, job_id: bytes, key: PrivateKey = POSTER) -> Tx:
    return make_tx(key, REGTEST.chain_id, nonce_of(chain, key), 1, JobAccept(job_id))


def fraud_tx(chain: Chain, job_id: bytes, a, b, c, i: int, j: int, h_c: bytes | None = None) -> Tx:
    rows_a = [leaf_hash(bytes(r.tobytes())) for r in a]
    cols_b = [leaf_hash(bytes(col.tobytes())) for col in np.ascontiguousarray(b.T)]
    rows_c = [leaf_hash(r.astype("<i4").tobytes()) for r in c]
    proof = FraudProof(job_id, h_c or work.commit_result(c), i, j, a[i].tobytes(), tuple(audit_path(rows_a, i)),
                       np.ascontiguousarray(b[:, j]).tobytes(), tuple(audit_path(cols_b, j)),
                       c[i].astype("<i4").tobytes(), tuple(audit_path(rows_c, i)))
    return make_tx(PROVER, REGTEST.chain_id, nonce_of(chain, PROVER), 1, proof)


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def test_result_claim_then_poster_accepts_and_worker_is_paid(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    assert chain.view.jobs[job_id].status == OPEN
    assert chain.view.accounts[POSTER.address].balance == 10**6 - 1001
    chain.connect((result_tx(chain, job_id, product(a, b)),))
    job = chain.view.jobs[job_id]
    assert job.status == CLAIMED and job.worker == WORKER.address and job.bond == 100
    assert job.claim == claim_of(WORKER.address, work.commit_result(product(a, b)))
    chain.assert_consistent()
    chain.connect((accept_tx(chain, job_id),))
    assert chain.view.jobs[job_id].status == SETTLED
    assert chain.view.accounts[WORKER.address].balance == 10**6 - 1 + 1000  # fee paid, bond back, reward
    chain.assert_consistent()
    while chain.undos:
        chain.disconnect()
    assert chain.view.jobs == {} and chain.view.accounts[WORKER.address] == Account(10**6, 0)


@pytest.mark.parametrize("who, status, reason", [
    (WORKER, CLAIMED, "not-poster"),     # accept by someone else
    (POSTER, OPEN, "job-not-claimed"),   # accept of an open job
])
def test_accept_rules(job_matrices, who: PrivateKey, status: int, reason: str) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    if status == CLAIMED:
        chain.connect((result_tx(chain, job_id, product(a, b)),))
    with pytest.raises(InvalidBlock) as exc:
        chain.connect((accept_tx(chain, job_id, who),))
    assert reason in exc.value.detail


def test_unaccepted_claim_lapses_bond_back_reward_burned(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    chain.connect((result_tx(chain, job_id, product(a, b)),))
    claimed_at = chain.height
    while chain.height < claimed_at + WINDOW - 1:
        chain.connect()
    assert chain.view.jobs[job_id].status == CLAIMED
    chain.connect()
    assert chain.view.jobs[job_id].status == LAPSED
    assert chain.view.accounts[WORKER.address].balance == 10**6 - 1  # only the fee is gone
    assert chain.view.accounts[POSTER.address].balance == 10**6 - 1001  # the reward is not refunded
    assert chain.supply().burned == 1000
    chain.assert_consistent()
    with pytest.raises(InvalidBlock, match="job-not-claimed"):
        chain.connect((accept_tx(chain, job_id),))  # too late to accept
    chain.disconnect()
    assert chain.view.jobs[job_id].status == CLAIMED and chain.supply().burned == 0
    chain.assert_consistent()


def test_copied_claim_pays_only_the_claims_worker(job_matrices) -> None:
    """A result copied from the mempool by another address names that address's claim, which the
    honest worker's H_C does not open: a fraud proof against the copier needs H_C with the copier's
    address, and accept pays the address bound in the claim."""
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    honest_claim = claim_of(WORKER.address, work.commit_result(product(a, b)))
    copier = KEYS[3]
    copied = make_tx(copier, REGTEST.chain_id, 0, 1, JobResult(job_id, honest_claim, 100))
    chain.connect((copied,))
    assert chain.view.jobs[job_id].worker == copier.address
    assert claim_of(copier.address, work.commit_result(product(a, b))) != honest_claim


def test_open_job_refunds_at_expiry(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b, expiry=5)
    while chain.height < 5:
        chain.connect()
    assert chain.view.jobs[job_id].status == REFUNDED
    assert chain.view.accounts[POSTER.address].balance == 10**6 - 1
    chain.assert_consistent()


def test_fraud_proof_takes_bond_and_reopens(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    wrong = product(a, b)
    wrong[3, 5] += 1
    chain.connect((result_tx(chain, job_id, wrong),))
    with pytest.raises(InvalidBlock, match="not-fraud"):
        chain.connect((fraud_tx(chain, job_id, a, b, wrong, 0, 0),))
    with pytest.raises(InvalidBlock, match="bad-fraud-claim"):  # the H_C the worker did not claim
        chain.connect((fraud_tx(chain, job_id, a, b, product(a, b), 3, 5),))
    tampered = fraud_tx(chain, job_id, a, b, wrong, 3, 5)
    bad_path = replace(tampered.payload, a_path=(bytes(32),) * len(tampered.payload.a_path))
    with pytest.raises(InvalidBlock, match="bad-fraud-a-path"):
        chain.connect((make_tx(PROVER, REGTEST.chain_id, 0, 1, bad_path),))
    chain.connect((tampered,))
    job = chain.view.jobs[job_id]
    assert job.status == OPEN and job.bond == 0 and job.worker == bytes(20) and job.claim == bytes(32)
    assert chain.view.accounts[PROVER.address].balance == 10**6 - 1 + 100
    chain.assert_consistent()
    chain.connect((result_tx(chain, job_id, product(a, b), key=KEYS[3]),))  # reopened: done honestly
    chain.connect((accept_tx(chain, job_id),))
    assert chain.view.jobs[job_id].status == SETTLED
    chain.assert_consistent()


def test_fraud_proof_past_expiry_refunds(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b, expiry=3)
    wrong = product(a, b)
    wrong[0, 0] -= 1
    chain.connect((result_tx(chain, job_id, wrong),))
    while chain.height < 4:
        chain.connect()
    chain.connect((fraud_tx(chain, job_id, a, b, wrong, 0, 0),))
    assert chain.view.jobs[job_id].status == REFUNDED
    assert chain.view.accounts[POSTER.address].balance == 10**6 - 1
    chain.assert_consistent()


def test_bond_too_small_and_useful_block(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b, reward=1001)
    with pytest.raises(InvalidBlock, match="bond-too-small"):
        chain.connect((result_tx(chain, job_id, product(a, b), bond=100),))
    job = chain.view.jobs[job_id]
    good = WorkSpec(job.m, job.n, job.k, 16, job.h_a, job.h_b, job_id)
    chain.connect(work_dims=good)
    with pytest.raises(InvalidBlock, match="job-mismatch"):
        chain.connect(work_dims=WorkSpec(job.m, job.n, job.k, 16, job.h_b, job.h_a, job_id))
    with pytest.raises(InvalidBlock, match="unknown-job"):
        chain.connect(work_dims=WorkSpec(job.m, job.n, job.k, 16, job.h_a, job.h_b, b"\x01" * 32))
    chain.connect((result_tx(chain, job_id, product(a, b), bond=101),))
    chain.connect(work_dims=good)  # a CLAIMED job may still be mined on
    chain.connect((accept_tx(chain, job_id),))
    with pytest.raises(InvalidBlock) as exc:
        chain.connect(work_dims=good)
    assert exc.value.code == "job-not-active"  # a settled job is no longer useful work


# --- property: random job-market histories with reorgs --------------------------------

ACTIONS = st.lists(st.tuples(st.sampled_from(["post", "result", "wrong", "accept", "fraud", "pay", "empty", "undo"]),
                             st.integers(0, 3), st.integers(1, 50)), min_size=1, max_size=40)


@settings(max_examples=30, deadline=None)
@given(ACTIONS)
def test_random_histories_keep_lanes_exact_and_supply_balanced(job_matrices, actions: list) -> None:
    """Any sequence of blocks (posts, claims right and wrong, accepts, fraud proofs, transfers,
    empty blocks that run lapses and refunds) and disconnects: the incremental lanes always equal
    a full recomputation and balances + escrow + pending fees = issued − burned."""
    a, b = job_matrices
    right, wrong = product(a, b), product(a, b)
    wrong[1, 2] += 7
    chain = funded(10**6)
    results: dict[bytes, np.ndarray] = {}
    for action, who, amount in actions:
        jobs = sorted(chain.view.jobs)
        job_id = jobs[who % len(jobs)] if jobs else None
        try:
            if action == "post":
                post_job(chain, a, b, reward=10 * amount, expiry=chain.height + 2 + amount % 20)
            elif action in ("result", "wrong") and job_id:
                c = right if action == "result" else wrong
                chain.connect((result_tx(chain, job_id, c, bond=amount * 10, key=KEYS[1 + who % 3]),))
                results[job_id] = c
            elif action == "accept" and job_id:
                chain.connect((accept_tx(chain, job_id),))
            elif action == "fraud" and job_id and job_id in results:
                chain.connect((fraud_tx(chain, job_id, a, b, results[job_id], 1, 2),))
            elif action == "pay":
                chain.connect((transfer(who, nonce_of(chain, KEYS[who]), KEYS[(who + 1) % 4].address, amount),))
            elif action == "undo" and chain.undos:
                chain.disconnect()
            else:
                chain.connect()
        except InvalidBlock:
            pass
        chain.assert_consistent()
