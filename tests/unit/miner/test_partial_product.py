"""One product mined under several headers (``kernel.matmul_rows``, PROTOCOL §4): the kernel
stops at a 256-row panel once a tile wins or the caller asks, and the rest is computed under
the next header; the rows of every header make one exact A·B, and each header's winning tiles
are exactly the reference's for the rows it computed."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.work import int8_product
from miner import kernel

from .helpers import operands, template

C_PATHS = [p for p in kernel.available_paths() if p != "numpy"]
PANEL = kernel.PANEL_ROWS  # the rows the C paths finish once stopped


def reference_winners(header, a, b, first_row: int, rows_done: int) -> list:
    return [t for t in kernel.all_tiles(header, a, b, path="numpy")
            if t.wins and first_row // 32 <= t.a < rows_done // 32]


def mine_in_parts(a, b, r: int, target: int, path: str, threads: int) -> list[tuple[int, int, list]]:
    """Mine A·B as a miner does, a fresh header (nonce) after every stop; per call: the rows it
    started at and reached, and its winners, each checked against the reference."""
    (m, _), n = a.shape, b.shape[1]
    partial, stop, calls = kernel.PartialProduct.of_shape(m, n), np.zeros(1, np.uint8), []
    while not partial.done:
        header = template(a, b, r, nonce=len(calls), target=target)
        stop[0], first_row = 0, partial.rows_done
        winners = kernel.matmul_rows(a, b, header, partial, stop, threads=threads, path=path)
        assert partial.rows_done > first_row, "a call with the stop cleared got nowhere"
        assert winners == reference_winners(header, a, b, first_row, partial.rows_done)
        calls.append((first_row, partial.rows_done, winners))
    assert np.array_equal(partial.product, int8_product(a, b))
    return calls


@pytest.mark.parametrize("path", kernel.available_paths())
@settings(max_examples=6, deadline=None)
@given(tile_rows=st.integers(1, 32), tile_cols=st.integers(1, 12), r=st.sampled_from([16, 32]),
       chunks=st.integers(1, 8), seed=st.integers(0, 2**32), odds=st.sampled_from([16, 64, 256]),
       threads=st.integers(1, 3))
def test_a_product_mined_in_parts_is_exact_and_each_part_wins_its_own_tiles(
        path: str, tile_rows: int, tile_cols: int, r: int, chunks: int, seed: int, odds: int, threads: int) -> None:
    m, n, k = 32 * tile_rows, 32 * tile_cols, r * chunks
    a, b = operands(seed, m, n, k)
    target = (1 << 256) // (1024 * k * odds)  # a tile wins with odds 1 in `odds`
    calls = mine_in_parts(a, b, r, target, path, threads)
    for first_row, reached, winners in calls:
        if path != "numpy" and reached < m:  # the C paths stopped: a tile had won, at a panel's end
            assert winners and reached % PANEL == 0
    if path == "numpy":
        assert len(calls) == 1  # the reference never stops


@pytest.mark.parametrize("path", C_PATHS)
@pytest.mark.parametrize("threads", [1, 2])
def test_every_tile_winning_makes_one_part_a_panel(path: str, threads: int) -> None:
    """With at least as many units to a panel (96 columns each) as threads, a winning tile is
    known before any thread reaches the next panel: each header computes one panel."""
    a, b = operands(7, 1024, 384, 64)
    calls = mine_in_parts(a, b, 16, (1 << 256) - 1, path, threads)
    assert PANEL == 256 and [(first, reached) for first, reached, _ in calls] == [(0, 256), (256, 512), (512, 768),
                                                                                  (768, 1024)]
    assert all(len(winners) == PANEL // 32 * 384 // 32 for *_, winners in calls)


@pytest.mark.parametrize("path", C_PATHS)
def test_a_stop_asked_for_before_the_call_computes_nothing(path: str) -> None:
    a, b = operands(8, 512, 384, 64)  # 4 units a panel, for 2 threads (as above)
    partial = kernel.PartialProduct.of_shape(512, 384)
    partial.product.fill(7)
    header = template(a, b, 16, target=(1 << 256) - 1)
    assert kernel.matmul_rows(a, b, header, partial, np.ones(1, np.uint8), threads=2, path=path) == []
    assert partial.rows_done == 0 and (partial.product == 7).all()
    winners = kernel.matmul_rows(a, b, header, partial, np.zeros(1, np.uint8), threads=2, path=path)  # cleared
    assert partial.rows_done == 256 and winners == reference_winners(header, a, b, 0, 256)


def test_bad_parts_are_refused() -> None:
    a, b = operands(9, 64, 32, 64)
    header = template(a, b, 16)
    with pytest.raises(ValueError, match="first_row 16"):
        kernel.run(header, a, b, recover=True, first_row=16)
    with pytest.raises(ValueError, match="first_row 64"):
        kernel.run(header, a, b, recover=True, first_row=64)
    with pytest.raises(ValueError, match="C-contiguous 64x32 int32"):
        kernel.run(header, a, b, recover=True, product=np.zeros((64, 32), np.int64))
    partial = kernel.PartialProduct.of_shape(64, 32)
    kernel.matmul_rows(a, b, header, partial)
    assert partial.done and np.array_equal(partial.product, int8_product(a, b))
    with pytest.raises(ValueError, match="complete"):
        kernel.matmul_rows(a, b, header, partial)
