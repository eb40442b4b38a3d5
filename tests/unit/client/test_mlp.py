"""The devnet's AI workload: the int8 MLP on scikit-learn's digits keeps the float model's
accuracy, and its products are shapes the market can carry once padded; ``local_matmul``, the
product it is checked against, is exact."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from client.market import split_product
from client.mlp import local_matmul, train
from consensus.params import DEV
from consensus.state import operand_error


def test_int8_model_tracks_the_float_model() -> None:
    model, float_accuracy, x, y = train()
    int8_accuracy = float((model.predict(x, local_matmul) == y).mean())
    assert float_accuracy > 0.9 and int8_accuracy >= float_accuracy - 0.03
    assert model.w1.dtype == np.int8 and np.abs(model.w1).max() <= 64 and np.abs(model.w2).max() <= 64
    pieces = split_product((x[:96] * model.X_SCALE).astype(np.int8), model.w1, DEV)
    assert len(pieces) == 1 and operand_error("A", pieces[0].a, DEV) is None
    assert operand_error("B", pieces[0].b, DEV) is None


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 1600), st.integers(1, 6), st.integers(0, 2**32))
def test_local_matmul_is_the_exact_product(m: int, k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, (m, k), dtype=np.int8), rng.integers(-128, 128, (k, n), dtype=np.int8)
    c = local_matmul(a, b)
    assert c.dtype == np.int32 and (c == exact(a, b)).all()


def test_local_matmul_is_exact_where_one_float32_sum_over_k_is_not() -> None:
    rng = np.random.default_rng(0)  # large entries: sums past 2^24 that float32 rounds
    a, b = rng.integers(100, 128, (2, 8192), dtype=np.int8), rng.integers(100, 128, (8192, 3), dtype=np.int8)
    assert (local_matmul(a, b) == exact(a, b)).all()
    assert not (a.astype(np.float32) @ b.astype(np.float32) == exact(a, b)).all()


def test_local_matmul_takes_int8_matrices_only() -> None:
    with pytest.raises(ValueError, match="int8 matrices"):
        local_matmul(np.zeros((2, 2), np.int32), np.zeros((2, 2), np.int8))
