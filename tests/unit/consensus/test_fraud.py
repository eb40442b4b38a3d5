"""The fraud-proof builder (PROTOCOL §6) produces exactly what the state rule accepts."""
from __future__ import annotations

import numpy as np

from consensus import work
from consensus.fraud import build_fraud_proof, wrong_entries
from consensus.state import CLAIMED, Job, fraud_proof_error
from consensus.tx import claim_of

WORKER = b"\x07" * 20


def job_for(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> Job:
    return Job(b"\x01" * 20, a.shape[0], b.shape[1], a.shape[1], work.commit_a(a), work.commit_b(b), 10, 99,
               CLAIMED, WORKER, claim_of(WORKER, work.commit_result(c)), 1, 5)


def test_builder_proves_a_wrong_entry_and_not_a_right_one() -> None:
    rng = np.random.default_rng(11)
    a = rng.integers(-64, 65, size=(96, 64), dtype=np.int8)
    b = rng.integers(-64, 65, size=(64, 160), dtype=np.int8)
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    c[70, 131] -= 3
    job = job_for(a, b, c)
    assert wrong_entries(a, b, c) == [(70, 131)]
    assert wrong_entries(a, b, c, rows=[0, 1]) == []
    proof = build_fraud_proof(b"\x09" * 32, a, b, c, 70, 131)
    assert fraud_proof_error(job, proof) is None
    assert fraud_proof_error(job, build_fraud_proof(b"\x09" * 32, a, b, c, 70, 130)) == "not-fraud"
    other = c.copy()
    other[0, 0] += 1  # a C the worker did not claim
    assert fraud_proof_error(job, build_fraud_proof(b"\x09" * 32, a, b, other, 70, 131)) == "bad-fraud-claim"
