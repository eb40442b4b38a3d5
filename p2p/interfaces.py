"""What p2p needs from the node (ARCHITECTURE: p2p never opens the database).

``node.chainworker.ChainWorker`` (a chain whose writes run off the event loop and
are awaited) and ``node.mempool.Mempool`` satisfy these protocols; the job market
can provide a ``MatrixSource`` to serve ``getmatrix`` (PROTOCOL §6, §7).
``BlockStatus`` is the one set of labels for what became of a submitted block or
header; ``node.chain`` reports with it.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from enum import StrEnum
from typing import Any, Protocol

from consensus.block import Header, ReceivedBlock
from consensus.params import Network
from consensus.tx import Tx

class BlockStatus(StrEnum):
    """What became of a submitted block or header (PROTOCOL §5, §7)."""

    ACCEPTED = "accepted"  # stored (and connected if it leads to the most work)
    DUPLICATE = "duplicate"  # known already
    ORPHAN = "orphan"  # parent unknown: held until it arrives
    INVALID = "invalid"  # breaks a rule (the result's reason says which)
    FUTURE = "future"  # timestamp too far ahead of the clock: held, retried later
    WAITING = "waiting"  # a download whose parent's data has not arrived: held, judged when it leaves


ACCEPTED, DUPLICATE, ORPHAN, INVALID, FUTURE, WAITING = BlockStatus
RELEASED = "released"  # the chain's event for the verdict on a block that waited (``ChainView.subscribe``)
REJECTED = "rejected"  # the chain's event for a block it found invalid, when submitted or later on connecting


class Result(Protocol):
    status: BlockStatus
    hash: bytes
    reason: str
    detail: str  # the whole error when invalid (may be empty)


class Rejected(Protocol):
    """The ``rejected`` event: a block broke a rule (``detail``: the whole error)."""

    hash: bytes
    reason: str
    detail: str


class Released(Protocol):
    """The ``released`` event: a block submitted with ``source`` was judged after it waited."""

    status: BlockStatus
    hash: bytes
    reason: str
    source: object
    detail: str


class Entry(Protocol):
    @property
    def height(self) -> int: ...
    @property
    def chain_work(self) -> int: ...
    @property
    def have_data(self) -> bool: ...
    @property
    def prev(self) -> bytes: ...
    @property
    def failed(self) -> bool: ...
    @property
    def raw(self) -> bytes | None: ...  # the canonical header, set once the block's data arrived


class TipInfo(Protocol):
    @property
    def hash(self) -> bytes: ...
    @property
    def height(self) -> int: ...
    @property
    def chain_work(self) -> int: ...


class ChainView(Protocol):
    """Reads answer at once from any thread; writes are awaited (the chain validates
    them elsewhere); ``forget_headers`` is not: it is done at once or after the write
    under way."""

    network: Network

    @property
    def tip(self) -> TipInfo: ...
    def entry(self, block_hash: bytes) -> Entry | None: ...
    def block_bytes(self, block_hash: bytes) -> bytes | None: ...
    def hash_at(self, height: int) -> bytes | None: ...
    def locator(self) -> list[bytes]: ...
    def headers_after(self, locator: Sequence[bytes], stop: bytes, limit: int = ...) -> Sequence[Entry]: ...
    async def add_headers(self, headers: Sequence[Header], keep: Collection[bytes] = ...) -> Sequence[Result]: ...
    def forget_headers(self, hashes: Iterable[bytes], keep: Collection[bytes] = ...) -> None: ...
    async def submit_blocks(self, blocks: Iterable[ReceivedBlock],
                            sources: Sequence[Hashable | None] | None = None) -> Sequence[Result]:
        """One result per block.  A block with a source (the peer it came from) whose parent's
        data has not arrived waits in the chain (``WAITING``); when it leaves, its verdict comes
        as a ``released`` event naming the source, as do those of orphans and future blocks."""
        ...
    def waiting(self, block_hash: bytes) -> bool:
        """The chain holds this block's data, waiting for its parent (do not fetch it again)."""
        ...
    async def retry_future(self) -> Sequence[Result]: ...
    def subscribe(self, callback: Callable[[Any], None], kinds: Collection[str] = ...) -> Callable[[], None]:
        """``callback(event)`` after each committed block move (by default: ``event.kind`` is
        "connected" or "disconnected"), or for the events of ``kinds`` (``RELEASED``: a
        ``Released``)."""
        ...


class TxRefused(Exception):
    """``MempoolView.add`` declined a tx by local policy (a full pool, a low fee, …): its
    sender broke no rule.  A tx that breaks one raises ``consensus.errors.InvalidTx``."""


class MempoolView(Protocol):
    def add(self, tx: Tx) -> list[Tx]: ...  # raises consensus.errors.InvalidTx or TxRefused
    def get(self, txid: bytes) -> Tx | None: ...
    def __contains__(self, txid: object) -> bool: ...
    def txids(self, limit: int | None = None) -> list[bytes]: ...
    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """``callback(event)`` for each tx ``add`` made ready (by whoever added it): ``event.tx``."""
        ...


class MatrixSource(Protocol):
    """What ``getmatrix`` serves, by key (PROTOCOL §7): H_A → rows of A, H_B → columns of B
    (rows of Bᵀ), a claim → rows of C (once its result is in a block).  Filled by the job
    market's matrix store later."""

    def rows(self, key: bytes, first: int, count: int, max_bytes: int) -> Sequence[bytes | memoryview] | None:
        """Up to ``count`` rows from ``first`` (at most ``max_bytes`` in all), or None if unknown; a
        row may be a view of the source's own buffer (it is copied once, into the reply)."""
        ...


class Records(Protocol):
    """``node.store.Store``'s opaque record API (p2p's kinds: "peer" and "ban")."""

    def put_record(self, kind: str, key: bytes, value: bytes) -> None: ...
    def get_record(self, kind: str, key: bytes) -> bytes | None: ...
    def delete_record(self, kind: str, key: bytes) -> None: ...
    def records(self, kind: str) -> Iterable[tuple[bytes, bytes]]: ...


class MemoryRecords:
    """In-memory ``Records`` for a node that persists nothing (and for tests)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, bytes], bytes] = {}

    def put_record(self, kind: str, key: bytes, value: bytes) -> None:
        self._data[kind, key] = value

    def get_record(self, kind: str, key: bytes) -> bytes | None:
        return self._data.get((kind, key))

    def delete_record(self, kind: str, key: bytes) -> None:
        self._data.pop((kind, key), None)

    def records(self, kind: str) -> Iterable[tuple[bytes, bytes]]:
        return [(k, v) for (kd, k), v in list(self._data.items()) if kd == kind]
