"""The devnet's job stream (scripts/jobstream.py): its filler operands are int8 matrices within
the protocol's entry range (§1), every value of [−64, 63] about equally likely."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from jobstream import random_operand  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.integers(1, 70), st.integers(0, 2**32))
def test_filler_operands_are_int8_within_the_entry_range(rows: int, cols: int, seed: int) -> None:
    a = random_operand(np.random.default_rng(seed), rows, cols)
    assert a.shape == (rows, cols) and a.dtype == np.int8 and a.flags.c_contiguous
    assert -64 <= int(a.min()) and int(a.max()) <= 63


def test_filler_operands_are_uniform_over_their_range() -> None:
    a = random_operand(np.random.default_rng(5), 1024, 1024)
    counts = np.bincount(a.ravel().astype(np.int64) + 64, minlength=128)
    assert len(counts) == 128 and counts.min() > 0.95 * a.size / 128 and counts.max() < 1.05 * a.size / 128
