"""The readable numpy miner (PROTOCOL §4), vectorised over all tiles at once.

Each rank-r chunk is one float32 GEMM over the whole m×n output — exact, because
|chunk sum| ≤ 127²·r < 2^24 — added into an int32 accumulator; the XOR of every
32×32 tile is then taken for all tiles in one reduction and folded into the
(tiles × 16) lane array.  Results are identical to ``consensus.work.all_tiles``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from consensus.block import Header
from consensus.work import FOLD_LANES, TILE, Seeds, noisy_operands, seeds, ticket_digest, win_threshold


@dataclass(frozen=True)
class WorkResult:
    """Every tile's lanes (T×16 u32), digests (T×32 u8) and wins (T bool), row-major tile
    order; ``product`` is C' = A'·B' (int32) when it was asked for.  They cover the rows from
    ``first_row`` on (the whole product unless a call computed only its later rows)."""

    lanes: np.ndarray
    digests: np.ndarray
    wins: np.ndarray
    product: np.ndarray | None
    first_row: int = 0


def chunk_xors(a_noisy: np.ndarray, b_noisy: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Per chunk ℓ and tile, the XOR of the tile's accumulator after chunk ℓ (chunks×T u32),
    and the final accumulator C' (m×n int32)."""
    m, k = a_noisy.shape
    n = b_noisy.shape[1]
    left = a_noisy.astype(np.float32)
    right = b_noisy.astype(np.float32)
    acc = np.zeros((m, n), dtype=np.int32)
    xors = np.empty((k // r, (m // TILE) * (n // TILE)), dtype=np.uint32)
    for ell in range(k // r):
        chunk = slice(ell * r, (ell + 1) * r)
        acc += (left[:, chunk] @ right[chunk]).astype(np.int32)
        tiles = acc.view(np.uint32).reshape(m // TILE, TILE, n // TILE, TILE)
        xors[ell] = np.bitwise_xor.reduce(tiles, axis=(1, 3)).ravel()
    return xors, acc


def fold_all(xors: np.ndarray) -> np.ndarray:
    """``M[ℓ mod 16] = rotl32(M[ℓ mod 16], 13) XOR x_ℓ`` for every tile at once (T×16 u32)."""
    lanes = np.zeros((xors.shape[1], FOLD_LANES), dtype=np.uint32)
    for ell, x in enumerate(xors):
        lane = lanes[:, ell % FOLD_LANES]
        lanes[:, ell % FOLD_LANES] = ((lane << np.uint32(13)) | (lane >> np.uint32(19))) ^ x
    return lanes


def tickets(lanes: np.ndarray, s: Seeds, header: Header) -> tuple[np.ndarray, np.ndarray]:
    """Digests (T×32 u8) and wins (T bool) of every tile."""
    nb = header.work.n // TILE
    raw = [ticket_digest(s.s_a, t // nb, t % nb, row) for t, row in enumerate(lanes.tolist())]
    threshold = win_threshold(header.target, header.work.k)
    wins = np.array([int.from_bytes(d, "big") < threshold for d in raw], dtype=bool)
    return np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(-1, 32), wins


def work(header: Header, a: np.ndarray, b: np.ndarray, want_product: bool = False) -> WorkResult:
    """All tiles of the template ``header`` (work dims and r filled in) for A (m×k), B (k×n)."""
    s = seeds(header)
    a_noisy, b_noisy = noisy_operands(a, b, s, header.work.r)
    xors, product = chunk_xors(a_noisy, b_noisy, header.work.r)
    lanes = fold_all(xors)
    digests, wins = tickets(lanes, s, header)
    return WorkResult(lanes, digests, wins, product if want_product else None)
