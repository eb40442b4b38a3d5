"""RFC 6962 Merkle trees, audit paths and group paths (PROTOCOL §2)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

from consensus.hashing import (audit_path, leaf_hash, merkle_root, node_hash, root_from_path, roots_of_groups,
                               verify_path)
from consensus.work import commit_a, group_roots


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 written as literally as possible."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


@given(st.lists(st.binary(max_size=8), max_size=40))
def test_root_matches_naive(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == naive_mth(leaves)


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40, unique=True), st.data())
def test_every_path_verifies_and_tampering_fails(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = audit_path(hashes, index)
    assert verify_path(hashes[index], index, len(leaves), path, root)
    assert not verify_path(leaf_hash(leaves[index] + b"x"), index, len(leaves), path, root)
    if path:
        bad = list(path)
        pos = data.draw(st.integers(0, len(bad) - 1))
        bad[pos] = bytes(32)
        assert not verify_path(hashes[index], index, len(leaves), bad, root)
        assert root_from_path(hashes[index], index, len(leaves), path[:-1]) != root
    assert root_from_path(hashes[index], index, len(leaves), list(path) + [bytes(32)]) is None
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        assert not verify_path(hashes[index], other, len(leaves), path, root)


def test_out_of_range_index_is_rejected() -> None:
    assert root_from_path(bytes(32), 3, 3, []) is None
    assert root_from_path(bytes(32), 0, 0, []) is None


@given(st.integers(1, 9), st.data())
def test_group_roots_are_subtrees_of_the_row_tree(groups: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(groups)
    a = rng.integers(-64, 65, size=(32 * groups, 8), dtype=np.int8)
    roots = group_roots(a)
    rows = [bytes(row.tobytes()) for row in a]
    assert merkle_root(rows) == naive_mth(rows)
    g = data.draw(st.integers(0, groups - 1))
    path = audit_path(roots, g)
    full_path = audit_path([leaf_hash(r) for r in rows], 32 * g)
    assert full_path[5:] == path  # the group path is the top of the row path
    assert verify_path(roots[g], g, groups, path, merkle_root(rows))
    assert commit_a(a) != commit_a(a[:, ::-1].copy())


def test_node_hash_prefix() -> None:
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


@given(st.lists(st.binary(max_size=4), max_size=70), st.integers(1, 80))
def test_roots_of_groups_are_the_roots_of_each_run(leaves: list[bytes], group: int) -> None:
    hashes = [leaf_hash(x) for x in leaves]
    runs = [leaves[g:g + group] for g in range(0, len(leaves), group)]
    assert roots_of_groups(hashes, group) == [naive_mth(run) for run in runs]


def test_roots_of_groups_needs_a_group() -> None:
    with pytest.raises(ValueError, match="group must be at least 1"):
        roots_of_groups([bytes(32)], 0)
