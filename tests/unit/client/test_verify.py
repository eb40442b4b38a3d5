"""Freivalds modulo 2^61 − 1 (PROTOCOL §6): exact modular mat-vec, and a single wrong entry
is always caught (the bound is p^−2 per check)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from client.verify import P, claim_matches, limb_width, mat_mod, mismatched_rows, products_paths, random_vectors
from consensus.params import MAX_JOB_N, MAX_K
from consensus.tx import claim_of
from consensus.work import commit_result


def exact_mat_mod(m: np.ndarray, xs: np.ndarray) -> list[list[int]]:
    """The big-integer reference: m · xs mod p, term by term."""
    return [[sum(int(m[i, j]) * int(xs[j, r]) for j in range(m.shape[1])) % P for r in range(xs.shape[1])]
            for i in range(m.shape[0])]


PATHS = products_paths() + ["numpy"]  # every way this CPU sums the limbs: C paths and numpy's GEMM


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 2100), st.integers(1, 3), st.integers(0, 2**32), st.booleans())
def test_mat_mod_is_exact_on_product_sized_entries(path: str, rows: int, cols: int, rounds: int, seed: int,
                                                   column_major: bool) -> None:
    rng = np.random.default_rng(seed)
    bound = 64 * 64 * 8192  # the largest entry of a product of int8s in [−64, 64] with k ≤ 8192
    m = rng.integers(-bound, bound + 1, size=(rows, cols), dtype=np.int32)
    m[0, :] = bound  # the extremes the limb split must survive
    m[-1, :] = -bound
    xs = rng.integers(0, P, size=(cols, rounds), dtype=np.uint64)
    xs[0, 0] = P - 1
    values, wild = mat_mod(np.asfortranarray(m) if column_major else m, xs, bound, path)
    assert values.tolist() == exact_mat_mod(m, xs) and wild.size == 0


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, MAX_JOB_N), st.integers(1, 3), st.sampled_from(["random", "+64", "-64", "±64"]),
       st.integers(0, 2**32))
def test_mat_mod_is_exact_on_int8_operands(path: str, rows: int, cols: int, rounds: int, fill: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = {"random": lambda: rng.integers(-64, 65, size=(rows, cols), dtype=np.int8),
         "+64": lambda: np.full((rows, cols), 64, np.int8),
         "-64": lambda: np.full((rows, cols), -64, np.int8),
         "±64": lambda: rng.choice(np.array([-64, 64], np.int8), size=(rows, cols))}[fill]()
    xs = rng.integers(P - 2**20, P, size=(cols, rounds), dtype=np.uint64)  # near p: every limb full
    values, wild = mat_mod(m, xs, 64, path)
    assert values.tolist() == exact_mat_mod(m, xs) and wild.size == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length, bound", [(MAX_K, 64), (MAX_JOB_N, 64), (MAX_JOB_N, 64 * 64 * MAX_K)])
def test_mat_mod_is_exact_at_the_protocol_limits(path: str, length: int, bound: int) -> None:
    """The largest sums the client meets: B·x over n ≤ 16384, A·y over k ≤ 8192, C·x with
    entries up to 64²·8192 over n ≤ 16384; all entries at the extremes, x at p − 1."""
    m = np.array([[bound] * length, [-bound] * length, [bound, -bound] * (length // 2)],
                 np.int8 if bound < 128 else np.int32)
    xs = np.full((length, 2), P - 1, np.uint64)
    xs[::3, 1] = (1 << 60) + 12345
    values, wild = mat_mod(m, xs, bound, path)
    assert values.tolist() == exact_mat_mod(m, xs) and wild.size == 0


@pytest.mark.parametrize("path", PATHS)
def test_mat_mod_names_rows_beyond_the_bound_in_every_block(path: str) -> None:
    """Wild entries in numpy's blocks of 978 rows, in a C path's groups of rows, in the
    columns past the last full vector, and in a last row that is a group of its own."""
    m = np.zeros((3001, 67), np.int32)
    m[5, 3], m[1500, 0], m[2999, 66], m[3000, 65], m[7, 7] = 1001, -1001, 2**31 - 1, -2**31, 1000
    values, wild = mat_mod(m, np.ones((67, 2), np.uint64), 1000, path)
    assert wild.tolist() == [5, 1500, 2999, 3000] and values[7].tolist() == [1000, 1000]


@pytest.mark.parametrize("path", PATHS)
def test_mat_mod_names_int8_rows_beyond_the_operand_range(path: str) -> None:
    m = np.full((9, 13), -64, np.int8)
    m[2, 12], m[4, 0], m[8, 5] = 65, -128, 127
    values, wild = mat_mod(m, np.ones((13, 1), np.uint64), 64, path)
    assert wild.tolist() == [2, 4, 8] and values[0].tolist() == [(-64 * 13) % P]


def test_limb_width_keeps_every_partial_sum_exact() -> None:
    for bound, length in [(64, 8192), (64, 16384), (64 * 64 * 8192, 16384), (1, 1), (2**31, 2100)]:
        w = limb_width(bound, length)
        assert bound * length * (2**w - 1) < 2**53 <= bound * length * (2**(w + 1) - 1) or w == 61


def test_random_vectors_are_in_range() -> None:
    x = random_vectors(10_000, 2)
    assert x.shape == (10_000, 2) and x.dtype == np.uint64 and int(x.max()) < P
    assert len(set(x.ravel().tolist())) > 19_990


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


def test_entries_beyond_any_product_are_caught() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(-64, 65, size=(32, 64), dtype=np.int8)
    b = rng.integers(-64, 65, size=(64, 32), dtype=np.int8)
    c = product(a, b)
    c[3, 4], c[9, 0] = 2**31 - 1, -(2**31)
    assert mismatched_rows(a, b, c) == [3, 9]


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_rounds_are_independent_draws(rounds: int) -> None:
    a = np.ones((32, 64), np.int8)
    b = np.ones((64, 32), np.int8)
    c = product(a, b)
    c[5, 7] = 0
    assert mismatched_rows(a, b, c, rounds=rounds) == [5]
