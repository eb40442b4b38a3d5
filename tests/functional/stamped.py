"""Blocks with a chosen timestamp, mined in the test process and submitted to a real node."""
from __future__ import annotations

from consensus.block import WorkSpec
from consensus.work import assemble_block, commit_a, commit_b
from miner import kernel
from miner.synthetic import synthetic_matrices
from miner.template import Template

SHAPE = (64, 64, 64, 16)  # m, n, k, r: the smallest regtest work


def submit_stamped(node, miner: bytes, timestamp: int, template: Template | None = None) -> None:
    """Mine one block on ``template`` (default: the node's) stamped ``timestamp``; the node must connect it."""
    template = template or Template.from_json(node.getblocktemplate())
    a, b = synthetic_matrices(bytes(32), *SHAPE[:3])
    spec = WorkSpec(*SHAPE, commit_a(a), commit_b(b))
    for nonce in range(1000):
        header = template.header_for(miner, nonce, spec, timestamp)
        winners = kernel.mine(header, a, b)
        if winners:
            assert node.submitblock(assemble_block(header, a, b, winners[0], template.txs).encode().hex()) is None
            return
    raise AssertionError("no winning tile in 1000 tries")
