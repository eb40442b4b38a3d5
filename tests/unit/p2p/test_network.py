"""P2PNode over real loopback TCP: several nodes, each with its own regtest Chain on
LevelDB and its own Mempool (PROTOCOL §7)."""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from dataclasses import replace

import pytest

from consensus.block import Block
from consensus.errors import InvalidTx
from consensus.params import DEV, REGTEST
from node.mempool import MempoolPolicyError
from node.chain import Chain
from p2p import BanError, InvalidAddress, NodeAlreadyAdded, NodeNotAdded, NodeNotConnected, RelayLimits, wire
from tests.unit.node.helpers import FAUCET, bogus_headers, build_chain, genesis_header, key, make_block, transfer
from tests.unit.p2p.helpers import (FAST_PEER, FAST_SYNC, NOW, Node, RawPeer, connect, fetch_rows, make_node, run,
                                    running, wait_until)

CHAIN = build_chain(genesis_header(), 200)
BY_HASH = {blk.hash: blk for blk in CHAIN}
BLOCK_BYTES = len(CHAIN[0].encode())


SMALL_SOCKET_BUFFER = 256 * 1024  # the kernel's buffers of a busy link: the node's own send buffer is what fills


def peer_to(node, addr: str):
    return next((p for p in node.p2p.manager.peers.values() if p.addr == addr and p.ready), None)


def test_three_nodes_sync_headers_first(tmp_path) -> None:
    a, b = make_node(tmp_path / "a"), make_node(tmp_path / "b")
    a.chain.submit_blocks(CHAIN)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            await wait_until(lambda: b.chain.tip.hash == CHAIN[-1].hash, 20, "b synced")
            c = make_node(tmp_path / "c", connect=[a.addr, b.addr])  # only these two
            async with running(c):
                await wait_until(lambda: c.chain.tip.hash == CHAIN[-1].hash, 20, "c synced")
                info = {p["addr"]: p for p in c.p2p.peer_info()}
                assert info[a.addr]["synced_headers"] == info[b.addr]["synced_headers"] == 200
                assert info[a.addr]["synced_blocks"] == 200
                # blocks came from both peers, each well above headers-only traffic
                assert min(info[x]["bytesrecv"] for x in (a.addr, b.addr)) > 10 * BLOCK_BYTES
                assert [e.height for e in c.events] == list(range(1, 201))  # in order, no reorg
    run(body())


def line(tmp_path, count: int) -> list:
    """Nodes that only make the connections a test asks for."""
    return [make_node(tmp_path / str(i), max_outbound=0) for i in range(count)]


def test_block_and_tx_propagate_along_a_line(tmp_path) -> None:
    a, b, c = nodes = line(tmp_path, 3)
    for n in nodes:
        n.chain.submit_blocks(CHAIN[:20])

    async def body() -> None:
        async with running(*nodes):
            await connect(b, a)
            await connect(c, b)
            block = make_block(a.chain.tip.header, nonce=1)
            assert a.chain.submit_block(block).status == "accepted"
            await wait_until(lambda: c.chain.tip.hash == block.hash, 10, "block reached c")
            assert peer_to(c, b.addr) is not None and peer_to(c, a.addr) is None  # through b

            tx = transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000)
            assert a.mempool.add(tx) == [tx]
            a.p2p.announce_tx(tx)
            await wait_until(lambda: tx.txid in c.mempool, 10, "tx reached c")
            tx2 = transfer(FAUCET, 1, key(6).address, 10**8, fee=10_000)
            c.mempool.add(tx2)
            c.p2p.announce_tx(tx2)
            await wait_until(lambda: tx2.txid in a.mempool, 10, "tx2 reached a")

            mined = make_block(c.chain.tip.header, [tx, tx2])
            assert c.chain.submit_block(mined).status == "accepted"
            await wait_until(lambda: all(n.chain.tip.hash == mined.hash for n in nodes), 10, "mined block")
            assert all(len(n.mempool) == 0 for n in nodes)
    run(body())


def test_a_new_peer_hears_of_the_txs_already_pooled(tmp_path) -> None:
    """A tx announced while no peer was connected (or to a connection that then dropped) reaches
    a peer that connects later, and so does the tx of the same sender queued behind it."""
    a, b = nodes = line(tmp_path, 2)
    for n in nodes:
        n.chain.submit_blocks(CHAIN[:20])

    async def body() -> None:
        async with running(*nodes):
            first = transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000)
            second = transfer(FAUCET, 1, key(6).address, 10**8, fee=10_000)
            for tx in (first, second):
                assert a.mempool.add(tx) == [tx]
                a.p2p.announce_tx(tx)  # to nobody yet
            await connect(b, a)
            await wait_until(lambda: first.txid in b.mempool and second.txid in b.mempool, 10, "pooled txs reached b")
    run(body())


def test_longer_fork_wins_over_p2p(tmp_path) -> None:
    a, b = line(tmp_path, 2)
    a.chain.submit_blocks(CHAIN[:30])
    fork = build_chain(genesis_header(), 40, nonce=7)
    b.chain.submit_blocks(fork)

    async def body() -> None:
        async with running(a, b):
            await connect(a, b)
            await wait_until(lambda: a.chain.tip.hash == fork[-1].hash, 10, "reorg to b's fork")
            assert b.chain.tip.hash == fork[-1].hash
            assert [e.kind for e in a.events].count("disconnected") == 30
    run(body())


def corrupt_proof(block: Block) -> Block:
    rows = bytearray(block.proof.a_rows)
    rows[0] = (rows[0] + 1) % 64
    return Block(block.header, replace(block.proof, a_rows=bytes(rows)), block.txs)


