"""Freivalds modulo 2^61 − 1 (PROTOCOL §6): exact modular mat-vec, and a single wrong entry
is always caught (the bound is p^−2 per check)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from client import verify
from client.verify import (P, claim_matches, limb_width, mat_mod, mismatched_rows, products_paths, random_vectors,
                           segment_plan)
from consensus.params import MAX_JOB_N, MAX_K
from consensus.tx import claim_of
from consensus.work import commit_result


def exact_mat_mod(m: np.ndarray, xs: np.ndarray) -> list[list[int]]:
    """The big-integer reference: m · xs mod p, term by term."""
    return [[sum(int(m[i, j]) * int(xs[j, r]) for j in range(m.shape[1])) % P for r in range(xs.shape[1])]
            for i in range(m.shape[0])]


PATHS = products_paths() + ["numpy"]  # every way this CPU sums an int32 matrix's limbs: C paths and numpy's GEMM
INT8_PATHS = products_paths(np.int8) + ["numpy"]  # and an int8 matrix's (the digit path too)
LIMITS = [(MAX_K, 64), (MAX_JOB_N, 64), (MAX_JOB_N, 64 * 64 * MAX_K)]
EXTREME_DIGITS = 0x1000_7FFF_7FFF_8000  # below p; balanced 16-bit digits −2^15, −2^15, −2^15, 0x1001


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


@pytest.mark.parametrize("path", INT8_PATHS)
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


@pytest.mark.parametrize("path, length, bound", [(path, length, bound) for length, bound in LIMITS
                                                  for path in (INT8_PATHS if bound < 128 else PATHS)])
def test_mat_mod_is_exact_at_the_protocol_limits(path: str, length: int, bound: int) -> None:
    """The largest sums the client meets: B·x over n ≤ 16384, A·y over k ≤ 8192, C·x with
    entries up to 64²·8192 over n ≤ 16384; all entries at the extremes, x at p − 1 or with
    every digit but the last at −2^15."""
    m = np.array([[bound] * length, [-bound] * length, [bound, -bound] * (length // 2)],
                 np.int8 if bound < 128 else np.int32)
    xs = np.full((length, 2), P - 1, np.uint64)
    xs[::3, 1] = (1 << 60) + 12345
    xs[1::3, 1] = EXTREME_DIGITS
    values, wild = mat_mod(m, xs, bound, path)
    assert values.tolist() == exact_mat_mod(m, xs) and wild.size == 0


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("length", [4 * 32 - 1, 4 * 32, 4 * 32 + 1, 4 * 64 + 3, 8191])
def test_mat_mod_is_exact_across_segment_ends(path: str, length: int) -> None:
    """C's entries at ±64²·8192 against x = p − 1 fill every segment of the AVX2 path (32 terms
    a lane) to its limit: lengths that end a segment exactly, one short, one over, and in a
    tail of a partial vector."""
    bound = 64 * 64 * 8192
    m = np.array([[bound] * length, [-bound] * length, [(-bound, bound)[j % 3 == 0] for j in range(length)]],
                 np.int32)
    xs = np.full((length, 3), P - 1, np.uint64)
    xs[::5, 2] = (1 << 21) - 1  # a limb at its largest, the others zero
    values, wild = mat_mod(m, xs, bound, path)
    assert values.tolist() == exact_mat_mod(m, xs) and wild.size == 0


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype, bound", [(np.int32, 1000), (np.int8, 64)])
def test_mat_mod_splits_rows_over_threads_exactly(threads: int, dtype: type, bound: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The C products over 1–3 row ranges give the same values and wild rows (row 0 and the last
    row wild, so each end of the split is looked at), for an int32 and an int8 matrix."""
    if not products_paths(dtype):
        pytest.skip("the C extension has no path on this CPU: numpy's GEMM is not split by rows")
    monkeypatch.setattr(verify, "THREADS", threads)
    rng = np.random.default_rng(11)
    m = rng.integers(-bound, bound + 1, size=(389, 70), dtype=dtype)
    m[0, 69], m[388, 0] = bound + 1, -bound - 1
    xs = rng.integers(0, P, size=(70, 2), dtype=np.uint64)
    values, wild = mat_mod(m, xs, bound)
    assert wild.tolist() == [0, 388] and values[1:388].tolist() == exact_mat_mod(m[1:388], xs)


