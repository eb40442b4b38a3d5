"""Figures about the best chain for RPC, metrics and ``/health``: useful-work shares
(PROTOCOL §6), the network's MAC rate and whether the node is still syncing."""
from __future__ import annotations

from typing import Any

from consensus.block import Header
from miner.kernel import PANEL_ROWS
from miner.odds import expected_block_macs

from .chainworker import ChainWorker
from .events import CONNECTED, ChainEvent

RATE_WINDOW = 30  # blocks used to estimate the network's MAC rate


class ChainStats:
    """Kept current by the chain's block events, heard on the chain's thread (the useful counts
    once first asked for: counted there too, between two writes)."""

    def __init__(self, worker: ChainWorker) -> None:
        self.chain = worker.chain
        self._worker = worker
        self._useful: dict[str, int] | None = None  # counted on first use, then kept by chain events
        self.chain.subscribe(self._on_block)

    def _on_block(self, event: ChainEvent) -> None:
        if self._useful is not None:
            self._count_header(self._useful, event.block.header, 1 if event.kind == CONNECTED else -1)

    def _count_useful(self) -> None:
        if self._useful is not None:
            return
        counts = {"blocks": 0, "useful_blocks": 0, "macs": 0, "useful_macs": 0}
        for height in range(1, self.chain.tip.height + 1):
            header = self.chain.header(self.chain.hash_at(height) or b"")
            if header is not None:
                self._count_header(counts, header, 1)
        self._useful = counts

    @staticmethod
    def _count_header(counts: dict[str, int], header: Header, sign: int) -> None:
        macs = header.work.m * header.work.n * header.work.k
        useful = header.work.job_id != bytes(32)
        counts["blocks"] += sign
        counts["macs"] += sign * macs
        counts["useful_blocks"] += sign * useful
        counts["useful_macs"] += sign * macs * useful

    async def useful_stats(self) -> dict[str, Any]:
        """Share of useful blocks and MACs on the best chain (PROTOCOL §6)."""
        if self._useful is None:  # a walk over the best chain, paid by the first asker, not start-up
            await self._worker.run(self._count_useful)
        u = dict(self._useful)  # type: ignore[arg-type]  # counted above
        return {**u, "useful_block_share": u["useful_blocks"] / u["blocks"] if u["blocks"] else 0.0,
                "useful_mac_share": u["useful_macs"] / u["macs"] if u["macs"] else 0.0}

    def network_mac_rate(self) -> float:
        """MACs per second over the last blocks (after genesis): each block counts the MACs
        expected of a miner of its shape at its target (``miner.odds``; at least its one matmul, §4),
        a job's mined in parts as this installation's ``pouw-miner`` mines it (``PANEL_ROWS``)."""
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
                macs += expected_block_macs(header, PANEL_ROWS)
        return macs / (tip.header.timestamp - start.timestamp)

    def syncing(self) -> bool:
        """Whether blocks with verified work are known beyond the tip (initial download)."""
        return self.chain.best_header_height() > self.chain.tip.height
