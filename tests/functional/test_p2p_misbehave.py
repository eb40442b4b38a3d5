"""Misbehaving raw peers against a real pouwd (PROTOCOL §7: "a peer that sends invalid
blocks, invalid proofs or malformed frames is disconnected and banned").

Every raw peer connects from its own 127.x address (p2putil.fresh_source_ip), so
its ban is on that /32 and never on 127.0.0.1, where the honest nodes live: the
node under test keeps an honest inbound peer connected throughout, and a fresh
honest node still syncs from it at the end.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from consensus import encoding as enc
from consensus.block import Block
from p2p import wire
from tests.unit.node.helpers import build_chain, genesis_header, make_block

from .framework import NodeProcess, sync_blocks, wait_until
from .p2putil import RawPeer, bad_frame_header, banned, submit, wait_connected

CHAIN = build_chain(genesis_header(), 20)


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """(target, honest): the node under test with 20 blocks, and a node dialling it from 127.0.0.1."""
    root = Path(tmp_path_factory.mktemp("misbehave"))
    target = NodeProcess(0, root, extra_args=["--max-outbound", "0"])
    honest = NodeProcess(1, root, extra_args=["--connect", target.p2p_address])
    try:
        target.start()
        submit(target, CHAIN)
        honest.start()
        assert sync_blocks([target, honest]) == CHAIN[-1].hash.hex()
        yield target, honest
    finally:
        honest.cleanup()
        target.cleanup()


def honest_peer_id(target: NodeProcess) -> int:
    (peer,) = [p for p in target.getpeerinfo() if p["addr"].startswith("127.0.0.1:")]
    return peer["id"]


def invalid_proof_block(peer: RawPeer) -> None:
    good = make_block(CHAIN[-1].header, nonce=7)
    rows = bytearray(good.proof.a_rows)
    rows[0] = (rows[0] + 1) % 64  # still in the entry range, but no longer the committed matrix
    bad = Block(good.header, replace(good.proof, a_rows=bytes(rows)), good.txs)
    peer.send_payload(wire.block_payload(bad.encode()))


def bad_checksum(peer: RawPeer) -> None:
    payload = wire.payload("ping", 1)
    peer.send_raw(bad_frame_header(peer.network, len(payload), b"\xde\xad\xbe\xef") + payload)


def oversized_frame(peer: RawPeer) -> None:
    peer.send_raw(bad_frame_header(peer.network, wire.MAX_PAYLOAD + 1))  # no payload follows


def non_canonical(peer: RawPeer) -> None:
    payload = b"\x92" + enc.encode("ping") + b"\xcc\x05"  # 5 as uint8: not the shortest form
    peer.send_payload(payload)


def bad_magic(peer: RawPeer) -> None:
    payload = wire.payload("ping", 1)
    peer.send_raw(wire.frame(b"\x00\x01\x02\x03", payload))


def schema_breaking(peer: RawPeer) -> None:
    peer.send("getheaders", [b"\x00" * 31], b"\x00" * 32)  # a 31-byte locator hash


CASES: dict[str, tuple[Callable[[RawPeer], None], str]] = {  # what it sends, the ban reason
    "invalid-proof-block": (invalid_proof_block, "bad-proof-a-path"),
    "bad-checksum": (bad_checksum, "bad-checksum"),
    "oversized-frame": (oversized_frame, "oversized"),
    "non-canonical": (non_canonical, "non-canonical"),
    "bad-magic": (bad_magic, "bad-magic"),
    "schema-breaking": (schema_breaking, "expected 32 bytes"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_misbehaving_peer_is_disconnected_and_banned(net, case) -> None:
    target, honest = net
    honest_id = honest_peer_id(target)
    with RawPeer.to(target) as peer:
        peer.handshake(height=20)
        send, reason = CASES[case]
        send(peer)
        assert peer.closed(10), f"{case}: the node kept the connection open"
    subnet = f"{peer.source_ip}/32"
    wait_until(lambda: subnet in banned(target), 10, 0.05, f"{subnet} to be banned")
    entry = next(e for e in target.listbanned() if e["address"] == subnet)
    assert entry["time_remaining"] > 3600 and reason in entry["reason"], entry
    assert "127.0.0.1/32" not in banned(target)
    # the ban holds: the same address is refused at once, before any handshake
    with RawPeer.to(target, peer.source_ip) as again:
        assert again.closed(5)
    # and the node keeps serving: RPC, the honest peer's connection, the chain
    assert target.getblockcount() == 20
    assert honest_peer_id(target) == honest_id
    assert honest.getbestblockhash() == target.getbestblockhash() == CHAIN[-1].hash.hex()


def test_a_misbehaving_peer_before_the_handshake_is_banned_too(net) -> None:
    target, _ = net
    with RawPeer.to(target) as peer:
        non_canonical(peer)  # instead of a version
        assert peer.closed(10)
    wait_until(lambda: f"{peer.source_ip}/32" in banned(target), 10, 0.05, "the ban")


def test_node_still_serves_honest_peers_after_the_bans(net, start_nodes) -> None:
    target, honest = net
    assert len(banned(target)) >= len(CASES)
    (tip,) = target.generate(1)
    assert sync_blocks([target, honest]) == tip
    (fresh,) = start_nodes(1, [["--connect", target.p2p_address]])
    assert sync_blocks([target, honest, fresh]) == tip
    wait_connected(target, inbound=2, outbound=0)
    assert fresh.getblockcount() == 21

