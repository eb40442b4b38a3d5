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
from consensus.params import REGTEST
from consensus.reasons import Reason
from node.chainworker import ChainWorker
from node.events import (CONNECTED, REJECTED, TIP_CHANGED, TX_ACCEPTED, TX_REJECTED, BlockRejected,
                         BlockReleased, TipChanged, TxAccepted, TxRejected)
from node.mempool import Mempool, MempoolPolicyError
from p2p.interfaces import ACCEPTED, FUTURE, INVALID, ORPHAN, RELEASED, WAITING, BlockStatus

from .conftest import NOW
from .helpers import FAUCET, build_chain, genesis_header, key, make_block, transfer

NODE = Path(__file__).resolve().parents[3] / "node"


def test_rejected_and_tip_events_once_per_submission(chain):
    heard = []
    chain.subscribe(heard.append, (REJECTED, TIP_CHANGED))
    blocks = build_chain(genesis_header(), 3)
    chain.submit_blocks(blocks)
    bad = make_block(blocks[-1].header, [transfer(key(7), 0, FAUCET.address, 5)])  # no funds
    result = chain.submit_block(bad)
    assert result.status == INVALID and result.reason == "bad-tx"
    assert result.detail.startswith(f"bad-tx: tx 0 ({bad.txs[0].txid.hex()}): {Reason.INSUFFICIENT_FUNDS}")
    assert heard == [TipChanged(blocks[-1].hash, 3, 3), BlockRejected(bad.hash, "bad-tx", result.detail)]


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


def test_orphans_future_blocks_and_downloads_share_one_bound(open_chain):
    blocks = build_chain(genesis_header(), 3)
    early = make_block(genesis_header(), timestamp=NOW + REGTEST.future_time_limit + 1, nonce=1)
    strays = build_chain(genesis_header(), 4, nonce=2)[1:]  # their parent is never sent: orphans
    chain = open_chain(waiting_count=3)
    released = []
    chain.subscribe(released.append, (RELEASED,))
    chain.add_headers([b.header for b in blocks])
    assert [r.status for r in chain.submit_blocks(blocks[1:], sources=["a", "b"])] == [WAITING, WAITING]
    assert chain.waiting(blocks[1].hash) and not chain.entry(blocks[1].hash).have_data
    assert chain.submit_block(early).status == FUTURE
    assert len(chain._waiting) == 3
    assert chain.submit_block(strays[0]).status == ORPHAN
    # the oldest, a download, went: stored out of order (not dropped), and its child with it
    assert len(chain._waiting) == 2
    assert released == [BlockReleased(blocks[1].hash, ACCEPTED, "", "a"),
                        BlockReleased(blocks[2].hash, ACCEPTED, "", "b")]
    assert all(chain.entry(b.hash).have_data and not chain.waiting(b.hash) for b in blocks[1:])
    for stray in strays[1:]:
        assert chain.submit_block(stray).status == ORPHAN
    # the future block, now the oldest, was dropped: the chain has nothing of it, so it is fetched again
    assert len(chain._waiting) == 3 and chain.retry_future() == [] and chain.entry(early.hash) is None
    assert chain.submit_block(blocks[0]).status == ACCEPTED and chain.tip.hash == blocks[-1].hash


