"""The kernel's leaf hashes, Merkle roots and commitments against hashlib and consensus (PROTOCOL §2)."""
from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import work
from consensus.hashing import roots_of_groups
from miner import kernel

from .helpers import operands, template

PATHS = kernel.leaf_paths()
C_PATHS = [p for p in PATHS if p != "hashlib"]
# widths whose message 0x00 || row ends 55, 56, 63 and 0 bytes into its last block: one padding
# block just full, the length spilling into a second, the 0x80 byte closing a block, a block of
# padding alone
EDGE_WIDTHS = [w + 64 * j for w in (54, 55, 62, 63) for j in (0, 1, 2, 64)]
EDGE_COUNTS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 65]


def hashlib_leaves(lines: np.ndarray) -> list[bytes]:
    """SHA-256(0x00 || row) of each row, one hashlib call a row."""
    return [hashlib.sha256(b"\x00" + row.tobytes()).digest() for row in lines]


def random_lines(seed: int, count: int, width: int, dtype: str = "u1") -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max, (count, width), dtype=dtype, endpoint=True)


def test_paths() -> None:
    """The SIMD paths, then hashlib, then portable C (which OpenSSL beats): the default is never
    the portable path."""
    assert "hashlib" in PATHS and PATHS[0] != "portable"
    if kernel._kernel:
        assert PATHS[-2:] == ["hashlib", "portable"]
        assert PATHS[:-2] == [p for p in kernel._kernel.leaf_paths() if p != "portable"]


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(width=st.one_of(st.integers(1, 300), st.sampled_from(EDGE_WIDTHS), st.integers(1, 20_000)),
       count=st.one_of(st.sampled_from(EDGE_COUNTS), st.integers(0, 70)),
       threads=st.sampled_from([1, 2]), seed=st.integers(0, 2**32))
def test_every_path_matches_hashlib(path: str, width: int, count: int, threads: int, seed: int) -> None:
    lines = random_lines(seed, count, width)
    assert kernel.leaf_hashes(lines, threads=threads, path=path) == hashlib_leaves(lines)


@pytest.mark.parametrize("path", C_PATHS)
def test_every_width_to_three_blocks(path: str) -> None:
    """Widths 0-200 (the message's blocks 1-4, every padding position) at counts that leave every
    remainder a SIMD path can have, on one thread and on two."""
    for width in range(201):
        for count, threads in ((1, 1), (5, 1), (16, 1), (21, 2), (44, 2)):
            lines = random_lines(width * 100 + count, count, width)
            assert kernel.leaf_hashes(lines, threads=threads, path=path) == hashlib_leaves(lines), (width, count)


@pytest.mark.parametrize("path", C_PATHS)
def test_many_rows_over_two_threads(path: str) -> None:
    """Enough rows for many chunks a thread: every row's hash lands in its own place."""
    lines = random_lines(7, 1000 + 13, 131)
    want = hashlib_leaves(lines)
    assert kernel.leaf_hashes(lines, threads=2, path=path) == want
    assert kernel.leaf_hashes(lines[::-1], threads=2, path=path) == want[::-1]


@pytest.mark.parametrize("path", PATHS)
def test_int32_rows(path: str) -> None:
    c = random_lines(3, 67, 300, "<i4")
    assert kernel.leaf_hashes(c, threads=2, path=path) == hashlib_leaves(c) == work.leaf_hashes(c)


@pytest.mark.parametrize("path", PATHS)
def test_columns_of_a_column_major_b(path: str) -> None:
    b = np.asfortranarray(random_lines(4, 640, 96, "i1"))
    assert kernel.leaf_hashes(b.T, path=path) == hashlib_leaves(np.ascontiguousarray(b.T))


def test_column_major_b_is_hashed_without_a_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """commit_b hands the kernel the columns of a Fortran-order B where they lie."""
    if not C_PATHS:
        pytest.skip("the C kernel is not built")
    b = np.asfortranarray(random_lines(5, 256, 64, "i1"))
    seen = []
    original = kernel._kernel.leaf_hashes

    def spy(lines, *args, **kwargs):
        seen.append(lines)
        return original(lines, *args, **kwargs)

    monkeypatch.setattr(kernel._kernel, "leaf_hashes", spy)
    assert kernel.commit_b(b) == work.commit_b(b)
    assert len(seen) == 1 and np.shares_memory(seen[0], b)


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_lines_are_hashed_as_they_read(path: str) -> None:
    a = random_lines(6, 40, 300, "i1")
    for view in (a[:, ::3], a[::2], a.T, a[5:30, 7:250]):
        assert kernel.leaf_hashes(view, path=path) == hashlib_leaves(np.ascontiguousarray(view))


