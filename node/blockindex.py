"""The in-memory block tree: one entry per known header, its status and cumulative work.

The best chain is the valid chain with the most work; ties go to the block whose
data arrived first (PROTOCOL §4, "Block work").  ``seq`` records that order.

A header-only entry that no entry with data descends from is *loose*: it proves
nothing (headers carry no checkable work, the proof travels with the block), so
the chain keeps loose entries in memory only, caps their number and evicts them
leaves first (``remove``).  Once a block with data arrives, its header-only
ancestors stop being loose ("pinned") and are persisted with it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator

import msgpack

from consensus.block import Header

HAVE_DATA = 1  # the block's bytes are stored
VALID = 2  # the block connected (all §5 state rules passed) at least once
FAILED = 4  # the block itself is invalid (or was invalidated by hand)
FAILED_CHILD = 8  # a descendant of an invalid block
FAILED_MASK = FAILED | FAILED_CHILD


@lru_cache(maxsize=1024)
def _decode_header(raw: bytes, block_hash: bytes) -> Header:
    """An entry's header from its canonical bytes, checked when they came in: no schema check."""
    header = Header.from_list(msgpack.unpackb(raw))
    object.__setattr__(header, "_hash", block_hash)  # the entry's key: no need to hash again
    return header


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """A known header's place in the tree: the fields the tree and a child's §5 context rules
    read (hash, prev, height, timestamp, target) and its status.  The whole header is kept as
    its canonical bytes (``raw``, decoded on use) only for entries whose block's data arrived; a
    header-only entry keeps the fields alone, a few hundred bytes (its header carries no
    checkable work, and a peer may send many)."""

    hash: bytes
    prev: bytes
    height: int
    timestamp: int
    target: int
    chain_work: int
    status: int = 0
    fees: int = 0  # total tx fees of the block, paid with its deferred reward (§5)
    seq: int = 0  # arrival order of the block's data; 0 while only the header is known
    raw: bytes | None = None  # the canonical header, kept with the block's data

    @classmethod
    def of(cls, header: Header, height: int, chain_work: int, status: int = 0, fees: int = 0, seq: int = 0, *,
           parent: "IndexEntry | None" = None, keep_header: bool = True) -> "IndexEntry":
        """The entry of ``header``; objects equal to the parent's are shared with it."""
        prev, target = header.prev_hash, header.target
        if parent is not None:
            prev = parent.hash if prev == parent.hash else prev
            target = parent.target if target == parent.target else target
        return cls(header.hash, prev, height, header.timestamp, target, chain_work, status, fees, seq,
                   header.encode() if keep_header else None)

    @property
    def header(self) -> Header | None:
        """The decoded header, or None for a header-only entry (only its fields are kept)."""
        return None if self.raw is None else _decode_header(self.raw, self.hash)

    @property
    def have_data(self) -> bool:
        return bool(self.status & HAVE_DATA)

    @property
    def failed(self) -> bool:
        return bool(self.status & FAILED_MASK)

    @property
    def valid(self) -> bool:
        return bool(self.status & VALID)

    def with_status(self, set_bits: int = 0, clear_bits: int = 0) -> "IndexEntry":
        return replace(self, status=(self.status | set_bits) & ~clear_bits)

    @property
    def rank(self) -> tuple[int, int]:
        """Sort key of a tip candidate: more work first, then earlier arrival."""
        return self.chain_work, -self.seq


