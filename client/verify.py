"""Checking a delivered product before accepting it (PROTOCOL §6): Freivalds' check
``C·X = A·(B·X)`` modulo the prime p = 2^61 − 1, all rounds at once (X holds one uniform
column per round), and whether C is the one a claim commits to (H_C).

A wrong C (C ≠ A·B) passes one round with probability at most 1/p: a nonzero row
of C − A·B (entries |d| < 2^32 < p, so nonzero mod p) is orthogonal to a uniform x
mod p with probability 1/p. ``rounds`` rounds: at most p^−rounds.

The products are exact: X is split into limbs, each limb column summed exactly, and the limbs
recombined modulo p. The C extension ``client._freivalds`` does all three in one call (the
entries widened in registers, rows split over ``THREADS`` threads, each call freeing the
interpreter):
- int8 A and B on AVX-512 or AVX2: balanced 16-bit digits (four a value), multiplied 32 or 16
  at a time by vpmaddwd into int32 lanes that are widened to int64 before they could overflow;
- whole rows (the AVX-512 path for an int32 C, and numpy's float64 GEMM on blocks of rows converted a
  cache-sized block at a time): float64 sums with ``bound · length · (2^w − 1) < 2^53``;
- the AVX2 float64 path (an int32 C) sums in segments of at most ``flush`` terms a lane, each
  segment below 2^51, and adds the segments in int64, so its limbs are wider: 3 limbs of 21
  bits for a C with k ≤ 8192, where whole rows of 4096 take 4 or 5.
"""
from __future__ import annotations

import os
import secrets
import threading
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
_SEGMENT = 1 << 51  # a segment's sum v stays exact, and linear in its bits, as 1.5·2^52 + v
_INT64 = 1 << 63
_BLOCK_ENTRIES = 1 << 16  # rows converted to float64 per GEMM call: 512 KiB, stays in cache
_INT32_MAX = (1 << 31) - 1
_DIGIT_BITS = 16  # the digit path's limbs: balanced 16-bit digits, so an int8 entry times two of them fits int32
THREADS = max(1, min(4, os.cpu_count() or 1))  # the C products' threads: the check is bound by memory
_MIN_ROWS_A_THREAD = 64
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


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