def test_invalid_blocks_and_headers_ban_the_sender(tmp_path) -> None:
    a, b = line(tmp_path, 2)
    a.chain.submit_blocks(CHAIN[:10])

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            await wait_until(lambda: b.height == 10, 10, "b synced")
            tip = a.chain.tip.header
            cases = {
                "127.0.0.2": ("block", corrupt_proof(make_block(tip, nonce=3)).to_list()),
                "127.0.0.3": ("block", Block(make_block(tip).header, make_block(tip).proof,
                                             (transfer(FAUCET, 0, b"\x01" * 20, 1, fee=1000),)).to_list()),
                "127.0.0.4": ("headers", [make_block(tip, timestamp=tip.timestamp - 1000).header.to_list()]),
                "127.0.0.5": ("headers", [h.header.to_list() for h in (CHAIN[12], CHAIN[11])]),  # not contiguous
            }
            for ip, (command, arg) in cases.items():
                raw = await RawPeer.open(a, ip)
                await raw.handshake()
                raw.send(command, arg)
                assert await raw.closed(), ip
            banned = {x["address"]: x["reason"] for x in a.p2p.list_banned()}
            assert set(banned) == {f"{ip}/32" for ip in cases}
            assert "bad-proof" in banned["127.0.0.2/32"] or "bad-ticket" in banned["127.0.0.2/32"]
            assert "bad-tx-root" in banned["127.0.0.3/32"]
            assert "time-too-old" in banned["127.0.0.4/32"]
            assert a.height == 10
            honest = await RawPeer.open(a, "127.0.0.6")  # a block from the future is held, not punished
            await honest.handshake()
            honest.send("block", make_block(tip, timestamp=NOW + 3600).to_list())
            honest.send("ping", 4)
            assert (await honest.expect("pong")).args == [4]
            assert a.p2p.peer_info()[-1]["banscore"] == 0 and len(a.p2p.list_banned()) == len(cases)
            # the node keeps serving the others
            block = make_block(a.chain.tip.header)
            a.chain.submit_block(block)
            await wait_until(lambda: b.chain.tip.hash == block.hash, 10, "b got the new block")
            assert peer_to(b, a.addr) is not None
    run(body())


def test_header_spam_is_bounded(tmp_path) -> None:
    lead = 4000
    a = make_node(tmp_path, sync_limits=replace(FAST_SYNC, header_lead=lead, stall_timeout=60.0))
    a.chain.submit_blocks(CHAIN[:20])
    genesis = genesis_header()

    async def body() -> None:
        async with running(a):
            before = len(a.chain.index)
            low = await RawPeer.open(a, "127.0.0.2")
            await low.handshake()
            low.send("headers", [h.to_list() for h in bogus_headers(genesis, 10, 1)])  # less work than our tip
            for _ in range(9):  # headers that do not connect
                low.send("headers", [h.to_list() for h in bogus_headers(CHAIN[30].header, 3, 2)])
            low.send("ping", 1)
            await low.expect("pong")
            assert len(a.chain.index) == before
            assert a.p2p.peer_info()[0]["banscore"] == 0

            spam = await RawPeer.open(a, "127.0.0.3")
            await spam.handshake()
            batches = [bogus_headers(genesis, 2 * 2000, 3)[:2000], bogus_headers(genesis, 2 * 2000, 3)[2000:]]
            batches += [bogus_headers(genesis, 2000, 10 + i) for i in range(6)]  # forks off genesis
            for batch in batches:
                spam.send("headers", [h.to_list() for h in batch])
            assert await spam.closed(20)
            assert len(a.chain.index) - before <= lead
            assert [x["address"] for x in a.p2p.list_banned()] == ["127.0.0.3/32"]
            low.send("ping", 2)  # the quiet peer is still served
            assert (await low.expect("pong")).args == [2]
            assert a.height == 20
    run(body())


def test_headers_of_departed_peers_are_forgotten(tmp_path) -> None:
    """Spam from connections that are gone does not accumulate (the chain caps the rest)."""
    a = make_node(tmp_path / "a", max_outbound=0)
    a.chain.submit_blocks(CHAIN[:20])
    b = make_node(tmp_path / "b", max_outbound=0)
    b.chain.submit_blocks(CHAIN[:40])
    genesis = genesis_header()

    async def body() -> None:
        async with running(a, b):
            before = len(a.chain.index)
            for i in range(3):  # one connection after the other, each to its lead
                spam = await RawPeer.open(a, f"127.0.0.{2 + i}")
                await spam.handshake()
                for k in range(2):
                    spam.send("headers", [h.to_list() for h in bogus_headers(genesis, 4000, 20 + i)[2000 * k:][:2000]])
                spam.send("ping", i)
                await spam.expect("pong")
                assert len(a.chain.index.loose) == 2000  # the second batch waits for the first one's spot check
                spam.close()
                await wait_until(lambda: not a.p2p.manager.peers, 10, "the spammer gone")
                # forgotten a chunk per event-loop turn: within a moment, not necessarily at once
                await wait_until(lambda: len(a.chain.index) == before and not a.chain.index.loose, 5,
                                 "its headers forgotten")
            # an honest peer's headers stay while it serves the blocks, and the sync completes
            await connect(a, b)
            await wait_until(lambda: a.height == 40, 20, "a synced from b")
            assert not a.chain.index.loose
    run(body())


def test_stop_with_inbound_peers_logs_no_errors(tmp_path, caplog) -> None:
    """Stopping cancels the inbound connections' tasks; asyncio must have nothing to report."""
    a = make_node(tmp_path / "a", max_outbound=0)
    b = make_node(tmp_path / "b", max_outbound=0)
    caplog.set_level(logging.DEBUG)

    async def body() -> None:
        raws = []
        try:
            async with running(a, b):
                await connect(b, a)  # a node peer, inbound at a
                ready = await RawPeer.open(a, "127.0.0.2")
                await ready.handshake()  # a hand-driven one that finished its handshake
                raws += [ready, await RawPeer.open(a, "127.0.0.3")]  # and one still in it
                await wait_until(lambda: len(a.p2p.manager.peers) == 3, 10, "three inbound peers")
                raws.append(await RawPeer.open(a, "127.0.0.4"))  # accepted as the node stops
            for _ in range(5):  # let the server's done-callbacks run
                await asyncio.sleep(0.01)
        finally:
            for raw in raws:
                raw.close()
    run(body())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not a.p2p.manager.peers


