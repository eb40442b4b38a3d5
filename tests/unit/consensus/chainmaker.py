"""Small helpers to build valid regtest/dev blocks for consensus tests."""
from __future__ import annotations

import numpy as np

from consensus import work
from consensus.block import HEADER_VERSION, Block, Header, Ticket, WorkSpec, tx_root
from consensus.memstate import MemoryState
from consensus.params import Network
from consensus.state import Account, apply_effects, matured_payout
from consensus.validation import expected_target


def random_matrices(rng: np.random.Generator, m: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(-64, 65, size=(m, k), dtype=np.int8)
    b = rng.integers(-64, 65, size=(k, n), dtype=np.int8)
    return a, b


def funded_state(network: Network, balances: dict[bytes, tuple[int, int]]) -> MemoryState:
    """A MemoryState holding the given (balance, nonce) accounts."""
    return MemoryState(network, {a: Account(*v) for a, v in balances.items()})


def state_root_after(state: MemoryState, txs: tuple, height: int) -> bytes:
    """The state root of a block at ``height`` with ``txs`` on ``state`` (§3a)."""
    diff, _ = apply_effects(state, txs, height, state.network, matured_payout(state, height, state.network))
    return diff.state_root  # type: ignore[return-value]


def child_block(network: Network, parent: Header, txs: tuple = (), *, state: MemoryState,
                miner: bytes = b"\x11" * 20, timestamp: int | None = None,
                dims: tuple[int, int, int, int] = (32, 32, 64, 16), seed: int = 0) -> Block:
    """A valid child of ``parent`` whose parent state is ``state`` (every tile wins on regtest)."""
    rng = np.random.default_rng(seed)
    m, n, k, r = dims
    a, b = random_matrices(rng, m, n, k)
    ts = timestamp if timestamp is not None else parent.timestamp + network.block_time
    header = Header(HEADER_VERSION, network.chain_id, parent.height + 1, parent.hash, ts,
                    expected_target(network, parent, [parent.timestamp]), tx_root(txs),
                    state_root_after(state, txs, parent.height + 1), miner, seed,
                    WorkSpec(m, n, k, r, work.commit_a(a), work.commit_b(b)), Ticket(0, 0, bytes(32)))
    block = work.solve(header, a, b, txs)
    assert block is not None, "no tile won; use regtest or a higher target"
    return block


def snapshot(state: MemoryState) -> tuple:
    """Everything the state holds, comparable with ==."""
    return dict(state.accounts), dict(state.jobs), state.lanes().to_bytes()
