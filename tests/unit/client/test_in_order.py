"""``client.market.in_order``: a matrix in C or Fortran order, transposed block by block."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from client.market import in_order


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 700), st.integers(1, 700), st.sampled_from(["C", "F", "strided"]), st.booleans(),
       st.sampled_from([np.int8, np.int32]), st.integers(0, 2**32))
def test_in_order_keeps_every_entry(rows: int, cols: int, source: str, fortran: bool, dtype, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(-64, 65, (2 * rows, 2 * cols)).astype(dtype)
    x = {"C": np.ascontiguousarray(base[:rows, :cols]), "F": np.asfortranarray(base[:rows, :cols]),
         "strided": base[::2, ::2]}[source]
    out = in_order(x, fortran)
    assert np.array_equal(out, x) and out.dtype == x.dtype
    assert out.flags.f_contiguous if fortran else out.flags.c_contiguous


def test_wide_matrices_are_moved_in_blocks_of_a_few_lines() -> None:
    """16384 columns: 64 lines a block, the last block short."""
    x = np.random.default_rng(1).integers(-64, 65, (1000, 16384), dtype=np.int8)
    out = in_order(x, fortran=True)
    assert np.array_equal(out, x) and out.flags.f_contiguous
    back = in_order(out, fortran=False)
    assert np.array_equal(back, x) and back.flags.c_contiguous


def test_a_matrix_already_in_order_is_not_copied() -> None:
    x = np.zeros((64, 96), np.int8)
    assert in_order(x, fortran=False) is x
    f = np.asfortranarray(x)
    assert in_order(f, fortran=True) is f
