"""Matrices as .npy request bodies (``client.market.npy_parts``): the bytes ``np.save`` writes,
sent as the header and the array's own buffer."""
from __future__ import annotations

import io

import numpy as np
import pytest

from client.market import npy_array, npy_bytes, npy_parts


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
    assert np.array_equal(npy_array(npy_bytes(array)), array)


def test_the_data_part_is_the_array_itself() -> None:
    array = np.asfortranarray(np.zeros((64, 32), np.int8))
    header, data = npy_parts(array)
    assert np.shares_memory(np.frombuffer(data, np.int8), array) and data.nbytes == array.nbytes
