"""Header spam against a real pouwd: headers carry no proof here (it travels with the
block), so a header costs its sender nothing. docs/p2p.md bounds what one connected
peer can make the node keep (one batch, until a random block of it arrived and
passed its checks — the spot check; more batches before that, and unconnecting
ones, are dropped and scored), a departed peer's headers are forgotten, and header-only entries live in memory only under a
global cap (docs/storage.md). These tests check that from the outside: stored
headers (getchaintips), RSS from /proc/<pid>/status, a restart, and that the node
keeps working."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from consensus.block import Header
from p2p import wire
from tests.unit.node.helpers import bogus_headers, build_chain, genesis_header

from .framework import NodeProcess, sync_blocks, wait_until
from .p2putil import (
    RawPeer,
    banned,
    headers_message,
    submit,
    wait_connected,
)

CHAIN = build_chain(genesis_header(), 20)


def rss_mib(node: NodeProcess) -> float:
    assert node.process is not None
    with open(f"/proc/{node.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def headers_only(node: NodeProcess) -> int:
    """Headers the node keeps without their blocks (summed over headers-only branches)."""
    return sum(t["branchlen"] for t in node.getchaintips() if t["status"] == "headers-only")


def batches(parent: Header, count: int, salt: int) -> list[bytes]:
    """``count`` full ``headers`` messages of one contiguous bogus chain on ``parent``."""
    chain = bogus_headers(parent, count * wire.MAX_HEADERS, salt=salt)
    return [headers_message(chain[i:i + wire.MAX_HEADERS]) for i in range(0, len(chain), wire.MAX_HEADERS)]


def spam(peer: RawPeer, messages: list[bytes]) -> int:
    """Send until done or the node hangs up; returns how many went out."""
    sent = 0
    try:
        for message in messages:
            peer.send_payload(message)
            sent += 1
    except OSError:
        pass
    return sent


@pytest.fixture
def node(start_nodes) -> Iterator[NodeProcess]:
    (n,) = start_nodes(1, [["--max-outbound", "0"]])
    submit(n, CHAIN)
    yield n


def test_header_flood_from_one_peer_is_bounded(node, start_nodes) -> None:
    honest, = start_nodes(1, [["--connect", node.p2p_address]])
    sync_blocks([node, honest])
    messages = batches(genesis_header(), 40, salt=1)  # 80000 headers on genesis, no work behind them
    with RawPeer.to(node) as peer:
        peer.handshake()
        rss_start = rss_mib(node)
        assert spam(peer, messages[:1]) == 1
        (check,) = peer.expect("getdata", 30).args[0]  # the spot check: one block of the batch
        assert check[0] == wire.INV_BLOCK and headers_only(node) == wire.MAX_HEADERS
        info = node.getblockchaininfo()
        assert info["initialblockdownload"] is False and info["headers"] == 20  # forged work counts for nothing
        spam(peer, messages[1:])  # more before the check passed: scored, then banned
        assert peer.closed(30), "still connected after flooding unsolicited headers"
    wait_until(lambda: f"{peer.source_ip}/32" in banned(node), 10, 0.1, "the ban")
    wait_until(lambda: headers_only(node) == 0, 10, 0.1, "the flooder's headers forgotten")
    print(f"rss {rss_start:.0f} → {rss_mib(node):.0f} MiB after a flood of {len(messages) * wire.MAX_HEADERS}")
    assert rss_mib(node) - rss_start < 64
    # the node kept working: tip, RPC, its honest peer, and new blocks relay
    assert node.getblockcount() == 20
    (tip,) = node.generate(1)
    assert sync_blocks([node, honest]) == tip
    wait_connected(node, inbound=1)  # the flooder is gone, the honest peer stayed


def test_unconnecting_header_spam_gets_banned(node) -> None:
    orphan_parent = bogus_headers(genesis_header(), 1, salt=99)[0]  # never sent: nothing connects
    messages = batches(orphan_parent, 60, salt=2)
    with RawPeer.to(node) as peer:
        peer.handshake()
        rss_start = rss_mib(node)
        spam(peer, messages)
        assert peer.closed(30), "still connected after 60 unconnecting batches"
    wait_until(lambda: f"{peer.source_ip}/32" in banned(node), 10, 0.1, "the ban")
    reason = next(e["reason"] for e in node.listbanned() if e["address"] == f"{peer.source_ip}/32")
    assert "unconnecting" in reason
    assert headers_only(node) == 0
    assert rss_mib(node) - rss_start < 32
    assert node.getblockcount() == 20 and len(node.generate(1)) == 1


def test_departed_peers_headers_are_forgotten(node) -> None:
    rss_start = rss_mib(node)
    for i in range(2):  # two peers, one after the other, from two addresses
        with RawPeer.to(node) as peer:
            peer.handshake()
            spam(peer, batches(genesis_header(), 4, salt=10 + i))
            peer.send("ping", i)
            peer.expect("pong", 30)
            assert headers_only(node) == wire.MAX_HEADERS  # while it is connected: one batch until its spot check
        wait_until(lambda: not node.getpeerinfo(), 10, 0.1, "the peer to be gone")
        # forgotten a chunk per event-loop turn: gone within a moment, not necessarily at once
        wait_until(lambda: headers_only(node) == 0, 10, 0.05, "a departed peer's headers forgotten")
    print(f"rss +{rss_mib(node) - rss_start:.0f} MiB after two peers' 8000 headers each")
    # and none on disk: killed while a spammer is connected, the node restarts without them
    with RawPeer.to(node) as peer:
        peer.handshake()
        spam(peer, batches(genesis_header(), 1, salt=30))
        peer.send("ping", 1)
        peer.expect("pong", 30)
        assert headers_only(node) == wire.MAX_HEADERS
        node.kill9()
    node.start()
    assert headers_only(node) == 0 and node.getblockcount() == 20


def test_bogus_headers_do_not_leave_the_node_syncing(node) -> None:
    with RawPeer.to(node) as peer:
        peer.handshake()
        spam(peer, batches(genesis_header(), 1, salt=20))
        peer.send("ping", 1)
        peer.expect("pong", 30)
    wait_until(lambda: not node.getpeerinfo(), 10, 0.1, "the spammer to be gone")
    info = node.getblockchaininfo()
    assert info["blocks"] == 20
    assert info["initialblockdownload"] is False, info