async def offer_headers(raw: RawPeer, blocks: list[Block]) -> list[list]:
    """Answer the node's getheaders with the headers of ``blocks`` and its spot check of the batch
    with the block asked for; the items of the getdata that follows (the lowest heights)."""
    await raw.expect("getheaders")
    raw.send("headers", [blk.header.to_list() for blk in blocks])
    (check,) = (await raw.expect("getdata")).args[0]
    raw.send_raw(wire.frame(REGTEST.magic, wire.block_payload(BY_HASH[check[1]].encode())))
    return (await raw.expect("getdata")).args[0]


def test_stalling_peer_is_dropped_and_blocks_reassigned(tmp_path) -> None:
    a = make_node(tmp_path / "a")
    a.chain.submit_blocks(CHAIN[:100])
    c = make_node(tmp_path / "c", max_outbound=0, sync_limits=replace(FAST_SYNC, stall_timeout=1.0))

    async def body() -> None:
        async with running(a, c):
            staller = await RawPeer.open(c, "127.0.0.2")
            await staller.handshake(height=100)
            assert len(await offer_headers(staller, CHAIN[:100])) == 16  # the per-peer in-flight limit
            await connect(c, a)
            await wait_until(lambda: c.height == 100, 20, "c synced around the staller")
            assert await staller.closed()
            assert c.p2p.list_banned() == []  # stalling is not misbehaviour
    run(body())


def test_our_only_source_of_blocks_is_given_longer_than_a_stall(tmp_path) -> None:
    """A peer that owes blocks no other peer has is not dropped after ``stall_timeout`` (it was,
    with its link busy serving a job's matrices, and the blocks came from no one sooner): it
    delivers them late and stays; withholding them past ``block_timeout`` still drops it."""
    c = make_node(tmp_path / "c", max_outbound=0,
                  sync_limits=replace(FAST_SYNC, stall_timeout=0.5, block_timeout=3.0))

    async def body() -> None:
        async with running(c):
            slow = await RawPeer.open(c, "127.0.0.2")
            await slow.handshake(height=40)
            asked = await offer_headers(slow, CHAIN[:40])
            await asyncio.sleep(1.5)  # three stall timeouts
            for _, h in asked:
                slow.send_raw(wire.frame(REGTEST.magic, wire.block_payload(BY_HASH[h].encode())))
            await wait_until(lambda: c.height >= len(asked), 5, "the late blocks connected")
            withheld = (await slow.expect("getdata")).args[0]
            assert withheld and c.p2p.peer_info()  # still connected, asked for the next ones
            start = time.monotonic()
            assert await slow.closed(6.0)
            assert time.monotonic() - start > 1.0  # not at the stall timeout
            assert c.p2p.list_banned() == []
    run(body())


def test_notfound_moves_the_request(tmp_path) -> None:
    a = make_node(tmp_path / "a")
    a.chain.submit_blocks(CHAIN[:50])
    c = make_node(tmp_path / "c", max_outbound=0)

    async def body() -> None:
        async with running(a, c):
            liar = await RawPeer.open(c, "127.0.0.2")
            await liar.handshake(height=50)
            asked = await offer_headers(liar, CHAIN[:50])
            await connect(c, a)
            liar.send("notfound", asked)

            async def deny_all() -> None:
                while True:
                    liar.send("notfound", (await liar.expect("getdata", 30)).args[0])
            denying = asyncio.create_task(deny_all())
            await wait_until(lambda: c.height == 50, 10, "c synced")
            denying.cancel()
            await asyncio.gather(denying, return_exceptions=True)
            liar.send("ping", 3)
            assert (await liar.expect("pong")).args == [3]  # notfound is not misbehaviour
    run(body())


def test_addr_gossip_and_seednode(tmp_path) -> None:
    a, b = make_node(tmp_path / "a", max_outbound=0), make_node(tmp_path / "b", max_outbound=0)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)  # a learns b's listening address from its version
            c = make_node(tmp_path / "c", seednode=[a.addr])
            async with running(c):
                await wait_until(lambda: peer_to(c, b.addr) is not None, 10, "c dialled b via a's addr")
                await wait_until(lambda: all(p.addr != a.addr for p in c.p2p.manager.peers.values()),
                                 5, "seed connection dropped")
                assert c.records.get_record("peer", b.addr.encode()) is not None
    run(body())


