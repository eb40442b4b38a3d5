"""The C kernel and the numpy reference against consensus.work (PROTOCOL §4)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus import work
from miner import kernel, reference

from .helpers import operands, template

C_PATHS = [p for p in kernel.available_paths() if p != "numpy"]


@st.composite
def cases(draw: st.DrawFn) -> tuple:
    r = draw(st.sampled_from([16, 32, 64, 128]))
    k = r * draw(st.integers(1, 1024 // r))  # more than 16 chunks exercises the lane rotation
    m = 32 * draw(st.integers(1, 8))
    n = 32 * draw(st.integers(1, 8))
    target = draw(st.sampled_from([None, 1, (1 << 256) - 1]))
    return m, n, k, r, draw(st.integers(0, 2**32)), draw(st.integers(0, 2**63)), target


def consensus_tiles(header, a, b) -> list[work.TileResult]:
    s = work.seeds(header)
    return work.all_tiles(*work.noisy_operands(a, b, s, header.work.r), s, header)


@pytest.mark.parametrize("path", C_PATHS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases(), threads=st.integers(1, 3))
def test_c_paths_match_consensus(path: str, case: tuple, threads: int) -> None:
    m, n, k, r, seed, nonce, target = case
    a, b = operands(seed, m, n, k)
    header = template(a, b, r, nonce, target)
    assert kernel.all_tiles(header, a, b, threads=threads, path=path) == consensus_tiles(header, a, b)


@settings(max_examples=8, deadline=None)
@given(case=cases())
def test_reference_matches_consensus(case: tuple) -> None:
    m, n, k, r, seed, nonce, target = case
    a, b = operands(seed, m, n, k)
    header = template(a, b, r, nonce, target)
    assert kernel.all_tiles(header, a, b, path="numpy") == consensus_tiles(header, a, b)


@pytest.mark.parametrize("path", kernel.available_paths())
@settings(max_examples=6, deadline=None)
@given(case=cases())
def test_matmul_is_exact(path: str, case: tuple) -> None:
    m, n, k, r, seed, nonce, target = case
    a, b = operands(seed, m, n, k)
    a[0, 0], b[-1, -1] = -64, 64  # the extremes of the allowed range
    header = template(a, b, r, nonce, target)
    product, winners = kernel.matmul(a, b, header, threads=2, path=path)
    assert product.dtype == np.int32
    assert np.array_equal(product, a.astype(np.int64) @ b.astype(np.int64))
    assert winners == [t for t in consensus_tiles(header, a, b) if t.wins]


@pytest.mark.parametrize("path", C_PATHS)
def test_noisy_product_and_plain_gemm(path: str) -> None:
    a, b = operands(5, 96, 64, 256)
    header = template(a, b, 64)
    s = work.seeds(header)
    a_noisy, b_noisy = work.noisy_operands(a, b, s, 64)
    result = kernel.run(header, a, b, want_product=True, path=path)
    assert np.array_equal(result.product, work.int8_product(a_noisy, b_noisy))
    assert np.array_equal(kernel.gemm(a_noisy, b_noisy, block=32, path=path), work.int8_product(a_noisy, b_noisy))


@pytest.mark.parametrize("path", C_PATHS)
def test_product_into_unaligned_buffer(path: str) -> None:
    """C off a 64-byte boundary is written with ordinary stores (the streaming ones need it aligned)."""
    a, b = operands(6, 64, 96, 128)
    raw = np.zeros(64 * 96 + 16, np.int32)
    start = (-raw.ctypes.data % 64) // 4 + 1
    c = raw[start:start + 64 * 96]
    kernel._kernel.gemm(a, b, c, 64, 96, 128, 32, path=path)
    assert np.array_equal(c.reshape(64, 96), a.astype(np.int32) @ b.astype(np.int32))


@pytest.mark.parametrize("path", C_PATHS)
def test_mine_returns_winners_only(path: str) -> None:
    a, b = operands(9, 64, 128, 128)
    header = template(a, b, 32)
    everything = consensus_tiles(header, a, b)
    winners = kernel.mine(header, a, b, path=path)
    assert 0 < len(winners) < len(everything)
    assert winners == [t for t in everything if t.wins]


@pytest.mark.parametrize("path", C_PATHS)
def test_rejects_entries_out_of_range(path: str) -> None:
    a, b = operands(3, 32, 32, 64)
    a[3, 5] = 65
    with pytest.raises(ValueError, match="outside"):
        kernel.run(template(a, b, 16), a, b, path=path)
    with pytest.raises(ValueError):
        kernel.matmul(a, b, template(a, b, 16), path=path)
    with pytest.raises(ValueError, match="outside"):
        kernel.gemm(np.full((32, 64), -128, np.int8), b, path=path)


@pytest.mark.parametrize("path", kernel.available_paths())
def test_many_chunks_rotate_lanes(path: str) -> None:
    a, b = operands(11, 32, 64, 16 * 40)
    header = template(a, b, 16)
    assert kernel.all_tiles(header, a, b, path=path) == consensus_tiles(header, a, b)


def test_rejects_shape_mismatch() -> None:
    a, b = operands(3, 32, 32, 64)
    with pytest.raises(ValueError):
        kernel.run(template(a, b, 16), a[:, :32], b)


@pytest.mark.parametrize("path", C_PATHS)
def test_rejects_rank_above_every_network(path: str) -> None:
    a, b = operands(4, 32, 32, 2048)
    with pytest.raises(ValueError, match="r must be at most 1024"):
        kernel.all_tiles(template(a, b, 2048), a, b, path=path)


def test_reference_chunk_xors_match_consensus() -> None:
    a, b = operands(4, 64, 64, 96)
    xors, product = reference.chunk_xors(a, b, 32)
    tile = work.chunk_xors(a[32:64], b[:, 0:32], 32)
    assert np.array_equal(xors[:, 2], tile)  # tile (1, 0) in row-major order
    assert np.array_equal(product, a.astype(np.int64) @ b)


def test_selftest_and_paths() -> None:
    assert kernel.available_paths()[-1] == "numpy"
    assert kernel.active_path in kernel.available_paths()
    assert kernel.selftest()


# no x86 core issues more than four 512-bit (64 MAC) or 256-bit (32 MAC) multiplies a cycle, nor
# more than one TDPBSSD (16·16·64 MACs) every 16 cycles (twice that allowed for the clock's
# measurement); a loop the compiler had folded away would read as far more
PEAK_BOUND = {"amx": 2 * 1024, "avx512": 4 * 64}


@pytest.mark.parametrize("path", C_PATHS)
def test_peak_is_physical(path: str) -> None:
    macs_per_cycle, ghz = kernel.peak(path)
    if path == "portable":
        assert (macs_per_cycle, ghz) == (0, 0)
        return
    bound = PEAK_BOUND.get(path, 4 * 32)
    assert 0 < macs_per_cycle <= bound
    assert 0.1 < ghz < 10


@pytest.mark.parametrize("path", C_PATHS)
def test_peak_together_is_physical_and_checks_its_threads(path: str) -> None:
    """Threads running the loop at once reach no more than that many cores could (at 10 GHz)."""
    for threads in (1, 2, 3):
        together = kernel.peak_together(threads, path)
        assert together == 0 if path == "portable" else 0 < together <= threads * PEAK_BOUND.get(path, 4 * 32) * 10e9
    for threads in (0, -1, 10**6):
        with pytest.raises(ValueError, match="threads must be in"):
            kernel.peak_together(threads, path)


# (m, n, k, r) past the hypothesis cases: up to 256 chunks (lane rotation; the recovery's int16
# bound exceeded, so L·R is split into bytes: X at k/r = 128, Y too at 256), a K-block cut short
# (r = 48: blocks of 480), more rows than one 256-row unit and strips of 48 + 16 columns (n = 160);
# on AMX: three byte planes of L·R (r = 16), TDPBSSDs of 48 and 4 k-values, and E_L rows of 256
# and 512 entries (the noise gathered from 2 and 4 windows of 128); r = 52: the noise factors
# transposed 16 entries at a time and a tail of 4, and L's rows of X 16 at a time and a tail of 4; r = 44: k
# mod 64 = 52, so A' packed 64 k-values at a time (AVX-512 with VBMI) ends on an odd quad
DEEP = [(64, 96, 2048, 16), (288, 160, 624, 48), (32, 32, 1024, 4), (64, 64, 768, 256), (32, 64, 1024, 512),
        (64, 64, 520, 52), (64, 32, 308, 44)]


@pytest.mark.parametrize("path", C_PATHS)
@pytest.mark.parametrize("shape", DEEP)
def test_deep_cases_match_consensus(path: str, shape: tuple) -> None:
    m, n, k, r = shape
    a, b = operands(sum(shape), m, n, k)
    a[0], b[:, 0] = 64, -64  # extremes of the range along a whole line
    header = template(a, b, r)
    want = consensus_tiles(header, a, b)
    assert kernel.all_tiles(header, a, b, threads=3, path=path) == want
    product, winners = kernel.matmul(a, b, header, threads=2, path=path)
    assert np.array_equal(product, a.astype(np.int64) @ b.astype(np.int64))
    assert winners == [t for t in want if t.wins]


@pytest.mark.parametrize("path", C_PATHS)
@settings(max_examples=10, deadline=None)
@given(case=cases(), odd_k=st.booleans())
def test_a_column_major_b_gives_the_same_results(path: str, case: tuple, odd_k: bool) -> None:
    """B as the node serves it (Fortran order) is packed from its columns: the same tiles, winners,
    recovered product and plain product as from its rows; k not a multiple of 64 (r = 44) takes
    the column-major Y's tail."""
    m, n, k, r, seed, nonce, target = case
    if odd_k:
        k, r = 44 * (1 + seed % 9), 44
    a, b = operands(seed, m, n, k)
    b[:, -1] = -64  # the extremes along a whole column
    columns = np.asfortranarray(b)
    header = template(a, b, r, nonce, target)
    assert kernel.all_tiles(header, a, columns, threads=2, path=path) == consensus_tiles(header, a, b)
    product, winners = kernel.matmul(a, columns, header, threads=2, path=path)
    assert np.array_equal(product, a.astype(np.int64) @ b.astype(np.int64))
    assert winners == kernel.matmul(a, b, header, threads=2, path=path)[1]
    assert np.array_equal(kernel.gemm(a, columns, block=r, path=path), kernel.gemm(a, b, block=r, path=path))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
@pytest.mark.parametrize("path", C_PATHS)
def test_worker_threads_persist_across_calls(path: str) -> None:
    a, b = operands(6, 64, 64, 128)
    header = template(a, b, 32)

    def helpers_after(count: int) -> set[str]:
        kernel.matmul(a, b, header, threads=count, path=path)
        return {task.name for task in Path("/proc/self/task").iterdir()
                if (task / "comm").read_text().strip() == "pouw-kernel"}

    first = helpers_after(3)
    assert len(first) >= 2  # the helpers of a 3-thread call outlive it
    assert helpers_after(2) == first  # fewer wanted: the spare one sleeps
    assert helpers_after(3) == first  # woken again, none spawned
