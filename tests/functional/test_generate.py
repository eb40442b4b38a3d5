"""generate on regtest: a burst longer than the future limit allows still completes (PROTOCOL §5)."""
from __future__ import annotations


def test_long_generate_waits_for_the_clock_instead_of_failing(start_nodes) -> None:
    (node,) = start_nodes(1)
    hashes = node.generate(420)  # ~70 s of median-time-past creep: past regtest's 60 s future limit
    assert len(hashes) == 420 and node.getblockcount() == 420
    tip = node.getblock(hashes[-1])
    assert tip["time"] > node.getblock(hashes[0])["time"]