def test_bans_persist_and_are_enforced_both_ways(tmp_path) -> None:
    a = make_node(tmp_path / "a", max_outbound=0)
    far = make_node(tmp_path / "far", bind="127.0.0.9", max_outbound=0)

    async def body() -> None:
        async with running(a, far):
            a.p2p.set_ban("127.0.0.9", "add")
            with pytest.raises(BanError):
                a.p2p.set_ban("127.0.0.9", "add")
            a.p2p.set_ban("127.0.0.16/28", "add", 60)
            listed = {x["address"]: x for x in a.p2p.list_banned()}
            assert listed["127.0.0.16/28"]["banned_until"] - listed["127.0.0.16/28"]["ban_created"] == 60
            assert listed["127.0.0.9/32"]["ban_duration"] == 86400
            await a.p2p.add_node(f"127.0.0.9:{far.p2p.listen_port}", "add")  # outbound dial refused
            raw = await RawPeer.open(a, "127.0.0.20")  # inbound from a banned subnet refused
            assert await raw.closed()
            for _ in range(5):
                a.p2p.manager.maintain()
                await wait_until(lambda: not a.p2p.manager._dialing, 5, "dial attempt over")
            assert not a.p2p.manager.peers and not far.p2p.manager.peers

        restarted = make_node(tmp_path / "a2", records=a.records, max_outbound=0)
        async with running(restarted):
            assert {x["address"] for x in restarted.p2p.list_banned()} == {"127.0.0.9/32", "127.0.0.16/28"}
            raw = await RawPeer.open(restarted, "127.0.0.17")
            assert await raw.closed()
            restarted.p2p.set_ban("127.0.0.16/28", "remove")
            with pytest.raises(BanError):
                restarted.p2p.set_ban("127.0.0.16/28", "remove")
            with pytest.raises(InvalidAddress):
                restarted.p2p.set_ban("not-an-ip", "add")
            raw = await RawPeer.open(restarted, "127.0.0.17")
            await raw.handshake()
            restarted.p2p.clear_banned()
            assert restarted.p2p.list_banned() == [] and list(a.records.records("ban")) == []
    run(body())


def test_operator_controls_and_limits(tmp_path) -> None:
    a = make_node(tmp_path / "a", max_inbound=1, max_outbound=0)
    b = make_node(tmp_path / "b", max_outbound=0)

    async def body() -> None:
        async with running(a, b):
            await b.p2p.add_node(a.addr, "add")
            with pytest.raises(NodeAlreadyAdded):
                await b.p2p.add_node(a.addr, "add")
            with pytest.raises(NodeNotAdded):
                await b.p2p.add_node("127.0.0.1:2", "remove")
            with pytest.raises(InvalidAddress):
                await b.p2p.add_node("no port:x", "add")
            await wait_until(lambda: peer_to(b, a.addr) is not None, 5, "added node connected")
            extra = await RawPeer.open(a, "127.0.0.2")  # a's single inbound slot is taken
            assert await extra.closed()
            net = b.p2p.network_info()
            assert (net["connections"], net["connections_out"], net["protocolversion"]) == (1, 1, wire.PROTOCOL_VERSION)
            with pytest.raises(NodeNotConnected):
                await b.p2p.disconnect_node(999)
            await b.p2p.add_node(a.addr, "remove")
            await b.p2p.disconnect_node(b.p2p.peer_info()[0]["id"])
            await wait_until(lambda: not b.p2p.manager.peers, 5, "disconnected")
            for _ in range(3):
                b.p2p.manager.maintain()  # removed: not redialled
            assert not b.p2p.manager._dialing and not b.p2p.manager.peers
    run(body())


class Rows:
    """A MatrixSource over one in-memory matrix."""

    def __init__(self, commitment: bytes, rows: list[bytes]) -> None:
        self.commitment, self.data = commitment, rows

    def rows(self, commitment: bytes, first: int, count: int, max_bytes: int) -> list[bytes] | None:
        if commitment != self.commitment:
            return None
        return self.data[first:first + count]


def test_getmatrix(tmp_path) -> None:
    commitment = b"\x42" * 32
    rows = [bytes([i]) * 64 for i in range(32)]
    a = make_node(tmp_path / "a", max_outbound=0, matrix_source=Rows(commitment, rows))
    b = make_node(tmp_path / "b", max_outbound=0)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            assert await fetch_rows(b, commitment, 4, 8) == rows[4:12]
            assert await fetch_rows(b, b"\x00" * 32, 0, 8) is None
            assert await fetch_rows(a, commitment, 0, 1) is None  # b has no source: empty reply
    run(body())


def test_getmatrix_beyond_the_burst_is_paced_not_cut_off(tmp_path) -> None:
    """A matrix larger than the per-peer burst arrives whole, at the rate: a reply over the
    budget waits for it (the fetcher asked in turn and gave up after the burst before)."""
    commitment = b"\x43" * 32
    rows = [bytes([i]) * 1024 for i in range(64)]
    limits = RelayLimits(matrix_rate=16 * 1024, matrix_burst=8 * 1024)
    a = make_node(tmp_path / "a", max_outbound=0, matrix_source=Rows(commitment, rows), relay_limits=limits)
    b = make_node(tmp_path / "b", max_outbound=0)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            start = time.monotonic()
            got = []
            while len(got) < len(rows):  # 8 rows a request: 8 KiB, the burst
                reply = await fetch_rows(b, commitment, len(got), 8)
                assert reply, f"no reply for rows {len(got)}…"
                got += reply
            assert got == rows
            assert time.monotonic() - start >= (64 - 8) / 16 * 0.9  # 56 KiB beyond the burst at 16 KiB/s
    run(body())


def test_getmatrix_unpaced_at_rate_zero(tmp_path) -> None:
    """matrix_rate 0 (the operator's "unlimited", e.g. on a LAN): requests far beyond the burst,
    many in flight from one peer, are all answered, in order; a relay at 1 KiB/s answers the
    same 8 KiB requests no sooner than 7 s each (they wait, none within 2 s)."""
    commitment = b"\x44" * 32
    rows = [bytes([i]) * 1024 for i in range(64)]
    source = Rows(commitment, rows)
    fast = make_node(tmp_path / "fast", max_outbound=0, matrix_source=source,
                     relay_limits=RelayLimits(matrix_rate=0, matrix_burst=1024))
    paced = make_node(tmp_path / "paced", max_outbound=0, matrix_source=source,
                      relay_limits=RelayLimits(matrix_rate=1024, matrix_burst=1024))
    b = make_node(tmp_path / "b", max_outbound=0)

    async def asked_at_once(server, timeout: float) -> list:
        await connect(b, server)
        replies = await asyncio.gather(*(fetch_rows(b, commitment, i, 8, timeout) for i in range(0, 64, 8)))
        await b.p2p.disconnect_node(server.addr)
        await wait_until(lambda: not b.p2p.peer_info(), 5, "b disconnected")
        return replies

    async def body() -> None:
        async with running(fast, paced, b):
            assert await asked_at_once(fast, 30.0) == [rows[i:i + 8] for i in range(0, 64, 8)]
            assert await asked_at_once(paced, 2.0) == [None] * 8
    run(body())


