"""The node's backbone: one way in for blocks (bytes kept from the door to the store), one
pool for blocks that wait, events out, chain writes off the event loop, no import of the
daemon inside node/ (docs/architecture.md)."""
from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest

from consensus.block import Block, ReceivedBlock
from consensus.errors import InvalidTx
from consensus.params import REGTEST
from node.chainworker import ChainWorker
from node.events import (CONNECTED, REJECTED, TIP_CHANGED, TX_ACCEPTED, TX_REJECTED, BlockRejected, TipChanged,
                         TxAccepted, TxRejected)
from node.mempool import Mempool
from p2p.interfaces import ACCEPTED, FUTURE, INVALID, ORPHAN, BlockStatus

from .conftest import NOW
from .helpers import FAUCET, build_chain, genesis_header, key, make_block, transfer

NODE = Path(__file__).resolve().parents[3] / "node"


def test_rejected_and_tip_events_once_per_submission(chain):
    heard = []
    chain.subscribe(heard.append, (REJECTED, TIP_CHANGED))
    blocks = build_chain(genesis_header(), 3)
    chain.submit_blocks(blocks)
    bad = make_block(blocks[-1].header, [transfer(key(7), 0, FAUCET.address, 5)])  # no funds
    assert chain.submit_block(bad).status == INVALID
    assert heard == [TipChanged(blocks[-1].hash, 3, 3), BlockRejected(bad.hash, "bad-tx")]


def test_received_bytes_are_stored_as_they_came(chain, monkeypatch):
    block = build_chain(genesis_header(), 1)[0]
    received = ReceivedBlock.decode(block.encode())
    monkeypatch.setattr(Block, "encode", lambda self: pytest.fail("re-encoded on the way"))
    assert chain.submit_block(received).status == ACCEPTED
    assert chain.block_bytes(block.hash) == received.raw


def test_orphans_and_future_blocks_share_one_bound(open_chain):
    blocks = build_chain(genesis_header(), 4)
    early = make_block(genesis_header(), timestamp=NOW + REGTEST.future_time_limit + 1, nonce=1)
    chain = open_chain(waiting_count=3)
    assert chain.submit_block(early).status == FUTURE
    for b in blocks[1:]:
        assert chain.submit_block(b).status == ORPHAN
    assert len(chain._waiting) == 3  # the future block, the oldest, was evicted for the third orphan
    assert chain.retry_future() == []


def test_mempool_publishes_accepted_and_rejected_txs(chain):
    pool = Mempool(REGTEST, chain.tip_view, clock=lambda: float(NOW))
    heard = []
    pool.subscribe(heard.append, (TX_ACCEPTED, TX_REJECTED))
    tx = transfer(FAUCET, 0, key(1).address, 10, fee=1_000)
    pool.add(tx)
    with pytest.raises(InvalidTx):
        pool.add(tx)
    assert heard == [TxAccepted(tx), TxRejected(tx.txid, "duplicate")]


def test_writes_run_on_the_chain_thread_and_events_reach_the_loop_in_order(chain):
    worker = ChainWorker(chain)
    blocks = build_chain(genesis_header(), 300)
    writer_threads, heard = set(), []
    chain.subscribe(lambda ev: writer_threads.add(threading.get_ident()))

    async def main() -> None:
        loop_thread = threading.get_ident()
        worker.subscribe(lambda ev: heard.append((ev.kind, ev.height, threading.get_ident() == loop_thread)))
        submitting = asyncio.ensure_future(worker.submit_blocks(blocks))
        heights = []
        while not submitting.done():  # the loop keeps running while the chain validates
            heights.append(chain.tip.height)
            view, next_height = chain.tip_view()
            assert next_height <= chain.tip.height + 1
            await asyncio.sleep(0)
        assert [r.status for r in await submitting] == [BlockStatus.ACCEPTED] * 300
        assert heights == sorted(heights) and len(heights) > 1

    try:
        asyncio.run(main())
    finally:
        worker.close()
    assert threading.get_ident() not in writer_threads
    assert heard == [(CONNECTED, h, True) for h in range(1, 301)]


def test_nothing_in_node_imports_the_daemon():
    for path in NODE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in ("daemon", "node.daemon"), f"{path.name} imports the daemon"
