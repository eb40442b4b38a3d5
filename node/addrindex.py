"""The optional address index (``pouwd --addressindex``, docs/storage.md): which best-chain
txs and mined blocks touch an address, for wallets asking for their history over RPC.

An entry is ``(address, height, position) → roles``: ``position`` is the tx's place in
its block, or ``MINED_POSITION`` for the block's own reward (paid ``coinbase_maturity``
blocks later, PROTOCOL §5). The chain writes a block's entries in the same batch that
connects it and removes them in the batch that disconnects it.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from typing import Any, Iterable, Iterator

from consensus.block import Block
from consensus.keys import encode_address
from consensus.params import Network, subsidy
from consensus.tx import KIND_NAMES, Transfer, Tx

from .blockindex import IndexEntry
from .store import DatadirCorrupt, StateReader, Store, StoreError

log = logging.getLogger(__name__)

SENT, RECEIVED, MINED = 1, 2, 4
MINED_POSITION = 2**32 - 1


def _inconsistent(what: str) -> DatadirCorrupt:
    return DatadirCorrupt(f"the address index is inconsistent ({what}); restart pouwd with "
                          f"--addressindex --reindex to rebuild it")


def open_address_index(store: Store, wanted: bool, tip_height: int) -> None:
    """Match the stored index to ``--addressindex``: a datadir with blocks but no index needs
    ``--reindex`` to build it; a node started without the flag drops the index it no longer keeps."""
    on = store.address_index_on()
    if wanted and not on:
        if tip_height > 0:
            raise StoreError(f"the address index is not built in {store.path}: restart once with "
                             f"--addressindex --reindex to build it from the stored blocks")
        store.set_address_index(True)
    elif on and not wanted:
        store.set_address_index(False)
        log.info("dropped the address index (pouwd runs without --addressindex)")


def tx_roles(tx: Tx) -> dict[bytes, int]:
    """``address → roles`` of one tx: its sender, and a transfer's recipient (§3)."""
    roles = {tx.sender_address: SENT}
    if isinstance(tx.payload, Transfer):
        roles[tx.payload.to] = roles.get(tx.payload.to, 0) | RECEIVED
    return roles


def block_entries(block: Block) -> dict[tuple[bytes, int], int]:
    """``(address, position) → roles`` for everything in ``block``: its txs, and its miner
    (every block but genesis)."""
    out = {(address, position): roles
           for position, tx in enumerate(block.txs) for address, roles in tx_roles(tx).items()}
    if block.header.height > 0:
        out[(block.header.miner, MINED_POSITION)] = MINED
    return out


def _tx_entries(network: Network, address: bytes, tx: Tx, roles: int) -> list[dict[str, Any]]:
    """Bitcoin-style ``listtransactions`` rows of one tx for one address: a send and/or a receive."""
    common = {"address": encode_address(network.hrp, address), "txid": tx.txid.hex(),
              "kind": KIND_NAMES.get(tx.kind, str(tx.kind)), "nonce": tx.nonce}
    transfer = tx.payload if isinstance(tx.payload, Transfer) else None
    rows = []
    if roles & SENT:
        row = {**common, "category": "send", "fee": -tx.fee,
               "amount": -transfer.amount if transfer else 0}
        if transfer:
            row["to"] = encode_address(network.hrp, transfer.to)
        rows.append(row)
    if roles & RECEIVED and transfer:
        rows.append({**common, "category": "receive", "amount": transfer.amount,
                     "from": encode_address(network.hrp, tx.sender_address)})
    return rows


class History:
    """Reads the index on one LevelDB snapshot, so a page is consistent while blocks connect."""

    def __init__(self, reader: StateReader, network: Network) -> None:
        self.reader = reader
        self.network = network
        tip = reader.entry(reader.tip_hash() or b"")
        if tip is None:
            raise _inconsistent("no tip")
        self.tip_height = tip.height
        self._blocks: dict[int, tuple[Block, IndexEntry]] = {}

    def _block(self, height: int) -> tuple[Block, IndexEntry]:
        if height not in self._blocks:
            block_hash = self.reader.best_hash(height)
            entry = self.reader.entry(block_hash or b"")
            raw = self.reader.block_bytes(block_hash or b"")
            if entry is None or raw is None:
                raise _inconsistent(f"an entry at height {height} without a block")
            self._blocks[height] = (Block.decode(raw), entry)
        return self._blocks[height]

    def entries(self, addresses: Iterable[bytes]) -> Iterator[tuple[int, int, bytes, int]]:
        """``(height, position, address, roles)`` over all ``addresses``, newest first."""
        def stream(address: bytes) -> Iterator[tuple[int, int, bytes, int]]:
            for height, position, roles in self.reader.address_history(address):
                yield height, position, address, roles
        return heapq.merge(*map(stream, addresses), key=lambda e: e[:3], reverse=True)

    def page(self, addresses: Iterable[bytes], skip: int, count: int) -> list[dict[str, Any]]:
        """Rows newest first, ``skip`` index entries skipped, at most ``count`` entries read."""
        rows = []
        for height, position, address, roles in itertools.islice(self.entries(addresses), skip, skip + count):
            block, entry = self._block(height)
            place = {"blockhash": entry.hash.hex(), "blockheight": height, "time": block.header.timestamp,
                     "confirmations": self.tip_height - height + 1}
            if position == MINED_POSITION:
                matures_at = height + self.network.coinbase_maturity
                rows.append({"address": encode_address(self.network.hrp, address),
                             "category": "generate" if self.tip_height >= matures_at else "immature",
                             "amount": subsidy(height) + entry.fees, "matures_at": matures_at, **place})
            elif position < len(block.txs):
                rows.extend({**row, **place} for row in
                            _tx_entries(self.network, address, block.txs[position], roles))
            else:
                raise _inconsistent(f"an entry for tx {position} of block {height}")
        return rows


def mempool_rows(network: Network, addresses: set[bytes], txs: Iterable[Tx]) -> list[dict[str, Any]]:
    """Unconfirmed rows (confirmations 0) for the pooled ``txs`` that touch ``addresses``."""
    return [{**row, "confirmations": 0}
            for tx in txs for address, roles in tx_roles(tx).items() if address in addresses
            for row in _tx_entries(network, address, tx, roles)]
