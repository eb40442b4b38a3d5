"""A product split into jobs (``split_product``) and put back together (``assemble_product``) is
exactly A·B: tiles placed and cropped, k-slices summed, padding dropped; without a k-split the
operands that need no padding are not copied, and a sum beyond int32 is refused."""
from __future__ import annotations

import numpy as np
import pytest

from client.market import MarketClientError, Piece, assemble_product, split_product
from consensus.params import DEV, MAX_K
from consensus.work import int8_product


def operands(m: int, k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-64, 65, size=(m, k), dtype=np.int8), rng.integers(-64, 65, size=(k, n), dtype=np.int8))


@pytest.mark.parametrize("m, k, n, tile", [
    (96, 128, 64, 4096),  # one job, no padding
    (70, 100, 45, 4096),  # one job, padded on every side and cropped
    (200, 256, 130, 64),  # tiles of 64×64, the last ones partial
    (40, MAX_K + 96, 33, 4096),  # k split in two slices, summed
    (100, MAX_K + 1, 70, 64),  # both: tiles and k-slices, all padded
])
def test_the_jobs_of_a_split_product_assemble_to_a_times_b(m, k, n, tile) -> None:
    a, b = operands(m, k, n, seed=m * n + k)
    pieces = split_product(a, b, DEV, tile, tile)
    products = [int8_product(p.a, p.b).astype(np.int32) for p in pieces]
    c = assemble_product(pieces, products, m, n)
    assert c.dtype == np.int32 and c.shape == (m, n)
    assert np.array_equal(c, int8_product(a, b))


def test_an_operand_that_needs_no_padding_is_posted_as_it_is() -> None:
    a, b = operands(64, 128, 96, seed=1)
    (piece,) = split_product(a, b, DEV)
    assert np.shares_memory(piece.a, a) and np.shares_memory(piece.b, b)
    (padded,) = split_product(a[:, :100], b[:100], DEV)  # k padded to 128: copies, zero-filled
    assert not np.shares_memory(padded.a, a) and not padded.a[:, 100:].any() and not padded.b[100:].any()


def test_k_slices_whose_sum_leaves_int32_are_refused() -> None:
    rows, cols = slice(0, 32), slice(0, 32)
    empty = np.zeros((32, 64), np.int8)
    pieces = [Piece(rows, cols, empty, empty.T), Piece(rows, cols, empty, empty.T)]
    full = np.full((32, 32), 2**31 - 1, np.int32)
    with pytest.raises(MarketClientError, match="does not fit int32"):
        assemble_product(pieces, [full, full], 32, 32)
    assert (assemble_product(pieces, [full, -full], 32, 32) == 0).all()
