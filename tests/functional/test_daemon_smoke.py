"""A real pouwd starts, mines on regtest, stops cleanly and restarts at the same tip."""
from __future__ import annotations


def test_start_generate_stop_restart(start_nodes) -> None:
    (node,) = start_nodes(1)
    assert node.getblockcount() == 0
    hashes = node.generate(3)
    assert len(hashes) == 3 and node.getbestblockhash() == hashes[-1]
    assert node.stop() == 0
    node.start()
    assert node.getblockcount() == 3 and node.getbestblockhash() == hashes[-1]
