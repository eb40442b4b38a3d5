"""Inventory relay: inv / getdata / notfound for txs and blocks, tx admission and
matrix transfer by key: H_A, H_B or a claim (PROTOCOL §6, §7).

* A new tip is announced as ``inv [[2, hash]]`` and a newly ready mempool tx as
  ``inv [[1, txid]]``, each only to peers whose known-inventory filter lacks it.
* ``getdata`` is answered from ``chain.block_bytes`` / ``mempool.get`` (missing
  items in one ``notfound``); serving pauses while the peer's send buffer is full
  or its upload budget (16 MiB/s, burst 32 MiB) is spent, and one block is served
  to one peer at most twice per 10 minutes (more asks score 10 per getdata).
* Announced txs we lack are requested through ``TxRequests``: one source at a
  time per tx, at most 100 requests in flight and 5000 announcements tracked
  per peer, 60 s timeout, then the next source — so one peer's flood never
  delays another peer's txs.  Txs the mempool refused are remembered (bounded,
  cleared on each new tip) and not fetched again.  A tx that breaks a rule the tx
  alone decides (``Reason.tx_stateless``: signature, chain id, …) bans its
  sender; one invalid only against our state, which may lag or lead the
  peer's, or refused by policy (``TxRefused``) scores nothing.
* ``inv`` entries are rate limited per peer, the excess dropped; ``getmatrix`` replies
  are answered in order and paced per peer (``matrix_rate``, 0: not paced), each once the
  send buffer is below its matrix mark (``Peer.matrix_room``): one over the byte budget waits until the budget
  allows it (a large matrix arrives at the rate, not cut off after the burst), up to
  ``matrix_queue`` requests wait in order, and while that many wait nothing more is read
  from the peer (an honest fetcher keeps a few in flight).  Waiting for the budget or the
  buffer never stops reading below that bound: two nodes serving each other's matrices
  would otherwise each wait for the other to read.  A fetcher keeps a few requests
  in flight to one peer (``fetch_lines``), so a reply is on its way while the last one
  is decoded, and waits for a reply while the peer answers requests asked before it.
  ``getmatrix`` is served from a ``MatrixSource`` when one is set, else answered with
  an empty ``matrix`` reply.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from consensus.errors import InvalidTx
from consensus.tx import Tx

from . import wire
from .interfaces import ChainView, MatrixSource, MempoolView, TxRefused
from .peer import BAN_SCORE, KnownFilter, Peer
from .ratelimit import TokenBucket
from .sync import Sync
from .txrequest import TxRequests

log = logging.getLogger(__name__)
GETDATA_TURN = 1000  # getdata items handled per event-loop turn


@dataclass(frozen=True)
class RelayLimits:
    inv_rate: float = 10000.0  # inv entries per second per peer
    inv_burst: float = 2.0 * wire.MAX_INV
    matrix_rate: float = 8.0 * 1024 * 1024  # getmatrix reply bytes per second per peer; 0: unlimited
    matrix_burst: float = 4.0 * wire.MAX_MATRIX_BYTES
    matrix_queue: int = 64  # getmatrix requests per peer waiting to be answered (then its input waits)
    tx_timeout: float = 60.0
    max_peer_tx_in_flight: int = 100  # tx requests in flight per peer
    max_peer_tx_announced: int = 5000  # announced txs tracked per peer (the rest of a flood is ignored)
    recent_rejects: int = 50000
    upload_rate: float = 16.0 * 1024 * 1024  # block and tx bytes served per second per peer
    upload_burst: float = 32.0 * 1024 * 1024
    block_repeats: int = 2  # times one block is served to one peer per repeat_interval
    repeat_interval: float = 600.0
    served_blocks: int = 4096  # recently served blocks remembered per peer


@dataclass
class _PeerRelay:
    inv: TokenBucket
    matrix: TokenBucket | None  # None: getmatrix replies are not paced
    upload: TokenBucket
    matrix_asked: deque[tuple[bytes, int, int]] = field(default_factory=deque)  # getmatrix requests not yet answered
    matrix_room: asyncio.Event = field(default_factory=asyncio.Event)  # set when a request left matrix_asked
    served: OrderedDict[bytes, tuple[int, float]] = field(default_factory=OrderedDict)  # block → (times, first at)
    matrix_draining: bool = False  # replies wait for the send buffer to drain
    matrix_asks: int = 0  # getmatrix requests we sent it (each request's sequence number)
    matrix_answers: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=64))  # (request, when)


class Relay:
    def __init__(self, chain: ChainView, mempool: MempoolView, sync: Sync,
                 peers: Callable[[], Iterable[Peer]], limits: RelayLimits = RelayLimits(),
                 matrix_source: MatrixSource | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.chain = chain
        self.mempool = mempool
        self.sync = sync
        self.matrix_source = matrix_source
        self.limits = limits
        self._peers = peers
        self._clock = clock
        self._state: dict[int, _PeerRelay] = {}
        self._rejects = KnownFilter(limits.recent_rejects)
        self.tx_requests = TxRequests(self._wants_tx, limits.max_peer_tx_in_flight, limits.max_peer_tx_announced,
                                      limits.tx_timeout, clock)
        self._matrix_waiters: dict[tuple[int, bytes, int], tuple[asyncio.Future, int]] = {}  # → (reply, request no.)

    def add_peer(self, peer: Peer) -> None:
        lim = self.limits
        self._state[peer.id] = _PeerRelay(TokenBucket(lim.inv_rate, lim.inv_burst, self._clock),
                                          TokenBucket(lim.matrix_rate, lim.matrix_burst, self._clock)
                                          if lim.matrix_rate > 0 else None,
                                          TokenBucket(lim.upload_rate, lim.upload_burst, self._clock))
        self.tx_requests.add_peer(peer.id)
        self._announce_pool(peer)

    def _announce_pool(self, peer: Peer) -> None:
        """Tell a new peer what our pool holds (as geth does), up to what it tracks from one peer:
        a tx whose relay a dropped connection cut short would otherwise never reach it, and
        every later tx of its sender would wait behind the nonce gap."""
        self._announce_to(peer, wire.INV_TX, self.mempool.txids(self.limits.max_peer_tx_announced))

    def remove_peer(self, peer: Peer) -> None:
        st = self._state.pop(peer.id, None)
        if st is not None:
            st.matrix_room.set()
        self._send_tx_requests(self.tx_requests.remove_peer(peer.id))
        for key, (fut, _) in list(self._matrix_waiters.items()):
            if key[0] == peer.id and not fut.done():
                fut.set_result(None)

    # --- announcing --------------------------------------------------------------------
    def _announce(self, kind: int, h: bytes) -> None:
        for peer in self._peers():
            self._announce_to(peer, kind, [h])

    @staticmethod
    def _announce_to(peer: Peer, kind: int, hashes: list[bytes]) -> None:
        """``inv`` the hashes ``peer`` does not know of yet (in batches of the message's limit)."""
        new = [h for h in hashes if h not in peer.known]
        for h in new:
            peer.known.add(h)
        for start in range(0, len(new), wire.MAX_INV):
            peer.send("inv", [[kind, h] for h in new[start:start + wire.MAX_INV]])

    def announce_block(self, block_hash: bytes) -> None:
        self._announce(wire.INV_BLOCK, block_hash)
        self._rejects = KnownFilter(self.limits.recent_rejects)  # a new tip can make them valid

    def announce_tx(self, tx: Tx) -> None:
        self._announce(wire.INV_TX, tx.txid)

    # --- inventory -----------------------------------------------------------------------
    def on_inv(self, peer: Peer, items: list[list]) -> None:
        st = self._state.get(peer.id)
        if st is None or not st.inv.take(len(items)):
            log.debug("dropping inv of %d from peer %d: rate limit", len(items), peer.id)
            return
        blocks = [h for kind, h in items if kind == wire.INV_BLOCK]
        if blocks:
            self.sync.on_block_inv(peer, blocks)
        txids = [h for kind, h in items if kind == wire.INV_TX]  # unknown kinds are ignored
        for h in txids:
            peer.known.add(h)
        self._send_tx_requests(self.tx_requests.announced(peer.id, txids))

    def _wants_tx(self, txid: bytes) -> bool:
        return txid not in self.mempool and txid not in self._rejects

    def _send_tx_requests(self, requests: dict[int, list[bytes]]) -> None:
        if not requests:
            return
        peers = {p.id: p for p in self._peers()}
        for peer_id, txids in requests.items():
            if peer_id in peers:
                peers[peer_id].send("getdata", [[wire.INV_TX, h] for h in txids])

    async def on_getdata(self, peer: Peer, items: list[list]) -> None:
        """Serve blocks and txs, within the peer's upload budget; a block asked for more than
        ``block_repeats`` times per ``repeat_interval`` is not served again (and scores)."""
        st = self._state.get(peer.id)
        if st is None:
            return
        missing, repeats = [], 0
        for i, (kind, h) in enumerate(items):
            if i % GETDATA_TURN == GETDATA_TURN - 1:
                await asyncio.sleep(0)  # 50,000 items are a long loop: let others be served meanwhile
            if peer.closed:
                return
            if kind == wire.INV_BLOCK:
                if not self._may_serve_block(st, h):
                    repeats += 1
                    continue
                raw = self.chain.block_bytes(h)
                if raw is None:
                    missing.append([kind, h])
                    continue
                self.sync.peer_has(peer, h)
                data = wire.block_payload(raw)
            elif kind == wire.INV_TX:
                tx = self.mempool.get(h)
                if tx is None:
                    missing.append([kind, h])
                    continue
                data = wire.tx_payload(tx)
            else:
                continue
            peer.known.add(h)
            peer.send_payload(data)
            wait = st.upload.debt(len(data))
            if wait > 0:
                await asyncio.sleep(wait)
            await peer.drain()
        if missing and not peer.closed:
            peer.send("notfound", missing)
        if repeats:
            peer.misbehave(10, f"asked for the same block again ({repeats} times in one getdata)")

    def _may_serve_block(self, st: _PeerRelay, h: bytes) -> bool:
        now = self._clock()
        times, first = st.served.get(h, (0, now))
        if now - first >= self.limits.repeat_interval:
            times, first = 0, now
        if times >= self.limits.block_repeats:
            return False
        st.served[h] = (times + 1, first)
        st.served.move_to_end(h)
        if len(st.served) > self.limits.served_blocks:
            st.served.popitem(last=False)
        return True

    def on_notfound(self, peer: Peer, items: list[list]) -> None:
        self.sync.on_notfound(peer, [h for kind, h in items if kind == wire.INV_BLOCK])
        self._send_tx_requests(self.tx_requests.not_found(peer.id, [h for kind, h in items if kind == wire.INV_TX]))

    def on_tx(self, peer: Peer, tx: Tx) -> None:
        txid = tx.txid
        peer.known.add(txid)
        if txid in self.mempool or txid in self._rejects:
            self._send_tx_requests(self.tx_requests.received(txid))
            return
        try:
            self.mempool.add(tx)  # what became ready is announced on the mempool's event (P2PNode)
        except InvalidTx as exc:
            self._rejects.add(txid)
            if exc.code.tx_stateless:  # invalid on every chain: the sender's fault
                peer.misbehave(BAN_SCORE, f"invalid tx {txid.hex()[:16]}: {exc.code}")
            else:  # invalid against our tip, which may lag or lead the peer's
                log.debug("tx %s from peer %d invalid here: %s", txid.hex(), peer.id, exc)
        except TxRefused as exc:  # local policy: no fault of the peer's
            log.debug("tx %s from peer %d refused: %s", txid.hex(), peer.id, exc)
            self._rejects.add(txid)
        else:
            peer.last_tx_at = time.monotonic()
        self._send_tx_requests(self.tx_requests.received(txid))

    def expire(self) -> None:
        """Fail tx requests that were never answered (the next source is asked)."""
        self._send_tx_requests(self.tx_requests.expire())

    # --- matrices (§6) ----------------------------------------------------------------
    async def on_getmatrix(self, peer: Peer, key: bytes, first: int, count: int) -> None:
        """Answer in order, each reply once the peer's byte budget and our send buffer allow it;
        while ``matrix_queue`` requests wait, nothing more is read from the peer (TCP holds the rest)."""
        st = self._state.get(peer.id)
        while st is not None and len(st.matrix_asked) >= self.limits.matrix_queue:
            st.matrix_room.clear()
            await st.matrix_room.wait()
            st = self._state.get(peer.id)
        if st is None:
            return
        st.matrix_asked.append((key, first, count))
        if len(st.matrix_asked) == 1:
            self._serve_matrices(peer, st)

    def _serve_matrices(self, peer: Peer, st: _PeerRelay) -> None:
        """Send the replies the budget and the send buffer allow now; schedule the next one
        that must wait for either."""
        while st.matrix_asked:
            if not peer.matrix_room():
                if not st.matrix_draining:
                    st.matrix_draining = True
                    asyncio.ensure_future(self._serve_matrices_drained(peer, st))
                return
            key, first, count = st.matrix_asked[0]
            rows: Sequence[bytes | memoryview] = ()
            if self.matrix_source is not None and count:
                rows = self.matrix_source.rows(key, first, count, wire.MAX_MATRIX_BYTES) or []
            delay = st.matrix.debt(max(1, sum(len(r) for r in rows))) if st.matrix is not None else 0.0
            if delay:
                asyncio.get_running_loop().call_later(delay, self._send_matrix_later, peer, st, key, first, rows)
                return
            self._send_matrix(peer, st, key, first, rows)

    async def _serve_matrices_drained(self, peer: Peer, st: _PeerRelay) -> None:
        try:
            await peer.matrix_drain()
        except (ConnectionError, OSError):
            return  # the connection is closing: nothing more to serve
        finally:
            st.matrix_draining = False
        if self._state.get(peer.id) is st:
            self._serve_matrices(peer, st)

    def _send_matrix_later(self, peer: Peer, st: _PeerRelay, key: bytes, first: int,
                           rows: Sequence[bytes | memoryview]) -> None:
        if self._state.get(peer.id) is not st:
            return  # the peer is gone
        self._send_matrix(peer, st, key, first, rows)
        self._serve_matrices(peer, st)

    @staticmethod
    def _send_matrix(peer: Peer, st: _PeerRelay, key: bytes, first: int, rows: Sequence[bytes | memoryview]) -> None:
        """Answer the oldest waiting request (room for the next one)."""
        st.matrix_asked.popleft()
        st.matrix_room.set()
        peer.send_payload(wire.matrix_payload(key, first, rows))

    def on_matrix(self, peer: Peer, key: bytes, first: int, rows: list[memoryview]) -> None:
        waiting = self._matrix_waiters.pop((peer.id, key, first), None)
        if waiting is None:
            return
        fut, request = waiting
        st = self._state.get(peer.id)
        if st is not None:
            st.matrix_answers.append((request, self._clock()))
        if not fut.done():
            fut.set_result(rows)

    def ask_matrix(self, peer: Peer, key: bytes, first: int, count: int) -> asyncio.Future | None:
        """Send ``getmatrix`` to one peer; a future for its reply's rows (None if the peer goes),
        or None when the same request to that peer is already pending. ``forget_matrix`` once
        done with it."""
        waiter = (peer.id, key, first)
        st = self._state.get(peer.id)
        if waiter in self._matrix_waiters or st is None:
            return None
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        st.matrix_asks += 1
        self._matrix_waiters[waiter] = (fut, st.matrix_asks)
        peer.send("getmatrix", key, first, count)
        return fut

    def forget_matrix(self, peer: Peer, key: bytes, first: int) -> None:
        self._matrix_waiters.pop((peer.id, key, first), None)

    async def fetch_lines(self, peer: Peer, key: bytes, count: int, width: int, window: int = 4,
                          timeout: float = 30.0) -> list[memoryview] | None:
        """Lines 0…count−1 (``width`` bytes each) under ``key`` from one peer, ``window`` requests
        of at most 4 MiB in flight; None if the peer does not serve them all, or leaves a request
        unanswered while answering none asked before it for ``timeout`` (a slow peer working
        through the requests of this and other fetches at its ``matrix_rate`` is waited for; one
        that withholds a reply while answering later requests is not). A reply that breaks its
        request (more lines than asked, a line of another width) bans the peer. Unchecked
        against the key (§6)."""
        per_request = max(1, wire.MAX_MATRIX_BYTES // width)
        starts = list(range(0, count, per_request))
        asked: dict[int, asyncio.Future] = {}
        lines: list[memoryview] = []
        try:
            for i, first in enumerate(starts):
                for ahead in starts[i:i + window]:
                    if ahead not in asked:
                        fut = self.ask_matrix(peer, key, ahead, min(per_request, count - ahead))
                        if fut is None:
                            return None
                        asked[ahead] = fut
                try:
                    rows = await self._matrix_reply(peer, key, first, asked.pop(first), timeout)
                finally:
                    self.forget_matrix(peer, key, first)
                want = min(per_request, count - first)
                if not rows:
                    return None  # it does not have it (any more), or it went away
                if len(rows) > want or any(len(r) != width for r in rows):
                    peer.misbehave(BAN_SCORE, f"matrix reply for {key.hex()[:16]}… does not fit its request")
                    return None
                if len(rows) < want:
                    return None
                lines.extend(rows)
            return lines
        finally:
            for first in asked:
                self.forget_matrix(peer, key, first)

    async def _matrix_reply(self, peer: Peer, key: bytes, first: int, fut: asyncio.Future,
                            timeout: float) -> list[memoryview] | None:
        """The rows ``fut``, the reply to our request (``key``, ``first``) to ``peer``, resolves to;
        None once the peer has answered no request asked before it for ``timeout`` seconds
        (counted from the wait's start, or from the latest such answer)."""
        began = self._clock()
        while not fut.done():
            waiting = self._matrix_waiters.get((peer.id, key, first))
            if waiting is None:
                return None  # forgotten
            request = waiting[1]
            st = self._state.get(peer.id)
            ahead = [when for asked, when in st.matrix_answers if asked < request] if st is not None else []
            left = max([began, *ahead]) + timeout - self._clock()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(asyncio.shield(fut), left)
            except TimeoutError:
                pass
        return fut.result()
