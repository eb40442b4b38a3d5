"""One mining API over the C kernel and the numpy reference (PROTOCOL §4).

``active_path`` is the fastest path this machine supports, or the one named by the
environment variable ``POUW_KERNEL_PATH`` (``amx``, ``avx512``, ``avxvnni``, ``avx2``, ``portable``,
``numpy``); every call also takes ``path=`` to force one.  All paths give identical results.
``amx`` (Intel AMX tiles) is offered only where the CPU has AMX-INT8 and the OS grants the tile
state (on Linux, a once-per-process arch_prctl request the extension makes).

The matrix commitments (§2) have fast versions here too: ``leaf_hashes`` and ``merkle_roots``
(``line_hasher``), and with them ``commit_a``, ``commit_b``, ``commit_result``, hash a matrix's
lines and Merkle nodes in C (``leaf_paths()``: ``avx512``, ``shani``, ``avx2``, then
``hashlib``, then ``portable``), with results identical to ``consensus.work``'s.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np

from consensus import work
from consensus.block import Header
from consensus.hashing import roots_of_groups
from consensus.work import TILE, TileResult, noisy_operands, recover_product, seeds, win_threshold

from . import reference
from .reference import WorkResult

try:
    from . import _kernel
except ImportError as exc:  # the build_ext step is allowed to fail
    _kernel = None
    warnings.warn(f"miner._kernel is not available ({exc}); mining uses the slow numpy reference",
                  RuntimeWarning, stacklevel=2)

ENTRY_LIMIT = 64
MAX_THREADS: int | None = _kernel.MAX_THREADS if _kernel else None  # the C kernel's limit; numpy has none
PANEL_ROWS: int | None = _kernel.PANEL_ROWS if _kernel else None  # the rows a C path finishes once stopped


def available_paths() -> list[str]:
    """Supported paths, fastest first; ``numpy`` is always last."""
    return (_kernel.paths() if _kernel else []) + ["numpy"]


def _default_path() -> str:
    forced = os.environ.get("POUW_KERNEL_PATH")
    if forced and forced not in available_paths():
        warnings.warn(f"POUW_KERNEL_PATH={forced} is not available here; using {available_paths()[0]}",
                      RuntimeWarning, stacklevel=2)
        return available_paths()[0]
    return forced or available_paths()[0]


active_path: str = _default_path()


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def peak(path: str | None = None) -> tuple[float, float]:
    """(int8 MACs per cycle of one core, clock in GHz) on ``path``, measured by a short throughput
    loop of its multiply instruction; (0, 0) where there is nothing to measure (portable, numpy)."""
    path = path or active_path
    return (0.0, 0.0) if path == "numpy" else _kernel.peak(path=path)


def peak_together(threads: int, path: str | None = None) -> float:
    """int8 MACs per second of ``threads`` threads running ``peak``'s loop at once: the limit for
    that many threads, which is below threads × one core's where they share a core's vector units
    (SMT siblings, or virtual CPUs that are); 0.0 where there is nothing to measure."""
    path = path or active_path
    return 0.0 if path == "numpy" else _kernel.peak_together(threads, path=path)


def _int8(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.int8)


def _b_operand(b: np.ndarray) -> tuple[np.ndarray, bool]:
    """B for the C kernel: its rows (C order), or its columns where B is column-major (as the
    node stores and serves it), which the kernel packs as they lie instead of B being copied
    into rows first."""
    if b.flags.f_contiguous and not b.flags.c_contiguous:
        return _int8(b.T), True
    return _int8(b), False


def _product(m: int, n: int) -> np.ndarray:
    """An uninitialised m×n int32 array starting on a 64-byte boundary (the kernel then writes
    whole cache lines with streaming stores instead of reading each line in first)."""
    raw = np.empty(m * n + 16, np.int32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + m * n].reshape(m, n)


def run(header: Header, a: np.ndarray, b: np.ndarray, *, want_product: bool = False,
        threads: int | None = None, path: str | None = None, recover: bool = False, first_row: int = 0,
        product: np.ndarray | None = None, stop: np.ndarray | None = None) -> WorkResult:
    """Every tile's lanes, digest and win flag (row-major tile order), and C' = A'·B' if asked
    (A·B itself with ``recover``: the kernel removes the noise's rank-2r part in C).

    ``header`` is a template: version … nonce and ``work`` (m, n, k, r, H_A, H_B, job_id)
    are used, the ticket is ignored.  The C paths reject entries outside [−64, 64] and r above 1024
    (every network's r_max).

    Only A's rows from ``first_row`` (a multiple of 32) on are computed; the product's rows go into
    ``product`` (an m×n int32 array from ``PartialProduct``) where one is given.  Once ``stop[0]``
    (one uint8) is set, by the caller or by the C paths at a winning tile, no new panel of 256
    rows is begun, and the result covers the rows finished (``first_row`` to a multiple of 256).
    """
    path = path or active_path
    w = header.work
    if a.shape != (w.m, w.k) or b.shape != (w.k, w.n):
        raise ValueError(f"A is {a.shape}, B is {b.shape}; the header says {w.m}x{w.k} · {w.k}x{w.n}")
    if first_row % TILE or not 0 <= first_row < w.m:
        raise ValueError(f"first_row {first_row} is not a tile-row of the {w.m} rows")
    if product is not None and (product.shape != (w.m, w.n) or product.dtype != np.int32
                                or not product.flags.c_contiguous):
        raise ValueError(f"product must be a C-contiguous {w.m}x{w.n} int32 array")
    want = want_product or recover
    if path == "numpy":
        return _numpy_rows(header, a, b, want, recover, first_row, product)
    s = seeds(header)
    rows = w.m - first_row
    tiles = (rows // TILE) * (w.n // TILE)
    threshold = win_threshold(header.target, w.k)
    out_rows = None if not want else _product(rows, w.n) if product is None else product[first_row:]
    out = WorkResult(np.empty((tiles, 16), np.uint32), np.empty((tiles, 32), np.uint8),
                     np.empty(tiles, np.bool_), out_rows, first_row)
    b_data, b_cols = _b_operand(b)
    done = _kernel.mine(_int8(a[first_row:]), b_data, s.s_a, s.s_b,
                        threshold.to_bytes(32, "big") if threshold < 1 << 256 else None,
                        out.lanes, out.digests, out.wins.view(np.uint8), out.product,
                        rows, w.n, w.k, w.r, path=path, threads=threads or default_threads(), recover=recover,
                        b_cols=b_cols, ta0=first_row // TILE, stop=stop)
    if done == rows:
        return out
    kept = done // TILE * (w.n // TILE)
    return WorkResult(out.lanes[:kept], out.digests[:kept], out.wins[:kept],
                      None if out.product is None else out.product[:done], first_row)


def _numpy_rows(header: Header, a: np.ndarray, b: np.ndarray, want_product: bool, recover: bool, first_row: int,
                product: np.ndarray | None) -> WorkResult:
    """``run`` on the numpy reference: the whole product is computed (the reference never stops),
    and the rows from ``first_row`` kept."""
    result = reference.work(header, a, b, want_product)
    c = result.product
    if recover:
        s = seeds(header)
        c = recover_product(a, noisy_operands(a, b, s, header.work.r)[1], c, s, header.work.r).astype(np.int32)
    if c is not None and product is not None:
        product[first_row:] = c[first_row:]
        c = product
    first_tile = first_row // TILE * (header.work.n // TILE)
    return WorkResult(result.lanes[first_tile:], result.digests[first_tile:], result.wins[first_tile:],
                      None if c is None else c[first_row:], first_row)


def _tiles(header: Header, result: WorkResult, indices: np.ndarray) -> list[TileResult]:
    nb, ta0 = header.work.n // TILE, result.first_row // TILE
    return [TileResult(ta0 + int(t) // nb, int(t) % nb, result.lanes[t].tolist(), result.digests[t].tobytes(),
                       bool(result.wins[t])) for t in indices]


def all_tiles(header: Header, a: np.ndarray, b: np.ndarray, threads: int | None = None,
              path: str | None = None) -> list[TileResult]:
    """Like ``consensus.work.all_tiles`` but from the un-noised A, B and fast."""
    result = run(header, a, b, threads=threads, path=path)
    return _tiles(header, result, np.arange(len(result.wins)))


def mine(header: Header, a: np.ndarray, b: np.ndarray, threads: int | None = None,
         path: str | None = None) -> list[TileResult]:
    """The winning tiles of this template, in row-major tile order."""
    result = run(header, a, b, threads=threads, path=path)
    return _tiles(header, result, np.flatnonzero(result.wins))


def matmul(a: np.ndarray, b: np.ndarray, header: Header, threads: int | None = None,
           path: str | None = None) -> tuple[np.ndarray, list[TileResult]]:
    """The 2-for-1 call: exact A·B (int32) and the winning tiles of ``header`` for A, B.
    Entries must lie in [−64, 64] (the C paths check them while packing)."""
    partial = PartialProduct.of_shape(header.work.m, header.work.n)
    return partial.product, matmul_rows(a, b, header, partial, threads=threads, path=path)


@dataclass
class PartialProduct:
    """A·B computed over one or more headers: rows 0 … ``rows_done`` − 1 of ``product`` are done.
    Each header's noise is its own and removed again (§4), so rows recovered under different
    headers make one exact product, and each header's tickets cover the rows it computed."""

    product: np.ndarray
    rows_done: int = 0

    @classmethod
    def of_shape(cls, m: int, n: int) -> PartialProduct:
        return cls(_product(m, n))

    @property
    def done(self) -> bool:
        return self.rows_done == self.product.shape[0]


def matmul_rows(a: np.ndarray, b: np.ndarray, header: Header, partial: PartialProduct,
                stop: np.ndarray | None = None, threads: int | None = None,
                path: str | None = None) -> list[TileResult]:
    """Go on with A·B from ``partial.rows_done`` under ``header``; the winning tiles of the rows
    computed.  With ``stop`` (one uint8, cleared by the caller) the C paths stop at the next
    256-row panel once it is set — by the caller (say, on a new tip) or by the kernel at a winning
    tile — so a miner submits the block and goes on with the rest under a fresh header: one
    product can then win more than one block.  Entries must lie in [−64, 64]."""
    if (path or active_path) == "numpy" and (min(a.min(), b.min()) < -ENTRY_LIMIT
                                             or max(a.max(), b.max()) > ENTRY_LIMIT):
        raise ValueError(f"entries must lie in [-{ENTRY_LIMIT}, {ENTRY_LIMIT}]")
    if partial.done:
        raise ValueError("this product is complete")
    result = run(header, a, b, threads=threads, path=path, recover=True, first_row=partial.rows_done,
                 product=partial.product, stop=stop)
    partial.rows_done += result.product.shape[0]
    return _tiles(header, result, np.flatnonzero(result.wins))


def gemm(a: np.ndarray, b: np.ndarray, block: int = 64, threads: int | None = None,
         path: str | None = None) -> np.ndarray:
    """Plain A·B (int8 in [−127, 127] → int32) on the same kernel without noise, fold or tickets;
    k is blocked by ``block``.  The numpy path is ``consensus.work.int8_product``."""
    path = path or active_path
    if path == "numpy":
        return work.int8_product(_int8(a), _int8(b)).astype(np.int32)
    (m, k), n = a.shape, b.shape[1]
    c = _product(m, n)
    b_data, b_cols = _b_operand(b)
    _kernel.gemm(_int8(a), b_data, c, m, n, k, block, path=path, threads=threads or default_threads(), b_cols=b_cols)
    return c


def leaf_paths() -> list[str]:
    """Leaf hash paths this machine supports, fastest first: the SIMD ones, then ``hashlib``
    (``consensus``'s own, OpenSSL one row or node at a time), then ``portable`` C, which OpenSSL's
    assembly beats 10× (``scripts/bench_hash.py``), so it is the default nowhere."""
    paths = _kernel.leaf_paths() if _kernel else []
    return [p for p in paths if p != "portable"] + ["hashlib"] + [p for p in paths if p == "portable"]


def _leaf_path(path: str | None) -> str:
    """``path``, or the fastest leaf hash path; ValueError for one this machine lacks."""
    path = path or leaf_paths()[0]
    if path not in leaf_paths():
        raise ValueError(f"leaf hash path {path} is not available here (have {', '.join(leaf_paths())})")
    return path


def leaf_hashes(lines: np.ndarray, threads: int | None = None, path: str | None = None) -> list[bytes]:
    """``consensus.work.leaf_hashes`` in C (§2): SHA-256(0x00 || row) of every row of the 2-D
    ``lines``, 16 rows at once on ``avx512`` (one per 32-bit lane), 8 on ``avx2``, one at a time on
    ``shani`` and ``portable``; rows split over ``threads`` (default: all of this process's CPUs),
    or hashed by the caller alone while a mining call holds the kernel's threads.  A non-contiguous
    ``lines`` is copied first, as there."""
    path = _leaf_path(path)
    if path == "hashlib":
        return work.leaf_hashes(lines)
    if lines.ndim != 2:
        raise ValueError(f"leaf lines must be a 2-D array, not {lines.ndim}-D")
    data = np.ascontiguousarray(lines)
    return _kernel.leaf_hashes(data, data.shape[0], data.shape[1] * data.itemsize, path=path,
                               threads=threads or default_threads())


def merkle_roots(hashes: Sequence[bytes], group: int, path: str | None = None) -> list[bytes]:
    """``consensus.hashing.roots_of_groups`` in C (§2): the RFC 6962 root of every run of ``group``
    hashes, each level's nodes hashed as ``leaf_hashes`` hashes lines, 16 at once on ``avx512``,
    with the GIL released; ``hashlib`` is consensus's own."""
    path = _leaf_path(path)
    if path == "hashlib" or not hashes:
        return roots_of_groups(hashes, group)
    return _kernel.merkle_roots(b"".join(hashes), len(hashes), group, path=path)


def line_hasher(threads: int | None = None, path: str | None = None) -> work.LineHasher:
    """The commitments' hashing (``consensus.work.LineHasher``) by ``leaf_hashes`` and
    ``merkle_roots`` on ``path`` (default: the fastest)."""
    return work.LineHasher(partial(leaf_hashes, threads=threads, path=path), partial(merkle_roots, path=path))


def commit_a(a: np.ndarray, threads: int | None = None, path: str | None = None) -> bytes:
    """``consensus.work.commit_a`` (H_A) hashed by ``line_hasher``."""
    return work.commit_a(a, line_hasher(threads, path))


def commit_b(b: np.ndarray, threads: int | None = None, path: str | None = None) -> bytes:
    """``consensus.work.commit_b`` (H_B) hashed by ``line_hasher``: the columns of a column-major
    (Fortran-order) B where they lie, those of a row-major one after a transposing copy."""
    return work.commit_b(b, line_hasher(threads, path))


def commit_result(c: np.ndarray, threads: int | None = None, path: str | None = None) -> bytes:
    """``consensus.work.commit_result`` (H_C) hashed by ``line_hasher``."""
    return work.commit_result(c, line_hasher(threads, path))


def operand_roots(a: np.ndarray, b: np.ndarray, threads: int | None = None) -> work.OperandRoots:
    """``consensus.work.OperandRoots`` (A's and B's group roots: H_A, H_B and a proof's paths)
    hashed by ``line_hasher``."""
    return work.OperandRoots.of(a, b, line_hasher(threads))


def selftest() -> bool:
    """Every available path, mining and leaf hashing, against ``consensus.work`` on a small random
    template."""
    from consensus.block import Ticket, WorkSpec

    rng = np.random.default_rng(2024)
    m, n, k, r = 64, 96, 128, 16
    a = rng.integers(-64, 65, (m, k), dtype=np.int8)
    b = rng.integers(-64, 65, (k, n), dtype=np.int8)
    spec = WorkSpec(m, n, k, r, work.commit_a(a), work.commit_b(b))
    header = Header(2, 4, 1, bytes(32), 0, (1 << 256) // (1024 * k * 2), bytes(32), bytes(32), bytes(20), 1, spec,
                    Ticket(0, 0, bytes(32)))
    s = seeds(header)
    want = work.all_tiles(*noisy_operands(a, b, s, r), s, header)
    product = a.astype(np.int64) @ b.astype(np.int64)
    for path in available_paths():
        ab, winners = matmul(a, b, header, threads=2, path=path)
        if all_tiles(header, a, b, threads=2, path=path) != want or not np.array_equal(ab, product) \
                or winners != [t for t in want if t.wins]:
            return False
    c = rng.integers(-2**31, 2**31, (33, 17), dtype=np.int32)
    return all(commit_a(a, 2, path) == work.commit_a(a) and commit_b(b, 2, path) == work.commit_b(b)
               and commit_result(c, 2, path) == work.commit_result(c) for path in leaf_paths())