def segment_plan(bound: int, length: int) -> tuple[int, int]:
    """For sums in segments: the widest limb w (fewest limbs) with one term
    ``bound · (2^w − 1) < 2^51`` and a whole row below 2^63, and ``flush``, the most terms a
    segment may add up with its sum below 2^51."""
    for count in range(1, 62):
        width = -(-61 // count)
        term = max(1, bound * ((1 << width) - 1))
        if term < _SEGMENT and term * length < _INT64:
            return width, (_SEGMENT - 1) // term
    raise ValueError(f"entries up to {bound} over {length} terms cannot be summed exactly in segments")


def mat_mod(m: np.ndarray, xs: np.ndarray, bound: int, path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``m · xs mod p`` (u64) exactly, for an integer matrix m (r×c) with |entries| ≤ ``bound``
    and xs (c×R) of values below p (u64); and the rows of m with an entry beyond ``bound``
    (checked while summing: their values are meaningless). ``path``: one of
    ``products_paths(m.dtype)`` or "numpy"; by default the fastest that takes m."""
    path = path or _fast_path(m, bound)
    if path == "numpy":
        return _mat_mod_numpy(m, xs, bound)
    kind = _c_paths()[path]
    if kind == "digits":
        width, flush = _DIGIT_BITS, 0
    else:
        width, flush = segment_plan(bound, m.shape[1]) if kind == "segments" else (limb_width(bound, m.shape[1]), 0)
    return _products_c(m, xs, bound, path, width, flush)


def products_paths(dtype: np.dtype | type = np.int32) -> list[str]:
    """The C paths of the products this CPU runs for a matrix of ``dtype``, fastest first
    (none: numpy's GEMM)."""
    takes_int8 = np.dtype(dtype) == np.int8
    return [path for path, kind in _c_paths().items() if kind != "digits" or takes_int8]


def _c_paths() -> dict[str, str]:
    """The C paths, each with its kind: "whole" (float64 sums of whole rows), "segments"
    (float64 sums in segments) or "digits" (int8 entries against 16-bit digits)."""
    return _freivalds.paths() if _freivalds is not None else {}


def _fast_path(m: np.ndarray, bound: int) -> str:
    paths = products_paths(m.dtype)
    if not paths or m.dtype not in (np.int8, np.dtype("<i4")) or bound > _INT32_MAX:
        return "numpy"
    return paths[0]


def _threads() -> ThreadPoolExecutor:
    """The threads the C products share, started once (checks settled at once queue on them)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="freivalds")
        return _pool


def _products_c(m: np.ndarray, xs: np.ndarray, bound: int, path: str, width: int,
                flush: int) -> tuple[np.ndarray, np.ndarray]:
    """``m · xs mod p`` and the wild rows, by the C extension over ``THREADS`` row ranges: the
    limbs are split, summed and recombined there, and the entries widened in registers, so m is
    read once and never copied (unless it is not in C order)."""
    rows, cols = m.shape
    m = np.ascontiguousarray(m)
    xs = np.ascontiguousarray(xs, np.uint64)
    rounds = xs.shape[1]
    out = np.empty((rows, rounds), np.uint64)
    wild = np.zeros(rows, np.uint8)

    def run(start: int, stop: int) -> None:
        _freivalds.products(m[start:stop], stop - start, cols, m.itemsize, xs, rounds, width, flush, bound,
                            out[start:stop], wild[start:stop], path)

    parts = max(1, min(THREADS, rows // _MIN_ROWS_A_THREAD))
    edges = [rows * i // parts for i in range(parts + 1)]
    try:
        ranges = [_threads().submit(run, start, stop) for start, stop in zip(edges, edges[1:])] if parts > 1 else []
    except RuntimeError:  # the interpreter is exiting (its pools take no more work): sum in this thread
        ranges = []
    if not ranges:
        run(0, rows)
    for done in ranges:
        done.result()
    return out, np.nonzero(wild)[0]


def _mat_mod_numpy(m: np.ndarray, xs: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``mat_mod`` by numpy's float64 GEMM over limbs of whole-row width, recombined modulo p."""
    width = limb_width(bound, m.shape[1])
    count = -(-61 // width)
    mask = np.uint64((1 << width) - 1)
    limbs = np.concatenate([(xs >> np.uint64(width * i)) & mask for i in range(count)], axis=1).astype(np.float64)
    out, wild = _products_numpy(m, limbs, bound)
    parts = (out % P).astype(np.uint64)
    total = np.zeros((m.shape[0], xs.shape[1]), np.uint64)
    for i in range(count):
        total = _reduce(total + _shift_mod(parts[:, i * xs.shape[1]:(i + 1) * xs.shape[1]], width * i))
    return total, wild


def _products_numpy(m: np.ndarray, limbs: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``m · limbs`` as float64 GEMMs on blocks of m's rows converted to float64 (a block
    stays in cache), as int64, and the wild rows."""
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
    with np.errstate(invalid="ignore"):  # a wild row's sum may not fit: its value is dropped anyway
        return out.astype(np.int64), np.concatenate(wild) if wild else np.zeros(0, np.int64)


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
    abx, _ = mat_mod(a, mat_mod(b, xs, ENTRY_LIMIT, path)[0], ENTRY_LIMIT, path)
    cx, wild = mat_mod(c, xs, ENTRY_LIMIT * ENTRY_LIMIT * k, path)
    bad = set(np.nonzero((cx != abx).any(axis=1))[0].tolist()) | set(wild.tolist())
    return sorted(bad)


def claim_matches(worker: bytes, claim: bytes, c: np.ndarray) -> bool:
    """Is C the product the worker committed to (``claim = tagged(worker || H_C)``)?"""
    return claim_of(worker, commit_result(c)) == claim
