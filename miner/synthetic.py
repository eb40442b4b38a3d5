"""Deterministic synthetic int8 matrices for mining before the job market supplies real ones."""
from __future__ import annotations

import hashlib

import numpy as np


def synthetic_matrices(seed: bytes, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A (m×k) and B (k×n) with entries in [−64, 64], drawn from SHAKE-128(seed)."""
    raw = np.frombuffer(hashlib.shake_128(b"pouw/synthetic" + seed).digest(m * k + k * n), dtype=np.uint8)
    values = (raw.astype(np.int16) % 129 - 64).astype(np.int8)
    return values[:m * k].reshape(m, k), values[m * k:].reshape(k, n)
