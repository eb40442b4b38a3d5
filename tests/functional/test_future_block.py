"""A block too far in the future is held, not rejected, and connects once the clock
catches up (PROTOCOL §5: retry later, not a permanent failure)."""
from __future__ import annotations

import time

from consensus.block import Header

from tests.unit.node.helpers import make_block

from .framework import wait_until

AHEAD = 63  # regtest allows 60 s


def test_future_block_is_held_then_connected(start_nodes) -> None:
    (node,) = start_nodes(1)
    node.generate(1)
    parent = Header.decode(bytes.fromhex(node.getblockheader(node.getbestblockhash(), False)))
    block = make_block(parent, timestamp=int(time.time()) + AHEAD, state_root=bytes.fromhex(
        node.getblocktemplate()["state_root"]))
    assert node.submitblock(block.encode().hex()) == "time-too-new"
    assert node.getblockcount() == 1
    wait_until(lambda: node.getbestblockhash() == block.hash.hex(), timeout=AHEAD + 30, interval=0.5,
               what="the held block to connect once its time has come")
    assert node.getblockcount() == 2
