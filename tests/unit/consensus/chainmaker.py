"""Small helpers to build valid regtest/dev blocks for consensus tests."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from consensus import work
from consensus.block import Block, Header, Ticket, WorkSpec, tx_root
from consensus.difficulty import next_target
from consensus.params import Network
from consensus.state import Account, Job, StateDiff


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


class MemoryView:
    """A dict-backed StateView that applies diffs, standing in for the store; the due
    index is a multiset, as consensus.state.StateDiff documents."""

    def __init__(self, balances: dict[bytes, tuple[int, int]] | None = None) -> None:
        self.accounts = {a: Account(*v) for a, v in (balances or {}).items()}
        self.jobs: dict[bytes, Job] = {}
        self.due: Counter[tuple[int, bytes]] = Counter()
        self.payouts: dict[int, tuple[bytes, int]] = {}

    def account(self, address: bytes) -> Account | None:
        return self.accounts.get(address)

    def job(self, job_id: bytes) -> Job | None:
        return self.jobs.get(job_id)

    def jobs_due(self, height: int) -> Iterable[bytes]:
        return [j for (h, j), count in self.due.items() if h == height and count > 0]

    def block_payout(self, height: int) -> tuple[bytes, int]:
        return self.payouts[height]

    def apply(self, diff: StateDiff) -> None:
        for a, v in diff.accounts.items():
            if v is None:
                self.accounts.pop(a, None)
            else:
                self.accounts[a] = v
        for j, job in diff.jobs.items():
            if job is None:
                self.jobs.pop(j, None)
            else:
                self.jobs[j] = job
        self.due.update(diff.due_add)
        self.due.subtract(diff.due_remove)
        self.due = +self.due  # drop entries whose count reached zero

    def snapshot(self) -> tuple:
        return dict(self.accounts), dict(self.jobs), dict(self.due)
