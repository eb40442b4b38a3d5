"""The work function (PROTOCOL §4): noise ranges, recovery of A·B, proofs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from consensus import work
from consensus.block import Header, Ticket, WorkSpec

from .chainmaker import random_matrices


def header_for(m: int, n: int, k: int, r: int, nonce: int, a: np.ndarray, b: np.ndarray, target: int) -> Header:
    return Header(2, 4, 7, b"\x01" * 32, 1_790_000_100, target, b"\x02" * 32, b"\x04" * 32, b"\x03" * 20, nonce,
                  WorkSpec(m, n, k, r, work.commit_a(a), work.commit_b(b)), Ticket(0, 0, bytes(32)))


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.sampled_from([16, 32, 64]), st.integers(1, 4))


@settings(max_examples=25, deadline=None)
@given(shapes, st.integers(0, 2**64 - 1))
def test_recovery_of_ab_is_exact(shape: tuple[int, int, int, int], nonce: int) -> None:
    gm, gn, r, chunks = shape
    m, n, k = 32 * gm, 32 * gn, r * chunks * 2
    a, b = random_matrices(np.random.default_rng(nonce % 1000), m, n, k)
    h = header_for(m, n, k, r, nonce, a, b, 1 << 250)
    s = work.seeds(h)
    a2, b2 = work.noisy_operands(a, b, s, r)
    assert np.abs(a2.astype(int) - a).max() <= 63 and np.abs(b2.astype(int) - b).max() <= 63
    assert (a2 != a).any()
    c2 = work.int8_product(a2, b2)
    assert (work.recover_product(a, b2, c2, s, r) == a.astype(np.int64) @ b.astype(np.int64)).all()


def test_pairs_are_distinct_and_in_range() -> None:
    p, q = work.pairs(b"\x05" * 32, b"ER", 4096, 64)
    assert ((p != q) & (p < 64) & (q < 64) & (p >= 0) & (q >= 0)).all()


def test_noise_entries_in_range() -> None:
    el = work.noise_el(b"\x09" * 32, 128, 64)
    assert el.min() >= -32 and el.max() <= 31 and el.shape == (128, 64)


def test_fold_matches_literal_loop() -> None:
    """chunk_xors/fold against the pseudocode of §4 written with Python ints."""
    rng = np.random.default_rng(3)
    r, k = 16, 64
    rows = rng.integers(-127, 128, size=(32, k)).astype(np.int64)
    cols = rng.integers(-127, 128, size=(k, 32)).astype(np.int64)
    acc = np.zeros((32, 32), dtype=np.int64)
    lanes = [0] * 16
    for ell in range(k // r):
        acc += rows[:, ell * r:(ell + 1) * r] @ cols[ell * r:(ell + 1) * r]
        x = 0
        for v in acc.flatten().tolist():
            x ^= v & 0xFFFFFFFF
        lanes[ell % 16] = (((lanes[ell % 16] << 13) | (lanes[ell % 16] >> 19)) & 0xFFFFFFFF) ^ x
    assert work.tile_fold(rows, cols, r) == lanes


def test_proof_round_trip_and_tampering() -> None:
    rng = np.random.default_rng(11)
    m, n, k, r = 96, 64, 128, 32
    a, b = random_matrices(rng, m, n, k)
    h = header_for(m, n, k, r, 1, a, b, (1 << 256) - 1)
    block = work.solve(h, a, b)
    assert block is not None
    assert work.proof_error(block.header, block.proof) is None
    other = work.build_proof(a, b, 2, 1)
    hdr = block.header
    assert work.proof_error(hdr, other) in ("bad-proof-a-path", "bad-proof-b-path")
    t = hdr.ticket
    assert work.proof_error(hdr.replace(ticket=Ticket(t.a, t.b, bytes(32))), block.proof) == "bad-ticket-digest"
    assert work.proof_error(hdr.replace(ticket=Ticket(m // 32, t.b, t.digest)), block.proof) == "bad-ticket-tile"


def test_operand_roots_commit_to_a_and_b_and_build_the_same_proofs(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    a, b = random_matrices(rng, 96, 64, 128)
    roots = work.OperandRoots.of(a, b)
    assert (roots.h_a, roots.h_b) == (work.commit_a(a), work.commit_b(b))
    assert roots == work.OperandRoots.of(a, np.asfortranarray(b))  # B's columns, whatever its order
    want = {(ta, tb): work.build_proof(a, b, ta, tb) for ta in range(3) for tb in range(2)}

    def no_hashing(*_: object) -> None:
        raise AssertionError("a proof from known roots hashed A or B again")
    monkeypatch.setattr(work, "group_roots", no_hashing)
    assert all(work.build_proof(a, b, ta, tb, roots) == proof for (ta, tb), proof in want.items())


def test_losing_ticket_is_rejected() -> None:
    rng = np.random.default_rng(5)
    a, b = random_matrices(rng, 32, 32, 64)
    h = header_for(32, 32, 64, 16, 1, a, b, 1)
    s = work.seeds(h)
    a2, b2 = work.noisy_operands(a, b, s, 16)
    tile = work.all_tiles(a2, b2, s, h)[0]
    assert not tile.wins
    blk = work.assemble_block(h, a, b, tile)
    assert work.proof_error(blk.header, blk.proof) == "ticket-does-not-win"


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 1600), st.integers(1, 6), st.integers(0, 2**32))
def test_int8_product_is_the_exact_product(m: int, k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-128, 128, (k, n), dtype=np.int8)
    c = work.int8_product(a, b)
    assert c.dtype == np.int64 and (c == exact(a, b)).all()


def test_int8_product_is_exact_where_one_float32_sum_over_k_is_not() -> None:
    rng = np.random.default_rng(0)  # large entries: sums past 2^24 that float32 rounds
    a, b = rng.integers(100, 128, (2, 8192), dtype=np.int8), rng.integers(100, 128, (8192, 3), dtype=np.int8)
    assert (work.int8_product(a, b) == exact(a, b)).all()
    assert not (a.astype(np.float32) @ b.astype(np.float32) == exact(a, b)).all()


def test_int8_product_takes_int8_matrices_only() -> None:
    with pytest.raises(ValueError, match="int8 matrices"):
        work.int8_product(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int8))
