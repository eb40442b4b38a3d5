"""Prometheus metrics of a node (served at /metrics in the text exposition format)."""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class NodeMetrics:
    """One registry per node, so several nodes in one process never share figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("pouw_chain_height", "Height of the best chain tip", registry=r)
        self.chain_work = Gauge("pouw_chain_work", "Cumulative work of the best chain (expected MACs)", registry=r)
        self.difficulty = Gauge("pouw_difficulty", "Difficulty of the next block (pow_limit / target)", registry=r)
        self.mempool_txs = Gauge("pouw_mempool_transactions", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("pouw_mempool_bytes", "Encoded bytes of mempool transactions", registry=r)
        self.peers = Gauge("pouw_peers", "Connected peers", registry=r)
        self.network_macs = Gauge("pouw_network_macs_per_second",
                                  "Network MAC rate over the last blocks (expected MACs per block / time)", registry=r)
        self.blocks_connected = Counter("pouw_blocks_connected", "Blocks connected to the best chain", registry=r)
        self.blocks_rejected = Counter("pouw_blocks_rejected", "Blocks rejected, by reason", ["reason"], registry=r)
        self.txs_rejected = Counter("pouw_txs_rejected", "Transactions rejected, by reason", ["reason"], registry=r)
        self.mempool_removed = Counter("pouw_mempool_removed", "Transactions that left the mempool, by reason",
                                       ["reason"], registry=r)
        self.jobs = Gauge("pouw_jobs", "Jobs at the tip, by status", ["status"], registry=r)
        self.job_macs_settled = Gauge("pouw_job_macs_settled", "MACs of jobs settled in the last 1000 blocks",
                                      registry=r)
        self.useful_blocks = Gauge("pouw_useful_blocks", "Blocks naming a job in the last 1000 blocks", registry=r)
        self.useful_mac_share = Gauge("pouw_useful_mac_share",
                                      "MACs of settled jobs over the chain's MACs, last 1000 blocks", registry=r)
        self.matrix_bytes_served = Gauge("pouw_matrix_bytes_served", "Matrix bytes served to peers and clients",
                                         registry=r)
        self._on_scrape: list[Callable[[], None]] = []
        self.rpc_latency = Histogram("pouw_rpc_latency_seconds", "JSON-RPC call latency", ["method"], registry=r,
                                     buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))

    def bind(self, height: Callable[[], float], chain_work: Callable[[], float], difficulty: Callable[[], float],
             mempool_txs: Callable[[], float], mempool_bytes: Callable[[], float], peers: Callable[[], float],
             network_macs: Callable[[], float]) -> None:
        """Read the live figures from the node at scrape time."""
        self.height.set_function(height)
        self.chain_work.set_function(chain_work)
        self.difficulty.set_function(difficulty)
        self.mempool_txs.set_function(mempool_txs)
        self.mempool_bytes.set_function(mempool_bytes)
        self.peers.set_function(peers)
        self.network_macs.set_function(network_macs)

    def bind_market(self, stats: Callable[[], dict]) -> None:
        """Read the job market's figures (``JobMarket.stats``) once per scrape."""
        def refresh() -> None:
            figures = stats()
            for status, count in figures["jobs"].items():
                self.jobs.labels(status=status).set(count)
            self.job_macs_settled.set(figures["settled_macs"])
            self.useful_blocks.set(figures["useful_blocks"])
            self.useful_mac_share.set(figures["useful_mac_share"])
            self.matrix_bytes_served.set(figures["bytes_served"])
        self._on_scrape.append(refresh)

    def render(self) -> bytes:
        for refresh in self._on_scrape:
            refresh()
        return generate_latest(self.registry)
