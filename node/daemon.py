"""pouwd: the full node daemon — lifecycle, signals, and the wiring of chain, mempool,
RPC and p2p (ARCHITECTURE: node/daemon)."""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from typing import Any, Iterable

from consensus.block import Block
from consensus.errors import InvalidTx
from consensus.tx import Tx
from miner.odds import expected_block_macs
from p2p import P2PNode
from p2p.addrbook import parse_addr

from .chain import FUTURE, INVALID, Chain, ChainEvent, SubmitResult
from .config import Config, ConfigError, load_config
from .httpapi import HttpApi
from .logs import setup_logging
from .market import JobMarket
from .marketrpc import MarketMethods
from .matrices import MatrixStore
from .mempool import Mempool, MempoolPolicy
from .metrics import NodeMetrics
from .peering import PeerChain, PeerMempool
from .progress import Progress
from .rpcmethods import RpcMethods
from .rpcserver import Auth, Dispatcher
from .store import DatadirCorrupt, DatadirLocked, StoreError

log = logging.getLogger("pouw.node")
USER_AGENT = "/pouw:0.1.0/"
HOUSEKEEPING_SECONDS = 5.0
GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)
RATE_WINDOW = 30  # blocks used to estimate the network's MAC rate
RESOLVE_TIMEOUT = 10.0


