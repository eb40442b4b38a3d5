"""What the chain and the mempool tell the rest of the node (docs/architecture.md).

``node.chain.Chain`` publishes block moves after each commit (``connected``,
``disconnected``), each block it finds invalid (``rejected``), the verdict on each
block that waited in its pool with a source (``released``) and, once per
submission, a moved tip (``tip``); ``node.mempool.Mempool`` publishes the txs
``add`` made ready (``tx-accepted``), the ones it refused (``tx-rejected``) and each
pooled tx that left, with why (``tx-removed``).
Metrics, logs, websocket pushes and p2p announcements subscribe; nothing calls
them directly.  Listeners run on the publisher's thread, in subscription order;
one that raises is logged and skipped, never breaks the publisher.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from consensus.block import Block
from consensus.tx import Tx
from p2p.interfaces import REJECTED, RELEASED, BlockStatus

log = logging.getLogger(__name__)

CONNECTED, DISCONNECTED, TIP_CHANGED = "connected", "disconnected", "tip"
TX_ACCEPTED, TX_REJECTED, TX_REMOVED = "tx-accepted", "tx-rejected", "tx-removed"
# why a pooled tx left (``TxRemoved.reason``)
MINED, REPLACED, EVICTED, EXPIRED, CONFLICTED = "mined", "replaced", "evicted", "expired", "conflicted"
BLOCK_MOVES = (CONNECTED, DISCONNECTED)


@dataclass(frozen=True)
class ChainEvent:
    """A block joined (``connected``) or left (``disconnected``) the best chain, committed."""

    kind: str
    block: Block
    height: int


@dataclass(frozen=True)
class BlockRejected:
    """A block broke a rule: one submitted, or one stored earlier that failed when it was
    connected (``reason`` is the consensus reason token, ``detail`` the whole error)."""

    hash: bytes
    reason: str
    detail: str = ""
    kind: str = REJECTED


@dataclass(frozen=True)
class BlockReleased:
    """A block that waited in the chain's pool was judged after all (its parent arrived, it was
    retried, or the pool stored it out of order over its bound): ``status`` and ``reason`` as a
    submission's result; ``source`` is what it was submitted with (sync: the peer)."""

    hash: bytes
    status: BlockStatus
    reason: str
    source: object
    detail: str = ""
    kind: str = RELEASED


@dataclass(frozen=True)
class TipChanged:
    """A submission moved the tip; ``best_header`` is the highest header known (progress only)."""

    hash: bytes
    height: int
    best_header: int
    kind: str = TIP_CHANGED


@dataclass(frozen=True)
class TxAccepted:
    """A tx became ready in the mempool (to relay)."""

    tx: Tx
    kind: str = TX_ACCEPTED


@dataclass(frozen=True)
class TxRejected:
    """The mempool refused a tx (``reason``: the ``code`` of its ``InvalidTx`` or ``MempoolPolicyError``)."""

    txid: bytes
    reason: str
    kind: str = TX_REJECTED


@dataclass(frozen=True)
class TxRemoved:
    """A pooled tx left: ``mined`` (in a connected block), ``replaced`` (same sender and nonce,
    higher fee), ``evicted`` (the pool's size or queue bounds), ``expired`` (older than the
    pool's max age) or ``conflicted`` (no longer applies: nonce used, funds gone, or an
    earlier tx of its sender left)."""

    txid: bytes
    reason: str
    kind: str = TX_REMOVED


Listener = Callable[[Any], None]


class Listeners:
    """Subscribers by event kind."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[Listener, Collection[str]]] = []

    def subscribe(self, callback: Listener, kinds: Collection[str]) -> Callable[[], None]:
        """Call ``callback(event)`` for each published event of ``kinds``; returns an unsubscribe."""
        item = (callback, tuple(kinds))
        self._subscribers.append(item)
        return lambda: self._subscribers.remove(item) if item in self._subscribers else None

    def publish(self, event: Any) -> None:
        for callback, kinds in list(self._subscribers):
            if event.kind in kinds:
                try:
                    callback(event)
                except Exception:  # a listener must not break its publisher
                    log.exception("listener failed on %s", event.kind)