class Matrices:
    """A MatrixSource over several in-memory matrices, by key."""

    def __init__(self, matrices: dict[bytes, list[bytes]]) -> None:
        self.matrices = matrices

    def rows(self, commitment: bytes, first: int, count: int, max_bytes: int) -> list[bytes] | None:
        rows = self.matrices.get(commitment)
        return None if rows is None else rows[first:first + count]


def test_fetches_queued_behind_others_at_a_slow_rate_are_waited_for(tmp_path) -> None:
    """Four whole-matrix fetches at once from a peer that paces its replies to one per 0.4 s:
    the last waits 1.2 s for its only reply, longer than the 0.6 s timeout, and still gets
    it, because the peer keeps answering the others (the timeout counted from the fetch's own
    request gave such fetches up below about 1 MiB/s). A peer that answers nothing is given
    up after the timeout."""
    width, count = 4096, 256  # 1 MiB: one request each
    matrices = {bytes([i]) * 32: [bytes([i, j]) * (width // 2) for j in range(count)] for i in range(4)}
    limits = RelayLimits(matrix_rate=2.5 * 1024 * 1024, matrix_burst=1024 * 1024)
    a = make_node(tmp_path / "a", max_outbound=0, matrix_source=Matrices(matrices), relay_limits=limits)
    b = make_node(tmp_path / "b", max_outbound=0)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            (peer,) = b.p2p.manager.ready_peers()
            fetched = await asyncio.gather(*(b.p2p.relay.fetch_lines(peer, k, count, width, timeout=0.6)
                                             for k in matrices))
            assert fetched == list(matrices.values())
            await b.p2p.disconnect_node(a.addr)
            await wait_until(lambda: not b.p2p.peer_info(), 5, "b disconnected")
            silent = await RawPeer.open(b)
            await silent.handshake()
            await wait_until(lambda: len(list(b.p2p.manager.ready_peers())) == 1, 5, "the silent peer ready")
            (peer,) = b.p2p.manager.ready_peers()
            start = time.monotonic()
            assert await b.p2p.relay.fetch_lines(peer, next(iter(matrices)), count, width, timeout=0.6) is None
            assert time.monotonic() - start >= 0.6
            silent.close()
    run(body())


def test_two_nodes_fetching_each_others_matrices_at_once_do_not_deadlock(tmp_path) -> None:
    """Unpaced, each node sends 48 MiB of replies to the other while asking for 48 MiB: both
    used to stop reading until their own send buffer drained, so each waited for the other
    and both fetches timed out; now replies to our requests are read whatever our send
    buffer holds."""
    width, count = 1 << 20, 48
    key_a, key_b = b"\xaa" * 32, b"\xbb" * 32
    rows_a, rows_b = [bytes([1]) * width] * count, [bytes([2]) * width] * count
    unpaced = RelayLimits(matrix_rate=0)
    a = make_node(tmp_path / "a", max_outbound=0, matrix_source=Matrices({key_a: rows_a}), relay_limits=unpaced)
    b = make_node(tmp_path / "b", max_outbound=0, matrix_source=Matrices({key_b: rows_b}), relay_limits=unpaced)

    async def body() -> None:
        async with running(a, b):
            await connect(b, a)
            (b_at_a,) = a.p2p.manager.ready_peers()
            (a_at_b,) = b.p2p.manager.ready_peers()
            got = await asyncio.gather(a.p2p.relay.fetch_lines(b_at_a, key_b, count, width, timeout=10.0),
                                       b.p2p.relay.fetch_lines(a_at_b, key_a, count, width, timeout=10.0))
            assert got[0] == rows_b and got[1] == rows_a
    run(body())


def test_a_block_asked_for_behind_a_stream_of_matrix_replies_waits_for_little_of_it(tmp_path) -> None:
    """A peer fetching 16 MiB of matrix rows unpaced (256 KiB replies) over a link whose kernel
    buffers are full asks for a block and a pong. Matrix replies used to fill the send buffer to
    4 MiB, so the block and the pong went out behind 16 or more of them, and each message of the
    peer's waited for the buffer to drain (on a loaded LAN a block download gave up behind such
    a stream: "block download stalled"). Now matrix replies stop at 1 MiB: both come behind a
    few, however the peer reads."""
    width = 256 * 1024
    node = make_node(tmp_path, max_outbound=0, relay_limits=RelayLimits(matrix_rate=0),
                     matrix_source=Matrices({b"\x5a" * 32: [bytes([7]) * width] * 64}))
    node.chain.submit_blocks(CHAIN[:3])
    block = CHAIN[2]

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node, rcvbuf=SMALL_SOCKET_BUFFER)
            await raw.handshake()
            await wait_until(lambda: len(list(node.p2p.manager.ready_peers())) == 1, 5, "the raw peer ready")
            (peer,) = node.p2p.manager.ready_peers()
            peer.conn.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER)
            for first in range(64):
                raw.send("getmatrix", b"\x5a" * 32, first, 1)
            await asyncio.sleep(0.3)  # the node serves what the buffers take while nothing is read
            raw.send("ping", 1)
            raw.send("getdata", [[wire.INV_BLOCK, block.hash]])
            await asyncio.sleep(0.3)
            replies_before, pong_after = 0, None
            while (msg := await raw.recv(10.0)).command != "block":
                replies_before += msg.command == "matrix"
                if msg.command == "pong":
                    pong_after = replies_before
            assert wire.block_from_message(msg).block.hash == block.hash
            # ≤ 10: 1 MiB in the node's buffer and one reply over it, and what the two sockets'
            # buffers (twice 256 KiB each) and the reader hold; before, 19 or more
            assert pong_after is not None and pong_after <= 10, f"the pong came behind {pong_after} of 64 matrix replies"
            assert replies_before <= 10, f"the block came behind {replies_before} of 64 matrix replies"
            raw.close()
    run(body())


def test_a_reply_withheld_while_later_requests_are_answered_is_given_up(tmp_path) -> None:
    """A peer that leaves one getmatrix unanswered but keeps answering the requests asked after
    it does not hold that fetch: it is given up after its timeout (0.6 s) while the peer is
    still answering (a reply every 0.2 s), as a silent peer would be."""
    b = make_node(tmp_path / "b", max_outbound=0)
    width, count = 1024, 4
    rows = [bytes(width)] * count
    withheld, others = b"\x01" * 32, [bytes([2 + i]) * 32 for i in range(8)]

    async def body() -> None:
        async with running(b):
            raw = await RawPeer.open(b)
            await raw.handshake()
            await wait_until(lambda: len(list(b.p2p.manager.ready_peers())) == 1, 5, "the raw peer ready")
            (peer,) = b.p2p.manager.ready_peers()
            held = asyncio.ensure_future(b.p2p.relay.fetch_lines(peer, withheld, count, width, timeout=0.6))
            assert (await raw.expect("getmatrix")).args[0] == withheld
            answered = 0
            for other in others:
                later = asyncio.ensure_future(b.p2p.relay.fetch_lines(peer, other, count, width, timeout=5.0))
                assert (await raw.expect("getmatrix")).args[0] == other
                await asyncio.sleep(0.2)
                raw.send("matrix", other, 0, rows)
                assert await later == rows
                if held.done():
                    break
                answered += 1
            assert held.done() and held.result() is None
            assert answered < len(others)
            raw.close()
    run(body())


def test_one_peers_tx_flood_does_not_delay_another_peers_tx(tmp_path) -> None:
    """An inv of 50,000 txs that are never sent made the node ask the flooder for all of them
    and ignore everyone else's announcements for 60 s; now each peer has its own request slots."""
    node = make_node(tmp_path, max_outbound=0)
    honest_tx = transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000)

    async def body() -> None:
        async with running(node):
            flooder = await RawPeer.open(node, "127.0.0.30")
            await flooder.handshake()
            flooder.send("inv", [[wire.INV_TX, i.to_bytes(32, "big")] for i in range(1, wire.MAX_INV + 1)])
            asked = await flooder.expect("getdata")
            assert 0 < len(asked.args[0]) <= node.p2p.relay.limits.max_peer_tx_in_flight
            honest = await RawPeer.open(node, "127.0.0.31")
            await honest.handshake()
            honest.send("inv", [[wire.INV_TX, honest_tx.txid]])
            assert (await honest.expect("getdata")).args[0] == [[wire.INV_TX, honest_tx.txid]]
            honest.send("tx", honest_tx.to_list())
            await wait_until(lambda: honest_tx.txid in node.mempool, 5, "the honest tx in the mempool")
            assert node.p2p.relay.tx_requests.in_flight(1) <= node.p2p.relay.limits.max_peer_tx_in_flight
    run(body())


