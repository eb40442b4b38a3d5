"""Checking a delivered product before accepting it (PROTOCOL §6): Freivalds' check
``C·X = A·(B·X)`` modulo the prime p = 2^61 − 1, all rounds at once (X holds one uniform
column per round), and whether C is the one a claim commits to (H_C).

A wrong C (C ≠ A·B) passes one round with probability at most 1/p: a nonzero row
of C − A·B (entries |d| < 2^32 < p, so nonzero mod p) is orthogonal to a uniform x
mod p with probability 1/p. ``rounds`` rounds: at most p^−rounds.

The products are exact float64 sums: X is split into w-bit limbs so that
``bound · length · (2^w − 1) < 2^53`` (every partial sum an integer float64 holds
exactly, in whatever order it is added up), all rounds × limbs form one skinny matrix so
each operand is read once — by the C extension ``client._freivalds``, which widens the
entries to float64 in registers, or else by float64 BLAS on blocks of rows converted a
cache-sized block at a time — and the limbs are recombined modulo p in integers. C·X
runs on a thread of its own beside A·(B·X).
"""
from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from consensus.tx import claim_of
from consensus.work import commit_result

try:
    from client import _freivalds
except ImportError:  # built optionally (setup.py): numpy's float64 GEMM sums the same limbs
    _freivalds = None

P = (1 << 61) - 1
ROUNDS = 2
ENTRY_LIMIT = 64  # |entries| of A and B (§1)
_EXACT = 1 << 53  # float64 holds every integer of magnitude up to this exactly
_BLOCK_ENTRIES = 1 << 16  # rows converted to float64 per GEMM call: 512 KiB, stays in cache
_C_LIMBS = 4  # the C extension sums limb columns four at a time
_INT32_MAX = (1 << 31) - 1


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


def mat_mod(m: np.ndarray, xs: np.ndarray, bound: int, path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``m · xs mod p`` (u64) exactly, for an integer matrix m (r×c) with |entries| ≤ ``bound``
    and xs (c×R) of values below p (u64); and the rows of m with an entry beyond ``bound``
    (checked while summing: their values are meaningless). ``path``: one of
    ``products_paths()`` or "numpy"; by default the fastest that takes m."""
    rows, cols = m.shape
    width = limb_width(bound, cols)
    count = -(-61 // width)
    mask = np.uint64((1 << width) - 1)
    limbs = np.concatenate([(xs >> np.uint64(width * i)) & mask for i in range(count)], axis=1).astype(np.float64)
    path = path or _fast_path(m, bound)
    out, wild = _products_numpy(m, limbs, bound) if path == "numpy" else _products_c(m, limbs, bound, path)
    with np.errstate(invalid="ignore"):  # a wild row's sum may not fit: its value is dropped anyway
        parts = (out.astype(np.int64) % P).astype(np.uint64)
    total = np.zeros((rows, xs.shape[1]), np.uint64)
    for i in range(count):
        total = _reduce(total + _shift_mod(parts[:, i * xs.shape[1]:(i + 1) * xs.shape[1]], width * i))
    return total, wild


def products_paths() -> list[str]:
    """The C paths of the limb products this CPU runs, fastest first (none: numpy's GEMM)."""
    return _freivalds.paths() if _freivalds is not None else []


def _fast_path(m: np.ndarray, bound: int) -> str:
    paths = products_paths()
    if not paths or m.dtype not in (np.int8, np.dtype("<i4")) or bound > _INT32_MAX:
        return "numpy"
    return paths[0]


def _products_c(m: np.ndarray, limbs: np.ndarray, bound: int, path: str) -> tuple[np.ndarray, np.ndarray]:
    """``m · limbs`` in float64 and the wild rows, by the C extension: the entries are widened
    in registers, so m is read once and never copied (unless it is not in C order)."""
    rows, cols = m.shape
    m = np.ascontiguousarray(m)
    columns = limbs.shape[1]
    padded = -(-columns // _C_LIMBS) * _C_LIMBS
    xt = np.zeros((padded, cols), np.float64)
    xt[:columns] = limbs.T
    out = np.empty((rows, padded), np.float64)
    wild = np.zeros(rows, np.uint8)
    _freivalds.products(m, rows, cols, m.itemsize, xt, padded, bound, out, wild, path)
    return out[:, :columns], np.nonzero(wild)[0]


def _products_numpy(m: np.ndarray, limbs: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``m · limbs`` as float64 GEMMs on blocks of m's rows converted to float64 (a block
    stays in cache), and the wild rows."""
    rows, cols = m.shape
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
    return out, np.concatenate(wild) if wild else np.zeros(0, np.int64)


def random_vectors(n: int, rounds: int) -> np.ndarray:
    """An n×rounds matrix of values uniform in [0, p) from the OS's randomness."""
    rng = np.random.default_rng(secrets.randbits(128))
    return rng.integers(0, P, size=(n, rounds), dtype=np.uint64)


def mismatched_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray, rounds: int = ROUNDS,
                    path: str | None = None) -> list[int]:
    """Rows i where ``(C·x)_i ≠ (A·(B·x))_i`` in some round: empty means C = A·B except with
    probability at most p^−rounds; every listed row of C is certainly wrong. A, B have
    entries in [−64, 64]; a row of C beyond ``64² · k`` is listed without the check.
    ``path``: as for ``mat_mod``."""
    k, n = b.shape
    xs = random_vectors(n, rounds)
    with ThreadPoolExecutor(1, thread_name_prefix="freivalds") as pool:  # C·X beside A·(B·X): the sums free the GIL
        product = pool.submit(mat_mod, c, xs, ENTRY_LIMIT * ENTRY_LIMIT * k, path)
        abx, _ = mat_mod(a, mat_mod(b, xs, ENTRY_LIMIT, path)[0], ENTRY_LIMIT, path)
        cx, wild = product.result()
    bad = set(np.nonzero((cx != abx).any(axis=1))[0].tolist()) | set(wild.tolist())
    return sorted(bad)


def claim_matches(worker: bytes, claim: bytes, c: np.ndarray) -> bool:
    """Is C the product the worker committed to (``claim = tagged(worker || H_C)``)?"""
    return claim_of(worker, commit_result(c)) == claim