def test_a_download_waits_for_its_parent_and_its_verdict_names_the_sender(chain):
    blocks = build_chain(genesis_header(), 2)
    bad = make_block(blocks[-1].header, [transfer(key(7), 0, FAUCET.address, 5)])  # no funds
    heard = []
    chain.subscribe(heard.append, (RELEASED, REJECTED))
    chain.add_headers([*(b.header for b in blocks), bad.header])
    assert chain.submit_blocks([bad], sources=[7])[0].status == WAITING
    assert chain.submit_blocks([blocks[1]], sources=[8])[0].status == WAITING
    assert chain.submit_blocks([bad], sources=[9])[0].status == WAITING  # a second copy: one waits
    assert len(chain._waiting) == 2 and heard == []
    res = chain.submit_blocks([blocks[0]])[0]  # from RPC, say: the waiting ones follow it in this call
    assert res.status == ACCEPTED and chain.tip.hash == blocks[-1].hash and len(chain._waiting) == 0
    detail = heard[0].detail
    assert f"tx 0 ({bad.txs[0].txid.hex()})" in detail
    assert heard == [BlockRejected(bad.hash, "bad-tx", detail), BlockReleased(blocks[1].hash, ACCEPTED, "", 8),
                     BlockReleased(bad.hash, INVALID, "bad-tx", 7, detail)]


def test_a_block_stored_earlier_that_fails_to_connect_later_is_published_as_rejected(open_chain):
    blocks = build_chain(genesis_header(), 2)
    bad = make_block(blocks[-1].header, [transfer(key(7), 0, FAUCET.address, 5)])  # no funds
    chain = open_chain(waiting_count=1)
    heard = []
    chain.subscribe(heard.append, (REJECTED,))
    chain.add_headers([*(b.header for b in blocks), bad.header])
    assert chain.submit_blocks([bad], sources=[7])[0].status == WAITING
    assert chain.submit_blocks([blocks[1]], sources=[8])[0].status == WAITING  # pushes bad out: stored
    assert chain.entry(bad.hash).have_data and heard == []
    assert chain.submit_block(blocks[0]).status == ACCEPTED  # connects 0, 1, then bad fails
    assert chain.tip.hash == blocks[-1].hash and chain.entry(bad.hash).failed
    assert [(e.hash, e.reason) for e in heard] == [(bad.hash, "bad-tx")]
    assert f"tx 0 ({bad.txs[0].txid.hex()}): {Reason.INSUFFICIENT_FUNDS}" in heard[0].detail


def test_a_download_evicted_over_the_bound_takes_its_waiting_child_along(open_chain):
    blocks = build_chain(genesis_header(), 3)
    chain = open_chain(waiting_count=1)
    released = []
    chain.subscribe(released.append, (RELEASED,))
    chain.add_headers([b.header for b in blocks])
    assert chain.submit_blocks([blocks[1]], sources=["a"])[0].status == WAITING
    # the second download pushes the first out: stored out of order, and the second follows it
    assert chain.submit_blocks([blocks[2]], sources=["b"])[0].status == WAITING
    assert released == [BlockReleased(blocks[1].hash, ACCEPTED, "", "a"),
                        BlockReleased(blocks[2].hash, ACCEPTED, "", "b")]
    assert len(chain._waiting) == 0 and all(chain.entry(b.hash).have_data for b in blocks[1:])
    assert chain.submit_block(blocks[0]).status == ACCEPTED and chain.tip.hash == blocks[-1].hash


def test_a_waiting_download_asked_for_again_is_judged_at_once(chain):
    blocks = build_chain(genesis_header(), 2)
    chain.add_headers([b.header for b in blocks])
    assert chain.submit_blocks([blocks[1]], sources=[1])[0].status == WAITING
    assert chain.submit_blocks([blocks[1]])[0].status == ACCEPTED  # no source (a spot check): stored now
    assert not chain.waiting(blocks[1].hash) and chain.entry(blocks[1].hash).have_data
    chain.submit_block(blocks[0])
    assert chain.tip.hash == blocks[1].hash


def test_mempool_publishes_accepted_and_rejected_txs(chain):
    pool = Mempool(REGTEST, chain.tip_view, clock=lambda: float(NOW))
    heard = []
    pool.subscribe(heard.append, (TX_ACCEPTED, TX_REJECTED))
    tx = transfer(FAUCET, 0, key(1).address, 10, fee=1_000)
    pool.add(tx)
    with pytest.raises(MempoolPolicyError):  # a duplicate is policy, not a broken rule
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
