"""The mempool kept over a restart (as Bitcoin Core's mempool.dat): a poster's JOB_ACCEPT or a
fraud proof still waiting for a block when its node stops would otherwise be lost, and the
claim lapse meanwhile (§6). At shutdown the pool's txs are written as the chain database's
"mempool" records, ``[arrived, tx]`` under each txid, in one batch; at start they are offered
to the pool again, oldest first, against the tip then (those a block took meanwhile, or that
no longer fit, are dropped). The records stay until the next shutdown writes over them, so a
node killed before that offers the same txs again."""
from __future__ import annotations

import logging
from typing import Iterable, Protocol

from consensus import encoding as enc
from consensus.encoding import U64, Bin, Tuple
from consensus.errors import DecodeError, InvalidTx
from consensus.params import MAX_TX_SIZE
from consensus.tx import Tx
from p2p.interfaces import TxRefused

from .mempool import Mempool

log = logging.getLogger("pouw.mempool")

KIND = "mempool"
_SCHEMA = Tuple(U64, Bin(max_size=MAX_TX_SIZE))  # when the tx arrived (whole seconds since the epoch), the tx


class MempoolRecords(Protocol):
    def records(self, kind: str) -> Iterable[tuple[bytes, bytes]]: ...
    def replace_records(self, kind: str, items: Iterable[tuple[bytes, bytes]]) -> None: ...


def save_mempool(mempool: Mempool, records: MempoolRecords) -> int:
    """Write the pool's txs over whatever an earlier shutdown kept; how many."""
    kept = [(tx.txid, enc.encode([int(arrived), tx.encode()])) for arrived, tx in mempool.arrivals()]
    records.replace_records(KIND, kept)
    return len(kept)


def load_mempool(mempool: Mempool, records: MempoolRecords) -> tuple[int, int]:
    """Offer the kept txs to ``mempool``, oldest first; (admitted, dropped)."""
    kept, dropped = [], 0
    for txid, value in records.records(KIND):
        try:
            arrived, raw = enc.decode(value, _SCHEMA, MAX_TX_SIZE + 64, "kept tx")
            tx = Tx.decode(raw)
        except (DecodeError, InvalidTx) as exc:
            log.warning("dropping an unreadable kept mempool tx %s: %s", txid.hex(), exc)
            dropped += 1
            continue
        kept.append((arrived, tx))
    admitted = 0
    for arrived, tx in sorted(kept, key=lambda item: item[0]):
        try:
            mempool.add(tx, arrived)
            admitted += 1
        except (InvalidTx, TxRefused) as exc:
            log.info("kept mempool tx %s no longer fits the pool: %s", tx.txid.hex(), exc)
            dropped += 1
    return admitted, dropped
