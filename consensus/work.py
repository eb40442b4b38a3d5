"""The work function: seeds, noise, tile folds, tickets, proofs and A·B recovery (PROTOCOL §4).

This is the readable reference that the fast kernel is tested against.  All
arithmetic is exact: matrices are int8, partial sums are computed per rank-r
chunk in float64 (exact far beyond 127²·r) and accumulated in int64, then
wrapped to u32 for the fold.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import encoding as enc
from .block import Block, Header, Proof, Ticket
from .hashing import EMPTY_ROOT, audit_path, root_from_path, root_of_hashes, roots_of_groups, tagged
from .reasons import Reason

TILE = 32
FOLD_LANES = 16
ENTRY_MIN, ENTRY_MAX = -64, 64


def _u32(x: int) -> bytes:
    return struct.pack("<I", x)


# --- commitments (§2) -------------------------------------------------------

def leaf_hashes(lines: np.ndarray) -> list[bytes]:
    """RFC 6962 leaf hashes SHA-256(0x00 || row) of the rows of a 2-D array, each hashed straight
    from its buffer (no row copied; the leaf prefix hashed once)."""
    if lines.ndim != 2:
        raise ValueError(f"leaf lines must be a 2-D array, not {lines.ndim}-D")
    prefix = hashlib.sha256(b"\x00")
    hashes = []
    for row in np.ascontiguousarray(lines).view(np.uint8):  # each row's bytes, in place
        h = prefix.copy()
        h.update(row)
        hashes.append(h.digest())
    return hashes


@dataclass(frozen=True)
class LineHasher:
    """How a matrix's lines are hashed into its commitment (§2): ``leaves`` gives the leaf hashes
    of a 2-D array's rows, ``roots`` the MTH of each run of ``group`` hashes (the contract of
    ``hashing.roots_of_groups``).  The default is this module's reference, one hash at a time;
    ``miner.kernel.line_hasher`` hands the commitments below the C twins."""

    leaves: Callable[[np.ndarray], list[bytes]] = leaf_hashes
    roots: Callable[[Sequence[bytes], int], list[bytes]] = roots_of_groups

    def root(self, hashes: Sequence[bytes]) -> bytes:
        """MTH over all of ``hashes``."""
        return self.roots(hashes, len(hashes))[0] if len(hashes) else EMPTY_ROOT


REFERENCE_HASHER = LineHasher()


def group_roots(lines: np.ndarray, hasher: LineHasher = REFERENCE_HASHER) -> list[bytes]:
    """Roots G_a of each aligned group of 32 leaves; ``lines`` is (count, length) int8."""
    return hasher.roots(hasher.leaves(np.asarray(lines, dtype=np.int8)), TILE)


def matrix_commitment(count: int, length: int, root: bytes) -> bytes:
    """``tagged("pouw/matrix", u32le(count) || u32le(length) || MTH(lines))``."""
    return tagged("pouw/matrix", _u32(count) + _u32(length) + root)


def commit_a(a: np.ndarray, hasher: LineHasher = REFERENCE_HASHER) -> bytes:
    """H_A over the rows of A (m×k)."""
    m, k = a.shape
    return matrix_commitment(m, k, hasher.root(group_roots(a, hasher)))


def commit_b(b: np.ndarray, hasher: LineHasher = REFERENCE_HASHER) -> bytes:
    """H_B over the columns of B (k×n); a column-major B's columns are hashed where they lie."""
    k, n = b.shape
    return matrix_commitment(n, k, hasher.root(group_roots(b.T, hasher)))


@dataclass(frozen=True)
class OperandRoots:
    """The group roots of A's rows and of B's columns (§2, §5): H_A and H_B commit to them and a
    block's proof takes its paths from them, so a miner hashes its operands once for every
    template it mines on them and every block it finds."""

    a: tuple[bytes, ...]  # m/32 roots
    b: tuple[bytes, ...]  # n/32 roots
    m: int
    n: int
    k: int

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray, hasher: LineHasher = REFERENCE_HASHER) -> OperandRoots:
        (m, k), n = a.shape, b.shape[1]
        return cls(tuple(group_roots(a, hasher)), tuple(group_roots(b.T, hasher)), m, n, k)

    @property
    def h_a(self) -> bytes:
        return matrix_commitment(self.m, self.k, root_of_hashes(self.a))

    @property
    def h_b(self) -> bytes:
        return matrix_commitment(self.n, self.k, root_of_hashes(self.b))


def result_commitment(m: int, n: int, root: bytes) -> bytes:
    """``H_C = tagged("pouw/result", u32le(m) || u32le(n) || MTH(rows of C))``."""
    return tagged("pouw/result", _u32(m) + _u32(n) + root)


