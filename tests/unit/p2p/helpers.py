"""In-process nodes for p2p tests: a real regtest Chain on LevelDB, a Mempool and a
P2PNode listening on 127.0.0.1 with short timeouts."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from consensus.params import GENESIS_TIMESTAMP, REGTEST
from node.chain import Chain, ChainEvent
from node.mempool import Mempool
from p2p import P2PNode, PeerLimits, SyncLimits
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
    events: list[ChainEvent] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.p2p.listen_port}"

    @property
    def height(self) -> int:
        return self.chain.tip.height


def open_chain(path: Path) -> Chain:
    return Chain(path, "regtest", now=lambda: NOW, tx_workers=0)


def wire_mempool(chain: Chain, mempool: Mempool) -> None:
    """What the daemon does: keep the mempool on the chain's tip."""
    def on_event(ev: ChainEvent) -> None:
        if ev.kind == "connected":
            mempool.on_block_connected(ev.block)
        else:
            mempool.on_block_disconnected(ev.block)
    chain.subscribe(on_event)


def make_node(path: Path, *, chain: Chain | None = None, records: MemoryRecords | None = None,
              **kwargs: Any) -> Node:
    chain = chain or open_chain(path)
    mempool = Mempool(REGTEST, lambda: (chain.tip_state_view(), chain.tip.height + 1), clock=lambda: float(NOW))
    wire_mempool(chain, mempool)
    records = records or MemoryRecords()
    kwargs.setdefault("bind", "127.0.0.1")
    kwargs.setdefault("port", 0)
    kwargs.setdefault("listen", True)
    kwargs.setdefault("peer_limits", FAST_PEER)
    kwargs.setdefault("sync_limits", FAST_SYNC)
    kwargs.setdefault("dial_interval", 0.1)
    kwargs.setdefault("retry_base", 0.2)
    p2p = P2PNode(chain, mempool, REGTEST, records=records, **kwargs)
    node = Node(chain, mempool, p2p, records)
    chain.subscribe(node.events.append)
    return node


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
