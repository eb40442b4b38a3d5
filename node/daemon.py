"""pouwd: the full node daemon — lifecycle, signals, and the wiring of chain, mempool,
RPC and p2p (ARCHITECTURE: node/daemon)."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Iterable

from consensus.block import Block
from consensus.tx import JobPost, Tx
from p2p import P2PNode
from p2p.addrbook import parse_addr
from p2p.relay import RelayLimits

from .chain import Chain
from .chainstats import ChainStats
from .chainworker import ChainWorker
from .config import Config, ConfigError, load_config
from .control import NodeControl
from .events import (CONNECTED, REJECTED, TIP_CHANGED, TX_ACCEPTED, TX_REJECTED, TX_REMOVED, BlockRejected,
                     ChainEvent, TipChanged, TxAccepted, TxRejected, TxRemoved)
from .httpapi import HttpApi
from .logs import setup_logging
from .market import NAMING_MATRICES, JobMarket
from .marketrpc import MarketMethods
from .matrices import MatrixStore
from .mempool import Mempool, MempoolPolicy
from .mempoolkeep import KeptMempool
from .metrics import NodeMetrics
from .progress import Progress
from .rpcmethods import RpcMethods
from .rpcserver import Auth, Dispatcher
from .store import DatadirCorrupt, DatadirLocked, StoreError

log = logging.getLogger("pouw.node")
USER_AGENT = "/pouw:0.1.0/"
HOUSEKEEPING_SECONDS = 5.0
GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)
# How long the chain's thread may hold the GIL while the event loop waits for it (Python's
# default: 5 ms). Header floods validated on that thread held RPC answers back at the default
# (getblockcount p99 53–90 ms in bench_abuse.py; 22–37 ms at 0.5 ms).
GIL_SWITCH_SECONDS = 0.0005
RESOLVE_TIMEOUT = 10.0
MIB = 1024 * 1024


class Node:
    """One running node: chain + mempool + HTTP API (+ p2p), driven by one asyncio loop.

    It builds the parts, hands each the narrow objects it uses, and subscribes the
    node's reactions (mempool, metrics, logs, websocket pushes) to the chain's and the
    mempool's events (``node.events``); p2p subscribes itself.  Chain writes run on the
    chain's own thread (``node.chainworker``); the reactions run on the loop."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.network = cfg.params
        cfg.network_dir.mkdir(parents=True, exist_ok=True)
        self.chain = Chain(cfg.datadir_path, self.network, reindex=cfg.reindex, address_index=cfg.address_index,
                           reindex_progress=Progress("reindex", log).update)
        self.worker = ChainWorker(self.chain)
        self.sync_progress = Progress("initial sync", log)
        self.mempool = Mempool(self.network, self.chain.tip_view,
                               MempoolPolicy(max_bytes=cfg.mempool_max_bytes, min_fee_per_byte=cfg.min_relay_fee))
        self.kept_mempool = KeptMempool(self.mempool, self.chain.store)
        self.stats = ChainStats(self.worker)
        self.control = NodeControl(self.worker)
        self.metrics = NodeMetrics()
        self.market = JobMarket(self.chain, MatrixStore(cfg.network_dir / "matrices", self.network,
                                                        cfg.matrix_store_mb * 1024 * 1024))
        self.p2p = P2PNode(self.worker, self.mempool, self.network, bind=cfg.effective_bind,
                           port=cfg.effective_port, listen=cfg.listen, connect=cfg.connect, addnode=cfg.addnode,
                           seednode=cfg.seednode, max_outbound=cfg.max_outbound, max_inbound=cfg.max_inbound,
                           max_inbound_per_ip=cfg.max_inbound_per_ip, ban_v6_prefix=cfg.ban_v6_prefix,
                           ban_seconds=cfg.ban_seconds, user_agent=USER_AGENT, records=self.chain.store,
                           matrix_source=self.market,
                           relay_limits=RelayLimits(matrix_rate=cfg.matrix_rate * MIB))
        self.market.peers = self.p2p
        self.metrics.bind(lambda: self.chain.tip.height, lambda: float(self.chain.tip.chain_work),
                          lambda: self.network.pow_limit / self.chain.next_target(),
                          lambda: len(self.mempool), lambda: self.mempool.bytes_used,
                          lambda: len(self.p2p.peer_info()), self.stats.network_mac_rate)
        self.metrics.bind_market(self.market.stats)
        self._pruned_at = -1  # tip height of the last matrix-store prune
        self._loop: asyncio.AbstractEventLoop | None = None
        self._returned: list[bytes] = []  # txids of disconnected blocks, announced once the reorg is done
        self.auth = Auth(cfg.network_dir / ".cookie", cfg.rpc_user, cfg.rpc_password)
        dispatcher = Dispatcher()
        RpcMethods(self.worker, self.mempool, self.p2p, self.stats, self.control,
                   self.kept_mempool).register(dispatcher)
        self.market_rpc = MarketMethods(self.market, self.network, self.mempool.pooled_claims)
        self.market_rpc.register(dispatcher)
        self.http = HttpApi(dispatcher, self.auth, chain=self.chain, stats=self.stats, peers=self.p2p,
                            control=self.control, metrics=self.metrics, market=self.market,
                            market_rpc=self.market_rpc, max_upload_bytes=cfg.max_upload_mb * 1024 * 1024)
        self._subscribe()

    # --- reactions to chain and mempool events -------------------------------------------
    def _subscribe(self) -> None:
        self.worker.subscribe(self._on_block)
        self.worker.subscribe(self._on_rejected, (REJECTED,))
        self.worker.subscribe(self._on_tip, (TIP_CHANGED,))
        self.mempool.subscribe(self._on_tx, (TX_ACCEPTED, TX_REJECTED, TX_REMOVED))

    def _on_block(self, event: ChainEvent) -> None:
        """Push to websockets, keep the mempool on the tip (its removals are pushed after the
        block), count, give back a reorg's txs."""
        self.http.events.publish({"event": f"block_{event.kind}", "hash": event.block.hash.hex(),
                                  "height": event.height, "tip": self.chain.tip.hash.hex()})
        if event.kind == CONNECTED:
            self.mempool.on_block_connected(event.block)
            self.metrics.blocks_connected.inc()
            self._prefetch(event.block.txs)  # posts this node never saw in its mempool
        else:
            self.mempool.on_block_disconnected(event.block)
            self._schedule_returned(event.block)

    def _on_rejected(self, event: BlockRejected) -> None:
        self.metrics.blocks_rejected.labels(reason=event.reason or "invalid").inc()
        log.info("rejected block %s: %s", event.hash.hex(), event.detail or event.reason)

    def _on_tip(self, event: TipChanged) -> None:
        """Report a moved tip (a group of blocks moves it once)."""
        if event.best_header > event.height:  # downloading a chain whose headers we have: progress, not every block
            self.sync_progress.update(event.height, event.best_header)
        else:
            self.sync_progress.finish(event.height)
            log.info("new tip %s height %d", event.hash.hex(), event.height)

    def _on_tx(self, event: TxAccepted | TxRejected | TxRemoved) -> None:
        """Count refusals and removals; push pooled and removed txs to websockets."""
        if isinstance(event, TxRejected):
            self.metrics.txs_rejected.labels(reason=event.reason).inc()
        elif isinstance(event, TxRemoved):
            self.metrics.mempool_removed.labels(reason=event.reason).inc()
            self.http.events.publish({"event": "tx_removed", "txid": event.txid.hex(), "reason": event.reason})
        else:
            self.http.events.publish({"event": "tx", "txid": event.tx.txid.hex()})
            self._prefetch((event.tx,))

    def _prefetch(self, txs: Iterable[Tx]) -> None:
        """Fetch the operands of the job posts among ``txs`` while they wait for a block (on the
        loop; chain events may come from the chain's thread)."""
        posts = [tx.payload for tx in txs if isinstance(tx.payload, JobPost)]
        if posts and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._prefetch_posts, posts)
            except RuntimeError:  # the loop is closed: shutting down
                pass

    def _prefetch_posts(self, posts: list[JobPost]) -> None:
        for post in posts:
            self.market.prefetch(post)

    def _schedule_returned(self, block: Block) -> None:
        """Txs a reorg gave back to the mempool are news to the peers on the winning side:
        announce those still pooled once the loop gets to it (after the new branch connected)."""
        if self._loop is None or not block.txs:
            return
        first = not self._returned
        self._returned.extend(tx.txid for tx in block.txs)
        if first:
            try:
                self._loop.call_soon_threadsafe(self._announce_returned)
            except RuntimeError:  # the loop is closed: shutting down
                self._returned.clear()

    def _announce_returned(self) -> None:
        returned, self._returned = self._returned, []
        for txid in returned:
            tx = self.mempool.get(txid)
            if tx is not None:
                self.p2p.announce_tx(tx)

    # --- lifecycle -----------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                self.mempool.expire()
                if self.chain.tip.height != self._pruned_at or self.market.store.prune_due:
                    self._pruned_at = self.chain.tip.height
                    self.market.prune(tx.payload for tx in self.mempool.txs(*NAMING_MATRICES))
            except Exception:
                log.exception("housekeeping failed")

    async def _check_peer_addresses(self) -> None:
        """Say at start-up which --connect/--addnode/--seednode hosts do not resolve (p2p keeps retrying)."""
        loop = asyncio.get_running_loop()
        for flag, addrs in (("--connect", self.cfg.connect), ("--addnode", self.cfg.addnode),
                            ("--seednode", self.cfg.seednode)):
            for addr in addrs:
                host, port = parse_addr(addr, self.network.p2p_port)
                try:
                    await asyncio.wait_for(loop.getaddrinfo(host, port), RESOLVE_TIMEOUT)
                except (OSError, asyncio.TimeoutError) as exc:
                    log.warning("%s %s: cannot resolve host %r (%s); will keep trying", flag, addr, host,
                                str(exc) or "timed out")

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.control.request_stop)
        port = self.cfg.effective_rpc_port
        loading: asyncio.Task[None] | None = None
        try:
            await self.http.start(self.cfg.rpc_bind, port)
            self.auth.write_cookie()
            await self.p2p.start()
            loading = asyncio.create_task(self._load_kept_mempool())
            housekeeping = asyncio.create_task(self._housekeeping())
            checking = asyncio.create_task(self._check_peer_addresses())
            tip = self.chain.tip
            rate = f"{self.cfg.matrix_rate:g} MiB/s per peer" if self.cfg.matrix_rate else "unlimited"
            log.info("pouwd ready: network %s, height %d, tip %s, rpc %s:%d, datadir %s, matrix rate %s",
                     self.network.name, tip.height, tip.hash.hex(), self.cfg.rpc_bind, port, self.cfg.network_dir,
                     rate)
            await self.control.wait_stop()
            log.info("shutting down")
            housekeeping.cancel()
            checking.cancel()
        finally:
            if loading is not None:
                loading.cancel()
            await self.p2p.stop()
            await self.http.stop()
            self.auth.remove_cookie()
            self.worker.close()
            await asyncio.sleep(0)  # the last writes' events reach their listeners while the chain is open
            await self._keep_mempool()
            self.chain.close()
            log.info("shutdown complete; data in %s", self.cfg.network_dir)

    async def _load_kept_mempool(self) -> None:
        """Offer the txs kept at the last shutdown to the pool while the node serves (``node.mempoolkeep``)."""
        try:
            admitted, dropped = await self.kept_mempool.load()
        except Exception:  # a bug (damaged records are dropped inside): logged, and the node serves on
            log.exception("mempool: loading the txs kept from the last shutdown failed")
            return
        if admitted or dropped:
            log.info("mempool: %d txs kept from the last shutdown back in the pool, %d dropped", admitted, dropped)

    async def _keep_mempool(self) -> None:
        """Write the pool's txs for the next start (``node.mempoolkeep``); a store that cannot be
        written loses them, with a warning, and the shutdown goes on."""
        try:
            log.info("mempool: %d txs kept for the next start", await self.kept_mempool.save())
        except StoreError as exc:
            log.warning("mempool: its txs are not kept for the next start: %s", exc)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(argv)
    except ConfigError as exc:
        print(f"pouwd: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.log_level, cfg.log_format, cfg.log_file)
    try:
        node = Node(cfg)
    except DatadirLocked as exc:
        log.error("%s (is another pouwd running on this datadir?)", exc)
        return 1
    except DatadirCorrupt as exc:
        log.error("%s", exc)
        return 1
    except (StoreError, OSError) as exc:
        log.error("cannot open datadir %s: %s", cfg.network_dir, exc)
        return 1
    # What start-up loaded (the block index, imported modules) lives as long as the node: keep
    # it out of the collector's scans, whose pauses otherwise grow with the chain and stall the
    # event loop (RPC latency under header floods, bench_abuse.py).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    try:
        asyncio.run(node.run())
    except OSError as exc:  # e.g. the RPC port is taken
        log.error("pouwd stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
