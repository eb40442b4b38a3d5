"""The one place for blocks the chain cannot take yet, under one bound on count and bytes
(PROTOCOL §5, §7):

* orphans — parent unknown: held until its header or block arrives;
* future blocks — timestamp too far ahead: retried;
* downloads — header known, parent's data not here yet (blocks arrive out of order
  from several peers): held so blocks connect in order, in groups.

Over the bound the oldest go first: an orphan or a future block is dropped (a peer
has it; sync asks again), a download is handed back to be stored out of order, so
nothing that was asked for is lost.  Each block keeps the ``source`` it came with (a
peer, for sync), so a verdict reached when it leaves names who sent it.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from enum import Enum

from consensus.block import ReceivedBlock

Source = Hashable | None
Waiting = tuple[ReceivedBlock, Source]


class Kind(Enum):
    ORPHAN = "orphan"
    FUTURE = "future"
    DOWNLOAD = "download"


class WaitingBlocks:
    """Blocks by hash in arrival order, each waiting for its parent or for the clock."""

    def __init__(self, max_count: int = 256, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[bytes, tuple[ReceivedBlock, Source, Kind]] = OrderedDict()
        self._by_prev: dict[bytes, dict[bytes, None]] = {}  # orphans, downloads: parent → children in arrival order
        self._future: dict[bytes, None] = {}  # future blocks in arrival order
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def kind(self, block_hash: bytes) -> Kind | None:
        """How ``block_hash`` waits, or None if it does not (safe from any thread)."""
        item = self._blocks.get(block_hash)
        return None if item is None else item[2]

    def add_orphan(self, block: ReceivedBlock, source: Source = None) -> list[Waiting]:
        """Hold a block whose parent is unknown; returns the downloads evicted for room (to store)."""
        return self._add(block, source, Kind.ORPHAN)

    def add_future(self, block: ReceivedBlock, source: Source = None) -> list[Waiting]:
        """Hold a block whose timestamp is too far ahead; returns the downloads evicted (to store)."""
        return self._add(block, source, Kind.FUTURE)

    def add_download(self, block: ReceivedBlock, source: Source = None) -> list[Waiting]:
        """Hold a block whose parent's data has not arrived; returns the downloads evicted (to
        store), this one included if it alone is over the byte bound."""
        if len(block.raw) > self.max_bytes:
            return [(block, source)]
        return self._add(block, source, Kind.DOWNLOAD)

    def _add(self, block: ReceivedBlock, source: Source, kind: Kind) -> list[Waiting]:
        if block.hash in self._blocks or len(block.raw) > self.max_bytes:
            return []
        self._blocks[block.hash] = (block, source, kind)
        self.bytes += len(block.raw)
        if kind is Kind.FUTURE:
            self._future[block.hash] = None
        else:
            self._by_prev.setdefault(block.block.header.prev_hash, {})[block.hash] = None
        evicted: list[Waiting] = []
        while len(self._blocks) > self.max_count or self.bytes > self.max_bytes:
            oldest = next(iter(self._blocks))
            was_download = self._blocks[oldest][2] is Kind.DOWNLOAD
            item = self._remove(oldest)
            if was_download:
                evicted.append(item)
        return evicted

    def _remove(self, block_hash: bytes) -> Waiting:
        block, source, kind = self._blocks.pop(block_hash)
        if kind is Kind.FUTURE:
            del self._future[block_hash]
        else:
            prev = block.block.header.prev_hash
            siblings = self._by_prev[prev]
            siblings.pop(block_hash, None)
            if not siblings:
                del self._by_prev[prev]
        self.bytes -= len(block.raw)
        return block, source

    def take(self, block_hash: bytes) -> Waiting | None:
        """Remove and return one waiting block (to be judged now instead)."""
        return self._remove(block_hash) if block_hash in self._blocks else None

    def pop_children(self, parent_hash: bytes) -> list[Waiting]:
        """Remove and return the orphans and downloads whose parent is ``parent_hash``."""
        return [self._remove(h) for h in list(self._by_prev.get(parent_hash, ()))]

    def pop_future(self) -> list[Waiting]:
        """Remove and return the future blocks, oldest first."""
        return [self._remove(h) for h in list(self._future)]

    def downloads(self) -> list[bytes]:
        """The downloads waiting (their headers must stay while they do)."""
        return [h for h, item in self._blocks.items() if item[2] is Kind.DOWNLOAD]

    def clear(self) -> None:
        self._blocks.clear()
        self._by_prev.clear()
        self._future.clear()
        self.bytes = 0

    def roots(self) -> list[bytes]:
        """Missing parents the orphans wait for (what p2p should ask peers for)."""
        return list(dict.fromkeys(item[0].block.header.prev_hash for item in self._blocks.values()
                                  if item[2] is Kind.ORPHAN and item[0].block.header.prev_hash not in self._blocks))
