"""p2p.peer: handshake rules, keepalive and bans for malformed frames (PROTOCOL §7)."""
from __future__ import annotations

import struct

from consensus.params import REGTEST
from p2p import PeerLimits, wire
from p2p.peer import KnownFilter
from p2p.ratelimit import TokenBucket
from tests.unit.p2p.helpers import RawPeer, make_node, run, running, wait_until


def peers(node) -> list:
    return list(node.p2p.manager.peers.values())


def test_handshake_and_ping(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node)
            raw.send("ufo", 1)  # unknown commands are ignored, even before the handshake
            await raw.handshake()
            await wait_until(lambda: any(p.ready for p in peers(node)), 5, "ready")
            msg = await raw.expect("getheaders")  # sync starts at once
            assert msg.args[0] == node.chain.locator()
            raw.send("ping", 77)
            assert (await raw.expect("pong")).args == [77]
            info = node.p2p.peer_info()[0]
            assert info["inbound"] and info["subver"] == "/raw/" and info["version"] == wire.PROTOCOL_VERSION
            assert node.p2p.network_info()["connections_in"] == 1
            raw.close()
            await wait_until(lambda: not peers(node), 5, "disconnect seen")
    run(body())


def test_wrong_chain_disconnects_without_ban(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node)
            raw.send_version(chain_id=REGTEST.chain_id + 1)
            assert await raw.closed()
            raw = await RawPeer.open(node)
            raw.send_version(protocol=wire.PROTOCOL_VERSION - 1)
            assert await raw.closed()
            assert node.p2p.list_banned() == []
    run(body())


def test_message_before_verack_disconnects(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node)
            raw.send("ping", 1)  # before version
            assert await raw.closed()
            raw = await RawPeer.open(node)
            raw.send_version()
            assert (await raw.recv()).command == "version"
            assert (await raw.recv()).command == "verack"
            raw.send("getaddr")  # after version, before verack
            assert await raw.closed()
            raw = await RawPeer.open(node)
            raw.send("verack")  # verack before version
            assert await raw.closed()
            assert not peers(node) and node.p2p.list_banned() == []
    run(body())


def test_self_connection_detected_and_not_retried(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            await node.p2p.add_node(node.addr, "add")
            await wait_until(lambda: node.addr in node.p2p.manager._self_addrs, 5, "self detected")
            await wait_until(lambda: not peers(node), 5, "both ends closed")
            await node.p2p.add_node(node.addr, "remove")
            assert not any(p.ready for p in peers(node))
    run(body())


def test_silent_peer_times_out(tmp_path) -> None:
    node = make_node(tmp_path, peer_limits=PeerLimits(handshake_timeout=0.5, ping_interval=0.2, ping_timeout=0.5))

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node)  # never sends version
            assert await raw.closed(3)
            raw = await RawPeer.open(node)
            await raw.handshake()
            raw.auto_pong = False
            msg = await raw.expect("ping")  # then never answers it
            assert msg.command == "ping"
            assert await raw.closed(3)
            assert node.p2p.list_banned() == []
    run(body())


def frame_with(payload: bytes, *, magic: bytes = REGTEST.magic, check: bytes | None = None) -> bytes:
    return magic + struct.pack("<I", len(payload)) + (check or wire.checksum(payload)) + payload


BAD_FRAMES = {
    "127.0.0.2": frame_with(wire.payload("ping", 1), magic=b"XXXX"),
    "127.0.0.3": frame_with(wire.payload("ping", 1), check=b"\x00\x00\x00\x00"),
    "127.0.0.4": REGTEST.magic + struct.pack("<I", wire.MAX_PAYLOAD + 1) + bytes(4),
    "127.0.0.5": frame_with(b"\x92\xa4ping\xcc\x01"),  # non-canonical
    "127.0.0.6": frame_with(wire.payload("inv", [[1, b"short"]])),  # schema
}


def test_malformed_frames_ban_the_sender_only(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            good = await RawPeer.open(node)
            await good.handshake()
            for ip, data in BAD_FRAMES.items():
                raw = await RawPeer.open(node, ip)
                await raw.handshake()
                raw.send_raw(data)
                assert await raw.closed(), ip
            banned = {b["address"] for b in node.p2p.list_banned()}
            assert banned == {f"{ip}/32" for ip in BAD_FRAMES}
            assert all("malformed" in b["reason"] for b in node.p2p.list_banned())
            again = await RawPeer.open(node, "127.0.0.2")  # refused at accept
            assert await again.closed()
            good.send("ping", 9)  # the others are still served
            assert (await good.expect("pong")).args == [9]
            assert node.records.get_record("ban", b"127.0.0.3/32") is not None
    run(body())


def test_malformed_frame_before_handshake_bans(tmp_path) -> None:
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node, "127.0.0.7")
            raw.send_raw(BAD_FRAMES["127.0.0.3"])
            assert await raw.closed()
            assert [b["address"] for b in node.p2p.list_banned()] == ["127.0.0.7/32"]
    run(body())


def test_known_filter_is_bounded() -> None:
    f = KnownFilter(3)
    for i in range(5):
        f.add(bytes([i]))
    assert len(f) == 3 and bytes([0]) not in f and bytes([4]) in f
    f.add(bytes([2]))  # refreshed: now the newest
    f.add(bytes([5]))
    assert bytes([2]) in f and bytes([3]) not in f


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, 20.0, clock=lambda: now[0])
    assert bucket.take(20) and not bucket.take(1)
    now[0] += 0.5
    assert bucket.take(5) and not bucket.take(1)
    now[0] += 100
    assert bucket.take(20) and not bucket.take(1)


def test_large_unknown_commands_score_and_ban(tmp_path) -> None:
    """Unknown commands are ignored, but one near the frame limit is not free: it bans (§7)."""
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node, "127.0.0.8")
            await raw.handshake()
            raw.send("ufo", b"x" * 1000)  # small: ignored without a score
            raw.send("ping", 3)
            assert (await raw.expect("pong")).args == [3]
            assert peers(node)[0].score == 0
            raw.send("zzz", [[]] * (wire.MAX_PAYLOAD - 64))
            assert await raw.closed(10)
            assert [b["address"] for b in node.p2p.list_banned()] == ["127.0.0.8/32"]
            assert "unknown command" in node.p2p.list_banned()[0]["reason"]
    run(body())


def test_large_frame_before_handshake_bans(tmp_path) -> None:
    """Before verack only small frames fit: eight unhandshaken sources cannot make the node buffer 8 MiB each."""
    node = make_node(tmp_path)

    async def body() -> None:
        async with running(node):
            raw = await RawPeer.open(node, "127.0.0.9")
            raw.send("ufo", b"x" * wire.MAX_HANDSHAKE_PAYLOAD)
            assert await raw.closed()
            assert [b["address"] for b in node.p2p.list_banned()] == ["127.0.0.9/32"]
    run(body())


def test_token_bucket_debt() -> None:
    """Upload budgets overdraw instead of refusing: the sender waits the debt off."""
    now = [0.0]
    bucket = TokenBucket(100.0, 200.0, clock=lambda: now[0])
    assert bucket.debt(150) == 0.0
    assert bucket.debt(250) == 2.0  # 200 tokens short at 100/s
    now[0] += 2.0
    assert bucket.debt(0) == 0.0 and not bucket.take(1)
    now[0] += 1.0
    assert bucket.take(100)
