"""In-process nodes for p2p tests: a real regtest Chain on LevelDB (written on its own
thread, as in the daemon), a Mempool and a P2PNode listening on 127.0.0.1 with short
timeouts."""
from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consensus.params import GENESIS_TIMESTAMP, REGTEST
from node.chain import Chain, ChainEvent
from node.chainworker import ChainWorker
from node.mempool import Mempool
from p2p import P2PNode, PeerLimits, SyncLimits, wire
from p2p.connection import FrameConnection
from p2p.interfaces import MemoryRecords

NOW = GENESIS_TIMESTAMP + 10**7  # a clock well past every test block's timestamp
FAST_PEER = PeerLimits(handshake_timeout=5.0, ping_interval=2.0, ping_timeout=10.0, inactivity_timeout=30.0)
FAST_SYNC = SyncLimits(stall_timeout=5.0, headers_timeout=10.0)


@dataclass
class Node:
    chain: Chain
    mempool: Mempool
    p2p: P2PNode
    records: MemoryRecords
    worker: ChainWorker
    events: list[ChainEvent] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.p2p.listen_port}"

    @property
    def height(self) -> int:
        return self.chain.tip.height


def open_chain(path: Path) -> Chain:
    return Chain(path, "regtest", now=lambda: NOW, tx_workers=0)


def wire_mempool(chain: ChainWorker, mempool: Mempool) -> None:
    """What the daemon does: keep the mempool on the chain's tip (on the loop)."""
    def on_event(ev: ChainEvent) -> None:
        if ev.kind == "connected":
            mempool.on_block_connected(ev.block)
        else:
            mempool.on_block_disconnected(ev.block)
    chain.subscribe(on_event)


def make_node(path: Path, *, chain: Chain | None = None, records: MemoryRecords | None = None,
              **kwargs: Any) -> Node:
    chain = chain or open_chain(path)
    worker = ChainWorker(chain)
    mempool = Mempool(REGTEST, chain.tip_view, clock=lambda: float(NOW))
    wire_mempool(worker, mempool)
    records = records or MemoryRecords()
    kwargs.setdefault("bind", "127.0.0.1")
    kwargs.setdefault("port", 0)
    kwargs.setdefault("listen", True)
    kwargs.setdefault("peer_limits", FAST_PEER)
    kwargs.setdefault("sync_limits", FAST_SYNC)
    kwargs.setdefault("dial_interval", 0.1)
    kwargs.setdefault("retry_base", 0.2)
    p2p = P2PNode(worker, mempool, REGTEST, records=records, **kwargs)
    node = Node(chain, mempool, p2p, records, worker)
    worker.subscribe(node.events.append)
    return node


