"""State transition (PROTOCOL §3, §5, §6): transfers, fees, deferred rewards, jobs, undo."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from consensus import work
from consensus.block import EMPTY_PROOF, Block, WorkSpec
from consensus.errors import InvalidBlock
from consensus.genesis import genesis_block
from consensus.hashing import audit_path, leaf_hash
from consensus.keys import PrivateKey
from consensus.params import COIN, REGTEST, subsidy
from consensus.state import CLAIMED, OPEN, REFUNDED, SETTLED, Account, StateDiff, apply_block
from consensus.tx import FraudProof, JobPost, JobResult, Transfer, Tx, make_tx

from .chainmaker import MemoryView

GENESIS = genesis_block(REGTEST).header
KEYS = [PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
MINER = b"\xaa" * 20
WINDOW = REGTEST.challenge_window


class Chain:
    """Applies blocks to a MemoryView at consecutive heights and keeps undo records."""

    def __init__(self, view: MemoryView) -> None:
        self.view, self.height, self.undos = view, 0, []

    def connect(self, txs: tuple[Tx, ...] = (), miner: bytes = MINER, work_dims: WorkSpec | None = None) -> None:
        header = GENESIS.replace(height=self.height + 1, miner=miner)
        if work_dims:
            header = header.replace(work=work_dims)
        diff, undo = apply_block(self.view, Block(header, EMPTY_PROOF, txs), REGTEST)
        encoded = StateDiff.decode(undo.encode())
        assert encoded == undo
        self.view.apply(diff)
        self.height += 1
        self.view.payouts[self.height] = (miner, sum(t.fee for t in txs))
        self.undos.append(encoded)

    def disconnect(self) -> None:
        self.view.apply(self.undos.pop())
        del self.view.payouts[self.height]
        self.height -= 1


def funded(amount: int = 1000 * COIN) -> Chain:
    return Chain(MemoryView({k.address: (amount, 0) for k in KEYS}))


def transfer(i: int, nonce: int, to: bytes, amount: int, fee: int = 10) -> Tx:
    return make_tx(KEYS[i], REGTEST.chain_id, nonce, fee, Transfer(to, amount))


def test_transfer_moves_funds_and_fee_pays_miner_after_maturity() -> None:
    chain = funded(1000)
    chain.connect((transfer(0, 0, KEYS[1].address, 300, fee=7),))
    v = chain.view
    assert v.accounts[KEYS[0].address] == Account(693, 1)
    assert v.accounts[KEYS[1].address] == Account(1300, 0)
    for _ in range(REGTEST.coinbase_maturity - 1):
        chain.connect()
    assert MINER not in v.accounts
    chain.connect()
    assert v.accounts[MINER].balance == subsidy(1) + 7


@pytest.mark.parametrize("tx, reason", [
    (lambda: transfer(0, 1, b"\x01" * 20, 5), "bad-nonce"),
    (lambda: transfer(0, 0, b"\x01" * 20, 10**6), "insufficient-funds"),
    (lambda: make_tx(KEYS[0], 3, 0, 1, Transfer(b"\x01" * 20, 5)), "bad-chain-id"),
    (lambda: make_tx(KEYS[0], 4, 0, 1, Transfer(b"\x01" * 20, 0)), "bad-amount"),
])
def test_invalid_tx_makes_block_invalid(tx, reason: str) -> None:
    chain = funded(1000)
    with pytest.raises(InvalidBlock) as exc:
        chain.connect((tx(),))
    assert exc.value.reason == "bad-tx" and reason in exc.value.detail


def test_double_spend_in_one_block() -> None:
    chain = funded(1000)
    with pytest.raises(InvalidBlock, match="bad-nonce"):
        chain.connect((transfer(0, 0, b"\x01" * 20, 5), transfer(0, 0, b"\x02" * 20, 5)))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 400), st.integers(0, 50)),
                         max_size=4), min_size=1, max_size=14))
def test_apply_then_undo_restores_exact_state(blocks: list) -> None:
    chain = funded(1000)
    before = [chain.view.snapshot()]
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
        before.append(chain.view.snapshot())
    while chain.undos:
        before.pop()
        chain.disconnect()
        assert chain.view.snapshot() == before[-1]


# --- job market -------------------------------------------------------------------

@pytest.fixture(scope="module")
def job_matrices() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return (rng.integers(-64, 65, size=(64, 64), dtype=np.int8), rng.integers(-64, 65, size=(64, 32), dtype=np.int8))


def post_job(chain: Chain, a: np.ndarray, b: np.ndarray, reward: int = 1000, expiry: int = 30) -> bytes:
    tx = make_tx(KEYS[0], REGTEST.chain_id, chain.view.accounts[KEYS[0].address].nonce, 1,
                 JobPost(a.shape[0], b.shape[1], a.shape[1], work.commit_a(a), work.commit_b(b), reward, expiry))
    chain.connect((tx,))
    return tx.txid


def claim(chain: Chain, job_id: bytes, c: np.ndarray, bond: int = 100) -> None:
    acct = chain.view.accounts[KEYS[1].address]
    chain.connect((make_tx(KEYS[1], REGTEST.chain_id, acct.nonce, 1, JobResult(job_id, work.commit_result(c), bond)),))


def fraud_tx(job_id: bytes, a, b, c, i: int, j: int, nonce: int) -> Tx:
    rows_a = [leaf_hash(bytes(r.tobytes())) for r in a]
    cols_b = [leaf_hash(bytes(col.tobytes())) for col in np.ascontiguousarray(b.T)]
    rows_c = [leaf_hash(r) for r in work.result_rows(c)]
    proof = FraudProof(job_id, i, j, a[i].tobytes(), tuple(audit_path(rows_a, i)),
                       np.ascontiguousarray(b[:, j]).tobytes(), tuple(audit_path(cols_b, j)),
                       work.result_rows(c)[i], tuple(audit_path(rows_c, i)))
    return make_tx(KEYS[2], REGTEST.chain_id, nonce, 1, proof)


def test_job_posted_claimed_settled(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    assert chain.view.jobs[job_id].status == OPEN
    assert chain.view.accounts[KEYS[0].address].balance == 10**6 - 1001
    claim(chain, job_id, a.astype(np.int64) @ b.astype(np.int64))
    claimed_at = chain.height
    assert chain.view.jobs[job_id].status == CLAIMED
    while chain.height < claimed_at + WINDOW:
        chain.connect()
    assert chain.view.jobs[job_id].status == SETTLED
    assert chain.view.accounts[KEYS[1].address].balance == 10**6 - 1 + 1000
    while chain.undos:
        chain.disconnect()
    assert chain.view.jobs == {} and chain.view.accounts[KEYS[1].address] == Account(10**6, 0)


def test_open_job_refunds_at_expiry(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b, expiry=5)
    while chain.height < 5:
        chain.connect()
    assert chain.view.jobs[job_id].status == REFUNDED
    assert chain.view.accounts[KEYS[0].address].balance == 10**6 - 1


def test_fraud_proof_takes_bond_and_reopens(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b)
    wrong = a.astype(np.int64) @ b.astype(np.int64)
    wrong[3, 5] += 1
    claim(chain, job_id, wrong)
    honest = fraud_tx(job_id, a, b, wrong, 0, 0, 0)
    with pytest.raises(InvalidBlock, match="not-fraud"):
        chain.connect((honest,))
    tampered = fraud_tx(job_id, a, b, wrong, 3, 5, 0)
    bad_path = replace(tampered.payload, a_path=(bytes(32),) * len(tampered.payload.a_path))
    with pytest.raises(InvalidBlock, match="bad-fraud-a-path"):
        chain.connect((make_tx(KEYS[2], REGTEST.chain_id, 0, 1, bad_path),))
    chain.connect((tampered,))
    job = chain.view.jobs[job_id]
    assert job.status == OPEN and job.bond == 0
    assert chain.view.accounts[KEYS[2].address].balance == 10**6 - 1 + 100


def test_bond_too_small_and_useful_block(job_matrices) -> None:
    a, b = job_matrices
    chain = funded(10**6)
    job_id = post_job(chain, a, b, reward=1001)
    with pytest.raises(InvalidBlock, match="bond-too-small"):
        claim(chain, job_id, a.astype(np.int64) @ b.astype(np.int64), bond=100)
    job = chain.view.jobs[job_id]
    good = WorkSpec(job.m, job.n, job.k, 16, job.h_a, job.h_b, job_id)
    chain.connect(work_dims=good)
    with pytest.raises(InvalidBlock, match="job-mismatch"):
        chain.connect(work_dims=WorkSpec(job.m, job.n, job.k, 16, job.h_b, job.h_a, job_id))
    with pytest.raises(InvalidBlock, match="unknown-job"):
        chain.connect(work_dims=WorkSpec(job.m, job.n, job.k, 16, job.h_a, job.h_b, b"\x01" * 32))
