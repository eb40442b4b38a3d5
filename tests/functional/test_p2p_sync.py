"""Real pouwd processes syncing over loopback TCP (PROTOCOL §7): a five-node line
downloading a 500-block chain headers-first, blocks and txs relayed end to end, and a
node killed in the middle of its initial download that catches up after a restart."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.node.helpers import build_chain, genesis_header

from .framework import NodeProcess, sync_blocks, sync_mempools, wait_until
from .p2putil import seed_datadir, submit, wait_connected
from .rpcutil import FAUCET, FAUCET_ADDRESS, address, key, transfer

LINE = 5
CHAIN = build_chain(genesis_header(), 500)  # cheap regtest blocks, timestamps in the past


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> Iterator[list[NodeProcess]]:
    """node0 mines 500 blocks alone; then node i (1..4) starts with --connect node i-1 only."""
    root = Path(tmp_path_factory.mktemp("line"))
    nodes = [NodeProcess(0, root, extra_args=["--max-outbound", "0"])]
    try:
        nodes[0].start()
        submit(nodes[0], CHAIN)
        for i in range(1, LINE):
            nodes.append(NodeProcess(i, root, extra_args=["--connect", nodes[i - 1].p2p_address]))
        for node in nodes[1:]:
            node.start(wait=False)
        for node in nodes[1:]:
            node.wait_ready()
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


def test_line_of_five_syncs_500_blocks(line) -> None:
    start = time.monotonic()
    tip = sync_blocks(line, timeout=90)
    elapsed = time.monotonic() - start
    assert tip == CHAIN[-1].hash.hex()
    for node in line:
        assert node.getblockcount() == 500
        assert node.getblockhash(250) == CHAIN[249].hash.hex()
        assert [t["status"] for t in node.getchaintips()] == ["active"]
    # the line is a line: ends have one peer, the middle nodes two, and nobody dialled around it
    for i, node in enumerate(line):
        wait_connected(node, inbound=int(i < LINE - 1), outbound=int(i > 0))
        if i:
            (out,) = [p for p in node.getpeerinfo() if not p["inbound"]]
            assert out["addr"] == line[i - 1].p2p_address
            assert out["synced_headers"] == 500
    # node4 learnt the chain only through nodes 1..3, headers first, over one connection
    last = line[-1].getpeerinfo()[0]
    assert last["bytesrecv"] > 500 * len(CHAIN[0].encode()) and last["bytessent"] < last["bytesrecv"] / 10
    print(f"5-node line synced 500 blocks in {elapsed:.1f}s after start")


def test_blocks_and_txs_cross_the_line(line) -> None:
    sync_blocks(line)
    first, middle, last = line[0], line[LINE // 2], line[-1]
    nonce = last.getaccount(FAUCET_ADDRESS)["pending_nonce"]
    alice, bob = key(71), key(72)
    tx1 = transfer(FAUCET, nonce, alice.address, 5 * 10**8)
    assert last.sendrawtransaction(tx1.encode().hex()) == tx1.txid.hex()
    sync_mempools(line, timeout=30)
    tx2 = transfer(FAUCET, nonce + 1, bob.address, 3 * 10**8)
    assert first.sendrawtransaction(tx2.encode().hex()) == tx2.txid.hex()  # from the other end
    sync_mempools(line, timeout=30)
    assert set(first.getrawmempool()) == {tx1.txid.hex(), tx2.txid.hex()}

    (mined,) = middle.generate(1)
    assert sync_blocks(line) == mined
    for node in line:
        for tx in (tx1, tx2):
            got = node.gettransaction(tx.txid.hex())
            assert got["blockhash"] == mined and got["confirmations"] == 1, (node.index, got)
        assert node.getrawmempool() == []
        assert node.getaccount(address(alice))["balance"] == 5 * 10**8
    # and a block from the far end reaches node0
    (tip,) = last.generate(1)
    assert sync_blocks(line) == tip
    assert first.getblock(tip)["height"] == 502


def test_node_killed_mid_download_catches_up(start_nodes, tmp_path, request) -> None:
    long_chain = CHAIN + build_chain(CHAIN[-1].header, 2500)
    source = NodeProcess(99, tmp_path, extra_args=["--max-outbound", "0"])
    request.addfinalizer(source.cleanup)
    seed_datadir(source, long_chain)  # before its first start, in-process: far faster than RPC
    source.start()
    assert source.getblockcount() == 3000
    (node,) = start_nodes(1, [["--connect", source.p2p_address]])
    # kill -9 somewhere in the middle of the download
    height = wait_until(lambda: (h := node.getblockcount()) >= 300 and h, 60, 0.02, "the download to start")
    node.kill9()
    assert height < 3000, "the download finished before the kill: nothing was tested"
    node.start()
    resumed = node.getblockcount()
    assert resumed >= min(height, 256) - 256, (height, resumed)  # committed work survived the crash
    assert sync_blocks([source, node], timeout=90) == long_chain[-1].hash.hex()
    # a clean stop of the *source* mid-download: the node redials it and finishes
    (fresh,) = start_nodes(1, [["--connect", source.p2p_address]])
    wait_until(lambda: fresh.getblockcount() >= 300, 60, 0.02, "the second download to start")
    source.restart()
    assert sync_blocks([source, node, fresh], timeout=90) == long_chain[-1].hash.hex()
    assert [t["status"] for t in fresh.getchaintips()] == ["active"]
    print(f"killed at height {height}, resumed from {resumed}")
