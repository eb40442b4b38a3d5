"""Raw p2p peers for functional tests: a blocking TCP connection to a pouwd's p2p port
that speaks exactly the bytes a test wants (PROTOCOL §7, framed with ``p2p.wire``).

Bans: every test peer on one host is loopback, and a ban is on the peer's IP. A
misbehaving ``RawPeer`` therefore connects *from* its own 127.0.0.x address
(``source_ip``; all of 127.0.0.0/8 is loopback on Linux), so its ban never cuts
off the honest 127.0.0.1 peers of the node under test.
"""
from __future__ import annotations

import itertools
import os
import random
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from consensus.block import Header
from consensus.params import REGTEST, Network
from p2p import wire

from .framework import NodeProcess

_sources = itertools.count(2)


def fresh_source_ip() -> str:
    """A loopback address no other peer in this test process has used (127.0.0.2, .3, …)."""
    n = next(_sources)
    return f"127.{1 + os.getpid() % 250}.{n >> 8 & 0xFF}.{n & 0xFF}"


class RawPeer:
    """One hand-driven connection. ``recv`` answers pings while ``auto_pong``."""

    def __init__(self, host: str, port: int, source_ip: str | None = None, network: Network = REGTEST,
                 timeout: float = 10.0) -> None:
        self.network = network
        self.source_ip = source_ip or fresh_source_ip()
        self.sock = socket.create_connection((host, port), timeout, source_address=(self.source_ip, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.auto_pong = True
        self._buf = b""

    @classmethod
    def to(cls, node, source_ip: str | None = None, **kwargs: Any) -> RawPeer:
        """Connect to a ``NodeProcess``'s p2p port."""
        return cls("127.0.0.1", node.p2p_port, source_ip, **kwargs)

    # --- sending ----------------------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_payload(self, payload: bytes) -> None:
        self.send_raw(wire.frame(self.network.magic, payload))

    def send(self, command: str, *args: Any) -> None:
        self.send_payload(wire.payload(command, *args))

    def send_version(self, *, height: int = 0, nonce: int | None = None, listen_port: int = 0) -> None:
        self.send("version", wire.PROTOCOL_VERSION, self.network.chain_id, 1, int(time.time()),
                  random.getrandbits(63) if nonce is None else nonce, "/rawpeer/", height, listen_port)

    # --- receiving --------------------------------------------------------------------
    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no data within the deadline ({len(self._buf)}/{n} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError("connection closed by the node")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def recv(self, timeout: float = 10.0) -> wire.Message:
        """The next known message (pings answered and skipped while ``auto_pong``)."""
        deadline = time.monotonic() + timeout
        while True:
            head = self._read_exact(wire.FRAME_HEADER, deadline)
            length, check = wire.parse_frame_header(self.network.magic, head)
            data = self._read_exact(length, deadline)
            assert wire.checksum(data) == check, "the node sent a bad checksum"
            msg = wire.decode(data)
            if msg is None:
                continue
            if msg.command == "ping" and self.auto_pong:
                self.send("pong", msg.args[0])
                continue
            return msg

    def expect(self, command: str, timeout: float = 10.0) -> wire.Message:
        """Skip messages until one with ``command`` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg.command == command:
                return msg

    def handshake(self, height: int = 0) -> wire.Message:
        """Dialler side of §7: version →, ← version, ← verack, verack →. Returns the node's version."""
        self.send_version(height=height)
        version = self.recv()
        assert version.command == "version", version.command
        assert self.recv().command == "verack"
        self.send("verack")
        return version

    def closed(self, timeout: float = 10.0) -> bool:
        """True once the node has closed the connection (anything it sent first is dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                if not self.sock.recv(1 << 16):
                    return True
            except TimeoutError:
                return False
            except OSError:  # a reset: closed with our data unread
                return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bad_frame_header(network: Network, length: int, check: bytes = b"\0\0\0\0") -> bytes:
    """A bare 12-byte frame header announcing ``length`` payload bytes."""
    return network.magic + struct.pack("<I", length) + check


def banned(node) -> set[str]:
    """The subnets a node lists as banned."""
    return {entry["address"] for entry in node.listbanned()}


def headers_message(headers: Sequence[Header]) -> bytes:
    return wire.payload("headers", [h.to_list() for h in headers])


# --- honest chains and topologies -------------------------------------------------------

def submit(node, blocks: Sequence[Any]) -> None:
    """Mine prepared blocks on a running node (``submitblock`` each; None means accepted)."""
    for block in blocks:
        result = node.submitblock(block.encode().hex())
        assert result is None, f"block {block.header.height} refused: {result}"


def seed_datadir(node, blocks: Sequence[Any]) -> None:
    """Write a chain into a stopped node's datadir in-process (much faster than RPC)."""
    from node.chain import Chain
    chain = Chain(node.datadir, node.network, tx_workers=0)
    try:
        for i in range(0, len(blocks), 256):
            results = chain.submit_blocks(blocks[i:i + 256])
            assert all(r.status == "accepted" for r in results), [r for r in results if r.status != "accepted"]
    finally:
        chain.close()


def peers(node) -> list[dict]:
    return node.getpeerinfo()


def wait_connected(node, addr: str | None = None, *, inbound: int | None = None, outbound: int | None = None,
                   timeout: float = 30.0) -> None:
    """Wait until ``node`` has a ready (handshake done) peer at ``addr`` and/or these counts."""
    from .framework import wait_until

    def ok() -> bool:
        info = [p for p in node.getpeerinfo() if p.get("version")]
        if addr is not None and not any(p["addr"] == addr for p in info):
            return False
        if inbound is not None and sum(p["inbound"] for p in info) != inbound:
            return False
        return outbound is None or sum(not p["inbound"] for p in info) == outbound
    wait_until(ok, timeout, 0.1, f"node{node.index} connections (addr={addr}, in={inbound}, out={outbound})")


@contextmanager
def connected_pair(root: Path, second_args: Sequence[str] = ()) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Node 0 (no outbound connections) and node 1 (with ``second_args``) connected to it, both
    running: a poster's node and a worker's; both cleaned up afterwards."""
    first = NodeProcess(0, root, extra_args=["--max-outbound", "0"])
    second = NodeProcess(1, root)
    try:
        first.start()
        second.extra_args = ["--connect", first.p2p_address, *second_args]
        second.start()
        wait_connected(second, first.p2p_address)
        yield first, second
    finally:
        first.cleanup()
        second.cleanup()