@pytest.mark.parametrize("path", PATHS)
def test_only_two_dimensional_lines(path: str) -> None:
    for shape in ((64,), (4, 4, 4), ()):
        with pytest.raises(ValueError, match="2-D"):
            kernel.leaf_hashes(np.zeros(shape, np.int8), path=path)


def test_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="not available"):
        kernel.leaf_hashes(np.zeros((4, 4), np.int8), path="sha512")


def test_without_the_extension_hashlib_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel, "_kernel", None)
    a = random_lines(8, 33, 100, "i1")
    assert kernel.leaf_paths() == ["hashlib"]
    assert kernel.leaf_hashes(a) == hashlib_leaves(a)
    assert kernel.commit_a(a) == work.commit_a(a)


@settings(max_examples=15, deadline=None)
@given(m=st.integers(1, 130), n=st.integers(1, 130), k=st.integers(1, 700), seed=st.integers(0, 2**32),
       fortran=st.booleans(), path=st.sampled_from(PATHS), threads=st.sampled_from([1, 2]))
def test_commitments_match_consensus(m: int, n: int, k: int, seed: int, fortran: bool, path: str,
                                     threads: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-64, 65, (m, k), dtype=np.int8)
    b = rng.integers(-64, 65, (k, n), dtype=np.int8)
    b = np.asfortranarray(b) if fortran else b
    c = rng.integers(-2**31, 2**31, (m, n), dtype=np.int64)  # commit_result takes it as int32
    assert kernel.commit_a(a, threads, path) == work.commit_a(a)
    assert kernel.commit_b(b, threads, path) == work.commit_b(b)
    assert kernel.commit_result(c, threads, path) == work.commit_result(c)


def random_hashes(seed: int, count: int) -> list[bytes]:
    return [row.tobytes() for row in random_lines(seed, count, 32)]


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=40, deadline=None)
@given(count=st.one_of(st.sampled_from(EDGE_COUNTS), st.integers(0, 300)),
       group=st.one_of(st.sampled_from([1, 2, 3, 16, 32, 33, 64, 1 << 20]), st.integers(1, 80)),
       seed=st.integers(0, 2**32))
def test_merkle_roots_match_consensus(path: str, count: int, group: int, seed: int) -> None:
    """Runs whole or not, of a power of two or not, levels of every width a SIMD path can meet."""
    hashes = random_hashes(seed, count)
    assert kernel.merkle_roots(hashes, group, path=path) == roots_of_groups(hashes, group)


@pytest.mark.parametrize("path", PATHS)
def test_merkle_roots_of_a_large_matrix(path: str) -> None:
    """4096 and 4097 rows: A's 128 group roots (and one of a single row), and H_C's whole root."""
    hashes = random_hashes(10, 4097)
    for count in (4096, 4097):
        for group in (32, count):
            assert kernel.merkle_roots(hashes[:count], group, path=path) == roots_of_groups(hashes[:count], group)


def test_bad_merkle_arguments_are_refused() -> None:
    if not C_PATHS:
        pytest.skip("the C kernel is not built")
    with pytest.raises(ValueError, match="expected 3 hashes of 32 bytes"):
        kernel._kernel.merkle_roots(bytes(95), 3, 32)
    with pytest.raises(ValueError, match="at least one"):
        kernel._kernel.merkle_roots(b"", 0, 32)
    with pytest.raises(ValueError, match="group must be at least 1"):
        kernel._kernel.merkle_roots(bytes(64), 2, 0)
    with pytest.raises(ValueError, match="not available"):
        kernel.merkle_roots([bytes(32)], 1, path="sha512")
    assert kernel.merkle_roots([], 32) == []


def test_hashing_beside_a_mining_call() -> None:
    """Leaf hashes asked for while a mining call holds the kernel's threads (the pool): the caller
    hashes alone, and both calls come out right."""
    a, b = operands(11, 256, 256, 1024)
    header = template(a, b, 64)
    lines = random_lines(9, 3000, 1000)
    want = hashlib_leaves(lines)
    got: list[list[bytes]] = []
    hasher = threading.Thread(target=lambda: got.extend(kernel.leaf_hashes(lines, threads=2) for _ in range(4)))
    hasher.start()
    tiles = kernel.all_tiles(header, a, b, threads=2)
    hasher.join()
    assert got == [want] * 4
    assert tiles == kernel.all_tiles(header, a, b, threads=1)
