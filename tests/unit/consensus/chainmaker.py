"""Small helpers to build valid regtest/dev blocks for consensus tests."""
from __future__ import annotations

import numpy as np

from consensus import work
from consensus.block import Block, Header, Ticket, WorkSpec, tx_root
from consensus.difficulty import next_target
from consensus.params import Network


def random_matrices(rng: np.random.Generator, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(-64, 65, size=(m, k), dtype=np.int8)
    b = rng.integers(-64, 65, size=(k, n), dtype=np.int8)
    return a, b


def child_block(network: Network, parent: Header, txs: tuple = (), *, miner: bytes = b"\x11" * 20,
                timestamp: int | None = None, dims: tuple[int, int, int, int] = (32, 32, 64, 16),
                seed: int = 0) -> Block:
    """A valid child of ``parent`` (every tile wins on regtest), solved with the reference."""
    rng = np.random.default_rng(seed)
    m, n, k, r = dims
    a, b = random_matrices(rng, m, n, k)
    ts = timestamp if timestamp is not None else parent.timestamp + network.block_time
    header = Header(1, network.chain_id, parent.height + 1, parent.hash, ts,
                    next_target(network, parent.timestamp, parent.height), tx_root(txs), miner, seed,
                    WorkSpec(m, n, k, r, work.commit_a(a), work.commit_b(b)), Ticket(0, 0, bytes(32)))
    block = work.solve(header, a, b, txs)
    assert block is not None, "no tile won; use regtest or a higher target"
    return block