def test_getdata_for_the_same_block_again_and_again_is_not_amplified(tmp_path) -> None:
    """50,000 asks for the tip block in one getdata made the node send it 50,000 times."""
    node = make_node(tmp_path, max_outbound=0)
    node.chain.submit_blocks(CHAIN[:3])
    tip = CHAIN[2].hash

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node, "127.0.0.32")
            await raw.handshake()

            async def blocks_for(getdata: list, marker: int) -> int:
                raw.send("getdata", getdata)
                raw.send("ping", marker)  # answered after the getdata: everything before it is in
                count = 0
                while (msg := await raw.recv()).command != "pong":
                    count += msg.command == "block"
                return count

            assert await blocks_for([[wire.INV_BLOCK, tip]] * 1000, 1) == node.p2p.relay.limits.block_repeats
            peer = next(iter(node.p2p.manager.peers.values()))
            assert peer.score == 10
            assert await blocks_for([[wire.INV_BLOCK, tip]], 2) == 0  # still within the interval
            assert await blocks_for([[wire.INV_BLOCK, CHAIN[1].hash]], 3) == 1  # other blocks are served
            assert peer.score == 20
    run(body())


def test_one_ip_cannot_take_every_inbound_slot(tmp_path) -> None:
    """200 connections from one IP used to fill all 64 slots and lock honest peers out."""
    node = make_node(tmp_path, max_outbound=0, max_inbound=6, max_inbound_per_ip=3)

    async def body() -> None:
        async with running(node):
            hogs = [await RawPeer.open(node, "127.0.0.40") for _ in range(5)]  # silent, like slowloris
            closed = [await hog.closed(0.5) for hog in hogs]
            assert closed.count(False) == 3  # the per-IP cap
            honest = await RawPeer.open(node, "127.0.0.41")
            await honest.handshake()
            assert (await honest.expect("getheaders")).command == "getheaders"
    run(body())