def commit_result(c: np.ndarray, hasher: LineHasher = REFERENCE_HASHER) -> bytes:
    """H_C over the rows of C (m×n int32)."""
    m, n = c.shape
    return result_commitment(m, n, hasher.root(hasher.leaves(np.asarray(c, dtype="<i4"))))


# --- seeds and noise (§4) ---------------------------------------------------

@dataclass(frozen=True)
class Seeds:
    sigma: bytes
    s_b: bytes
    s_a: bytes


def sigma(header: Header) -> bytes:
    """``σ = tagged("pouw/sigma", canonical([version … state_root, miner, nonce, m, n, k, r, job_id]))``."""
    w = header.work
    fields = [header.version, header.chain_id, header.height, header.prev_hash, header.timestamp,
              header.target.to_bytes(32, "big"), header.tx_root, header.state_root, header.miner, header.nonce,
              w.m, w.n, w.k, w.r, w.job_id]
    return tagged("pouw/sigma", enc.encode(fields))


def seeds(header: Header) -> Seeds:
    """σ, then ``s_B = tagged("pouw/sB", σ || H_B)``, ``s_A = tagged("pouw/sA", s_B || H_A)``."""
    sig = sigma(header)
    s_b = tagged("pouw/sB", sig + header.work.h_b)
    s_a = tagged("pouw/sA", s_b + header.work.h_a)
    return Seeds(sig, s_b, s_a)


def xof(seed: bytes, label: bytes, n: int) -> bytes:
    """``X(seed, label, n) = SHAKE128(seed || label)[0:n]``."""
    return hashlib.shake_128(seed + label).digest(n)


def _entries(raw: bytes) -> np.ndarray:
    return (np.frombuffer(raw, dtype=np.uint8) & 63).astype(np.int16) - 32


def el_tile_rows(s_a: bytes, a: int, r: int) -> np.ndarray:
    """Rows 32a…32a+31 of E_L (32×r)."""
    return _entries(xof(s_a, b"EL" + _u32(a), TILE * r)).reshape(TILE, r)


def fr_tile_cols(s_b: bytes, b: int, r: int) -> np.ndarray:
    """Columns 32b…32b+31 of F_R (r×32); the XOF is read column by column."""
    return _entries(xof(s_b, b"FR" + _u32(b), TILE * r)).reshape(TILE, r).T


