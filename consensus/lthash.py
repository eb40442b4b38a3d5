"""LtHash: the homomorphic multiset hash behind the state root (PROTOCOL §2, §3a).

``L(x) = SHAKE-256(u8(11) || "pouw/lthash" || x)[0:2048]`` read as 1024 u16le
lanes; a multiset hashes to the lane-wise sum of its elements' ``L`` mod 2^16.
Adding or removing one element adds or subtracts its ``L``, so keeping the hash
of a changing set costs O(changes), never O(set).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Iterable

import numpy as np

from .hashing import tagged

LANES = 1024
LANE_BYTES = 2 * LANES
_PREFIX = bytes([len(b"pouw/lthash")]) + b"pouw/lthash"
_DTYPE = np.dtype("<u2")


@lru_cache(maxsize=8192)  # a record removed from the state was usually added by a recent block
def element(record: bytes) -> bytes:
    """``L(record)`` as 2048 bytes (1024 u16le lanes)."""
    return hashlib.shake_256(_PREFIX + record).digest(LANE_BYTES)


def _sum(records: Iterable[bytes]) -> np.ndarray:
    data = b"".join(element(r) for r in records)
    if not data:
        return np.zeros(LANES, _DTYPE)
    return np.add.reduce(np.frombuffer(data, _DTYPE).reshape(-1, LANES), axis=0, dtype=_DTYPE)


class LtHash:
    """1024 u16 lanes; ``update`` adds and removes records in one pass."""

    __slots__ = ("lanes",)

    def __init__(self, lanes: np.ndarray | None = None) -> None:
        self.lanes = np.zeros(LANES, _DTYPE) if lanes is None else np.array(lanes, _DTYPE)
        if self.lanes.shape != (LANES,):
            raise ValueError(f"an LtHash has {LANES} lanes")

    @classmethod
    def of(cls, records: Iterable[bytes]) -> "LtHash":
        """The hash of a multiset of records, computed from scratch."""
        return cls(_sum(records))

    @classmethod
    def from_bytes(cls, data: bytes) -> "LtHash":
        if len(data) != LANE_BYTES:
            raise ValueError(f"LtHash lanes are {LANE_BYTES} bytes, got {len(data)}")
        return cls(np.frombuffer(data, _DTYPE))

    def to_bytes(self) -> bytes:
        return self.lanes.astype(_DTYPE, copy=False).tobytes()

    def copy(self) -> "LtHash":
        return LtHash(self.lanes)

    def update(self, added: Iterable[bytes] = (), removed: Iterable[bytes] = ()) -> "LtHash":
        """Add and remove records (mod 2^16 per lane); returns self."""
        self.lanes = self.lanes + _sum(added) - _sum(removed)  # u16 arithmetic wraps mod 2^16
        return self

    def add(self, record: bytes) -> "LtHash":
        return self.update(added=(record,))

    def remove(self, record: bytes) -> "LtHash":
        return self.update(removed=(record,))

    def root(self) -> bytes:
        """``state_root = tagged("pouw/state", lanes as 2048 bytes u16le)`` (§3a)."""
        return tagged("pouw/state", self.to_bytes())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LtHash) and bool(np.array_equal(self.lanes, other.lanes))

    def __repr__(self) -> str:
        return f"LtHash({self.root().hex()[:16]}…)"
