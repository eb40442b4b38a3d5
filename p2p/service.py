"""``P2PNode``: the one object the daemon builds to join the gossip network (PROTOCOL §7).

It owns the peer set (``manager``), headers-first download (``sync``) and
inventory relay (``relay``), dispatches each peer's messages to them, and
announces new tips and ready txs it hears of through ``chain.subscribe`` and
``mempool.subscribe``, and hands the chain's verdicts on blocks that waited
(``released``) to ``sync``.  Chain listeners may run on any thread; announcements are
moved onto the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from consensus.params import NETWORKS, Network
from consensus.tx import Tx

from . import wire
from .addrbook import parse_addr
from .bans import parse_subnet
from .errors import BanError, InvalidAddress, NodeAlreadyAdded, NodeNotAdded, NodeNotConnected
from .interfaces import REJECTED, RELEASED, ChainView, MatrixSource, MemoryRecords, MempoolView, Records
from .manager import ManagerConfig, PeerManager
from .peer import BAN_SCORE, Peer, PeerLimits
from .relay import Relay, RelayLimits
from .sync import Sync, SyncLimits
from .wire import Message

log = logging.getLogger(__name__)
SERVICES = 1  # serves full blocks
MAINTENANCE_TICK = 1.0
FUTURE_RETRY = 5.0


class P2PNode:
    """The node's side of the peer-to-peer network."""

    def __init__(self, chain: ChainView, mempool: MempoolView, network: Network | str, *,
                 bind: str = "0.0.0.0", port: int = 0, listen: bool = True, connect: Sequence[str] = (),
                 addnode: Sequence[str] = (), seednode: Sequence[str] = (), max_outbound: int = 8,
                 max_inbound: int = 64, max_inbound_per_ip: int = 8, ban_seconds: int = 86400,
                 ban_v6_prefix: int = 64, user_agent: str = "/pouw:0.1/",
                 records: Records | None = None, matrix_source: MatrixSource | None = None,
                 peer_limits: PeerLimits = PeerLimits(), sync_limits: SyncLimits = SyncLimits(),
                 relay_limits: RelayLimits = RelayLimits(), dial_interval: float = 1.0,
                 retry_base: float = 1.0) -> None:
        self.network = NETWORKS[network] if isinstance(network, str) else network
        self.magic = self.network.magic
        self.chain_id = self.network.chain_id
        self.chain = chain
        self.mempool = mempool
        self.user_agent = user_agent
        for addr in (*connect, *addnode, *seednode):
            self._check_addr(addr)
        config = ManagerConfig(bind, port, listen, tuple(connect), tuple(addnode), tuple(seednode),
                               max_outbound=max_outbound, max_inbound=max_inbound, ban_seconds=ban_seconds,
                               max_inbound_per_ip=max_inbound_per_ip, ban_v6_prefix=ban_v6_prefix,
                               dial_interval=dial_interval, retry_base=retry_base)
        self.manager = PeerManager(self, self.network.p2p_port, config, records or MemoryRecords(), peer_limits)
        self.sync = Sync(chain, sync_limits)
        self.relay = Relay(chain, mempool, self.sync, self.manager.ready_peers, relay_limits, matrix_source)
        self._nonces: dict[int, Peer] = {}  # version nonces we sent → connection
        self._handlers: dict[str, Callable[[Peer, Message], Any]] = {
            "inv": lambda p, m: self.relay.on_inv(p, m.args[0]),
            "getdata": lambda p, m: self.relay.on_getdata(p, m.args[0]),
            "notfound": lambda p, m: self.relay.on_notfound(p, m.args[0]),
            "tx": lambda p, m: self.relay.on_tx(p, m.objects),
            "block": lambda p, m: self.sync.on_block(p, m.objects),
            "getheaders": lambda p, m: self.sync.on_getheaders(p, m.args[0], m.args[1]),
            "headers": lambda p, m: self.sync.on_headers(p, m.objects),
            "getaddr": lambda p, m: self.manager.on_getaddr(p),
            "addr": lambda p, m: self.manager.on_addr(p, m.args[0]),
            "getmatrix": lambda p, m: self.relay.on_getmatrix(p, *m.args),
            "matrix": lambda p, m: self.relay.on_matrix(p, *m.args),
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._tip_pending = False
        self._announced: bytes | None = None
        self._maintenance: asyncio.Task | None = None

    @staticmethod
    def _check_addr(addr: str) -> None:
        try:
            parse_addr(addr, 1)
        except ValueError as exc:
            raise InvalidAddress(str(exc)) from None

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (if asked), start dialing, and subscribe to the chain's tip changes."""
        self._loop = asyncio.get_running_loop()
        self._announced = self.chain.tip.hash
        self._unsubscribe = [self.chain.subscribe(self._on_chain_event),
                             self.chain.subscribe(self.sync.on_released, (RELEASED,)),
                             self.chain.subscribe(self.sync.on_rejected, (REJECTED,)),
                             self.mempool.subscribe(lambda event: self.announce_tx(event.tx))]
        await self.manager.start()
        self._maintenance = asyncio.create_task(self._maintain())

    async def stop(self) -> None:
        """Disconnect everyone and stop listening; bans and addresses are already persisted."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        await self.sync.stop()
        await self.manager.stop()

    @property
    def listen_port(self) -> int:
        """The port actually listened on (useful with ``port=0``), 0 when not listening."""
        return self.manager.listen_port

    async def _maintain(self) -> None:
        last_retry = time.monotonic()
        while True:
            await asyncio.sleep(MAINTENANCE_TICK)
            try:
                self.sync.check_stalls()
                self.relay.expire()
                if time.monotonic() - last_retry >= FUTURE_RETRY:
                    last_retry = time.monotonic()
                    await self.chain.retry_future()
            except Exception:
                log.exception("p2p maintenance failed")

    # --- PeerHost ------------------------------------------------------------------------
    def version_payload(self, peer: Peer) -> bytes:
        nonce = random.getrandbits(64)
        self._nonces[nonce] = peer
        peer.local_nonce = nonce
        return wire.payload("version", wire.PROTOCOL_VERSION, self.chain_id, SERVICES, int(time.time()), nonce,
                            self.user_agent, self.chain.tip.height, self.listen_port)

    def is_own_nonce(self, nonce: int) -> bool:
        other = self._nonces.get(nonce)
        if other is None:
            return False
        if not other.inbound:
            self.manager.mark_self(other.addr)
        return True

    async def peer_ready(self, peer: Peer) -> None:
        log.info("connected to peer %d %s (%s, height %d)", peer.id, peer.addr, peer.version.user_agent,
                 peer.version.best_height)
        self.manager.on_ready(peer)
        self.relay.add_peer(peer)
        self.sync.add_peer(peer)

    def admits(self, peer: Peer, command: str) -> bool:
        """Whether a message is wanted at all, judged before it is decoded: headers from a peer
        whose last batch awaits its spot check are not (sync scores or re-asks)."""
        return not (command == "headers" and self.sync.refuse_headers(peer))

    async def handle(self, peer: Peer, msg: Message) -> None:
        result = self._handlers[msg.command](peer, msg)
        if asyncio.iscoroutine(result):
            await result

    def peer_closed(self, peer: Peer) -> None:
        log.info("disconnected peer %d %s: %s", peer.id, peer.addr, peer.close_reason)
        if peer.local_nonce is not None:
            self._nonces.pop(peer.local_nonce, None)
        self.manager.on_closed(peer)
        self.sync.remove_peer(peer)
        self.relay.remove_peer(peer)

    # --- chain events ------------------------------------------------------------------
    def _on_chain_event(self, event: Any) -> None:
        """Chain listener (any thread): announce the tip once the loop gets to it."""
        if event.kind != "connected" or self._loop is None or self._tip_pending:
            return
        self._tip_pending = True
        try:
            self._loop.call_soon_threadsafe(self._announce_tip)
        except RuntimeError:  # the loop is closed: we are shutting down
            self._tip_pending = False

    def _announce_tip(self) -> None:
        self._tip_pending = False
        tip = self.chain.tip.hash
        if tip != self._announced:
            self._announced = tip
            self.relay.announce_block(tip)
        self.sync.schedule()

    def announce_tx(self, tx: Tx) -> None:
        """Announce a tx to the peers that do not know it yet (a tx the mempool made ready, or
        one a reorg returned to it)."""
        self.relay.announce_tx(tx)

    def matrix_peers(self) -> list[int]:
        """Ids of the connected peers a matrix may be fetched from."""
        return [peer.id for peer in self.manager.ready_peers()]

    async def fetch_lines(self, peer_id: int, key: bytes, count: int, width: int) -> list[memoryview] | None:
        """All ``count`` lines under ``key`` from one peer (unchecked against the key, §6), or None
        if it does not serve them; a reply that breaks its request bans the peer."""
        peer = self._ready_peer(peer_id)
        return None if peer is None else await self.relay.fetch_lines(peer, key, count, width)

    def punish(self, peer_id: int, reason: str) -> None:
        """Disconnect and ban a peer that served data contradicting its commitment (§6, §7)."""
        peer = self._ready_peer(peer_id)
        if peer is not None:
            peer.misbehave(BAN_SCORE, reason)

    def _ready_peer(self, peer_id: int) -> Peer | None:
        return next((p for p in self.manager.ready_peers() if p.id == peer_id), None)

    # --- RPC-facing views and controls -------------------------------------------------
    def peer_info(self) -> list[dict]:
        """Bitcoin's getpeerinfo fields for every connection."""
        out = []
        for peer in sorted(self.manager.peers.values(), key=lambda p: p.id):
            info = peer.info()
            info.update(self.sync.info(peer))
            out.append(info)
        return out

    def network_info(self) -> dict:
        inbound, outbound = self.manager.counts()
        local = [{"address": self.manager.config.bind, "port": self.listen_port}] if self.listen_port else []
        return {"connections": inbound + outbound, "connections_in": inbound, "connections_out": outbound,
                "localaddresses": local, "protocolversion": wire.PROTOCOL_VERSION,
                "subversion": self.user_agent,
                "matrixrate": self.relay.limits.matrix_rate}  # getmatrix bytes a second to each peer; 0: unlimited

    async def add_node(self, addr: str, command: str) -> None:
        """Bitcoin's addnode: "add" keeps it connected, "remove" stops that, "onetry" dials once."""
        self._check_addr(addr)
        added = self.manager.added
        if command == "add":
            if addr in added:
                raise NodeAlreadyAdded(f"{addr} already added")
            added.append(addr)
            self.manager.maintain()
        elif command == "remove":
            if addr not in added:
                raise NodeNotAdded(f"{addr} has not been added")
            added.remove(addr)
        elif command == "onetry":
            self.manager.dial_once(addr)
        else:
            raise ValueError(f"unknown addnode command {command!r}")

    async def disconnect_node(self, target: str | int) -> None:
        """Close the connection with this id or address; ``NodeNotConnected`` if there is none."""
        for peer in list(self.manager.peers.values()):
            if peer.id == target or peer.addr == target:
                peer.close("disconnected by operator")
                return
        raise NodeNotConnected(f"peer {target} is not connected")

    def set_ban(self, subnet: str, command: str, bantime: int = 0) -> None:
        """Bitcoin's setban: "add" bans an IP or subnet (``bantime`` seconds, 0: the default)
        and disconnects its peers; "remove" lifts a ban."""
        try:
            net = parse_subnet(subnet)
        except ValueError:
            raise InvalidAddress(f"invalid IP/subnet {subnet!r}") from None
        bans = self.manager.bans
        if command == "add":
            if net in bans:
                raise BanError(f"{net} is already banned")
            bans.ban(net, bantime or self.manager.config.ban_seconds, "manually added")
            self.manager.disconnect_subnet(subnet)
        elif command == "remove":
            if not bans.unban(net):
                raise BanError(f"{net} was not banned")
        else:
            raise ValueError(f"unknown setban command {command!r}")

    def list_banned(self) -> list[dict]:
        return self.manager.bans.listing()

    def clear_banned(self) -> None:
        self.manager.bans.clear()