def noise_el(s_a: bytes, m: int, r: int) -> np.ndarray:
    return np.concatenate([el_tile_rows(s_a, a, r) for a in range(m // TILE)])


def noise_fr(s_b: bytes, n: int, r: int) -> np.ndarray:
    return np.concatenate([fr_tile_cols(s_b, b, r) for b in range(n // TILE)], axis=1)


def pairs(seed: bytes, label: bytes, k: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``P(seed, label)``: index arrays p, q of length k with p ≠ q."""
    raw = np.frombuffer(xof(seed, label, 4 * k), dtype="<u2").reshape(k, 2).astype(np.int64)
    p = raw[:, 0] % r
    q = (p + 1 + raw[:, 1] % (r - 1)) % r
    return p, q


def er_pairs(s: Seeds, k: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    return pairs(s.s_a, b"ER", k, r)


def fl_pairs(s: Seeds, k: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    return pairs(s.s_b, b"FL", k, r)


def expand_left(el_rows: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """E = E_L·E_R restricted to the given rows of E_L: E[i, j] = E_L[i, p_j] − E_L[i, q_j]."""
    return el_rows[:, p] - el_rows[:, q]


def expand_right(fr_cols: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """F = F_L·F_R restricted to the given columns of F_R: F[j, c] = F_R[p_j, c] − F_R[q_j, c]."""
    return fr_cols[p, :] - fr_cols[q, :]


def noisy_operands(a: np.ndarray, b: np.ndarray, s: Seeds, r: int) -> tuple[np.ndarray, np.ndarray]:
    """A' = A + E_L·E_R and B' = B + F_L·F_R, both int8."""
    m, k = a.shape
    n = b.shape[1]
    ep, eq = er_pairs(s, k, r)
    fp, fq = fl_pairs(s, k, r)
    a2 = a.astype(np.int16) + expand_left(noise_el(s.s_a, m, r), ep, eq)
    b2 = b.astype(np.int16) + expand_right(noise_fr(s.s_b, n, r), fp, fq)
    return a2.astype(np.int8), b2.astype(np.int8)


# --- tile fold and tickets ---------------------------------------------------

def rotl32(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def chunk_xors(a_rows: np.ndarray, b_cols: np.ndarray, r: int) -> np.ndarray:
    """XOR of all 1024 accumulator entries after each rank-r chunk (u32 per chunk).

    ``a_rows`` is 32×k of A', ``b_cols`` is k×32 of B'.
    """
    k = a_rows.shape[1]
    chunks = k // r
    left = a_rows.astype(np.float64).reshape(TILE, chunks, r).transpose(1, 0, 2)
    right = b_cols.astype(np.float64).reshape(chunks, r, TILE)
    partial = np.matmul(left, right).astype(np.int64)  # exact: |entry| ≤ 127²·r
    acc = np.cumsum(partial, axis=0).astype(np.uint32)  # two's complement wrap = int32 bits
    return np.bitwise_xor.reduce(acc.reshape(chunks, TILE * TILE), axis=1)


def fold(xors: np.ndarray) -> list[int]:
    """``M[ℓ mod 16] = rotl32(M[ℓ mod 16], 13) XOR x_ℓ``."""
    m = [0] * FOLD_LANES
    for ell, x in enumerate(xors.tolist()):
        lane = ell % FOLD_LANES
        m[lane] = rotl32(m[lane], 13) ^ x
    return m


def ticket_digest(s_a: bytes, a: int, b: int, lanes: list[int]) -> bytes:
    return tagged("pouw/ticket", s_a + _u32(a) + _u32(b) + struct.pack("<16I", *lanes))


def win_threshold(target: int, k: int) -> int:
    return target * 1024 * k


def wins(digest: bytes, target: int, k: int) -> bool:
    """A tile wins iff ``digest < target·1024·k`` (every tile wins once that reaches 2^256)."""
    return int.from_bytes(digest, "big") < win_threshold(target, k)


def tile_fold(a_rows: np.ndarray, b_cols: np.ndarray, r: int) -> list[int]:
    return fold(chunk_xors(a_rows, b_cols, r))


@dataclass(frozen=True)
class TileResult:
    a: int
    b: int
    lanes: list[int]
    digest: bytes
    wins: bool


def all_tiles(a_noisy: np.ndarray, b_noisy: np.ndarray, s: Seeds, header: Header) -> list[TileResult]:
    """Every tile's fold and ticket in row-major tile order (the slow, readable way)."""
    w = header.work
    out = []
    for ta in range(w.m // TILE):
        rows = a_noisy[ta * TILE:(ta + 1) * TILE]
        for tb in range(w.n // TILE):
            lanes = tile_fold(rows, b_noisy[:, tb * TILE:(tb + 1) * TILE], w.r)
            digest = ticket_digest(s.s_a, ta, tb, lanes)
            out.append(TileResult(ta, tb, lanes, digest, wins(digest, header.target, w.k)))
    return out


# --- proofs (§5) -------------------------------------------------------------

def build_proof(a: np.ndarray, b: np.ndarray, ta: int, tb: int, roots: OperandRoots | None = None) -> Proof:
    """Rows of tile-row ``ta`` of A and columns of tile-column ``tb`` of B, with group paths
    (from ``roots`` where the caller has them, else A and B are hashed here)."""
    rows = np.ascontiguousarray(a[ta * TILE:(ta + 1) * TILE], dtype=np.int8)
    cols = np.ascontiguousarray(b[:, tb * TILE:(tb + 1) * TILE].T, dtype=np.int8)
    roots = roots or OperandRoots.of(a, b)
    return Proof(rows.tobytes(), tuple(audit_path(roots.a, ta)),
                 cols.tobytes(), tuple(audit_path(roots.b, tb)))


def ticket_tile_in_range(header: Header) -> bool:
    """The ticket names one of the block's tiles: ``a < m/32`` and ``b < n/32`` (§5)."""
    w, t = header.work, header.ticket
    return t.a < w.m // TILE and t.b < w.n // TILE


def proof_error(header: Header, proof: Proof) -> Reason | None:
    """Check a block's proof from the block alone; returns the broken rule or None (§5).

    Dims are assumed already checked against the network rules.
    """
    w, t = header.work, header.ticket
    if not ticket_tile_in_range(header):
        return Reason.BAD_TICKET_TILE
    if len(proof.a_rows) != TILE * w.k or len(proof.b_cols) != TILE * w.k:
        return Reason.BAD_PROOF_SIZE
    a_rows = np.frombuffer(proof.a_rows, dtype=np.int8).reshape(TILE, w.k)
    b_cols = np.frombuffer(proof.b_cols, dtype=np.int8).reshape(TILE, w.k)
    if (a_rows.min() < ENTRY_MIN or a_rows.max() > ENTRY_MAX
            or b_cols.min() < ENTRY_MIN or b_cols.max() > ENTRY_MAX):
        return Reason.BAD_PROOF_ENTRY_RANGE
    root_a = root_from_path(group_roots(a_rows)[0], t.a, w.m // TILE, proof.a_path)
    if root_a is None or matrix_commitment(w.m, w.k, root_a) != w.h_a:
        return Reason.BAD_PROOF_A_PATH
    root_b = root_from_path(group_roots(b_cols)[0], t.b, w.n // TILE, proof.b_path)
    if root_b is None or matrix_commitment(w.n, w.k, root_b) != w.h_b:
        return Reason.BAD_PROOF_B_PATH
    s = seeds(header)
    ep, eq = er_pairs(s, w.k, w.r)
    fp, fq = fl_pairs(s, w.k, w.r)
    a_noisy = a_rows.astype(np.int16) + expand_left(el_tile_rows(s.s_a, t.a, w.r), ep, eq)
    b_noisy = b_cols.T.astype(np.int16) + expand_right(fr_tile_cols(s.s_b, t.b, w.r), fp, fq)
    digest = ticket_digest(s.s_a, t.a, t.b, tile_fold(a_noisy, b_noisy, w.r))
    if digest != t.digest:
        return Reason.BAD_TICKET_DIGEST
    if not wins(digest, header.target, w.k):
        return Reason.TICKET_DOES_NOT_WIN
    return None


# --- useful output ------------------------------------------------------------

EXACT_SLICE = 512  # k per float32 product: every partial sum is at most 512 · 128² = 2^23


def int8_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A·B (int64) of int8 matrices, exactly, on float32 GEMMs over k-slices of ``EXACT_SLICE``:
    every partial sum is an integer below 2^24, which float32 holds in whatever order BLAS adds;
    the slices are added in int64. (numpy's integer matmul has no BLAS behind it: many times
    slower.) Used for C' = A'·B' here and for any exact int8 product outside the kernel."""
    if a.dtype != np.int8 or b.dtype != np.int8 or a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"int8_product multiplies int8 matrices, not {a.dtype} {a.shape} by {b.dtype} {b.shape}")
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for start in range(0, a.shape[1], EXACT_SLICE):
        stop = start + EXACT_SLICE
        out += (a[:, start:stop].astype(np.float32) @ b[start:stop].astype(np.float32)).astype(np.int64)
    return out


def recover_product(a: np.ndarray, b_noisy: np.ndarray, c_noisy: np.ndarray, s: Seeds, r: int) -> np.ndarray:
    """``A·B = C' − (A·F_L)·F_R − E_L·(E_R·B')`` using the sparse ±1 structure of F_L and E_R."""
    m, k = a.shape
    n = b_noisy.shape[1]
    fp, fq = fl_pairs(s, k, r)
    ep, eq = er_pairs(s, k, r)
    a64 = a.astype(np.int64)
    a_fl = np.zeros((m, r), dtype=np.int64)  # (A·F_L)[:, c] = Σ_j A[:, j]·([p_j = c] − [q_j = c])
    np.add.at(a_fl.T, fp, a64.T)
    np.subtract.at(a_fl.T, fq, a64.T)
    b64 = b_noisy.astype(np.int64)
    er_b = np.zeros((r, n), dtype=np.int64)  # (E_R·B')[c, :] = Σ_j B'[j, :]·([p_j = c] − [q_j = c])
    np.add.at(er_b, ep, b64)
    np.subtract.at(er_b, eq, b64)
    el = noise_el(s.s_a, m, r).astype(np.int64)
    fr = noise_fr(s.s_b, n, r).astype(np.int64)
    return c_noisy.astype(np.int64) - a_fl @ fr - el @ er_b


def make_ticket(tile: TileResult) -> Ticket:
    return Ticket(tile.a, tile.b, tile.digest)


def assemble_block(header: Header, a: np.ndarray, b: np.ndarray, tile: TileResult, txs: tuple = (),
                   roots: OperandRoots | None = None) -> Block:
    """The block for a winning tile: its ticket in the header and its proof (§5)."""
    return Block(header.replace(ticket=make_ticket(tile)), build_proof(a, b, tile.a, tile.b, roots), tuple(txs))


def solve(header: Header, a: np.ndarray, b: np.ndarray, txs: tuple = ()) -> Block | None:
    """Reference solver: the block of the first winning tile in row-major order, if any.

    ``header`` must already carry the work spec and tx_root; slow, for tests and vectors.
    """
    s = seeds(header)
    a_noisy, b_noisy = noisy_operands(a, b, s, header.work.r)
    winner = next((t for t in all_tiles(a_noisy, b_noisy, s, header) if t.wins), None)
    return None if winner is None else assemble_block(header, a, b, winner, txs)