@contextlib.asynccontextmanager
async def running(*nodes: Node) -> AsyncIterator[None]:
    """Start the nodes' p2p; on exit stop it and close their chains."""
    try:
        for node in nodes:
            await node.p2p.start()
        yield
    finally:
        for node in nodes:
            await node.p2p.stop()
        for node in nodes:
            node.worker.close()
            node.chain.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def run(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    """Run a test coroutine on a fresh event loop with an overall timeout."""
    async def main() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(main())


async def connect(a: Node, b: Node) -> None:
    """``a`` dials ``b`` and both see the handshake complete."""
    before_a = {p["id"] for p in a.p2p.peer_info()}
    await a.p2p.add_node(b.addr, "onetry")
    await wait_until(lambda: any(p.ready for p in a.p2p.manager.peers.values() if p.id not in before_a)
                     and any(p.ready and p.inbound for p in b.p2p.manager.peers.values()),
                     10, f"{a.addr} → {b.addr} handshake")


class RawPeer:
    """A hand-driven connection to a node, for sending exactly the bytes a test wants."""

    def __init__(self, conn: FrameConnection) -> None:
        self.conn = conn
        self.auto_pong = True

    @classmethod
    async def open(cls, node: Node, source_ip: str = "127.0.0.1", rcvbuf: int | None = None) -> RawPeer:
        """Connect from ``source_ip``; ``rcvbuf``: the socket's receive buffer (set before the
        handshake, which fixes the window scale), to stand for a link whose buffers are full."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        sock.bind((source_ip, 0))
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.p2p.listen_port))
        return cls(await open_connection(sock, wire.MAX_HANDSHAKE_PAYLOAD))

    def send_raw(self, data: bytes) -> None:
        self.conn.write(data)

    def send(self, command: str, *args: Any) -> None:
        self.send_raw(wire.frame(REGTEST.magic, wire.payload(command, *args)))

    def send_version(self, *, chain_id: int = REGTEST.chain_id, nonce: int = 12345, height: int = 0,
                     protocol: int = wire.PROTOCOL_VERSION) -> None:
        self.send("version", protocol, chain_id, 1, NOW, nonce, "/raw/", height, 0)

    async def recv(self, timeout: float = 5.0) -> wire.Message:
        """The next known message (pings are answered and skipped while ``auto_pong``)."""
        while True:
            data = await asyncio.wait_for(self.conn.read_frame(), timeout)
            msg = wire.decode(data)
            if msg is None:
                continue
            if msg.command == "ping" and self.auto_pong:
                self.send("pong", msg.args[0])
                continue
            return msg

    async def expect(self, command: str, timeout: float = 5.0) -> wire.Message:
        """Skip messages until one with ``command`` arrives."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.recv(max(0.01, deadline - time.monotonic()))
            if msg.command == command:
                return msg
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {command}")

    async def handshake(self, height: int = 0) -> None:
        self.send_version(height=height)
        assert (await self.recv()).command == "version"
        assert (await self.recv()).command == "verack"
        self.send("verack")

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the node has closed the connection (reads and drops anything before)."""
        try:
            while True:
                await asyncio.wait_for(self.conn.read_frame(), timeout)
        except TimeoutError:
            return False
        except (asyncio.IncompleteReadError, ConnectionError):  # a reset: closed with our data unread
            return True

    def close(self) -> None:
        self.conn.close()


async def fetch_rows(node: Node, key: bytes, first: int, count: int, timeout: float = 10.0) -> list[bytes] | None:
    """Ask the node's peers in turn for rows ``first…`` under ``key`` with ``getmatrix``; the first
    non-empty reply (the requesting side of §7, as ``Relay.fetch_lines`` asks for whole matrices)."""
    relay = node.p2p.relay
    for peer in node.p2p.manager.ready_peers():
        fut = relay.ask_matrix(peer, key, first, count)
        if fut is None:
            continue
        try:
            rows = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            rows = None
        finally:
            relay.forget_matrix(peer, key, first)
        if rows:
            return rows
    return None


async def open_connection(sock: socket.socket, first_limit: int = wire.MAX_PAYLOAD) -> FrameConnection:
    """A peer's connection over the connected ``sock``, its first frame held to ``first_limit``."""
    _, conn = await asyncio.get_running_loop().create_connection(
        lambda: FrameConnection(REGTEST.magic, first_limit), sock=sock)
    return conn


async def frames_from(data: bytes, limits: Sequence[int]) -> list[memoryview]:
    """The payloads ``FrameConnection.read_frame`` returns, one call per limit in ``limits``,
    from a real socket whose other end sends ``data`` and then closes."""
    ours, theirs = socket.socketpair()
    with theirs:
        conn = await open_connection(ours, limits[0])
        sending = asyncio.create_task(asyncio.to_thread(_send_and_close, theirs, data))
        try:
            return [await conn.read_frame(limit) for limit in limits]
        finally:
            conn.close()
            await sending


def _send_and_close(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the reader may have closed first (a bad frame)
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


def read_frame_of(data: bytes, limit: int = wire.MAX_PAYLOAD) -> memoryview:
    """The first frame's payload in ``data``, read as a peer's connection reads it."""
    return asyncio.run(frames_from(data, [limit]))[0]
