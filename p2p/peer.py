"""One connection: handshake, keepalive, send limits, known inventory, misbehaviour (PROTOCOL §7).

Handshake: the connecting side sends ``version``; the other answers ``version``
then ``verack``; the connecting side answers ``verack``.  Before that only
``version``/``verack`` (and small unknown commands, which are ignored) are
accepted, in frames of at most 4 KiB; anything else disconnects.  Unknown
commands are never decoded; a large one scores (``wire.unknown_score``).  A wrong chain id, a protocol below 1 or our own nonce
(a connection to ourselves) disconnects too.  A malformed frame bans.

Every exception raised while handling this peer's input ends this peer's
connection and nothing else.

Reading never waits on our send buffer: two peers that both stopped reading until their
replies drained would each wait on the other (serving each other's matrices, say) until
the ping timeout. Messages are handled in the order they came by a task of the connection's
own, which waits for the send buffer to drain after each (a peer that does not read its
replies gets no more); the reader queues them meanwhile, up to ``inbox_bytes``, then waits.
Matrix traffic skips the queue: ``matrix`` replies to our requests are taken as they come,
and ``getmatrix`` replies go out as the send buffer allows (``Relay``), so neither waits
behind a drain.

The send buffer has two marks. Matrix replies, the bulk of the traffic, are written only while
it holds at most ``matrix_high_water`` (``matrix_room``/``matrix_drain``); so they take at most
that plus one frame of it, and whatever else we send (a block, a tx, a pong) goes out behind at
most that much. Handling the peer's other messages waits only while the buffer holds more than
``send_high_water``, which is above anything matrix replies fill: a block request waits on the
peer reading its own replies, never on our serving it a matrix (a node that did made its peer
give up on a block download behind a stream of matrix replies).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from . import wire
from .connection import FrameConnection
from .wire import Message, WireError

log = logging.getLogger(__name__)
BAN_SCORE = 100
UNKNOWN_FREE_BYTES = 4096  # unknown commands up to this size cost the sender no score
THREAD_DECODE_BYTES = 64 * 1024  # payloads from this size on are decoded off the event loop
MATRIX_TRAFFIC = frozenset({"matrix", "getmatrix"})  # handled as they arrive, never behind a drain
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="p2p-decode")


def unknown_score(size: int) -> int:
    """Misbehaviour points for an unknown command of ``size`` payload bytes: none when small,
    a ban near the frame limit (ignored, §7, but not for free)."""
    return 0 if size <= UNKNOWN_FREE_BYTES else 1 + size * BAN_SCORE // wire.MAX_PAYLOAD


@dataclass(frozen=True)
class PeerLimits:
    """Timeouts and buffer sizes of one connection (seconds, bytes)."""

    handshake_timeout: float = 10.0
    ping_interval: float = 60.0
    ping_timeout: float = 60.0  # a ping unanswered for this long disconnects
    inactivity_timeout: float = 600.0  # nothing received for this long disconnects
    send_high_water: int = 16 * 1024 * 1024  # handling its messages pauses above this
    matrix_high_water: int = 1024 * 1024  # getmatrix replies wait above this (and until it drains to a quarter)
    send_hard_limit: int = 64 * 1024 * 1024  # a peer that lets more pile up is disconnected
    inbox_bytes: int = 16 * 1024 * 1024  # received messages waiting to be handled (then its input waits)
    known_inventory: int = 50000

    def __post_init__(self) -> None:
        if self.send_high_water < self.matrix_high_water + wire.FRAME_HEADER + wire.MAX_PAYLOAD:
            raise ValueError("send_high_water must leave room for the matrix replies below it")


@dataclass
class VersionInfo:
    protocol: int
    chain_id: int
    services: int
    timestamp: int
    nonce: int
    user_agent: str
    best_height: int
    listen_port: int


class Disconnect(Exception):
    """End this connection without a ban."""


class PeerHost(Protocol):
    """What a connection needs from the node that owns it."""

    magic: bytes
    chain_id: int

    def version_payload(self, peer: Peer) -> bytes: ...
    def is_own_nonce(self, nonce: int) -> bool: ...
    async def peer_ready(self, peer: Peer) -> None: ...
    def admits(self, peer: Peer, command: str) -> bool: ...  # False: dropped before decoding (the host scores)
    async def handle(self, peer: Peer, msg: Message) -> None: ...
    def peer_closed(self, peer: Peer) -> None: ...


class KnownFilter:
    """A bounded set of hashes the peer has or was sent (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, None] = OrderedDict()

    def add(self, item: bytes) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        if len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


