"""The peer set: listening, dialing, connection limits, bans and address gossip (PROTOCOL §7).

* With ``connect`` set, only those addresses (and ``add_node`` ones) are dialled.
  Otherwise ``addnode`` addresses are kept connected and up to ``max_outbound``
  more come from the address book.  ``seednode`` addresses are dialled once,
  asked for addresses and dropped, while the book has nothing to offer.
  Manual peers (connect / addnode) do not count against ``max_outbound``.
* Inbound connections from a banned subnet, or beyond ``max_inbound_per_ip``
  from one IP, are closed at once.  When all ``max_inbound`` slots are taken, the
  least useful inbound peer is evicted for the newcomer (after Bitcoin Core's
  AttemptToEvictConnection): peers that recently delivered blocks or txs, the
  fastest pingers and the longest connected half are protected, and the
  youngest connection of the netgroup with the most connections goes; if all
  are protected the newcomer is refused.  Banned addresses are never dialled.
  A peer banned for misbehaving is disconnected and its IP (IPv6: its
  /``ban_v6_prefix``) banned for ``ban_seconds``; ``set_ban`` also disconnects
  every peer in the subnet.
* The address book learns from ``addr`` messages (rate limited per peer, like
  Bitcoin: 0.1 addresses/s, burst 1000) and from the listen port inbound peers
  announce in ``version``; ``getaddr`` is answered once per inbound connection.
  Small ``addr`` messages are forwarded to two other peers.
* One connection per pair of nodes: an address is not dialled while the node
  listening there is connected to us inbound, and when two nodes dialled each
  other at once both drop the same one of the two connections (the one whose
  pair of version nonces sorts first).
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import wire
from .addrbook import AddressBook, format_addr, parse_addr
from .bans import BanList, ban_subnet, netgroup, parse_ip, parse_subnet
from .connection import FrameConnection, FrameOpened
from .interfaces import Records
from .peer import Peer, PeerHost, PeerLimits
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)
ADDR_RELAY_MAX = 10  # addr messages up to this size are forwarded
ADDR_FRESH = 600  # seconds: only recently seen addresses are forwarded
MAX_RETRY = 60.0
PROTECT = 4  # inbound peers protected from eviction by each usefulness criterion


@dataclass(frozen=True)
class ManagerConfig:
    bind: str = "0.0.0.0"
    port: int = 0  # 0: any free port
    listen: bool = True
    connect: tuple[str, ...] = ()
    addnode: tuple[str, ...] = ()
    seednode: tuple[str, ...] = ()
    max_outbound: int = 8
    max_inbound: int = 64
    ban_seconds: int = 86400
    max_inbound_per_ip: int = 8
    ban_v6_prefix: int = 64
    dial_interval: float = 1.0  # seconds between connection maintenance rounds
    retry_base: float = 1.0  # first retry delay of a failed dial (doubles up to 60 s)
    connect_timeout: float = 5.0


class PeerManager:
    def __init__(self, host: PeerHost, default_port: int, config: ManagerConfig, records: Records,
                 limits: PeerLimits = PeerLimits(), clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.config = config
        self.default_port = default_port
        self.limits = limits
        self.bans = BanList(records, clock)
        self.book = AddressBook(records, clock=clock)
        self.peers: dict[int, Peer] = {}
        self.added: list[str] = []  # add_node "add"
        self._clock = clock
        self._next_id = 0
        self._dialing: set[str] = set()
        self._retry: dict[str, tuple[int, float]] = {}  # manual/seed address → (failures, last try)
        self._self_addrs: set[str] = set()
        self._addr_buckets: dict[int, TokenBucket] = {}
        self._getaddr_answered: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._loop_task: asyncio.Task | None = None
        self._stopping = False
        self.listen_port = 0

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.bans.load()
        self.book.load()
        if self.config.listen:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: self._connection(on_open=lambda conn: self._spawn(self._accept(conn))),
                self.config.bind, self.config.port, reuse_address=True)
            self.listen_port = self._server.sockets[0].getsockname()[1]
        self._loop_task = asyncio.create_task(self._maintain_loop())

    async def stop(self) -> None:
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self._server is not None:
            self._server.close()
        for peer in list(self.peers.values()):
            peer.close("shutdown")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *([self._loop_task] if self._loop_task else []), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- queries -----------------------------------------------------------------------
    def ready_peers(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.ready and not p.closed]

    def counts(self) -> tuple[int, int]:
        inbound = sum(1 for p in self.peers.values() if p.inbound)
        return inbound, len(self.peers) - inbound

    def _inbound(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.inbound and not p.closed]

    def _connected_addrs(self) -> set[str]:
        return {a for p in self.peers.values() if (a := self._listen_addr(p))} | self._dialing

    @staticmethod
    def _listen_addr(peer: Peer) -> str | None:
        """Where the node behind a connection listens: the address we dialled, or the
        port an inbound peer announced in ``version``."""
        if not peer.inbound:
            return peer.addr
        if peer.version is not None and peer.version.listen_port:
            return format_addr(str(parse_ip(peer.ip)), peer.version.listen_port)
        return None

    def _drop_duplicate(self, peer: Peer) -> bool:
        """Close one of two connections to the same node, the same one on both ends; True if
        it was ``peer``."""
        addr = self._listen_addr(peer)
        other = next((p for p in self.peers.values() if p is not peer and p.ready and not p.closed
                      and addr is not None and self._listen_addr(p) == addr), None)
        if other is None:
            return False

        def pair(p: Peer) -> tuple[int, int]:
            return tuple(sorted((p.local_nonce or 0, p.version.nonce if p.version else 0)))
        drop = min(peer, other, key=pair)
        log.debug("two connections to %s; closing %r", addr, drop)
        drop.close("duplicate connection")
        return drop is peer

    # --- inbound -----------------------------------------------------------------------
    async def _accept(self, conn: FrameConnection) -> None:
        peername = conn.get_extra_info("peername") or ("?", 0)
        ip, port = peername[0], peername[1]
        inbound = self._inbound()
        same_ip = sum(1 for p in inbound if p.ip == ip)
        if self._stopping or self.bans.is_banned(ip) or same_ip >= self.config.max_inbound_per_ip \
                or (len(inbound) >= self.config.max_inbound and not self._evict(inbound)):
            log.debug("refusing inbound %s:%s", ip, port)
            conn.close()
            return
        peer = self._new_peer(conn, format_addr(str(parse_ip(ip)), port), ip, inbound=True)
        await peer.run()

    def _evict(self, inbound: list[Peer]) -> bool:
        """Close the least useful inbound peer to make room; False if every one is protected."""
        candidates = [p for p in inbound if not p.manual]
        protected: set[Peer] = set()
        for useful, rank in ((lambda p: p.last_block_at > 0, lambda p: -p.last_block_at),
                             (lambda p: p.last_tx_at > 0, lambda p: -p.last_tx_at),
                             (lambda p: p.ping_time is not None, lambda p: p.ping_time)):
            protected.update(sorted(filter(useful, candidates), key=rank)[:PROTECT])
        candidates = [p for p in candidates if p not in protected]
        ready = sorted((p for p in candidates if p.ready), key=lambda p: p.id)
        oldest = set(ready[:len(ready) // 2])  # the longest connected half of the ready ones
        candidates = [p for p in candidates if p not in oldest]
        if not candidates:
            return False
        groups: dict[str, list[Peer]] = {}
        for p in candidates:
            groups.setdefault(netgroup(p.ip), []).append(p)
        largest = max(groups.values(), key=lambda g: (len(g), max(p.id for p in g)))
        victim = max(largest, key=lambda p: p.id)
        log.info("evicting inbound peer %d (%s) for a new connection", victim.id, victim.addr)
        victim.close("evicted for a new inbound connection")
        return True

    def _connection(self, on_open: FrameOpened | None = None) -> FrameConnection:
        """A new connection's protocol: its first frame is the peer's handshake."""
        return FrameConnection(self.host.magic, wire.MAX_HANDSHAKE_PAYLOAD, on_open)

    def _new_peer(self, conn: FrameConnection, addr: str, ip: str, *,
                  inbound: bool, manual: bool = False, oneshot: bool = False) -> Peer:
        self._next_id += 1
        peer = Peer(self.host, conn, peer_id=self._next_id, addr=addr, ip=ip, inbound=inbound,
                    manual=manual, oneshot=oneshot, limits=self.limits)
        self.peers[peer.id] = peer
        return peer

    # --- outbound ----------------------------------------------------------------------
    async def dial(self, addr: str, *, manual: bool = False, oneshot: bool = False) -> None:
        """Connect to ``addr`` ("host:port") unless banned or already connected, and run the peer."""
        if addr in self._dialing or self._stopping:
            return
        self._dialing.add(addr)
        try:
            host, port = parse_addr(addr, self.default_port)
            loop = asyncio.get_running_loop()
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                           self.config.connect_timeout)
            ip = str(parse_ip(infos[0][4][0]))
            if self.bans.is_banned(ip):
                log.debug("not dialling banned %s (%s)", addr, ip)
                self._failed(addr)
                return
            _, conn = await asyncio.wait_for(loop.create_connection(self._connection, ip, port),
                                             self.config.connect_timeout)
        except (TimeoutError, OSError, ValueError, IndexError) as exc:
            log.debug("dial %s failed: %s", addr, exc)
            self._failed(addr)
            return
        finally:
            self._dialing.discard(addr)
        if self._stopping:
            conn.close()
            return
        peer = self._new_peer(conn, addr, ip, inbound=False, manual=manual, oneshot=oneshot)
        await peer.run()

    def dial_once(self, addr: str) -> None:
        """Start one dial in the background (addnode "onetry")."""
        self._spawn(self.dial(addr, manual=True))

    def _failed(self, addr: str) -> None:
        failures, _ = self._retry.get(addr, (0, 0.0))
        self._retry[addr] = (failures + 1, time.monotonic())

    def _may_retry(self, addr: str) -> bool:
        failures, last = self._retry.get(addr, (0, 0.0))
        return failures == 0 or time.monotonic() - last >= min(MAX_RETRY, self.config.retry_base * 2 ** failures)

    async def _maintain_loop(self) -> None:
        while True:
            try:
                self.maintain()
            except Exception:  # never let bookkeeping end the dial loop
                log.exception("connection maintenance failed")
            await asyncio.sleep(self.config.dial_interval)

    def maintain(self) -> None:
        """One round: keep manual peers connected and fill outbound slots."""
        self.bans.sweep()
        busy = self._connected_addrs()
        manual = list(self.config.connect or self.config.addnode) + self.added
        for addr in manual:
            if addr not in busy and addr not in self._self_addrs and self._may_retry(addr):
                busy.add(addr)
                self._spawn(self.dial(addr, manual=True))
        if self.config.connect:
            return
        auto = sum(1 for p in self.peers.values() if not p.inbound and not p.manual and not p.oneshot)
        now = time.monotonic()
        while auto < self.config.max_outbound:
            info = self.book.candidate(busy | self._self_addrs, now, self.config.retry_base)
            if info is None:
                break
            self.book.attempt(info.key, now)
            busy.add(info.key)
            auto += 1
            self._spawn(self.dial(info.key))
        if auto == 0:
            for addr in self.config.seednode:
                if addr not in busy and self._may_retry(addr):
                    self._failed(addr)  # seeds are asked once per backoff period, success or not
                    self._spawn(self.dial(addr, oneshot=True))

    # --- peer events ---------------------------------------------------------------------
    def on_ready(self, peer: Peer) -> None:
        if self._drop_duplicate(peer):
            return
        self._addr_buckets[peer.id] = TokenBucket(0.1, 1000.0)
        self._retry.pop(peer.addr, None)
        if peer.inbound:
            if peer.version and peer.version.listen_port:
                self.book.add(str(parse_ip(peer.ip)), peer.version.listen_port, int(self._clock()))
        else:
            if not peer.oneshot:
                host, port = parse_addr(peer.addr, self.default_port)
                self.book.add(host, port, int(self._clock()))
                self.book.success(format_addr(host, port))
            peer.send("getaddr")

    def on_closed(self, peer: Peer) -> None:
        self.peers.pop(peer.id, None)
        self._addr_buckets.pop(peer.id, None)
        self._getaddr_answered.discard(peer.id)
        if peer.ban_reason and not self._stopping:
            subnet = ban_subnet(peer.ip, self.config.ban_v6_prefix)
            log.warning("banning %s for %ds: %s", subnet, self.config.ban_seconds, peer.ban_reason)
            self.bans.ban(subnet, self.config.ban_seconds, peer.ban_reason)
        if not peer.inbound and not peer.ready and not peer.manual:
            self._failed(peer.addr)

    def mark_self(self, addr: str) -> None:
        """An address that turned out to be this node: never dial it again."""
        self._self_addrs.add(addr)
        self.book.remove(addr)

    # --- address gossip ----------------------------------------------------------------
    def on_getaddr(self, peer: Peer) -> None:
        if not peer.inbound or peer.id in self._getaddr_answered:
            return
        self._getaddr_answered.add(peer.id)
        peer.send("addr", [[i.host, i.port, i.last_seen] for i in self.book.sample(wire.MAX_ADDR)])

    def on_addr(self, peer: Peer, entries: list[list]) -> None:
        bucket = self._addr_buckets.get(peer.id)
        now = int(self._clock())
        fresh = []
        for host, port, seen in entries:
            if bucket is None or not bucket.take():
                break
            self.book.add(host, port, seen)
            if now - seen <= ADDR_FRESH and port:
                fresh.append([host, port, min(seen, now)])
        if peer.oneshot:
            peer.close("seed answered")
        elif fresh and len(entries) <= ADDR_RELAY_MAX:
            self._forward(peer, fresh)

    def _forward(self, source: Peer, entries: list[list]) -> None:
        others = [p for p in self.ready_peers() if p is not source]
        for target in random.sample(others, min(2, len(others))):
            todo = []
            for e in entries:
                key = b"addr:" + format_addr(e[0], e[1]).encode()
                if key not in target.known:
                    target.known.add(key)
                    todo.append(e)
            if todo:
                target.send("addr", todo)

    # --- control -----------------------------------------------------------------------
    def disconnect_subnet(self, subnet_text: str) -> None:
        subnet = parse_subnet(subnet_text)
        for peer in list(self.peers.values()):
            try:
                ip = parse_ip(peer.ip)
            except ValueError:
                continue
            if ip.version == subnet.version and ip in subnet:
                peer.close("banned by operator")
