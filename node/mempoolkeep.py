"""The mempool kept over a restart (as Bitcoin Core's mempool.dat): a poster's JOB_ACCEPT or a
fraud proof still waiting for a block when its node stops would otherwise be lost, and the
claim lapse meanwhile (§6). At shutdown, and on ``savemempool``, the pool's txs are written as
the chain database's "mempool" records, ``[arrived, tx]`` under each txid, in one batch. At
start they are read and offered to the pool again in the background, oldest first, against the
tip then (those a block took meanwhile, or that no longer fit, are dropped), while the node
already serves; a shutdown before the last is offered keeps those still waiting too. The
records stay until the next save writes over them, so a node killed before that offers the
same txs again."""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Iterable, Iterator, Protocol

from consensus import encoding as enc
from consensus.encoding import U64, Bin, Tuple
from consensus.errors import DecodeError, InvalidTx
from consensus.params import MAX_TX_SIZE
from consensus.tx import Tx
from p2p.interfaces import TxRefused

from .mempool import Mempool
from .store import StoreError

log = logging.getLogger("pouw.mempool")

KIND = "mempool"
_SCHEMA = Tuple(U64, Bin(max_size=MAX_TX_SIZE))  # when the tx arrived (whole seconds since the epoch), the tx
BATCH = 256  # kept txs offered to the pool between two turns of the event loop


class MempoolRecords(Protocol):
    def records(self, kind: str) -> Iterable[tuple[bytes, bytes]]: ...
    def replace_records(self, kind: str, items: Iterable[tuple[bytes, bytes]]) -> None: ...


class KeptMempool:
    """The pool's side of the records: ``load`` them into the pool at start, and ``save`` the
    pool (with any kept txs not offered yet) over them."""

    def __init__(self, mempool: Mempool, records: MempoolRecords) -> None:
        self._mempool = mempool
        self._records = records
        self._unread: Iterator[tuple[bytes, bytes]] | None = None  # the records, once reading began
        self._read: list[tuple[int, Tx]] | None = []  # decoded so far; None once all are queued
        self._waiting: deque[tuple[int, Tx]] = deque()  # read, not offered to the pool yet
        self._unreadable = 0
        self._writing: asyncio.Future[None] | None = None  # the last save's write, on its thread
        self.loaded = False  # every kept tx has been offered (getmempoolinfo's "loaded")

    async def load(self, batch: int = BATCH) -> tuple[int, int]:
        """Read the kept txs, then offer them to the pool oldest first, ``batch`` records per
        turn of the event loop, so that RPC and peers are served meanwhile; (admitted, dropped:
        unreadable or no longer fitting)."""
        while not self._read_more(batch):
            await asyncio.sleep(0)
        admitted = dropped = 0
        while self._waiting:
            for _ in range(min(batch, len(self._waiting))):
                arrived, tx = self._waiting.popleft()
                try:
                    self._mempool.add(tx, arrived)
                    admitted += 1
                except (InvalidTx, TxRefused) as exc:
                    log.info("kept mempool tx %s no longer fits the pool: %s", tx.txid.hex(), exc)
                    dropped += 1
            await asyncio.sleep(0)
        self.loaded = True
        return admitted, dropped + self._unreadable

    def _read_more(self, count: int | None) -> bool:
        """Decode up to ``count`` more records (None: the rest); once all are read, queue them
        oldest first and, within a second, in nonce order (a sender's burst stays gapless), and
        say True. A record that does not decode is dropped; where the store cannot read on, the
        rest is."""
        if self._read is None:
            return True
        if self._unread is None:
            self._unread = iter(self._records.records(KIND))
        taken = 0
        try:
            for txid, value in itertools.islice(self._unread, count):
                taken += 1
                try:
                    arrived, raw = enc.decode(value, _SCHEMA, MAX_TX_SIZE + 64, "kept tx")
                    self._read.append((arrived, Tx.decode(raw)))
                except (DecodeError, InvalidTx) as exc:
                    log.warning("dropping an unreadable kept mempool tx %s: %s", txid.hex(), exc)
                    self._unreadable += 1
        except StoreError as exc:  # the database cannot read on: what was read still goes back
            log.warning("mempool: the txs kept from the last shutdown were read only in part: %s", exc)
        else:
            if count is not None and taken == count:
                return False
        self._read.sort(key=lambda item: (item[0], item[1].nonce))
        self._waiting.extend(self._read)
        self._unread, self._read = None, None
        return True

    def _items(self) -> list[tuple[bytes, bytes]]:
        """The records to write: the pool's txs, and the kept ones not offered yet, read now if
        a stop came before ``load`` read them (with their first arrival, should a peer have sent
        one again meanwhile)."""
        self._read_more(None)
        items = {tx.txid: [int(arrived), tx] for arrived, tx in self._mempool.arrivals()}
        items.update((tx.txid, [arrived, tx]) for arrived, tx in self._waiting)
        return [(txid, enc.encode([arrived, tx.encode()])) for txid, (arrived, tx) in items.items()]

    async def save(self) -> int:
        """Write the records over the last save's, in one synced batch on a thread of its own
        (a full pool is tens of MiB); how many txs. Saves follow each other in call order, and
        a cancelled caller does not cancel its write. Raises ``StoreError``."""
        items = self._items()
        writing = self._writing = asyncio.ensure_future(self._write_after(self._writing, items))
        await asyncio.shield(writing)
        return len(items)

    async def _write_after(self, previous: asyncio.Future[None] | None, items: list[tuple[bytes, bytes]]) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await asyncio.to_thread(self._records.replace_records, KIND, items)
