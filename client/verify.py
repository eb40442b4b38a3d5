"""Checking a delivered product before accepting it (PROTOCOL §6): H_C against the claim,
then Freivalds' check ``C·x = A·(B·x)`` modulo the prime p = 2^61 − 1.

A wrong C (C ≠ A·B) passes one round with probability at most 1/p: a nonzero row
of C − A·B (entries |d| < 2^32 < p, so nonzero mod p) is orthogonal to a uniform x
mod p with probability 1/p. ``rounds`` rounds: at most p^−rounds.
"""
from __future__ import annotations

import secrets

import numpy as np

from consensus.tx import claim_of
from consensus.work import commit_result

P = (1 << 61) - 1
_LIMB = 21  # x is split into 21-bit limbs so that |entry| · limb · 2^10 < 2^63
_CHUNK = 1 << 10
ROUNDS = 2


def _shift_mod(a: np.ndarray, s: int) -> np.ndarray:
    """``a · 2^s mod p`` for a < p (u64): a rotation of 61 bits, p being a Mersenne prime."""
    s %= 61
    if s == 0:
        return a
    lo = (a & np.uint64((1 << (61 - s)) - 1)) << np.uint64(s)
    return _reduce(lo + (a >> np.uint64(61 - s)))


def _reduce(a: np.ndarray) -> np.ndarray:
    """a mod p for a < 2^62 (u64)."""
    a = (a & np.uint64(P)) + (a >> np.uint64(61))
    return np.where(a >= np.uint64(P), a - np.uint64(P), a)


def matvec_mod(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``m · x mod p`` for an integer matrix with |entries| < 2^31 and x < p (u64), exactly."""
    m64 = m.astype(np.int64, copy=False)
    total = np.zeros(m.shape[0], np.uint64)
    for limb_index in range(3):
        limb = ((x >> np.uint64(_LIMB * limb_index)) & np.uint64((1 << _LIMB) - 1)).astype(np.int64)
        acc = np.zeros(m.shape[0], np.uint64)
        for start in range(0, m.shape[1], _CHUNK):
            part = m64[:, start:start + _CHUNK] @ limb[start:start + _CHUNK]  # |part| < 2^62
            acc = _reduce(acc + (part % P).astype(np.uint64))
        total = _reduce(total + _shift_mod(acc, _LIMB * limb_index))
    return total


def random_vector(n: int) -> np.ndarray:
    """n values uniform in [0, p) from the OS's randomness."""
    rng = np.random.default_rng(secrets.randbits(128))
    return rng.integers(0, P, size=n, dtype=np.uint64)


def mismatched_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, rounds: int = ROUNDS) -> list[int]:
    """Rows i where ``(C·x)_i ≠ (A·(B·x))_i`` in some round: empty means C = A·B except with
    probability at most p^−rounds; every listed row of C is certainly wrong."""
    bad: set[int] = set()
    for _ in range(rounds):
        x = random_vector(c.shape[1])
        bad.update(np.nonzero(matvec_mod(c, x) != matvec_mod(a, matvec_mod(b, x)))[0].tolist())
    return sorted(bad)


def claim_matches(worker: bytes, claim: bytes, c: np.ndarray) -> bool:
    """Is C the product the worker committed to (``claim = tagged(worker || H_C)``)?"""
    return claim_of(worker, commit_result(c)) == claim