class BlockIndex:
    """Entries by hash, children by parent, and which entries have their whole chain's data."""

    def __init__(self) -> None:
        self.entries: dict[bytes, IndexEntry] = {}
        # parent → its child, or its children in arrival order (most parents have one: no dict each)
        self._children: dict[bytes, bytes | dict[bytes, None]] = {}
        self.linked: set[bytes] = set()  # data for the block and all its ancestors
        self.loose: dict[bytes, None] = {}  # loose header-only entries in arrival order
        self._best_data_height: int | None = 0  # highest entry with data not failed; None: recount

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, block_hash: bytes) -> IndexEntry | None:
        return self.entries.get(block_hash)

    def children_of(self, block_hash: bytes) -> tuple[bytes, ...]:
        """The entry's children in arrival order."""
        kids = self._children.get(block_hash)
        return () if kids is None else (kids,) if isinstance(kids, bytes) else tuple(kids)

    def has_children(self, block_hash: bytes) -> bool:
        return block_hash in self._children

    def _add_child(self, parent: bytes, child: bytes) -> None:
        kids = self._children.get(parent)
        if kids is None:
            self._children[parent] = child
        elif isinstance(kids, bytes):
            self._children[parent] = {kids: None, child: None}
        else:
            kids[child] = None

    def _drop_child(self, parent: bytes, child: bytes) -> None:
        kids = self._children.get(parent)
        if isinstance(kids, dict):
            kids.pop(child, None)
            if len(kids) == 1:
                self._children[parent] = next(iter(kids))
        elif kids == child:
            del self._children[parent]

    def put(self, entry: IndexEntry) -> list[IndexEntry]:
        """Add or replace an entry (``link`` then marks it linked if its chain has data).

        A new header-only entry is loose.  An entry with data pins itself and its
        loose ancestors; those ancestors are returned (the caller persists them).
        """
        h = entry.hash
        new = h not in self.entries
        if new and entry.height > 0:
            self._add_child(entry.prev, h)
        self.entries[h] = entry
        if entry.failed and entry.height == self._best_data_height:
            self._best_data_height = None
        elif entry.have_data and not entry.failed and self._best_data_height is not None:
            self._best_data_height = max(self._best_data_height, entry.height)
        if not entry.have_data:
            if new:
                self.loose[h] = None
            return []
        self.loose.pop(h, None)
        pinned = []
        prev = entry.prev
        while prev in self.loose:  # genesis has data, so this stops
            del self.loose[prev]
            parent = self.entries[prev]
            pinned.append(parent)
            prev = parent.prev
        return pinned

    def remove(self, block_hash: bytes) -> IndexEntry:
        """Forget a loose entry without children (header eviction)."""
        if block_hash not in self.loose or block_hash in self._children:
            raise ValueError(f"{block_hash.hex()} is not a loose leaf")
        entry = self.entries.pop(block_hash)
        del self.loose[block_hash]
        self._drop_child(entry.prev, block_hash)
        return entry

    def link(self, block_hash: bytes) -> list[bytes]:
        """Mark ``block_hash`` and every descendant with data as linked if its parent is."""
        entry = self.entries[block_hash]
        if not entry.have_data or block_hash in self.linked:
            return []
        if entry.height > 0 and entry.prev not in self.linked:
            return []
        out, stack = [], [block_hash]
        while stack:
            h = stack.pop()
            self.linked.add(h)
            out.append(h)
            stack.extend(c for c in self.children_of(h) if self.entries[c].have_data and c not in self.linked)
        return out

    def descendants(self, block_hash: bytes) -> Iterator[IndexEntry]:
        stack = list(self.children_of(block_hash))
        while stack:
            h = stack.pop()
            yield self.entries[h]
            stack.extend(self.children_of(h))

    def ancestors(self, entry: IndexEntry) -> Iterator[IndexEntry]:
        """The entry's parent, grandparent, … down to genesis."""
        while entry.height > 0:
            entry = self.entries[entry.prev]
            yield entry

    def timestamps(self, entry: IndexEntry, count: int) -> list[int]:
        """Timestamps of ``entry`` and up to ``count − 1`` ancestors, oldest first."""
        out = [entry.timestamp]
        for parent in self.ancestors(entry):
            if len(out) == count:
                break
            out.append(parent.timestamp)
        return out[::-1]

    def best_verified_height(self) -> int:
        """Height of the highest entry whose work was verified: one with its block's data (the
        proof travels with the block), not failed.  Header-only entries above it prove nothing."""
        if self._best_data_height is None:
            entries = list(self.entries.values())  # a copy: the chain's writer may add entries meanwhile
            self._best_data_height = max((e.height for e in entries if e.have_data and not e.failed), default=0)
        return self._best_data_height

    def tips(self) -> list[IndexEntry]:
        """Entries without children (a copy of the entries is walked: the chain's writer may add some)."""
        return [e for h, e in list(self.entries.items()) if h not in self._children]