def test_mat_mod_sums_in_its_own_thread_once_the_pool_is_shut(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the interpreter exits its thread pools refuse work (a job stream's thread may
    still be checking a result then): the product is summed in the calling thread instead."""
    if not products_paths():
        pytest.skip("the C extension has no path on this CPU: numpy's GEMM is not split by rows")
    shut = ThreadPoolExecutor(1)
    shut.shutdown()
    monkeypatch.setattr(verify, "THREADS", 2)
    monkeypatch.setattr(verify, "_threads", lambda: shut)
    rng = np.random.default_rng(12)
    m = rng.integers(-64, 65, size=(300, 40), dtype=np.int8)
    xs = rng.integers(0, P, size=(40, 2), dtype=np.uint64)
    values, wild = mat_mod(m, xs, 64)
    assert wild.size == 0 and values.tolist() == exact_mat_mod(m, xs)


@pytest.mark.parametrize("path", PATHS)
def test_mat_mod_names_rows_beyond_the_bound_in_every_block(path: str) -> None:
    """Wild entries in numpy's blocks of 978 rows, in a C path's groups of rows, in the
    columns past the last full vector, and in a last row that is a group of its own."""
    m = np.zeros((3001, 67), np.int32)
    m[5, 3], m[1500, 0], m[2999, 66], m[3000, 65], m[7, 7] = 1001, -1001, 2**31 - 1, -2**31, 1000
    values, wild = mat_mod(m, np.ones((67, 2), np.uint64), 1000, path)
    assert wild.tolist() == [5, 1500, 2999, 3000] and values[7].tolist() == [1000, 1000]


@pytest.mark.parametrize("path", INT8_PATHS)
def test_mat_mod_names_int8_rows_beyond_the_operand_range(path: str) -> None:
    m = np.full((9, 13), -64, np.int8)
    m[2, 12], m[4, 0], m[8, 5] = 65, -128, 127
    values, wild = mat_mod(m, np.ones((13, 1), np.uint64), 64, path)
    assert wild.tolist() == [2, 4, 8] and values[0].tolist() == [(-64 * 13) % P]


@pytest.mark.parametrize("path", INT8_PATHS)
def test_int8_rows_at_the_type_limits_are_named_and_spare_their_neighbours(path: str) -> None:
    """Rows of −128 and 127 over n = 16384 against the largest digits, the sums a wild row can
    reach, are named; the rows beside them in the same group keep their exact values."""
    m = np.array([[-128] * MAX_JOB_N, [64] * MAX_JOB_N, [127] * MAX_JOB_N, [-64, 64] * (MAX_JOB_N // 2)], np.int8)
    xs = np.full((MAX_JOB_N, 2), EXTREME_DIGITS, np.uint64)
    xs[::2, 1] = P - 1
    values, wild = mat_mod(m, xs, 64, path)
    assert wild.tolist() == [0, 2] and values[[1, 3]].tolist() == exact_mat_mod(m[[1, 3]], xs)


def test_limb_width_keeps_every_partial_sum_exact() -> None:
    for bound, length in [(64, 8192), (64, 16384), (64 * 64 * 8192, 16384), (1, 1), (2**31, 2100)]:
        w = limb_width(bound, length)
        assert bound * length * (2**w - 1) < 2**53 <= bound * length * (2**(w + 1) - 1) or w == 61


@pytest.mark.parametrize("bound, length", [(64, 8192), (64, 16384), (64 * 64 * 8192, 16384), (1, 1),
                                           (2**31 - 1, 2100), (0, 5)])
def test_segment_plan_keeps_every_segment_exact_with_the_fewest_limbs(bound: int, length: int) -> None:
    width, flush = segment_plan(bound, length)
    term = max(1, bound * (2**width - 1))
    assert flush >= 1 and term * flush < 2**51 and term * length < 2**63
    count = -(-61 // width)
    if count > 1:  # one limb fewer would break a segment or the row's int64 sum
        fewer = -(-61 // (count - 1))
        assert bound * (2**fewer - 1) >= 2**51 or bound * (2**fewer - 1) * length >= 2**63


def test_a_c_with_k_8192_takes_three_limbs_in_segments() -> None:
    assert segment_plan(64 * 64 * 8192, 16384) == (21, 32)
    assert -(-61 // limb_width(64 * 64 * 8192, 16384)) == 5  # whole rows would take five


def test_the_c_paths_refuse_what_their_sums_cannot_take() -> None:
    _freivalds = pytest.importorskip("client._freivalds", reason="the C extension is built optionally (setup.py)")
    xs, out, wild = np.zeros((8, 2), np.uint64), np.zeros((2, 2), np.uint64), np.zeros(2, np.uint8)

    def products(m: np.ndarray, width: int, flush: int, path: str, xs: np.ndarray = xs, bound: int = 1) -> None:
        _freivalds.products(m, 2, 8, m.itemsize, xs, 2, width, flush, bound, out, wild, path)

    int8, int32 = np.zeros((2, 8), np.int8), np.zeros((2, 8), np.int32)
    for path, kind in _freivalds.paths().items():
        with pytest.raises(ValueError, match="flush"):
            products(int8, 16, 0 if kind == "segments" else 16, path)
        with pytest.raises(ValueError, match="below p"):
            products(int8, 16, 1 if kind == "segments" else 0, path, np.full((8, 2), P, np.uint64))
        if kind == "digits":
            with pytest.raises(ValueError, match="int8"):
                products(int32, 16, 0, path)
            with pytest.raises(ValueError, match="int8"):
                products(int8, 21, 0, path)
        else:
            with pytest.raises(ValueError, match="61 bits"):
                products(int32, 62, 1 if kind == "segments" else 0, path)
    with pytest.raises(ValueError, match="not available"):
        products(int32, 16, 1, "sse9")


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
