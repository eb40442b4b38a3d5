"""The one place for blocks the chain cannot take yet: orphans (parent unknown, held
until it arrives) and future blocks (timestamp too far ahead, retried), under one
bound on count and bytes, oldest evicted first (PROTOCOL §5, §7)."""
from __future__ import annotations

from collections import OrderedDict

from consensus.block import ReceivedBlock


class WaitingBlocks:
    """Blocks by hash in arrival order, each waiting for its parent or for the clock."""

    def __init__(self, max_count: int = 256, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[bytes, ReceivedBlock] = OrderedDict()
        self._by_prev: dict[bytes, dict[bytes, None]] = {}  # orphans: parent → children in arrival order
        self._future: dict[bytes, None] = {}  # future blocks in arrival order
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def has_orphan(self, block_hash: bytes) -> bool:
        return block_hash in self._blocks and block_hash not in self._future

    def add_orphan(self, block: ReceivedBlock) -> None:
        if self._admit(block):
            self._by_prev.setdefault(block.block.header.prev_hash, {})[block.hash] = None
            self._evict()

    def add_future(self, block: ReceivedBlock) -> None:
        if self._admit(block):
            self._future[block.hash] = None
            self._evict()

    def _admit(self, block: ReceivedBlock) -> bool:
        if block.hash in self._blocks or len(block.raw) > self.max_bytes:
            return False
        self._blocks[block.hash] = block
        self.bytes += len(block.raw)
        return True

    def _evict(self) -> None:
        while len(self._blocks) > self.max_count or self.bytes > self.max_bytes:
            self._remove(next(iter(self._blocks)))

    def _remove(self, block_hash: bytes) -> ReceivedBlock:
        block = self._blocks.pop(block_hash)
        if block_hash in self._future:
            del self._future[block_hash]
        else:
            prev = block.block.header.prev_hash
            siblings = self._by_prev[prev]
            siblings.pop(block_hash, None)
            if not siblings:
                del self._by_prev[prev]
        self.bytes -= len(block.raw)
        return block

    def pop_children(self, parent_hash: bytes) -> list[ReceivedBlock]:
        """Remove and return the orphans whose parent is ``parent_hash``."""
        return [self._remove(h) for h in list(self._by_prev.get(parent_hash, ()))]

    def pop_future(self) -> list[ReceivedBlock]:
        """Remove and return the future blocks, oldest first."""
        return [self._remove(h) for h in list(self._future)]

    def clear(self) -> None:
        self._blocks.clear()
        self._by_prev.clear()
        self._future.clear()
        self.bytes = 0

    def roots(self) -> list[bytes]:
        """Missing parents the orphans wait for (what p2p should ask peers for)."""
        return [p for p in self._by_prev if not self.has_orphan(p)]