class Peer:
    """A TCP connection to one peer; ``run()`` drives it until it closes."""

    def __init__(self, host: PeerHost, conn: FrameConnection, *,
                 peer_id: int, addr: str, ip: str, inbound: bool, manual: bool = False,
                 oneshot: bool = False, limits: PeerLimits = PeerLimits()) -> None:
        self.host = host
        self.conn = conn
        self.id = peer_id
        self.addr = addr  # "host:port" we dialled, or the remote end of an inbound connection
        self.ip = ip
        self.inbound = inbound
        self.manual = manual  # from connect / addnode: not counted against max_outbound
        self.oneshot = oneshot  # a seednode: disconnect after its addr reply
        self.limits = limits
        self.version: VersionInfo | None = None
        self.local_nonce: int | None = None  # the nonce of the version we sent
        self.ready = False
        self.closed = False
        self.close_reason = ""
        self.ban_reason = ""
        self.score = 0
        self.known = KnownFilter(limits.known_inventory)
        self.conntime = int(time.time())
        self.bytes_sent = self.bytes_recv = 0
        self.ping_time: float | None = None
        self.last_block_at = 0.0  # monotonic time of the last new block it delivered (eviction protects it)
        self.last_tx_at = 0.0  # … of the last tx it delivered that the mempool took
        self._ping: tuple[int, float] | None = None  # outstanding (nonce, sent at)
        self._last_recv = time.monotonic()
        self._tasks: list[asyncio.Task] = []
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()  # received, waiting for _handle_in_turn
        self._inbox_bytes = 0
        self._inbox_room = asyncio.Event()
        assert conn.transport is not None
        conn.transport.set_write_buffer_limits(high=limits.matrix_high_water)

    def __repr__(self) -> str:
        return f"<peer {self.id} {self.addr} {'in' if self.inbound else 'out'}>"

    # --- sending -----------------------------------------------------------------
    def send(self, command: str, *args: object) -> None:
        self.send_payload(wire.payload(command, *args))

    def send_payload(self, payload: bytes) -> None:
        if self.closed:
            return
        self.bytes_sent += self.conn.send_frame(payload)
        if self.conn.buffered() > self.limits.send_hard_limit:
            self.close("send buffer overflow")

    async def drain(self) -> None:
        """Wait while the send buffer holds more than ``send_high_water`` (backpressure for
        answering its messages; matrix replies alone never fill it that far)."""
        if not self.closed and self.conn.buffered() > self.limits.send_high_water:
            await self.conn.drain()

    def matrix_room(self) -> bool:
        """True while a matrix reply may be written now: the send buffer holds at most
        ``matrix_high_water``."""
        return self.conn.buffered() <= self.limits.matrix_high_water

    async def matrix_drain(self) -> None:
        """Wait until the send buffer has drained to a quarter of ``matrix_high_water``."""
        if not self.closed:
            await self.conn.drain()

    # --- misbehaviour and closing ----------------------------------------------------
    def misbehave(self, score: int, reason: str) -> None:
        """Add to the score; at 100 the peer is disconnected and banned."""
        self.score += score
        log.info("peer %d (%s) misbehaving +%d: %s", self.id, self.addr, score, reason)
        if self.score >= BAN_SCORE and not self.ban_reason:
            self.ban_reason = reason
            self.close(f"banned: {reason}")

    def close(self, reason: str) -> None:
        """Close the connection (idempotent); the first reason is the one kept."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        log.debug("closing %r: %s", self, reason)
        self.conn.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    # --- the connection's life -------------------------------------------------------
    async def run(self) -> None:
        """Handshake, then read and dispatch messages until the connection ends."""
        try:
            if not self.inbound:
                self.send_payload(self.host.version_payload(self))
            await asyncio.wait_for(self._handshake(), self.limits.handshake_timeout)
            self.ready = True
            self._tasks.append(asyncio.create_task(self._keepalive()))
            self._tasks.append(asyncio.create_task(self._handle_in_turn()))
            await self.host.peer_ready(self)
            while not self.closed:
                msg = await self._read()
                if msg is not None:
                    await self._dispatch(msg)
        except WireError as exc:
            self.misbehave(BAN_SCORE, f"malformed frame: {exc}")
        except TimeoutError:
            self.close("handshake timeout")
        except asyncio.CancelledError:
            self.close("shutdown")
            raise
        except Exception as exc:  # contained: one peer's input never takes the node down
            self._close_for(exc)
        finally:
            self.close(self.close_reason or "closed")
            self.host.peer_closed(self)
            try:
                await asyncio.wait_for(self.conn.wait_closed(), 1.0)
            except (OSError, TimeoutError):  # already reset or slow to close: nothing left to do
                pass

    def _close_for(self, exc: Exception) -> None:
        """End the connection for an exception raised reading or handling its messages (called
        from the ``except`` clause that caught it)."""
        if isinstance(exc, Disconnect):
            self.close(str(exc))
        elif isinstance(exc, (asyncio.IncompleteReadError, ConnectionError, OSError)):
            self.close("connection closed by peer")
        else:
            log.exception("error handling %r", self)
            self.close("internal error")

    async def _read(self) -> Message | None:
        limit = wire.MAX_PAYLOAD if self.ready else wire.MAX_HANDSHAKE_PAYLOAD
        data = await self.conn.read_frame(limit)
        self.bytes_recv += wire.FRAME_HEADER + len(data)
        self._last_recv = time.monotonic()
        if self.ready and not self.host.admits(self, wire.command_of(data)[0]):
            if self.closed:
                raise Disconnect(self.close_reason)
            return None
        # a large payload is decoded on the decoding thread: the GIL is handed back every few ms,
        # so the event loop keeps serving RPC and other peers meanwhile (one such thread: more
        # would decode no faster under the GIL, only take more turns from the loop)
        msg = wire.decode(data) if len(data) < THREAD_DECODE_BYTES else \
            await asyncio.get_running_loop().run_in_executor(_DECODER, wire.decode, data)
        if msg is None and (score := unknown_score(len(data))):
            self.misbehave(score, f"unknown command of {len(data)} bytes")
            if self.closed:
                raise Disconnect(self.close_reason)
        return msg

    async def _handshake(self) -> None:
        while self.version is None:
            msg = await self._read_handshake()
            if msg.command != "version":
                raise Disconnect("verack before version")
            self._check_version(msg)
            if self.inbound:
                self.send_payload(self.host.version_payload(self))
                self.send("verack")
            else:
                self.send("verack")
        msg = await self._read_handshake()
        if msg.command != "verack":
            raise Disconnect("duplicate version")

    async def _read_handshake(self) -> Message:
        while True:
            msg = await self._read()
            if msg is None:
                continue  # unknown commands are ignored (§7)
            if msg.command not in wire.HANDSHAKE:
                raise Disconnect(f"{msg.command} before verack")
            return msg

    def _check_version(self, msg: Message) -> None:
        v = VersionInfo(*msg.args)
        if v.chain_id != self.host.chain_id:
            raise Disconnect(f"wrong chain id {v.chain_id}")
        if v.protocol < wire.PROTOCOL_VERSION:
            raise Disconnect(f"protocol version {v.protocol} too old")
        if self.host.is_own_nonce(v.nonce):
            raise Disconnect("connected to self")
        self.version = v

    async def _dispatch(self, msg: Message) -> None:
        """Matrix traffic now; the rest to the queue handled in turn (waiting while it is full)."""
        if msg.command in MATRIX_TRAFFIC:
            await self.host.handle(self, msg)
            return
        self._inbox.put_nowait(msg)
        self._inbox_bytes += len(msg.raw)
        while self._inbox_bytes > self.limits.inbox_bytes and not self.closed:
            self._inbox_room.clear()
            await self._inbox_room.wait()

    async def _handle_in_turn(self) -> None:
        """Handle the queued messages in order, each once the send buffer has drained below its
        high-water mark; a failure ends this connection as one in reading does."""
        try:
            while not self.closed:
                msg = await self._inbox.get()
                self._inbox_bytes -= len(msg.raw)
                self._inbox_room.set()
                await self._handle(msg)
                await self.drain()  # a peer that does not read its replies gets no more
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # contained, as in run()
            self._close_for(exc)
        finally:
            self._inbox_room.set()  # a reader waiting for room sees the connection closed

    async def _handle(self, msg: Message) -> None:
        if msg.command == "ping":
            self.send("pong", msg.args[0])
        elif msg.command == "pong":
            if self._ping is not None and self._ping[0] == msg.args[0]:
                self.ping_time = time.monotonic() - self._ping[1]
                self._ping = None
        elif msg.command in wire.HANDSHAKE:
            self.misbehave(10, f"{msg.command} after handshake")
        else:
            await self.host.handle(self, msg)

    async def _keepalive(self) -> None:
        """Ping every ``ping_interval``; disconnect on a late pong or a silent peer."""
        lim = self.limits
        tick = min(1.0, lim.ping_interval, lim.ping_timeout)
        next_ping = time.monotonic() + lim.ping_interval
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._ping is not None and now - self._ping[1] > lim.ping_timeout:
                self.close("ping timeout")
            elif now - self._last_recv > lim.inactivity_timeout:
                self.close("inactivity timeout")
            elif self._ping is None and now >= next_ping:
                nonce = random.getrandbits(64)
                self._ping = (nonce, now)
                self.send("ping", nonce)
                next_ping = now + lim.ping_interval

    def info(self) -> dict:
        """The connection fields of Bitcoin's getpeerinfo."""
        v = self.version
        return {
            "id": self.id, "addr": self.addr, "inbound": self.inbound,
            "version": v.protocol if v else 0, "subver": v.user_agent if v else "",
            "startingheight": v.best_height if v else -1,
            "bytessent": self.bytes_sent, "bytesrecv": self.bytes_recv, "conntime": self.conntime,
            "pingtime": self.ping_time, "banscore": self.score,
        }
