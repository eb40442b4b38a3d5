"""Building a FRAUD_PROOF against a claimed result (PROTOCOL §3, §6): the inverse of
``consensus.state.fraud_proof_error``.

Given A, B and the worker's C, one wrong entry (i, j) is proved by row i of A,
column j of B and row i of C, each with its single-leaf audit path under H_A, H_B
and H_C.
"""
from __future__ import annotations

import numpy as np

from .hashing import audit_path, leaf_hash
from .tx import FraudProof
from .work import commit_result, result_rows


def _line_leaves(lines: np.ndarray) -> list[bytes]:
    data = np.ascontiguousarray(lines).tobytes()
    width = len(data) // lines.shape[0]
    return [leaf_hash(data[i * width:(i + 1) * width]) for i in range(lines.shape[0])]


def wrong_entries(a: np.ndarray, b: np.ndarray, c: np.ndarray, rows: list[int] | None = None) -> list[tuple[int, int]]:
    """Every (i, j) with ``C[i, j] ≠ (A·B)[i, j]`` among ``rows`` (all rows if None), exactly."""
    out = []
    for i in range(c.shape[0]) if rows is None else rows:
        exact = a[i].astype(np.int64) @ b.astype(np.int64)
        out.extend((i, int(j)) for j in np.nonzero(exact != c[i].astype(np.int64))[0])
    return out


def build_fraud_proof(job_id: bytes, a: np.ndarray, b: np.ndarray, c: np.ndarray, i: int, j: int) -> FraudProof:
    """The FRAUD_PROOF payload for entry (i, j) of the claimed C (m×n int32)."""
    rows_c = result_rows(c)
    return FraudProof(job_id, commit_result(c), i, j,
                      np.ascontiguousarray(a[i], dtype=np.int8).tobytes(),
                      tuple(audit_path(_line_leaves(np.asarray(a, dtype=np.int8)), i)),
                      np.ascontiguousarray(b[:, j], dtype=np.int8).tobytes(),
                      tuple(audit_path(_line_leaves(np.ascontiguousarray(np.asarray(b, dtype=np.int8).T)), j)),
                      rows_c[i], tuple(audit_path([leaf_hash(r) for r in rows_c], i)))
