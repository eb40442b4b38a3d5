"""Matrices as .npy bodies: sent as the header and the array's own buffer
(``client.market.npy_parts``: the bytes ``np.save`` writes), and read from an answer straight
into the array (``receive_npy``), which refuses a body that does not match its header."""
from __future__ import annotations

import io

import numpy as np
import pytest

from client.market import MAX_NPY_BYTES, npy_bytes, npy_parts, receive_npy


def saved(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@pytest.mark.parametrize("order", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.int8, np.dtype("<i4")])
def test_npy_parts_are_the_saved_file(order: str, dtype) -> None:
    base = np.random.default_rng(3).integers(-64, 65, (96, 130)).astype(dtype)
    array = {"C": base, "F": np.asfortranarray(base), "strided": base[::3, 1::2]}[order]
    parts = npy_parts(array)
    assert b"".join(parts) == npy_bytes(array) == saved(array)
    assert np.array_equal(np.load(io.BytesIO(npy_bytes(array)), allow_pickle=False), array)


def test_the_data_part_is_the_array_itself() -> None:
    array = np.asfortranarray(np.zeros((64, 32), np.int8))
    header, data = npy_parts(array)
    assert np.shares_memory(np.frombuffer(data, np.int8), array) and data.nbytes == array.nbytes


class Body(io.BytesIO):
    """An HTTP answer's body as ``receive_npy`` sees it: ``length`` is the bytes left, and
    ``readinto`` hands out at most ``chunk`` bytes a call, as a socket does."""

    def __init__(self, data: bytes, chunk: int = 1000, length: int | None = None) -> None:
        super().__init__(data)
        self.chunk, self.declared = chunk, length

    @property
    def length(self) -> int:
        return (self.declared if self.declared is not None else len(self.getbuffer())) - self.tell()

    def readinto(self, buffer) -> int:
        return super().readinto(memoryview(buffer)[:self.chunk])


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.int8, np.dtype("<i4")])
def test_receive_npy_reads_the_array_in_its_own_order(order: str, dtype) -> None:
    base = np.random.default_rng(4).integers(-64, 65, (96, 130)).astype(dtype)
    array = base if order == "C" else np.asfortranarray(base)
    got = receive_npy(Body(saved(array)))
    assert np.array_equal(got, array) and got.dtype == array.dtype
    assert got.flags.f_contiguous == (order == "F") and got.flags.writeable


def test_receive_npy_refuses_a_body_that_does_not_match_its_header() -> None:
    good = saved(np.zeros((64, 32), np.int8))
    with pytest.raises(ValueError, match="neither int8 nor int32"):
        receive_npy(Body(saved(np.zeros((4, 4), np.float64))))
    with pytest.raises(ValueError, match="not 2048"):  # a byte short
        receive_npy(Body(good[:-1]))
    with pytest.raises(ValueError, match="ended after"):  # a length that the body does not keep
        receive_npy(Body(good[:-100], length=len(good)))
    with pytest.raises(ValueError, match="larger than any job's matrix"):
        receive_npy(Body(saved(np.zeros((0, 0), np.int8)).replace(b"(0, 0)", f"({MAX_NPY_BYTES + 1}, 1)".encode())))
    with pytest.raises(ValueError):
        receive_npy(Body(b"not a numpy file at all"))
