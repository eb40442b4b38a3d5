"""The shared `work` vectors through every miner path (PROTOCOL §4)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from consensus import work
from consensus.block import Header
from consensus.vectors import header_from_fields
from miner import kernel

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "v2.json"  # a copy of ../shared/vectors/v2.json


def _cases() -> list[dict]:
    return json.loads(VECTORS.read_text())["work"]


def _load(case: dict) -> tuple[Header, np.ndarray, np.ndarray]:
    header = header_from_fields(case["header_fields"])
    spec = header.work
    a = np.frombuffer(bytes.fromhex(case["A_hex"]), np.int8).reshape(spec.m, spec.k)
    b = np.frombuffer(bytes.fromhex(case["B_hex"]), np.int8).reshape(spec.k, spec.n)
    return header, a, b


@pytest.mark.parametrize("path", kernel.available_paths())
@pytest.mark.parametrize("index", range(len(_cases())))
def test_work_vector(path: str, index: int) -> None:
    case = _cases()[index]
    header, a, b = _load(case)
    expect = case["expect"]
    assert (work.commit_a(a).hex(), work.commit_b(b).hex()) == (expect["H_A"], expect["H_B"])
    assert work.seeds(header).s_a.hex() == expect["s_A"]
    got = kernel.all_tiles(header, a, b, threads=2, path=path)
    assert [(t.a, t.b, t.lanes, t.digest.hex(), t.wins) for t in got] == \
        [(t["a"], t["b"], t["M"], t["digest"], t["wins"]) for t in expect["tiles"]]
    product, winners = kernel.matmul(a, b, header, path=path)
    assert work.commit_result(product).hex() == expect["H_C"]
    assert winners == [t for t in got if t.wins]
