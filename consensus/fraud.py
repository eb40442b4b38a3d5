"""Building a FRAUD_PROOF against a claimed result (PROTOCOL §3, §6): the inverse of
``consensus.state.fraud_proof_error``.

Given A, B and the worker's C, one wrong entry (i, j) is proved by row i of A,
column j of B and row i of C, each with its single-leaf audit path under H_A, H_B
and H_C.
"""
from __future__ import annotations

import numpy as np

from .hashing import audit_path
from .tx import FraudProof
from .work import commit_result, int8_product, leaf_hashes


def wrong_entries(a: np.ndarray, b: np.ndarray, c: np.ndarray, rows: list[int] | None = None) -> list[tuple[int, int]]:
    """Every (i, j) with ``C[i, j] ≠ (A·B)[i, j]`` among ``rows`` (all rows if None), exactly."""
    rows = list(range(c.shape[0])) if rows is None else list(rows)
    exact = int8_product(np.asarray(a, np.int8)[rows], np.asarray(b, np.int8))
    return [(rows[at], int(j)) for at, j in zip(*np.nonzero(exact != c[rows]))]


def build_fraud_proof(job_id: bytes, a: np.ndarray, b: np.ndarray, c: np.ndarray, i: int, j: int) -> FraudProof:
    """The FRAUD_PROOF payload for entry (i, j) of the claimed C (m×n int32)."""
    a8, b8, c32 = np.asarray(a, dtype=np.int8), np.asarray(b, dtype=np.int8), np.asarray(c, dtype="<i4")
    return FraudProof(job_id, commit_result(c32), i, j,
                      a8[i].tobytes(), tuple(audit_path(leaf_hashes(a8), i)),
                      b8[:, j].tobytes(), tuple(audit_path(leaf_hashes(b8.T), j)),
                      c32[i].tobytes(), tuple(audit_path(leaf_hashes(c32), i)))
