"""The chain and mempool as the p2p layer sees them (ARCHITECTURE: p2p calls a small
ChainView/Mempool protocol that node implements).

Reads go straight to the chain and mempool; blocks and txs that peers deliver take
the node's own submission path, so metrics, logs and websocket events see them too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from consensus.block import Block
from consensus.tx import Tx

from .chain import SubmitResult

if TYPE_CHECKING:
    from .daemon import Node


class PeerChain:
    def __init__(self, node: "Node") -> None:
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node.chain, name)

    def submit_block(self, block: Block | bytes, raw: bytes | None = None) -> SubmitResult:
        return self._node.submit_block(block, raw)

    def submit_blocks(self, blocks: Iterable[Block | bytes]) -> list[SubmitResult]:
        return self._node.submit_blocks(blocks)

    def retry_future(self) -> list[SubmitResult]:
        return self._node.retry_future()


class PeerMempool:
    def __init__(self, node: "Node") -> None:
        self._node = node

    def add(self, tx: Tx) -> list[Tx]:
        return self._node.add_tx(tx, announce=False)  # the relay announces what it accepted

    def get(self, txid: bytes) -> Tx | None:
        return self._node.mempool.get(txid)

    def __contains__(self, txid: object) -> bool:
        return txid in self._node.mempool
