"""A bounded pool of blocks whose parent is not known yet (held until it arrives)."""
from __future__ import annotations

from collections import OrderedDict

from consensus.block import Block


class OrphanPool:
    """Blocks by hash in arrival order, bounded by count and bytes (oldest evicted first)."""

    def __init__(self, max_count: int = 256, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[bytes, tuple[Block, bytes]] = OrderedDict()
        self._by_prev: dict[bytes, dict[bytes, None]] = {}  # parent → children in arrival order
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self._blocks

    def add(self, block: Block, raw: bytes) -> None:
        if block.hash in self._blocks or len(raw) > self.max_bytes:
            return
        self._blocks[block.hash] = (block, raw)
        self._by_prev.setdefault(block.header.prev_hash, {})[block.hash] = None
        self.bytes += len(raw)
        while len(self._blocks) > self.max_count or self.bytes > self.max_bytes:
            self._remove(next(iter(self._blocks)))

    def _remove(self, block_hash: bytes) -> tuple[Block, bytes]:
        block, raw = self._blocks.pop(block_hash)
        siblings = self._by_prev[block.header.prev_hash]
        siblings.pop(block_hash, None)
        if not siblings:
            del self._by_prev[block.header.prev_hash]
        self.bytes -= len(raw)
        return block, raw

    def pop_children(self, parent_hash: bytes) -> list[tuple[Block, bytes]]:
        """Remove and return the orphans whose parent is ``parent_hash``."""
        return [self._remove(h) for h in list(self._by_prev.get(parent_hash, ()))]

    def pop_all(self) -> list[tuple[Block, bytes]]:
        """Remove and return every block, oldest first."""
        return [self._remove(h) for h in list(self._blocks)]

    def roots(self) -> list[bytes]:
        """Missing parents the pool waits for (what p2p should ask peers for)."""
        return [p for p in self._by_prev if p not in self._blocks]
