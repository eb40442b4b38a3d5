"""Tagged hashes and RFC 6962 Merkle trees with audit paths (PROTOCOL §2)."""
from __future__ import annotations

import hashlib
from typing import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def tagged(tag: str, *data: bytes) -> bytes:
    """``SHA-256(u8(len(tag)) || tag || data…)``."""
    t = tag.encode("ascii")
    h = hashlib.sha256(bytes([len(t)]) + t)
    for d in data:
        h.update(d)
    return h.digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed nodes (no leaf prefix applied)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    level = list(hashes)
    if n & (n - 1) == 0:  # power of two: iterate bottom-up, same result as the recursion
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]
    k = _split(n)
    return node_hash(root_of_hashes(level[:k]), root_of_hashes(level[k:]))


def roots_of_groups(hashes: Sequence[bytes], group: int) -> list[bytes]:
    """MTH over each run of ``group`` consecutive already-hashed nodes, the last run possibly
    shorter: a matrix's group roots (``group`` 32) or, with ``group`` = len(hashes), its root."""
    if group < 1:
        raise ValueError(f"group must be at least 1, got {group}")
    return [root_of_hashes(hashes[g:g + group]) for g in range(0, len(hashes), group)]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over raw leaf data; the empty tree is SHA-256("")."""
    return root_of_hashes([leaf_hash(x) for x in leaves])


def audit_path(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index) over already-hashed nodes: siblings from the deepest up."""
    n = len(hashes)
    if not 0 <= index < n:
        raise IndexError("audit path index out of range")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return audit_path(hashes[:k], index) + [root_of_hashes(hashes[k:])]
    return audit_path(hashes[k:], index - k) + [root_of_hashes(hashes[:k])]


def root_from_path(node: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """Recompute the root from ``node`` at ``index`` of a tree of ``size`` hashes.

    Returns None when the path has the wrong length for that position (RFC 6962 §2.1.1
    verification, iterative form of RFC 9162 §2.1.3.2).
    """
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = node
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_path(node: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    return root_from_path(node, index, size, path) == root