def test_full_inbound_evicts_the_least_useful_peer(tmp_path) -> None:
    """When every slot is taken a newcomer evicts the youngest unprotected peer; one that
    delivered a tx recently is protected."""
    no_pings = replace(FAST_PEER, ping_interval=600.0)  # a measured ping would protect the idle peers too
    node = make_node(tmp_path, max_outbound=0, max_inbound=3, peer_limits=no_pings)
    tx = transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000)

    async def body() -> None:
        async with running(node):
            useful = await RawPeer.open(node, "127.0.0.50")
            await useful.handshake()
            useful.send("tx", tx.to_list())
            await wait_until(lambda: tx.txid in node.mempool, 5, "the useful peer's tx accepted")
            idle = [await RawPeer.open(node, f"127.0.0.{51 + i}") for i in range(2)]
            for raw in idle:
                await raw.handshake()
            await wait_until(lambda: sum(p.ready for p in node.p2p.manager.peers.values()) == 3, 5, "3 ready")
            newcomer = await RawPeer.open(node, "127.0.0.60")
            await newcomer.handshake()  # before, a full node closed it at once
            assert await idle[1].closed()  # the youngest idle peer made room
            assert not await useful.closed(0.3) and not await idle[0].closed(0.3)
            addrs = {p.ip for p in node.p2p.manager.peers.values()}
            assert addrs == {"127.0.0.50", "127.0.0.51", "127.0.0.60"}
    run(body())


def test_a_tx_that_breaks_a_rule_bans_its_sender_but_a_refused_or_stale_tx_does_not(tmp_path) -> None:
    """A bad signature or another network's chain id is the sender's fault on every chain: a
    ban.  A fee under our relay minimum (policy) or funds our tip lacks (the peer's tip may
    differ) are refused without a score."""
    node = make_node(tmp_path, max_outbound=0)
    good = transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000)
    cases = {  # ip: (tx, the code it fails with, banned)
        "127.0.0.70": (replace(good, signature=bytes(64), _txid=None), "bad-signature", True),
        "127.0.0.71": (transfer(FAUCET, 0, key(5).address, 10**8, fee=10_000, network=DEV), "bad-chain-id", True),
        "127.0.0.72": (transfer(FAUCET, 0, key(5).address, 10**8, fee=1), "fee-too-low", False),
        "127.0.0.73": (transfer(FAUCET, 0, key(5).address, 2**62, fee=10_000), "insufficient-funds", False),
    }
    for tx, code, _ in cases.values():  # each fails as the case says
        with pytest.raises((InvalidTx, MempoolPolicyError), match=code):
            node.mempool.add(tx)

    async def body() -> None:
        async with running(node):
            for ip, (tx, code, banned) in cases.items():
                raw = await RawPeer.open(node, ip)
                await raw.handshake()
                raw.send("tx", tx.to_list())
                if banned:
                    assert await raw.closed(), ip
                    continue
                raw.send("ping", 7)
                assert (await raw.expect("pong")).args == [7], ip
                assert {p["addr"].split(":")[0]: p["banscore"] for p in node.p2p.peer_info()}[ip] == 0, ip
            bans = {b["address"]: b["reason"] for b in node.p2p.list_banned()}
            assert set(bans) == {f"{ip}/32" for ip, case in cases.items() if case[2]}
            assert all(cases[address[:-3]][1] in reason for address, reason in bans.items())
            assert len(node.mempool) == 0
    run(body())

@pytest.mark.parametrize("answer", ["notfound", "forged-block"])
def test_forged_header_batch_is_spot_checked_and_the_forger_banned(tmp_path, answer) -> None:
    """Headers carry no checkable work: a random block of each batch is fetched before more
    headers are taken from that peer, and a forger cannot deliver it (Pearl's header presync)."""
    node = make_node(tmp_path, max_outbound=0, sync_limits=replace(FAST_SYNC, stall_timeout=60.0))
    node.chain.submit_blocks(CHAIN[:20])
    forged = bogus_headers(CHAIN[19].header, wire.MAX_HEADERS, salt=70)
    by_hash = {h.hash: h for h in forged}

    async def body() -> None:
        async with running(node):
            forger = await RawPeer.open(node, "127.0.0.70")
            await forger.handshake(height=20 + wire.MAX_HEADERS)
            await forger.expect("getheaders")
            forger.send("headers", [h.to_list() for h in forged])
            asked = (await forger.expect("getdata")).args[0]
            assert len(asked) == 1 and asked[0][1] in by_hash  # one block of the batch, before any other
            assert len(node.chain.index.loose) == wire.MAX_HEADERS
            # the forged headers have more claimed work, but the node does not think it is syncing
            assert node.chain.best_header_height() == node.height == 20
            forger.send("headers", [h.to_list() for h in bogus_headers(forged[-1], 10, salt=71)])  # more: refused
            if answer == "notfound":
                forger.send("notfound", asked)
            else:
                fake = Block(by_hash[asked[0][1]], CHAIN[0].proof, ())
                forger.send_raw(wire.frame(REGTEST.magic, wire.block_payload(fake.encode())))
            assert await forger.closed()
            assert [b["address"] for b in node.p2p.list_banned()] == ["127.0.0.70/32"]
            await wait_until(lambda: not node.chain.index.loose, 5, "the forged headers forgotten")
            assert node.chain.best_header_height() == 20
    run(body())


def test_honest_sync_reports_progress_from_spot_checked_blocks(tmp_path) -> None:
    """During an honest download, the spot-checked blocks ahead of the tip are the verified
    work that says the node is still syncing."""
    node = make_node(tmp_path, max_outbound=0, sync_limits=replace(FAST_SYNC, stall_timeout=60.0))
    by_hash = {blk.hash: blk for blk in CHAIN}

    async def body() -> None:
        async with running(node):
            peer = await RawPeer.open(node, "127.0.0.72")
            await peer.handshake(height=len(CHAIN))
            await peer.expect("getheaders")
            peer.send("headers", [blk.header.to_list() for blk in CHAIN])
            (check,) = (await peer.expect("getdata")).args[0]
            peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(by_hash[check[1]].encode())))
            height = by_hash[check[1]].header.height
            await wait_until(lambda: node.chain.best_header_height() == height, 5, "the checked block stored")
            assert node.height < height or height == 1  # stored ahead of its missing parents
            assert not await peer.closed(0.2) and node.p2p.list_banned() == []
    run(body())


