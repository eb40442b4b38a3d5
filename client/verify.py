"""Checking a delivered product before accepting it (PROTOCOL §6): H_C against the claim,
then Freivalds' check ``C·X = A·(B·X)`` modulo the prime p = 2^61 − 1, all rounds at once
(X holds one uniform column per round).

A wrong C (C ≠ A·B) passes one round with probability at most 1/p: a nonzero row
of C − A·B (entries |d| < 2^32 < p, so nonzero mod p) is orthogonal to a uniform x
mod p with probability 1/p. ``rounds`` rounds: at most p^−rounds.

The products are exact float64 BLAS products: X is split into w-bit limbs so that
``bound · length · (2^w − 1) < 2^53`` (every partial sum an integer float64 holds
exactly, whatever order BLAS adds in), all rounds × limbs form one skinny matrix so
each operand is read once, converted to float64 a cache-sized block of rows at a time,
and the limbs are recombined modulo p in integers.
"""
from __future__ import annotations

import secrets

import numpy as np

from consensus.tx import claim_of
from consensus.work import commit_result

P = (1 << 61) - 1
ROUNDS = 2
ENTRY_LIMIT = 64  # |entries| of A and B (§1)
_EXACT = 1 << 53  # float64 holds every integer of magnitude up to this exactly
_BLOCK_ENTRIES = 1 << 16  # rows converted to float64 per GEMM call: 512 KiB, stays in cache


def _reduce(a: np.ndarray) -> np.ndarray:
    """a mod p for a < 2^62 (u64)."""
    a = (a & np.uint64(P)) + (a >> np.uint64(61))
    return np.where(a >= np.uint64(P), a - np.uint64(P), a)


def _shift_mod(a: np.ndarray, s: int) -> np.ndarray:
    """``a · 2^s mod p`` for a < p (u64): a rotation of 61 bits, p being a Mersenne prime."""
    s %= 61
    if s == 0:
        return a
    lo = (a & np.uint64((1 << (61 - s)) - 1)) << np.uint64(s)
    return _reduce(lo + (a >> np.uint64(61 - s)))


def limb_width(bound: int, length: int) -> int:
    """The widest limb w with ``bound · length · (2^w − 1) < 2^53``: a dot product of ``length``
    entries |e| ≤ bound with w-bit limbs has every partial sum exact in float64."""
    w = ((_EXACT - 1) // (bound * length) + 1).bit_length() - 1
    if w < 1:
        raise ValueError(f"entries up to {bound} over {length} terms cannot be summed exactly in float64")
    return min(w, 61)


def mat_mod(m: np.ndarray, xs: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``m · xs mod p`` (u64) exactly, for an integer matrix m (r×c) with |entries| ≤ ``bound``
    and xs (c×R) of values below p (u64); and the rows of m with an entry beyond ``bound``
    (checked while converting: their values are meaningless)."""
    rows, cols = m.shape
    width = limb_width(bound, cols)
    count = -(-61 // width)
    mask = np.uint64((1 << width) - 1)
    limbs = np.concatenate([(xs >> np.uint64(width * i)) & mask for i in range(count)], axis=1).astype(np.float64)
    out = np.empty((rows, limbs.shape[1]), np.float64)
    step = max(1, _BLOCK_ENTRIES // max(cols, 1))
    block = np.empty((min(step, rows), cols), np.float64)
    wild = []
    for start in range(0, rows, step):
        part = block[:min(step, rows - start)]
        np.copyto(part, m[start:start + step], casting="unsafe")
        if part.max(initial=0) > bound or part.min(initial=0) < -bound:
            wild.append(start + np.nonzero(np.abs(part).max(axis=1) > bound)[0])
        np.matmul(part, limbs, out=out[start:start + step])
    with np.errstate(invalid="ignore"):  # a wild row's sum may not fit: its value is dropped anyway
        parts = (out.astype(np.int64) % P).astype(np.uint64)
    total = np.zeros((rows, xs.shape[1]), np.uint64)
    for i in range(count):
        total = _reduce(total + _shift_mod(parts[:, i * xs.shape[1]:(i + 1) * xs.shape[1]], width * i))
    return total, np.concatenate(wild) if wild else np.zeros(0, np.int64)


def random_vectors(n: int, rounds: int) -> np.ndarray:
    """An n×rounds matrix of values uniform in [0, p) from the OS's randomness."""
    rng = np.random.default_rng(secrets.randbits(128))
    return rng.integers(0, P, size=(n, rounds), dtype=np.uint64)


def mismatched_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, rounds: int = ROUNDS) -> list[int]:
    """Rows i where ``(C·x)_i ≠ (A·(B·x))_i`` in some round: empty means C = A·B except with
    probability at most p^−rounds; every listed row of C is certainly wrong. A, B have
    entries in [−64, 64]; a row of C beyond ``64² · k`` is listed without the check."""
    k, n = b.shape
    xs = random_vectors(n, rounds)
    cx, wild = mat_mod(c, xs, ENTRY_LIMIT * ENTRY_LIMIT * k)
    abx, _ = mat_mod(a, mat_mod(b, xs, ENTRY_LIMIT)[0], ENTRY_LIMIT)
    bad = set(np.nonzero((cx != abx).any(axis=1))[0].tolist()) | set(wild.tolist())
    return sorted(bad)


def claim_matches(worker: bytes, claim: bytes, c: np.ndarray) -> bool:
    """Is C the product the worker committed to (``claim = tagged(worker || H_C)``)?"""
    return claim_of(worker, commit_result(c)) == claim