class Node:
    """One running node: chain + mempool + HTTP API (+ p2p), driven by one asyncio loop."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.network = cfg.params
        self.user_agent = USER_AGENT
        self.started_at = time.time()
        cfg.network_dir.mkdir(parents=True, exist_ok=True)
        self.chain = Chain(cfg.datadir_path, self.network, reindex=cfg.reindex, address_index=cfg.address_index,
                           reindex_progress=Progress("reindex", log).update)
        self.sync_progress = Progress("initial sync", log)
        self.mempool = Mempool(self.network, self._tip_view,
                               MempoolPolicy(max_bytes=cfg.mempool_max_bytes, min_fee_per_byte=cfg.min_relay_fee))
        self.metrics = NodeMetrics()
        self.metrics.bind(lambda: self.chain.tip.height, lambda: float(self.chain.tip.chain_work),
                          lambda: self.network.pow_limit / self.chain.next_target(),
                          lambda: self.mempool.info()["size"], lambda: self.mempool.info()["bytes"],
                          lambda: len(self.p2p.peer_info()), self.network_mac_rate)
        self.market = JobMarket(self.chain, MatrixStore(cfg.network_dir / "matrices", self.network,
                                                        cfg.matrix_store_mb * 1024 * 1024),
                                lambda key, first, count: self.p2p.fetch_matrix(key, first, count))
        self.metrics.bind_market(self.market.stats)
        self.p2p = P2PNode(PeerChain(self), PeerMempool(self), self.network, bind=cfg.effective_bind,
                           port=cfg.effective_port, listen=cfg.listen, connect=cfg.connect, addnode=cfg.addnode,
                           seednode=cfg.seednode, max_outbound=cfg.max_outbound, max_inbound=cfg.max_inbound,
                           max_inbound_per_ip=cfg.max_inbound_per_ip, ban_v6_prefix=cfg.ban_v6_prefix,
                           ban_seconds=cfg.ban_seconds, user_agent=USER_AGENT, records=self.chain.store,
                           matrix_source=self.market)
        self._useful: dict[str, int] | None = None  # counted on first use, then kept by chain events
        self._pruned_at = -1  # tip height of the last matrix-store prune
        self._stop: asyncio.Event | None = None
        self._tip_changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._returned: list[bytes] = []  # txids of disconnected blocks, announced once the reorg is done
        self.auth = Auth(cfg.network_dir / ".cookie", cfg.rpc_user, cfg.rpc_password)
        dispatcher = Dispatcher()
        RpcMethods(self).register(dispatcher)
        self.market_rpc = MarketMethods(self.market, self.network)
        self.market_rpc.register(dispatcher)
        self.http = HttpApi(self, dispatcher, self.auth)
        self.chain.subscribe(self._on_chain_event)

    # --- chain and mempool glue ---------------------------------------------------------
    def _tip_view(self):
        return self.chain.tip_state_view(), self.chain.tip.height + 1

    def _count_useful(self) -> dict[str, int]:
        counts = {"blocks": 0, "useful_blocks": 0, "macs": 0, "useful_macs": 0}
        for height in range(1, self.chain.tip.height + 1):
            header = self.chain.header(self.chain.hash_at(height) or b"")
            if header is not None:
                self._count_header(counts, header, 1)
        return counts

    @staticmethod
    def _count_header(counts: dict[str, int], header, sign: int) -> None:
        macs = header.work.m * header.work.n * header.work.k
        useful = header.work.job_id != bytes(32)
        counts["blocks"] += sign
        counts["macs"] += sign * macs
        counts["useful_blocks"] += sign * useful
        counts["useful_macs"] += sign * macs * useful

    def _on_chain_event(self, event: ChainEvent) -> None:
        if event.kind == "connected":
            self.mempool.on_block_connected(event.block)
            self.metrics.blocks_connected.inc()
            if self._useful is not None:
                self._count_header(self._useful, event.block.header, 1)
        else:
            self.mempool.on_block_disconnected(event.block)
            if self._useful is not None:
                self._count_header(self._useful, event.block.header, -1)
            self._schedule_returned(event.block)
        if self._tip_changed is not None:
            self._tip_changed.set()
        self.http.events.publish({"event": f"block_{event.kind}", "hash": event.block.hash.hex(),
                                  "height": event.height, "tip": self.chain.tip.hash.hex()})

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

    def submit_block(self, block: Block | bytes, raw: bytes | None = None) -> SubmitResult:
        """The one path for new blocks (RPC, in-process mining, p2p): validate, connect, count."""
        return self._counted([self.chain.submit_block(block, raw)])[0]

    def submit_blocks(self, blocks: Iterable[Block | bytes]) -> list[SubmitResult]:
        """Several blocks in height order (p2p sync): tip moves commit per group."""
        return self._counted(self.chain.submit_blocks(blocks))

    def retry_future(self) -> list[SubmitResult]:
        """Blocks held for a timestamp too far ahead, tried again (p2p maintenance calls this)."""
        return self._counted(self.chain.retry_future())

    def _counted(self, results: list[SubmitResult]) -> list[SubmitResult]:
        """Count rejections; report a moved tip once per call (a group moves it once)."""
        for result in results:
            if result.status == INVALID:
                self.metrics.blocks_rejected.labels(reason=result.reason or "invalid").inc()
                log.info("rejected block %s: %s", result.hash.hex(), result.reason)
        if any(r.status != FUTURE and r.tip_changed for r in results):
            tip = self.chain.tip
            best = self.chain.header_tip_height()
            if best > tip.height:  # downloading a chain whose headers we have: progress, not every block
                self.sync_progress.update(tip.height, best)
            else:
                self.sync_progress.finish(tip.height)
                log.info("new tip %s height %d", tip.hash.hex(), tip.height)
        return results

    def add_tx(self, tx: Tx, announce: bool = True) -> list[Tx]:
        """Admit a tx to the mempool (raises InvalidTx); announce what became ready to peers
        (unless the caller is the relay, which announces itself) and to websocket clients."""
        try:
            ready = self.mempool.add(tx)
        except InvalidTx as exc:
            self.metrics.txs_rejected.labels(reason=exc.reason).inc()
            raise
        for t in ready:
            self.http.events.publish({"event": "tx", "txid": t.txid.hex()})
            if announce:
                self.p2p.announce_tx(t)
        return ready

    # --- status ------------------------------------------------------------------------
    def syncing(self) -> bool:
        return self.chain.best_header_height() > self.chain.tip.height

    def useful_stats(self) -> dict[str, Any]:
        """Share of useful blocks and MACs on the best chain (PROTOCOL §6)."""
        if self._useful is None:  # a walk over the best chain, paid by the first asker, not start-up
            self._useful = self._count_useful()
        u = self._useful
        return {**u, "useful_block_share": u["useful_blocks"] / u["blocks"] if u["blocks"] else 0.0,
                "useful_mac_share": u["useful_macs"] / u["macs"] if u["macs"] else 0.0}

    def network_mac_rate(self) -> float:
        """MACs per second over the last blocks (after genesis): each block counts the MACs
        expected of a miner of its shape at its target (``miner.odds``; at least its one matmul, §4)."""
        tip = self.chain.tip
        first = max(1, tip.height - RATE_WINDOW)  # genesis is stamped at a fixed date long before
        if tip.height <= first:
            return 0.0
        start = self.chain.header(self.chain.hash_at(first) or b"")
        if start is None or tip.header.timestamp <= start.timestamp:
            return 0.0
        macs = 0
        for height in range(first + 1, tip.height + 1):
            header = self.chain.header(self.chain.hash_at(height) or b"")
            if header is not None:
                macs += expected_block_macs(header)
        return macs / (tip.header.timestamp - start.timestamp)

    async def wait_for_tip_change(self, timeout: float) -> None:
        """Wait for a new tip (long-poll); returns at once when the node is shutting down."""
        assert self._tip_changed is not None
        if self.stopping():
            return
        self._tip_changed.clear()
        try:
            await asyncio.wait_for(self._tip_changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def request_stop(self) -> None:
        if self._stop is not None:
            asyncio.get_running_loop().call_soon(self._stop.set)

    # --- lifecycle -----------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                self.mempool.expire()
                if self.chain.tip.height != self._pruned_at:
                    self._pruned_at = self.chain.tip.height
                    self.market.prune()
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
        self._stop = asyncio.Event()
        self._tip_changed = asyncio.Event()
        loop = self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        port = self.cfg.effective_rpc_port
        try:
            await self.http.start(self.cfg.rpc_bind, port)
            self.auth.write_cookie()
            await self.p2p.start()
            housekeeping = asyncio.create_task(self._housekeeping())
            checking = asyncio.create_task(self._check_peer_addresses())
            tip = self.chain.tip
            log.info("pouwd ready: network %s, height %d, tip %s, rpc %s:%d, datadir %s", self.network.name,
                     tip.height, tip.hash.hex(), self.cfg.rpc_bind, port, self.cfg.network_dir)
            await self._stop.wait()
            log.info("shutting down")
            self._tip_changed.set()  # release long-polling getblocktemplate calls
            housekeeping.cancel()
            checking.cancel()
        finally:
            await self.p2p.stop()
            await self.http.stop()
            self.auth.remove_cookie()
            self.chain.close()
            log.info("shutdown complete; data in %s", self.cfg.network_dir)


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
    try:
        asyncio.run(node.run())
    except OSError as exc:  # e.g. the RPC port is taken
        log.error("pouwd stopped: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