def test_blocks_below_ones_stored_ahead_are_still_fetched(tmp_path) -> None:
    """A spot-checked block and a child released after it are stored ahead of their missing
    parents; the blocks below them must still be wanted (the walk stopped at the first two
    blocks with data, and the download stalled)."""
    node = make_node(tmp_path, max_outbound=0, sync_limits=replace(FAST_SYNC, stall_timeout=60.0))
    node.chain.submit_blocks(CHAIN[:15])

    async def body() -> None:
        async with running(node):
            peer = await RawPeer.open(node, "127.0.0.73")
            await peer.handshake(height=40)
            await peer.expect("getheaders")
            peer.send("headers", [blk.header.to_list() for blk in CHAIN[15:40]])
            (check,) = (await peer.expect("getdata")).args[0]
            checked = BY_HASH[check[1]]
            child = CHAIN[checked.header.height] if checked.header.height < 40 else None
            for blk in ([child] if child else []) + [checked]:  # the child first: held, then released
                peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(blk.encode())))

            async def serve() -> None:
                while True:
                    for kind, h in (await peer.expect("getdata", 30)).args[0]:
                        peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(BY_HASH[h].encode())))
            serving = asyncio.create_task(serve())
            await wait_until(lambda: node.height == 40, 15, "the node synced past the blocks stored ahead")
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    run(body())


BAD_DOWNLOAD = make_block(CHAIN[19].header, [transfer(key(7), 0, FAUCET.address, 5)])  # no funds: fails on connecting


def bad_download_node(tmp_path, **chain_kwargs) -> Node:
    """A node at CHAIN[14] whose sync will spot-check neither BAD_DOWNLOAD nor its parent."""
    chain = Chain(tmp_path, "regtest", now=lambda: NOW, tx_workers=0, **chain_kwargs)
    node = make_node(tmp_path, chain=chain, max_outbound=0, sync_limits=replace(FAST_SYNC, stall_timeout=60.0))
    node.chain.submit_blocks(CHAIN[:15])
    count = len(CHAIN[15:20]) + 1
    seed = next(s for s in range(100) if random.Random(s).choice(range(count)) < 4)
    node.p2p.sync._random = random.Random(seed)
    return node


async def send_bad_download(node: Node, ip: str) -> tuple[RawPeer, list[bytes], dict[bytes, Block]]:
    """A raw peer at ``ip`` announces CHAIN[15:20] + BAD_DOWNLOAD, answers the spot check and then
    sends BAD_DOWNLOAD first, which waits in the chain; returns the peer, the other hashes the
    node asked for, and the blocks by hash."""
    batch = [*CHAIN[15:20], BAD_DOWNLOAD]
    by_hash = {blk.hash: blk for blk in batch}
    peer = await RawPeer.open(node, ip)
    await peer.handshake(height=21)
    await peer.expect("getheaders")
    peer.send("headers", [blk.header.to_list() for blk in batch])
    (check,) = (await peer.expect("getdata")).args[0]
    peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(by_hash[check[1]].encode())))
    asked = [h for _, h in (await peer.expect("getdata")).args[0]]
    assert BAD_DOWNLOAD.hash in asked
    peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(BAD_DOWNLOAD.encode())))
    await wait_until(lambda: node.chain.waiting(BAD_DOWNLOAD.hash), 5, "the bad block waiting in the chain")
    return peer, [h for h in asked if h != BAD_DOWNLOAD.hash], by_hash


def test_a_download_that_waited_in_the_chain_bans_its_sender_when_found_invalid(tmp_path) -> None:
    """Blocks that arrive before their parent's data wait in the chain's one pool, not in sync;
    when the parent comes (in another submission) and the waiting block fails, the chain's
    ``released`` verdict names the peer, which is banned."""
    node = bad_download_node(tmp_path)

    async def body() -> None:
        async with running(node):
            peer, others, by_hash = await send_bad_download(node, "127.0.0.74")
            assert not await peer.closed(0.1)
            for h in others:
                peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(by_hash[h].encode())))
            assert await peer.closed()
            assert node.chain.tip.hash == CHAIN[19].hash and not node.chain.waiting(BAD_DOWNLOAD.hash)
            (ban,) = node.p2p.list_banned()
            assert ban["address"] == "127.0.0.74/32" and "bad-tx" in ban["reason"]
    run(body())


def test_a_download_stored_out_of_order_bans_its_sender_when_it_fails_later(tmp_path) -> None:
    """With room for one waiting block, the bad download is pushed out of the chain's pool by
    the next one and stored before its parent's data; it fails only when the chain connects it,
    in a later submission, and the chain's ``rejected`` event bans the peer that sent it."""
    node = bad_download_node(tmp_path, waiting_count=1)
    bad = BAD_DOWNLOAD

    async def body() -> None:
        async with running(node):
            peer, others, by_hash = await send_bad_download(node, "127.0.0.75")
            peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(by_hash[others[-1]].encode())))
            await wait_until(lambda: node.chain.entry(bad.hash).have_data and not node.chain.waiting(bad.hash), 5,
                             "the bad block stored out of order")
            assert not await peer.closed(0.1)
            for h in others[:-1]:
                peer.send_raw(wire.frame(REGTEST.magic, wire.block_payload(by_hash[h].encode())))
            assert await peer.closed()
            assert node.chain.tip.hash == CHAIN[19].hash and node.chain.entry(bad.hash).failed
            (ban,) = node.p2p.list_banned()
            assert ban["address"] == "127.0.0.75/32" and "bad-tx: tx 0" in ban["reason"]
    run(body())
