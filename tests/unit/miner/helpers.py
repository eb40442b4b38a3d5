"""Templates and operands for the miner tests."""
from __future__ import annotations

import numpy as np

from consensus.block import Header, Ticket, WorkSpec
from consensus.work import commit_a, commit_b


def template(a: np.ndarray, b: np.ndarray, r: int, nonce: int = 1, target: int | None = None) -> Header:
    """A regtest-like template for A·B; by default about half of the tiles win."""
    (m, k), n = a.shape, b.shape[1]
    if target is None:
        target = (1 << 256) // (1024 * k * 2)
    return Header(2, 4, 7, bytes(32), 1_700_000_000, target, bytes(32), bytes(32), bytes(20), nonce,
                  WorkSpec(m, n, k, r, commit_a(a), commit_b(b)), Ticket(0, 0, bytes(32)))


def operands(seed: int, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(-64, 65, (m, k), dtype=np.int8), rng.integers(-64, 65, (k, n), dtype=np.int8))
