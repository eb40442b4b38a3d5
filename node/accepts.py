"""The height at which each job was settled: that of the best-chain block whose JOB_ACCEPT
settled it (PROTOCOL §6), read from the blocks as the chain grows.

A job's record holds its claim height but not its accept's, and nothing changes a settled
job. So the matrix store's prune (``JobMarket.prune``) can let a settled job's matrices go
a window after its accept, instead of a window after ``claim + window``, the latest height
it could have been settled at: on main, where the window is 100 blocks, about half as long.
The last two windows of blocks are read when the node starts, and accepts older than that
are past use: that bound has passed for them too.
"""
from __future__ import annotations

from consensus.tx import JobAccept


class AcceptHeights:
    """job id → the height of its JOB_ACCEPT on the best chain, over the last ``horizon``
    blocks; each block read once, and the horizon read again after a reorg below the last
    block read."""

    def __init__(self, chain, horizon: int) -> None:
        self.chain = chain
        self.horizon = horizon
        self._seen: dict[bytes, tuple[int, bytes]] = {}  # job id → (height, block hash)
        self._read_to: tuple[int, bytes] | None = None  # the last block read: (height, hash)

    def update(self) -> None:
        """Read the best-chain blocks not read yet; forget accepts past the horizon."""
        chain = self.chain
        tip = chain.tip.height
        first = max(1, tip - self.horizon + 1)
        if self._read_to is not None and chain.hash_at(self._read_to[0]) == self._read_to[1]:
            first = max(first, self._read_to[0] + 1)
        for height in range(first, tip + 1):
            block_hash = chain.hash_at(height)
            block = chain.block(block_hash) if block_hash is not None else None
            if block is None:  # the chain moved under us: the rest is read next time
                break
            for tx in block.txs:
                if isinstance(tx.payload, JobAccept):
                    self._seen[tx.payload.job_id] = (height, block_hash)
            self._read_to = (height, block_hash)
        self._seen = {job_id: seen for job_id, seen in self._seen.items() if seen[0] > tip - self.horizon}

    def height(self, job_id: bytes) -> int | None:
        """The height of the best-chain block whose JOB_ACCEPT settled ``job_id``, if read."""
        seen = self._seen.get(job_id)
        return seen[0] if seen is not None and self.chain.hash_at(seen[0]) == seen[1] else None
