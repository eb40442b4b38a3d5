"""Which peer to ask for which announced tx, and when (after Bitcoin Core's TxRequestTracker).

Every peer has its own queue of txs it announced and its own cap of requests in
flight, so a peer that announces 50,000 txs and answers none only fills its own
queue: an honest peer's announcement is requested at once from the honest peer.

* A peer is a *source* of the txs it announced (at most ``max_announced`` at a
  time; the rest of a flood is ignored).  A tx is requested from one source at
  a time; the other sources are kept as fallbacks.
* A request is done when the tx arrives (from anyone) or is no longer wanted;
  it fails on ``notfound``, after ``timeout``, or when the peer goes.  A failed
  tx is queued in front at the remaining source with the fewest requests in
  flight.
* Every change returns the requests to send now, as ``{peer id: [txid, …]}``.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

Requests = dict[int, list[bytes]]


class TxRequests:
    def __init__(self, wanted: Callable[[bytes], bool], max_in_flight: int = 100, max_announced: int = 5000,
                 timeout: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.wanted = wanted  # False once a tx is in the mempool or was refused
        self.max_in_flight = max_in_flight
        self.max_announced = max_announced
        self.timeout = timeout
        self._clock = clock
        self._queue: dict[int, OrderedDict[bytes, None]] = {}  # peer → txs to ask it for, in order
        self._sources: dict[int, set[bytes]] = {}  # peer → every tx it announced that is still tracked
        self._announcers: dict[bytes, list[int]] = {}  # tx → peers that announced it, first first
        self._flight: dict[bytes, tuple[int, float]] = {}  # tx → (peer asked, asked at)
        self._peer_flight: dict[int, set[bytes]] = {}

    # --- queries ---------------------------------------------------------------------
    def in_flight(self, peer_id: int) -> int:
        return len(self._peer_flight.get(peer_id, ()))

    def tracked(self) -> int:
        """Txs tracked at all (requested or announced)."""
        return len(self._announcers)

    # --- events ----------------------------------------------------------------------
    def add_peer(self, peer_id: int) -> None:
        self._queue[peer_id] = OrderedDict()
        self._sources[peer_id] = set()
        self._peer_flight[peer_id] = set()

    def remove_peer(self, peer_id: int) -> Requests:
        out: Requests = {}
        if peer_id in self._queue:
            self._queue[peer_id].clear()  # so that failing its requests asks it for nothing new
        for txid in list(self._peer_flight.get(peer_id, ())):
            self._fail(peer_id, txid, out)
        for txid in self._sources.pop(peer_id, ()):
            announcers = self._announcers.get(txid)
            if announcers is not None and peer_id in announcers:
                announcers.remove(peer_id)
                if not announcers:
                    del self._announcers[txid]
        self._queue.pop(peer_id, None)
        self._peer_flight.pop(peer_id, None)
        return out

    def announced(self, peer_id: int, txids: Iterable[bytes]) -> Requests:
        """A peer announced txs: track those still wanted, ask it for what it may be asked now."""
        sources = self._sources.get(peer_id)
        if sources is None:
            return {}
        queue = self._queue[peer_id]
        for txid in txids:
            if txid in sources or not self.wanted(txid):
                continue
            if len(sources) >= self.max_announced:
                break
            sources.add(txid)
            self._announcers.setdefault(txid, []).append(peer_id)
            if txid not in self._flight:
                queue[txid] = None
        out: Requests = {}
        self._fill(peer_id, out)
        return out

    def received(self, txid: bytes) -> Requests:
        """The tx arrived (from any peer) or is settled otherwise: stop tracking it."""
        out: Requests = {}
        flight = self._flight.pop(txid, None)
        for peer_id in self._announcers.pop(txid, ()):
            self._sources[peer_id].discard(txid)
            self._queue[peer_id].pop(txid, None)
        if flight is not None:
            self._peer_flight[flight[0]].discard(txid)
            self._fill(flight[0], out)
        return out

    def not_found(self, peer_id: int, txids: Iterable[bytes]) -> Requests:
        out: Requests = {}
        for txid in txids:
            if self._flight.get(txid, (None,))[0] == peer_id:
                self._fail(peer_id, txid, out)
        return out

    def expire(self) -> Requests:
        """Fail the requests unanswered for ``timeout``."""
        cutoff = self._clock() - self.timeout
        out: Requests = {}
        for txid, (peer_id, at) in list(self._flight.items()):
            if at < cutoff:
                self._fail(peer_id, txid, out)
        return out

    # --- internals -------------------------------------------------------------------
    def _fail(self, peer_id: int, txid: bytes, out: Requests) -> None:
        """The request of ``txid`` from ``peer_id`` failed: try the next source."""
        del self._flight[txid]
        self._peer_flight[peer_id].discard(txid)
        self._sources[peer_id].discard(txid)
        announcers = self._announcers.get(txid, [])
        if peer_id in announcers:
            announcers.remove(peer_id)
        if announcers:
            other = min(announcers, key=lambda p: len(self._peer_flight[p]))
            queue = self._queue[other]
            queue[txid] = None
            queue.move_to_end(txid, last=False)
            self._fill(other, out)
        else:
            self._announcers.pop(txid, None)
        self._fill(peer_id, out)

    def _fill(self, peer_id: int, out: Requests) -> None:
        """Ask ``peer_id`` for the next queued txs while it has request slots free."""
        queue, flight = self._queue[peer_id], self._peer_flight[peer_id]
        now = self._clock()
        while queue and len(flight) < self.max_in_flight:
            txid, _ = queue.popitem(last=False)
            if txid in self._flight or txid not in self._announcers:
                continue
            if not self.wanted(txid):
                self.received(txid)  # settled meanwhile; it was in no one's flight, so this asks nothing
                continue
            self._flight[txid] = (peer_id, now)
            flight.add(txid)
            out.setdefault(peer_id, []).append(txid)
