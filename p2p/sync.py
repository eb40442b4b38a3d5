"""Headers-first block download from several peers (PROTOCOL §7).

* Every peer gets ``getheaders(locator)`` after the handshake, and again when it
  announces a block whose header we lack.  A full reply (2000 headers) is
  followed by another ``getheaders`` from its last header.
* Headers are added with ``chain.add_headers`` (in chunks of 100, yielding to the
  event loop in between; the chain keeps them in memory only and caps them globally).  They must be contiguous and
  connect to a known header; an invalid header bans.  A peer may be at most
  ``header_lead`` accepted headers ahead of the blocks we have for them
  (continuations wait until blocks catch up; unsolicited excess is ignored and
  scored), and a short reply whose claimed work does not beat our tip is not
  stored at all.  When a peer goes, the headers it added that no other peer is a
  source for are forgotten (in chunks, yielding in between).  So headers without
  blocks behind them stay bounded per connected peer.
* Spot checks: after a batch that added headers, one of them is picked at
  random and its block requested from that peer at once; no more headers are
  taken from it until the block passed the chain's checks (its proof is the
  work the headers only claim).  A forged block or a ``notfound`` for it bans.
* Blocks on a header chain with more work than our tip are *wanted*, with the
  peers that showed us those headers as sources.  Each peer has at most
  ``max_in_flight`` block requests; the lowest heights within
  ``window`` of our tip go first, spread over all sources.  A peer that owes
  blocks and delivered none for ``stall_timeout`` is disconnected and its
  requests go to other sources, when another peer is a source of one of them;
  our only source of them is given ``block_timeout`` (as Bitcoin Core waits
  minutes before dropping a peer a download waits on), since dropping it gets
  us them from no one sooner, and its link may be busy with other traffic
  (the matrices of a job).
* Received blocks are batched (all that arrived before the event loop next
  idles) and handed to ``chain.submit_blocks`` in height order, each with its
  sender as source.  One whose parent's data has not arrived waits in the
  chain's one bounded pool (``waiting``, not fetched again) and is judged when
  it leaves; that verdict comes back as a ``released`` event naming the sender.
  An invalid block bans its sender, whenever it is judged.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from consensus.block import ZERO32, Header, ReceivedBlock
from consensus.reasons import Reason

from . import wire
from .interfaces import ACCEPTED, DUPLICATE, FUTURE, INVALID, ORPHAN, ChainView, Entry, Rejected, Released, Result
from .peer import BAN_SCORE, Peer

log = logging.getLogger(__name__)
INHERITED = (Reason.BAD_PREVBLK, Reason.DUPLICATE_INVALID)  # invalid because an ancestor is marked so
INHERITED_SCORE = 10  # an ancestor may have been invalidated by hand: no instant ban


def _invalid_score(reason: str) -> int:
    """Ban for a block or header that breaks a rule itself; score one built on a failed block."""
    return INHERITED_SCORE if reason in INHERITED else BAN_SCORE


@dataclass(frozen=True)
class SyncLimits:
    max_in_flight: int = 16  # block requests per peer
    window: int = 1024  # blocks beyond our tip that may be requested
    header_lead: int = 4 * wire.MAX_HEADERS  # accepted headers per peer without their blocks yet
    stall_timeout: float = 15.0  # a block request unanswered for this long disconnects, if another peer has it
    block_timeout: float = 120.0  # … and, if no other peer has it, for this long
    headers_timeout: float = 60.0  # a getheaders unanswered for this long disconnects
    unconnecting_limit: int = 10  # unconnecting headers replies per score increment
    headers_chunk: int = 100  # headers added per event-loop turn
    forget_chunk: int = 250  # a departed peer's headers forgotten per event-loop turn
    stored_senders: int = 4096  # senders remembered for blocks stored but not yet connected
    submit_batch: int = 256


@dataclass
class PeerSync:
    """What the download logic knows about one peer."""

    peer: Peer
    best: bytes | None = None  # best header the peer has shown us
    best_height: int = -1
    synced_blocks: int = -1
    in_flight: dict[bytes, float] = field(default_factory=dict)  # block hash → requested at
    progress_at: float = 0.0  # last block received, or first request after an idle spell
    added: deque[bytes] = field(default_factory=deque)  # headers it made us accept, blocks pending
    headers_sent_at: float | None = None  # an outstanding getheaders
    headers_again: bool = False  # ask once more when the outstanding reply arrives
    resume_from: bytes | None = None  # full batch seen, continuation waits for the header lead
    asked_from: bytes | None = None  # the first locator entry of the outstanding getheaders
    unconnecting: int = 0
    spot_check: bytes | None = None  # a block of its last headers batch, asked for to verify the work
    refetch: bool = False  # a headers reply was dropped during the spot check: ask again after it


class Sync:
    """Headers-first download; ``peers()`` yields the peers that completed the handshake."""

    def __init__(self, chain: ChainView, limits: SyncLimits = SyncLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.chain = chain
        self.limits = limits
        self._clock = clock
        self._peers: dict[int, PeerSync] = {}
        self._wanted: dict[bytes, tuple[int, set[int]]] = {}  # hash → (height, source peer ids)
        self._queue: list[tuple[int, bytes]] = []  # wanted, not in flight (lazy heap)
        self._in_flight: dict[bytes, int] = {}  # hash → peer id
        self._received: list[tuple[ReceivedBlock, Peer]] = []
        self._flushing: asyncio.Task | None = None  # submits what arrived, batch after batch
        self._checking: dict[bytes, int] = {}  # spot-check block → peer id
        self._stored_from: OrderedDict[bytes, int] = OrderedDict()  # stored block → its sender (newest last)
        self._random = random.Random()
        self._forgetting: set[asyncio.Task] = set()

    # --- peers -----------------------------------------------------------------------
    def add_peer(self, peer: Peer) -> None:
        self._peers[peer.id] = PeerSync(peer)
        self.request_headers(peer)

    def remove_peer(self, peer: Peer) -> None:
        st = self._peers.pop(peer.id, None)
        if st is None:
            return
        if st.spot_check is not None:
            self._checking.pop(st.spot_check, None)
        orphaned = False
        for h in st.in_flight:
            if self._in_flight.get(h) == peer.id:
                del self._in_flight[h]
                if h in self._wanted:
                    heapq.heappush(self._queue, (self._wanted[h][0], h))
        for h, (height, sources) in list(self._wanted.items()):
            sources.discard(peer.id)
            if not sources:
                del self._wanted[h]
                orphaned = True
        # headers it made us accept that no other peer is a source for: forget them, so
        # headers without blocks are bounded by the connected peers (and the chain's cap)
        self._forget(list(st.added))
        if orphaned:  # ask the others for the headers again, to find new sources
            for other in self._peers.values():
                self.request_headers(other.peer)
        self.schedule()

    def _forget(self, added: list[bytes]) -> None:
        """Forget a departed peer's headers, newest (children) first, in chunks between which
        the event loop serves others; at once when no loop runs."""
        added.reverse()
        try:
            task = asyncio.get_running_loop().create_task(self._forget_chunks(added))
        except RuntimeError:
            self.chain.forget_headers([h for h in added if h not in self._wanted], keep=self._in_flight)
            return
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)

    async def _forget_chunks(self, hashes: list[bytes]) -> None:
        step = self.limits.forget_chunk
        for i in range(0, len(hashes), step):
            if i:
                await asyncio.sleep(0)
            chunk = [h for h in hashes[i:i + step] if h not in self._wanted]  # wanted: another peer has it
            self.chain.forget_headers(chunk, keep=self._in_flight)

    def state(self, peer: Peer) -> PeerSync | None:
        return self._peers.get(peer.id)

    def info(self, peer: Peer) -> dict:
        st = self._peers.get(peer.id)
        if st is None:
            return {"synced_headers": -1, "synced_blocks": -1, "inflight": 0}
        best = self.chain.entry(st.best) if st.best else None
        if best is not None and best.have_data:
            st.synced_blocks = max(st.synced_blocks, best.height)
        return {"synced_headers": st.best_height, "synced_blocks": st.synced_blocks,
                "inflight": len(st.in_flight)}

    # --- headers ---------------------------------------------------------------------
    def request_headers(self, peer: Peer, start: bytes | None = None) -> None:
        """Send ``getheaders`` (from ``start`` if given, else from our best chain), one at a time."""
        st = self._peers.get(peer.id)
        if st is None:
            return
        if st.headers_sent_at is not None:
            st.headers_again = True
            return
        locator = self.chain.locator()
        if start is not None:
            locator = [start, *locator[:wire.MAX_LOCATOR - 1]]
        st.headers_sent_at = self._clock()
        st.asked_from = locator[0] if locator else None
        peer.send("getheaders", locator, ZERO32)

    def peer_has(self, peer: Peer, block_hash: bytes) -> None:
        """The peer showed it has ``block_hash`` (sent or asked for the block, or leads its locator with it)."""
        st = self._peers.get(peer.id)
        entry = self.chain.entry(block_hash)
        if st is not None and entry is not None:
            self._note_entry(st, block_hash, entry)

    def on_getheaders(self, peer: Peer, locator: list[bytes], stop: bytes) -> None:
        if locator:
            self.peer_has(peer, locator[0])
        entries = self.chain.headers_after(locator, stop, wire.MAX_HEADERS)
        peer.send_payload(wire.headers_payload([e.raw for e in entries if e.raw is not None]))

    def refuse_headers(self, peer: Peer) -> bool:
        """True if headers from this peer are not taken now — its last batch's work is not
        verified yet — and the reply is settled: a solicited one is asked for again once the
        spot check passed, an unsolicited one scores.  Called before the message is decoded."""
        st = self._peers.get(peer.id)
        if st is None or st.spot_check is None:
            return False
        if st.headers_sent_at is not None:
            st.headers_sent_at = None
            st.refetch = True
        else:
            peer.misbehave(20, "unsolicited headers before its last batch was checked")
        return True

    async def on_headers(self, peer: Peer, headers: list[Header]) -> None:
        st = self._peers.get(peer.id)
        if st is None or self.refuse_headers(peer):
            return
        solicited = st.headers_sent_at is not None
        st.headers_sent_at = None
        await self._process_headers(peer, st, headers, solicited)
        if self._peers.get(peer.id) is not st:
            return
        if st.headers_sent_at is None and st.headers_again and not peer.closed:
            st.headers_again = False
            self.request_headers(peer)
        self.schedule()

    async def _process_headers(self, peer: Peer, st: PeerSync, headers: list[Header], solicited: bool) -> None:
        """A ``headers`` reply (§7): check that it connects, that it may beat our tip and fits
        the peer's lead, add it, then spot-check one new header's block, or want the blocks."""
        if not headers:
            self._note_locator_tip(peer, st, solicited)
            return
        parent = self._connecting_parent(peer, st, headers)
        if parent is None:
            return
        peer.known.add(headers[-1].hash)  # it knows the rest too; only tips are ever announced
        full = len(headers) == wire.MAX_HEADERS
        if not full and parent.chain_work + self._claimed_work(headers) <= self.chain.tip.chain_work:
            self._note_best(st, headers[-1])  # nothing here can beat our tip: store none of it
            return
        if not self._within_lead(peer, st, headers, solicited):
            return
        results = await self._add_headers(peer, headers)
        if results is None:  # the peer went meanwhile
            return
        last, fresh = self._note_added(peer, st, headers, results)
        if last is None:
            return
        self._note_best(st, last)
        if fresh:  # its blocks are wanted once the check passed (a forged batch never is)
            self._spot_check(st, self._random.choice(fresh))
        else:
            self._want_best(st)
        if full and last is headers[-1]:
            st.resume_from = last.hash
            self._resume_headers(st)

    def _note_locator_tip(self, peer: Peer, st: PeerSync, solicited: bool) -> None:
        """Nothing after our locator: the peer's tip is one of its entries. Its tip is the
        first one when it was at least that high on connecting (getpeerinfo's synced_* then
        show our common tip instead of -1)."""
        entry = self.chain.entry(st.asked_from) if solicited and st.asked_from else None
        if entry is not None and peer.version is not None and peer.version.best_height >= entry.height:
            self._note_entry(st, st.asked_from, entry)

    def _connecting_parent(self, peer: Peer, st: PeerSync, headers: list[Header]) -> Entry | None:
        """The known parent of a continuous batch; None (scored, or headers asked for again)
        if the batch is broken or does not connect."""
        for prev, h in itertools.pairwise(headers):
            if h.prev_hash != prev.hash:
                peer.misbehave(BAN_SCORE, "non-continuous headers")
                return None
        parent = self.chain.entry(headers[0].prev_hash)
        if parent is None:
            st.unconnecting += 1
            if st.unconnecting % self.limits.unconnecting_limit == 0:
                peer.misbehave(20, "too many unconnecting headers")
            self.request_headers(peer)
        return parent

    @staticmethod
    def _claimed_work(headers: list[Header]) -> int:
        """The work the headers claim; a batch's headers mostly share a target: one division each."""
        by_target: dict[int, list] = {}
        for h in headers:
            by_target.setdefault(h.target, [h, 0])[1] += 1
        return sum(h.block_work * n for h, n in by_target.values())

    def _within_lead(self, peer: Peer, st: PeerSync, headers: list[Header], solicited: bool) -> bool:
        """Whether the batch's new headers fit the peer's header lead (excess: scored if unasked)."""
        entry = self.chain.entry
        new = sum(1 for h in headers if entry(h.hash) is None)
        self._prune_added(st)
        if new and len(st.added) + new > self.limits.header_lead:
            peer.misbehave(0 if solicited else 20, "headers beyond the allowed lead")
            return False
        return True

    def _note_added(self, peer: Peer, st: PeerSync, headers: list[Header],
                    results: list) -> tuple[Header | None, list[bytes]]:
        """The last header taken (accepted or known) and the hashes newly accepted, recorded as
        the peer's; an invalid header scores and takes nothing."""
        last: Header | None = None
        fresh: list[bytes] = []
        for h, res in zip(headers, results):
            if res.status == INVALID:
                peer.misbehave(_invalid_score(res.reason), f"invalid header: {res.detail or res.reason}")
                return None, []
            if res.status not in (ACCEPTED, DUPLICATE):  # future (retry later) or orphan (evicted meanwhile)
                break
            if res.status == ACCEPTED:
                st.added.append(h.hash)
                fresh.append(h.hash)
            last = h
        return last, fresh

    async def _add_headers(self, peer: Peer, headers: list[Header]) -> list | None:
        """``chain.add_headers`` in chunks, letting the event loop serve others in between (a
        2000-header batch costs ~150 ms); None if the peer went meanwhile.  A known header marked
        invalid comes back as "duplicate-invalid"; blocks in flight keep their headers if the chain
        evicts."""
        results: list = []
        step = self.limits.headers_chunk
        for i in range(0, len(headers), step):
            if i:
                await asyncio.sleep(0)
                if peer.closed or peer.id not in self._peers:
                    return None
            chunk = headers[i:i + step]
            done = await self.chain.add_headers(chunk, keep=self._in_flight)
            results += done
            if len(done) < len(chunk) or done[-1].status not in (ACCEPTED, DUPLICATE):
                break
        return results

    def _want_best(self, st: PeerSync) -> None:
        entry = self.chain.entry(st.best) if st.best is not None else None
        if entry is not None and entry.chain_work > self.chain.tip.chain_work:
            self._want_chain(st, st.best)

    def _spot_check(self, st: PeerSync, block_hash: bytes) -> None:
        """Fetch one random block of the batch the peer just sent, before taking more headers
        or any other block of it from that peer: headers carry no checkable work, the block's
        proof does (a peer that forged the batch cannot deliver it, and is banned)."""
        st.spot_check = block_hash
        self._checking[block_hash] = st.peer.id
        log.debug("spot check of peer %d: block %s", st.peer.id, block_hash.hex()[:16])
        if block_hash not in self._in_flight:  # else it is on its way already (a fresh tip)
            self._request(st, [block_hash])

    def _spot_checked(self, block_hash: bytes, passed: bool) -> None:
        peer_id = self._checking.pop(block_hash, None)
        st = self._peers.get(peer_id) if peer_id is not None else None
        if st is None or st.spot_check != block_hash:
            return
        log.debug("spot check of peer %d %s", st.peer.id, "passed" if passed else "failed")
        st.spot_check = None
        if passed:
            self._want_best(st)
            self._resume_headers(st)
            if st.refetch:
                st.refetch = False
                self.request_headers(st.peer)

    def _note_best(self, st: PeerSync, header: Header) -> None:
        entry = self.chain.entry(header.hash)
        if entry is not None:
            self._note_entry(st, header.hash, entry)

    @staticmethod
    def _note_entry(st: PeerSync, block_hash: bytes, entry: Entry) -> None:
        """The peer has the header (and, if we have its block, presumably the block) ``block_hash``."""
        if entry.height > st.best_height:
            st.best, st.best_height = block_hash, entry.height
        if entry.have_data:
            st.synced_blocks = max(st.synced_blocks, entry.height)

    def _prune_added(self, st: PeerSync) -> None:
        while st.added:
            entry = self.chain.entry(st.added[0])
            if entry is not None and not entry.have_data and not entry.failed:
                break
            st.added.popleft()

    def _resume_headers(self, st: PeerSync) -> None:
        """Continue after a full batch once the peer's header lead has room for another."""
        if st.resume_from is None or st.spot_check is not None:
            return
        self._prune_added(st)
        if len(st.added) + wire.MAX_HEADERS <= self.limits.header_lead:
            start, st.resume_from = st.resume_from, None
            self.request_headers(st.peer, start)

    def _want_chain(self, st: PeerSync, tip_hash: bytes) -> None:
        """Mark every block without data from ``tip_hash`` back as wanted, with this peer as a source."""
        h = tip_hash
        while True:
            entry = self.chain.entry(h)
            if entry is None or entry.failed:
                return
            if entry.have_data:  # stop at our best chain; walk past blocks stored ahead (spot checks)
                if self.chain.hash_at(entry.height) == h:
                    return
                h = entry.prev
                continue
            if self.chain.waiting(h):  # here already, waiting in the chain for its parent
                h = entry.prev
                continue
            wanted = self._wanted.get(h)
            if wanted is None:
                self._wanted[h] = (entry.height, {st.peer.id})
                if h not in self._in_flight:
                    heapq.heappush(self._queue, (entry.height, h))
            elif st.peer.id in wanted[1]:
                return
            else:
                wanted[1].add(st.peer.id)
            h = entry.prev

    # --- announcements ---------------------------------------------------------------
    def on_block_inv(self, peer: Peer, hashes: Iterable[bytes]) -> None:
        """Blocks a peer announced: fetch those on a known header, ask for headers otherwise.

        A single unknown block (a fresh tip) is also requested at once, which saves a
        round trip; its parent is usually what we have.
        """
        st = self._peers.get(peer.id)
        if st is None:
            return
        unknown = []
        for h in hashes:
            peer.known.add(h)
            entry = self.chain.entry(h)
            if entry is None:
                unknown.append(h)
            elif entry.have_data:
                self._note_entry(st, h, entry)
            elif entry.chain_work > self.chain.tip.chain_work:
                self._want_chain(st, h)
        if unknown:
            self.request_headers(peer)
            if len(unknown) == 1 and unknown[0] not in self._in_flight \
                    and len(st.in_flight) < self.limits.max_in_flight:
                self._request(st, [unknown[0]])
        self.schedule()

    # --- downloading -----------------------------------------------------------------
    def schedule(self) -> None:
        """Hand out wanted blocks, lowest height first, to peers with free request slots."""
        if not self._queue:
            return
        limit = self.chain.tip.height + self.limits.window
        for st in sorted(self._peers.values(), key=lambda s: len(s.in_flight)):
            free = self.limits.max_in_flight - len(st.in_flight)
            if free <= 0 or st.peer.closed:
                continue
            batch = self._take_wanted(st.peer.id, free, limit)
            if batch:
                self._request(st, batch)
            if not self._queue:
                break

    def _take_wanted(self, peer_id: int, count: int, limit: int) -> list[bytes]:
        """Up to ``count`` of the lowest wanted blocks at most at height ``limit`` that the peer
        is a source of; the others stay queued, and what is no longer wanted leaves."""
        batch: list[bytes] = []
        skipped: list[tuple[int, bytes]] = []
        while len(batch) < count and self._queue:
            height, h = heapq.heappop(self._queue)
            if not self._still_wanted(h):
                continue
            if height > limit:
                skipped.append((height, h))
                break
            if peer_id in self._wanted[h][1]:
                batch.append(h)
            else:
                skipped.append((height, h))
        for item in skipped:
            heapq.heappush(self._queue, item)
        return batch

    def _still_wanted(self, block_hash: bytes) -> bool:
        """Wanted, not in flight, and its data still missing (else it stops being wanted)."""
        if block_hash not in self._wanted or block_hash in self._in_flight:
            return False
        entry = self.chain.entry(block_hash)
        if entry is None or entry.have_data or self.chain.waiting(block_hash):
            del self._wanted[block_hash]
            return False
        return True

    def _request(self, st: PeerSync, hashes: list[bytes]) -> None:
        now = self._clock()
        if not st.in_flight:
            st.progress_at = now
        for h in hashes:
            self._in_flight[h] = st.peer.id
            st.in_flight[h] = now
        st.peer.send("getdata", [[wire.INV_BLOCK, h] for h in hashes])

    def on_notfound(self, peer: Peer, hashes: Iterable[bytes]) -> None:
        """The peer lacks blocks we asked it for: stop counting it as their source."""
        st = self._peers.get(peer.id)
        if st is None:
            return
        for h in hashes:
            if st.in_flight.pop(h, None) is None:
                continue
            if h == st.spot_check:
                self._spot_checked(h, False)
                peer.misbehave(BAN_SCORE, "could not serve a block of the headers it sent")
            if self._in_flight.get(h) == peer.id:
                del self._in_flight[h]
            wanted = self._wanted.get(h)
            if wanted is not None:
                wanted[1].discard(peer.id)
                heapq.heappush(self._queue, (wanted[0], h))
        self.schedule()

    def check_stalls(self) -> None:
        """Disconnect peers that owe blocks but sent none for too long, or owe a headers reply.

        Peers answer getdata in order, so a slow link that keeps delivering is not stalling.
        """
        now = self._clock()
        for st in list(self._peers.values()):
            if st.spot_check is not None and st.spot_check not in self._in_flight:  # its fetcher went
                self._request(st, [st.spot_check])
            waited = now - st.progress_at if st.in_flight else 0.0
            if waited > self.limits.block_timeout or (waited > self.limits.stall_timeout and self._elsewhere(st)):
                st.peer.close("block download stalled")
            elif st.headers_sent_at is not None and now - st.headers_sent_at > self.limits.headers_timeout:
                st.peer.close("getheaders timed out")

    def _elsewhere(self, st: PeerSync) -> bool:
        """True when another peer is a source of a block ``st``'s peer owes us."""
        sources = (self._wanted[h][1] for h in st.in_flight if h in self._wanted)
        return any(ids - {st.peer.id} for ids in sources)

    # --- receiving blocks --------------------------------------------------------------
    def on_block(self, peer: Peer, received: ReceivedBlock) -> None:
        h = received.hash
        peer.known.add(h)
        st = self._peers.get(peer.id)
        if st is not None:
            st.in_flight.pop(h, None)
            st.progress_at = self._clock()
        owner = self._in_flight.get(h)
        if owner is not None:
            del self._in_flight[h]
            if owner != peer.id and owner in self._peers:
                self._peers[owner].in_flight.pop(h, None)
        self._wanted.pop(h, None)
        self._received.append((received, peer))
        if self._flushing is None:  # all that arrives before the loop next idles goes in one batch
            self._flushing = asyncio.get_running_loop().create_task(self._flush_all())

    async def stop(self) -> None:
        """Stop submitting; blocks not handed to the chain yet are dropped (peers have them)."""
        if self._flushing is not None:
            self._flushing.cancel()
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def _flush_all(self) -> None:
        try:
            while self._received:
                await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Submit the received blocks in height order; the chain validates them (or keeps
        those whose parent's data is missing) while more are requested."""
        items, self._received = self._received, []
        items.sort(key=lambda i: i[0].block.header.height)
        self.schedule()
        for i in range(0, len(items), self.limits.submit_batch):
            batch = items[i:i + self.limits.submit_batch]
            try:
                await self._submit(batch)
            except Exception:  # a chain failure must not end the download loop
                log.exception("submitting %d downloaded blocks failed", len(batch))
        for st in self._peers.values():
            self._resume_headers(st)
        self.schedule()

    async def _submit(self, items: list[tuple[ReceivedBlock, Peer]]) -> None:
        """Spot checks are judged now (no source: they never wait); the others may wait."""
        sources = [None if received.hash in self._checking else peer.id for received, peer in items]
        results = await self.chain.submit_blocks([received for received, _ in items], sources)
        for (received, peer), res in zip(items, results):
            self._judged(peer, received.hash, res)

    def on_released(self, event: Released) -> None:
        """The chain judged a block that waited (``released``): its source is the sender's id."""
        st = self._peers.get(event.source) if isinstance(event.source, int) else None
        if st is not None:
            self._judged(st.peer, event.hash, event)
            self.schedule()

    def on_rejected(self, event: Rejected) -> None:
        """A block the chain stored earlier failed when it was connected later (``rejected``):
        its sender, if remembered and still here, is scored as for any invalid block."""
        sender = self._stored_from.pop(event.hash, None)
        st = self._peers.get(sender) if sender is not None else None
        if st is not None:
            st.peer.misbehave(_invalid_score(event.reason),
                              f"invalid block {event.hash.hex()[:16]}: {event.detail or event.reason}")

    def _remember_sender(self, block_hash: bytes, peer_id: int) -> None:
        """Stored is not yet valid: a block may fail when it connects, later (``on_rejected``)."""
        self._stored_from[block_hash] = peer_id
        self._stored_from.move_to_end(block_hash)
        while len(self._stored_from) > self.limits.stored_senders:
            self._stored_from.popitem(last=False)

    def _judged(self, peer: Peer, block_hash: bytes, res: Result) -> None:
        if block_hash in self._checking:  # an invalid one bans its sender below
            self._spot_checked(block_hash, res.status != INVALID)
        st = self._peers.get(peer.id)
        if res.status == INVALID:
            peer.misbehave(_invalid_score(res.reason), f"invalid block {block_hash.hex()[:16]}: {res.detail or res.reason}")
        elif res.status == ORPHAN:
            self.request_headers(peer)
        elif res.status in (ACCEPTED, DUPLICATE) and st is not None:
            self.peer_has(peer, block_hash)
            if res.status == ACCEPTED:
                peer.last_block_at = time.monotonic()
                self._remember_sender(block_hash, peer.id)
        elif res.status == FUTURE:
            log.info("block %s is too far in the future; held by the chain", block_hash.hex())
