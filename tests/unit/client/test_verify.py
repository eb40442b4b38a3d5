"""Freivalds modulo 2^61 − 1 (PROTOCOL §6): exact modular mat-vec, and a single wrong entry
is always caught (the bound is p^−2 per check)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from client.verify import P, claim_matches, matvec_mod, mismatched_rows, random_vector
from consensus.tx import claim_of
from consensus.work import commit_result


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 2100), st.integers(0, 2**32))
def test_matvec_mod_is_exact(rows: int, cols: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.integers(-(2**31) + 1, 2**31, size=(rows, cols), dtype=np.int64)
    m[0, :] = 2**31 - 1  # the extremes the limb split must survive
    x = rng.integers(0, P, size=cols, dtype=np.uint64)
    x[0] = P - 1
    want = [sum(int(m[i, j]) * int(x[j]) for j in range(cols)) % P for i in range(rows)]
    assert matvec_mod(m, x).tolist() == want


def test_random_vector_is_in_range() -> None:
    x = random_vector(10_000)
    assert x.dtype == np.uint64 and int(x.max()) < P and len(set(x.tolist())) > 9_990


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


def test_right_product_passes_and_every_single_wrong_entry_is_caught() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-64, 65, size=(64, 128), dtype=np.int8)
    b = rng.integers(-64, 65, size=(128, 96), dtype=np.int8)
    c = product(a, b)
    assert mismatched_rows(a, b, c) == []
    for trial in range(300):  # a miss has probability ≤ p^-2 ≈ 2^-122 per trial
        wrong = c.copy()
        i, j = int(rng.integers(0, 64)), int(rng.integers(0, 96))
        wrong[i, j] += int(rng.choice([-1, 1])) * int(rng.integers(1, 2**31 - 1 - abs(int(c[i, j]))))
        assert mismatched_rows(a, b, wrong) == [i], trial


def test_claim_matches_binds_worker_and_product() -> None:
    c = np.arange(32 * 32, dtype=np.int32).reshape(32, 32)
    worker, other = b"\x01" * 20, b"\x02" * 20
    claim = claim_of(worker, commit_result(c))
    assert claim_matches(worker, claim, c)
    assert not claim_matches(other, claim, c)
    c[0, 0] += 1
    assert not claim_matches(worker, claim, c)


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_rounds_are_independent_draws(rounds: int) -> None:
    a = np.ones((32, 64), np.int8)
    b = np.ones((64, 32), np.int8)
    c = product(a, b)
    c[5, 7] = 0
    assert mismatched_rows(a, b, c, rounds=rounds) == [5]
