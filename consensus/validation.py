"""Block validity rules (PROTOCOL §5), split into what needs the block alone
(``check_block``), what needs the parent chain (``check_header_context``), and
the state rules (``consensus.state.apply_block``)."""
from __future__ import annotations

from typing import Protocol, Sequence

from .block import HEADER_VERSION, Block, Header, tx_root
from .difficulty import next_target
from .errors import FutureBlock, InvalidBlock
from .params import MAX_BLOCK_SIZE, MAX_TX_SIZE, MEDIAN_TIME_SPAN, Network
from .reasons import Reason
from .work import proof_error, ticket_tile_in_range, win_threshold


class ParentHeader(Protocol):
    """What the context rules read of a parent: a ``Header``, or a record of these fields."""

    @property
    def hash(self) -> bytes: ...

    @property
    def height(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def target(self) -> int: ...


def check_header_stateless(header: Header, network: Network) -> None:
    """Header rules that need nothing else: version, chain, dims, tile index, claimed win."""
    if header.version != HEADER_VERSION:
        raise InvalidBlock(Reason.BAD_VERSION, f"header version {header.version}")
    if header.chain_id != network.chain_id:
        raise InvalidBlock(Reason.BAD_CHAIN_ID, f"chain {header.chain_id}, expected {network.chain_id}")
    w, t = header.work, header.ticket
    if not network.allowed_dims(w.m, w.n, w.k, w.r):
        raise InvalidBlock(Reason.BAD_DIMS, f"m={w.m} n={w.n} k={w.k} r={w.r}")
    if not ticket_tile_in_range(header):
        raise InvalidBlock(Reason.BAD_TICKET_TILE, f"tile ({t.a}, {t.b})")
    if int.from_bytes(t.digest, "big") >= win_threshold(header.target, w.k):
        raise InvalidBlock(Reason.TICKET_DOES_NOT_WIN)


def check_block(block: Block, network: Network, encoded_size: int | None = None) -> None:
    """Everything that the block alone decides: header rules, size, tx_root, the proof."""
    header = block.header
    check_header_stateless(header, network)
    size = encoded_size if encoded_size is not None else len(block.encode())
    if size > MAX_BLOCK_SIZE:
        raise InvalidBlock(Reason.BLOCK_TOO_LARGE, f"{size} bytes")
    for index, tx in enumerate(block.txs):
        if len(tx.encode()) > MAX_TX_SIZE:
            raise InvalidBlock.bad_tx(index, tx.txid, Reason.TX_TOO_LARGE, f"over {MAX_TX_SIZE} bytes")
    if tx_root(block.txs) != header.tx_root:
        raise InvalidBlock(Reason.BAD_TX_ROOT)
    code = proof_error(header, block.proof)
    if code:
        raise InvalidBlock(code)


def median_time_past(timestamps: Sequence[int]) -> int:
    """Median of the last (up to) 11 block timestamps ending at the parent."""
    recent = sorted(timestamps[-MEDIAN_TIME_SPAN:])
    return recent[len(recent) // 2]


def check_header_context(header: Header, parent: ParentHeader, recent_timestamps: Sequence[int],
                         now: int, network: Network) -> None:
    """Rules against the parent chain: height, linkage, timestamps and the ASERT target.

    ``recent_timestamps`` are the timestamps of the parent and its ancestors (oldest
    first: the parent's, and its parent's when it has one).  A timestamp too far in the future raises
    ``FutureBlock`` (retry later) rather than a permanent ``InvalidBlock``.
    """
    if header.prev_hash != parent.hash:
        raise InvalidBlock(Reason.BAD_PREV, "prev_hash does not name the parent")
    if header.height != parent.height + 1:
        raise InvalidBlock(Reason.BAD_HEIGHT, f"height {header.height} after parent {parent.height}")
    if header.timestamp <= median_time_past(recent_timestamps):
        raise InvalidBlock(Reason.TIME_TOO_OLD, "timestamp not after median time past")
    if header.timestamp > now + network.future_time_limit:
        raise FutureBlock(f"timestamp {header.timestamp} more than {network.future_time_limit}s ahead of {now}")
    expected = expected_target(network, parent, recent_timestamps)
    if header.target != expected:
        raise InvalidBlock(Reason.BAD_TARGET, f"target {header.target:#x}, expected {expected:#x}")


def expected_target(network: Network, parent: ParentHeader, recent_timestamps: Sequence[int]) -> int:
    """The §5 difficulty rule for a child of ``parent``; ``recent_timestamps`` end with the
    parent's timestamp, preceded by its parent's (needed from height 3 on)."""
    grand_time = recent_timestamps[-2] if len(recent_timestamps) >= 2 else None
    return next_target(network, parent.height, parent.target, parent.timestamp, grand_time)
