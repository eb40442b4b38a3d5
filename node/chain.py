"""The chain manager: accepts headers and blocks, validates them through ``consensus``
and keeps the store's tip on the valid chain with the most work (PROTOCOL §4, §5).

Every tip move — one block, a group of blocks during sync, or a whole reorg — is
one ``Store.commit``; listeners hear ``connected``/``disconnected`` only after it
returned, then ``rejected`` for each invalid block and ``tip`` once per submission
(``node.events``).  Writes are serialised by a lock; callbacks run inside it, on the
writer's thread.

Reads may run on another thread while a write is under way (``node.chainworker``
runs the writes off the event loop) and take no lock: the best chain is replaced,
never changed in place, once its commit is written, index entries are immutable and
swapped whole, and ``tip_view`` pairs the tip state with its height under a
sequence counter.  ``chain_tips`` walks the whole tree: run it with the writes.

Header-only entries that no stored block descends from ("loose", see
``node.blockindex``) are kept in memory only, at most ``max_header_only`` of
them: headers carry no checkable work, so they must not cost unbounded memory or
disk.  Over the cap, loose leaves are evicted, least chain work first (equal work:
the newest first).  A restart forgets them; headers-first sync asks again.
"""
from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Callable, Collection, Iterable, Sequence

from consensus.block import Block, Header, ReceivedBlock
from consensus.errors import ConsensusError, DecodeError, FutureBlock, InvalidBlock
from consensus.genesis import genesis_block, genesis_state
from consensus.params import MEDIAN_TIME_SPAN, NETWORKS, Network, subsidy
from consensus.reasons import Reason
from consensus.state import (EMPTY_ACCOUNT, Account, Job, apply_block, apply_effects, block_fees,
                             matured_payout)
from consensus.tx import Tx
from consensus.validation import (check_block, check_header_context, check_header_stateless, expected_target,
                                  median_time_past)
from p2p.interfaces import ACCEPTED, DUPLICATE, FUTURE, INVALID, ORPHAN, WAITING, BlockStatus

from .addrindex import block_entries, open_address_index
from .blockindex import FAILED, FAILED_CHILD, FAILED_MASK, HAVE_DATA, VALID, BlockIndex, IndexEntry
from .events import BLOCK_MOVES, BlockRejected, BlockReleased, ChainEvent, Listener, Listeners, TipChanged
from .store import ChainBatch, DatadirCorrupt, StateReader, Store
from .txcheck import Pending, TxChecker
from .waiting import Kind, Source, WaitingBlocks

log = logging.getLogger(__name__)

GROUP_BLOCKS = 256  # blocks per commit when extending the tip by many blocks (sync, reindex)
GROUP_BYTES = 32 * 1024 * 1024
LOOKAHEAD = 64  # blocks whose tx checks run ahead of the one being connected
MAX_HEADERS = 2000  # PROTOCOL §7 headers reply
MAX_HEADER_ONLY = 100_000  # loose header-only entries kept in memory

BlockInput = ReceivedBlock | Block | bytes  # bytes and Blocks are decoded / encoded once, at the door


@dataclass(frozen=True)
class SubmitResult:
    status: BlockStatus
    hash: bytes
    reason: str = ""  # consensus reason token when invalid
    tip_changed: bool = False
    detail: str = ""  # when invalid: the whole error (for a bad tx, its index, id and code)

    @classmethod
    def invalid(cls, block_hash: bytes, error: ConsensusError, status: BlockStatus = INVALID) -> SubmitResult:
        return cls(status, block_hash, error.code, detail=str(error))

    @property
    def ok(self) -> bool:
        return self.status in (ACCEPTED, DUPLICATE, ORPHAN, WAITING)


@dataclass(frozen=True)
class Tip:
    hash: bytes
    height: int
    header: Header
    chain_work: int


class BranchStatus(StrEnum):
    """A branch tip's state in ``getchaintips`` (Bitcoin's labels)."""

    ACTIVE = "active"  # the best chain's tip
    INVALID = "invalid"  # a block on it failed validation
    HEADERS_ONLY = "headers-only"  # some of its blocks' data is missing
    VALID_FORK = "valid-fork"  # fully validated once, not the best chain
    VALID_HEADERS = "valid-headers"  # all data there, not validated yet


class Chain:
    """A network's block tree and best-chain state in ``<datadir>/<network>/``."""

    def __init__(self, datadir: str | os.PathLike[str], network: Network | str, *,
                 now: Callable[[], int] | None = None, reindex: bool = False,
                 waiting_count: int = 256, waiting_bytes: int = 64 * 1024 * 1024,
                 tx_workers: int | None = None, max_header_only: int = MAX_HEADER_ONLY,
                 address_index: bool = False,
                 reindex_progress: Callable[[int, int], None] | None = None) -> None:
        if max_header_only < 1:
            raise ValueError("max_header_only must be positive")
        self.network = NETWORKS[network] if isinstance(network, str) else network
        self.max_header_only = max_header_only
        self.address_index = address_index  # keep node.addrindex entries (docs/storage.md)
        self.now = now or (lambda: int(time.time()))
        self._lock = threading.RLock()
        self._events = Listeners()
        self._waiting = WaitingBlocks(waiting_count, waiting_bytes)  # orphans, future blocks, downloads
        self._checker = TxChecker(self.network, tx_workers)
        self._checks: dict[bytes, Pending] = {}
        self._recent: dict[bytes, Block] = {}  # decoded blocks of the current call
        self._released: list[tuple[SubmitResult, Source]] = []  # blocks that left the pool in this call
        self.store = Store(datadir, self.network.name, repair=reindex)
        try:
            if reindex or self.store.reindexing():
                self.reindex(reindex_progress)
            else:
                self._load()
            open_address_index(self.store, address_index, self.tip.height)
        except BaseException:
            self.close()
            raise

    # --- opening -------------------------------------------------------------------
    def _reset(self) -> None:
        self.index = BlockIndex()
        self._active: list[bytes] = []  # best-chain hashes by height; replaced, not changed, once built
        self._commits = 0  # odd while a commit is being published (tip_view retries)
        self._candidates: set[bytes] = set()
        self._next_seq = 1

    def _write_genesis(self) -> None:
        block = genesis_block(self.network)
        entry = IndexEntry.of(block.header, 0, block.header.block_work, HAVE_DATA | VALID, 0, self._next_seq)
        batch = self._batch()
        batch.put_block(block.hash, block.encode())
        batch.put_entry(entry)
        batch.apply(genesis_state(self.network))
        batch.set_best(0, block.hash)
        batch.set_tip(block.hash)
        self.store.commit(batch)

    def _load(self) -> None:
        self._reset()
        if self.store.tip_hash() is None:
            if next(self.store.entries(), None) is not None:
                raise DatadirCorrupt(f"chain database at {self.store.path} has blocks but no tip; "
                                     f"restart with --reindex")
            self._write_genesis()
        entries = sorted(self.store.entries(), key=lambda e: e.height)
        for entry in entries:
            self.index.put(entry)
            self._next_seq = max(self._next_seq, entry.seq + 1)
        stale = sorted(self.index.loose, key=lambda h: -self.index.entries[h].height)
        if stale:  # header-only entries a datadir from before the cap persisted: drop them
            batch = self._batch()
            for h in stale:  # children first, so each is a leaf when removed
                self.index.remove(h)
                batch.delete_entry(h)
            self.store.commit(batch)
            log.info("dropped %d stored header-only entries without blocks", len(stale))
            entries = [e for e in entries if e.hash in self.index.entries]
        for entry in entries:
            self.index.link(entry.hash)
        self._active = self.store.best_chain()
        tip = self.index.get(self.store.tip_hash() or b"")
        genesis = genesis_block(self.network).hash
        if (tip is None or not self._active or self._active[0] != genesis
                or len(self._active) != tip.height + 1 or self._active[-1] != tip.hash):
            raise DatadirCorrupt(f"chain database at {self.store.path} is corrupt (tip and best-chain "
                                 f"index disagree); restart with --reindex")
        self._rebuild_candidates()
        self._activate(self._batch())

    def reindex(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Rebuild the index and all state from the stored blocks (``--reindex``);
        ``progress(done, total)`` after each group of blocks."""
        with self._lock:
            self.store.start_reindex(self.address_index)
            self._reset()
            self._waiting.clear()
            self._write_genesis()
            self._load()
            order = []
            for block_hash in self.store.block_hashes():
                raw = self.store.block_bytes(block_hash) or b""
                try:
                    height = Block.decode(raw).header.height
                except DecodeError:
                    log.warning("reindex: skipping undecodable stored block %s", block_hash.hex())
                    continue
                if height > 0:
                    order.append((height, block_hash))
            order.sort()
            for i in range(0, len(order), GROUP_BLOCKS):
                chunk = order[i:i + GROUP_BLOCKS]
                self._submit([self.store.block_bytes(h) or b"" for _, h in chunk])
                if progress is not None:
                    progress(i + len(chunk), len(order))
            self.store.finish_reindex()

    # --- submitting ------------------------------------------------------------------
    def submit_block(self, block: BlockInput) -> SubmitResult:
        """Validate and store a block, then move the tip if it leads to more work (§5)."""
        with self._lock:
            return self._submit_and_trim([block])[0]

    def submit_blocks(self, blocks: Iterable[BlockInput],
                      sources: Sequence[Source] | None = None) -> list[SubmitResult]:
        """Several blocks at once (sync): tip moves are committed per group of blocks.

        A block given a source (``sources[i]``, e.g. the peer it came from) is a download:
        if its header is known but its parent's data is not here yet, it waits in the pool
        (``waiting``) until the parent is stored, so blocks connect in order.  Whenever a
        block with a source leaves the pool — released behind its parent, retried, or
        stored out of order because the pool is over its bound — its verdict is published
        as ``released`` naming that source, in whichever call that happens.
        """
        with self._lock:
            return self._submit_and_trim(list(blocks), sources)

    def retry_future(self) -> list[SubmitResult]:
        """Resubmit the blocks held back for a timestamp too far ahead of the clock."""
        with self._lock:
            waiting = self._waiting.pop_future()
            return self._submit_and_trim([block for block, _ in waiting], [source for _, source in waiting],
                                         released=True)

    def add_header(self, header: Header) -> SubmitResult:
        """Add a header to the tree (headers-first sync, §7); the block can follow later."""
        return self.add_headers([header])[0]

    def add_headers(self, headers: Sequence[Header], keep: Collection[bytes] = ()) -> list[SubmitResult]:
        """Add a batch of headers (a §7 ``headers`` reply, parents first) to the tree.

        One result per header, in order, up to and including the first that is
        neither accepted nor a duplicate (invalid, orphan or future): the headers
        after it would only depend on it.  New entries are header-only, so nothing
        is written to disk; blocks that waited in the orphan pool for one of these
        headers are submitted.  Then loose entries over ``max_header_only`` are
        evicted, never the entries in ``keep`` (blocks in flight) or their
        ancestors.
        """
        with self._lock:
            batch = self._batch()
            results, accepted = [], []
            for header in headers:
                res = self._add_header(batch, header)
                results.append(res)
                if res.status == ACCEPTED:
                    accepted.append(res.hash)
                elif res.status != DUPLICATE:
                    break
            if batch:  # header-only entries are not persisted: empty unless that changes
                self.store.commit(batch)
            waiting = [item for h in accepted for item in self._waiting.pop_children(h)]
            if waiting:
                self._submit([block for block, _ in waiting], [source for _, source in waiting], released=True)
            self._trim_headers(keep)
            return results

    def forget_headers(self, hashes: Iterable[bytes], keep: Collection[bytes] = ()) -> int:
        """Evict the given loose header-only entries (a departed peer's); returns how many went.

        Children go before parents; an entry that still has a child not given here,
        or that is in ``keep`` or waits in the pool as a download, stays (and so do its
        ancestors).
        """
        with self._lock:
            entries, loose = self.index.entries, self.index.loose
            todo = sorted((h for h in set(hashes) if h in loose), key=lambda h: -entries[h].height)
            keep = {*keep, *self._waiting.downloads()}
            gone = 0
            for h in todo:
                if not self.index.has_children(h) and h not in keep:
                    self.index.remove(h)
                    gone += 1
            return gone

    def try_forget_headers(self, hashes: Iterable[bytes], keep: Collection[bytes] = ()) -> int | None:
        """``forget_headers`` at once, unless a write holds the chain on another thread: None."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self.forget_headers(hashes, keep)
        finally:
            self._lock.release()

    def _add_header(self, batch: ChainBatch, header: Header) -> SubmitResult:
        h = header.hash
        known = self.index.get(h)
        if known is not None:
            return SubmitResult(INVALID if known.failed else DUPLICATE, h,
                                Reason.DUPLICATE_INVALID if known.failed else "")
        try:
            check_header_stateless(header, self.network)
        except InvalidBlock as exc:
            return SubmitResult.invalid(h, exc)
        parent = self.index.get(header.prev_hash)
        if parent is None:
            return SubmitResult(ORPHAN, h)
        result = self._accept_header(batch, header, parent)
        return result if isinstance(result, SubmitResult) else SubmitResult(ACCEPTED, h)

    def _trim_headers(self, keep: Collection[bytes] = ()) -> None:
        """Over the cap, evict loose leaves down to 90 % of it: least work first, newest first
        (never those in ``keep`` or of downloads waiting in the pool)."""
        loose = self.index.loose
        if len(loose) <= self.max_header_only:
            return
        keep = {*keep, *self._waiting.downloads()}
        target = self.max_header_only - self.max_header_only // 10
        entries, leaf = self.index.entries, lambda h: not self.index.has_children(h) and h not in keep
        arrival = {h: n for n, h in enumerate(loose)}
        heap = [(entries[h].chain_work, -n, h) for h, n in arrival.items() if leaf(h)]
        heapq.heapify(heap)
        before = len(loose)
        while len(loose) > target and heap:
            h = heapq.heappop(heap)[2]
            parent = self.index.remove(h).prev
            if parent in loose and leaf(parent):
                heapq.heappush(heap, (entries[parent].chain_work, -arrival[parent], parent))
        log.info("evicted %d header-only entries without blocks (cap %d)", before - len(loose),
                 self.max_header_only)

    def _submit_and_trim(self, items: Sequence[BlockInput], sources: Sequence[Source] | None = None,
                         released: bool = False) -> list[SubmitResult]:
        results = self._submit(items, sources, released)
        self._trim_headers()  # a block whose header breaks a context rule leaves a failed header-only entry
        return results

    def _submit(self, items: Sequence[BlockInput], sources: Sequence[Source] | None = None,
                released: bool = False) -> list[SubmitResult]:
        """Accept ``items`` (each with its source), then move the tip; ``released``: the items
        left the pool (their verdicts are published as ``released`` too)."""
        tip_before = self._active[-1]
        batch = self._batch()
        sources = [None] * len(items) if sources is None else sources
        try:
            results = [self._accept(batch, item, source) for item, source in zip(items, sources)]
            failures = self._activate(batch)
            inner = self._released
        finally:
            self._checks.clear()
            self._recent.clear()
            self._released = []
        changed = self._active[-1] != tip_before
        out = [self._verdict(res, failures, changed) for res in results]
        inner = [(self._verdict(res, failures, changed), source) for res, source in inner]
        rejected = {res.hash: res for res in [*out, *(res for res, _ in inner)] if res.status == INVALID}
        for block_hash, error in failures.items():  # a block stored earlier that failed to connect now
            rejected.setdefault(block_hash, SubmitResult.invalid(block_hash, error))
        for res in rejected.values():
            self._events.publish(BlockRejected(res.hash, res.reason, res.detail))
        for res, source in [*zip(out, sources), *inner] if released else inner:
            if source is not None and res.status not in (ORPHAN, FUTURE, WAITING):  # waits again: told later
                self._events.publish(BlockReleased(res.hash, res.status, res.reason, source, res.detail))
        if changed:
            tip = self._tip_entry()
            self._events.publish(TipChanged(tip.hash, tip.height, self.header_tip_height()))
        return out

    def _verdict(self, res: SubmitResult, failures: dict[bytes, ConsensusError], changed: bool) -> SubmitResult:
        """A block's result once the tip moved: a stored block found invalid on connecting is so
        (a descendant of one, ``bad-prevblk``)."""
        entry = self.index.get(res.hash)
        if res.status == ACCEPTED and entry is not None and entry.failed:
            error = failures.get(res.hash)
            res = (SubmitResult.invalid(res.hash, error) if error is not None
                   else replace(res, status=INVALID, reason=Reason.BAD_PREVBLK))
        return replace(res, tip_changed=changed)

    def _accept(self, batch: ChainBatch, item: BlockInput, source: Source = None) -> SubmitResult:
        """Check a block on its own and against its parent, store it (or let it wait), and pull
        in the blocks that waited for it."""
        if isinstance(item, ReceivedBlock):
            received = item
        elif isinstance(item, Block):
            received = ReceivedBlock.of(item)
        else:
            try:
                received = ReceivedBlock.decode(item)
            except DecodeError as exc:
                return SubmitResult.invalid(b"", exc)
        result = self._accept_one(batch, received, source, wait=source is not None)
        if result.status == ACCEPTED:
            self._release_children(batch, received.hash)
        return result

    def _release_children(self, batch: ChainBatch, parent_hash: bytes) -> None:
        """Accept the blocks that waited for ``parent_hash``'s data, and theirs in turn."""
        queue = [parent_hash]
        while queue:
            for child, source in self._waiting.pop_children(queue.pop()):
                res = self._accept_one(batch, child, source)
                self._released.append((res, source))
                if res.status == ACCEPTED:
                    queue.append(child.hash)

    def _store_evicted(self, batch: ChainBatch, evicted: Sequence[tuple[ReceivedBlock, Source]]) -> None:
        """Downloads the pool let go over its bound: stored now, out of order (never dropped:
        they were asked for, and sync no longer counts them as wanted)."""
        for block, source in evicted:
            res = self._accept_one(batch, block, source)
            self._released.append((res, source))
            if res.status == ACCEPTED:
                self._release_children(batch, block.hash)

    def _accept_one(self, batch: ChainBatch, received: ReceivedBlock, source: Source = None,
                    wait: bool = False) -> SubmitResult:
        """``wait``: a download whose parent's data is missing waits in the pool."""
        block, raw = received
        h = block.hash
        entry = self.index.get(h)
        if entry is not None and entry.failed:
            return SubmitResult(INVALID, h, Reason.DUPLICATE_INVALID)
        waiting = self._waiting.kind(h)
        if (entry is not None and entry.have_data) or waiting is Kind.ORPHAN:
            return SubmitResult(DUPLICATE, h)
        if waiting is Kind.DOWNLOAD:
            if wait:
                return SubmitResult(WAITING, h)
            self._waiting.take(h)  # to be judged now
        try:
            check_block(block, self.network, len(raw))
        except InvalidBlock as exc:  # not marked: the header may be fine and this copy mutated
            return SubmitResult.invalid(h, exc)
        if entry is None:
            parent = self.index.get(block.header.prev_hash)
            if parent is None:
                self._store_evicted(batch, self._waiting.add_orphan(received, source))
                return SubmitResult(ORPHAN, h)
            accepted = self._accept_header(batch, block.header, parent)
            if isinstance(accepted, SubmitResult):
                if accepted.status == FUTURE:
                    self._store_evicted(batch, self._waiting.add_future(received, source))
                return accepted
            entry = accepted
        elif wait and (parent := self.index.get(entry.prev)) is not None and not parent.have_data:
            evicted = self._waiting.add_download(received, source)
            held = self._waiting.kind(h) is Kind.DOWNLOAD  # else too big to wait: stored now
            self._store_evicted(batch, [item for item in evicted if item[0].hash != h])
            if held:  # (storing the evicted may have released it already: that is its verdict)
                return SubmitResult(WAITING, h)
        entry = replace(entry, status=entry.status | HAVE_DATA, fees=block_fees(block), seq=self._next_seq,
                        raw=block.header.encode())
        self._next_seq += 1
        self._store_entry(batch, entry)  # and the header-only ancestors it pins
        batch.put_block(h, raw)
        self._recent[h] = block
        self._candidates.update(self.index.link(h))
        if h in self.index.linked and entry.chain_work > self._tip_entry().chain_work:
            self._checks[h] = self._checker.start(block)  # likely to connect: verify signatures now
        return SubmitResult(ACCEPTED, h)

    def _accept_header(self, batch: ChainBatch, header: Header, parent: IndexEntry) -> IndexEntry | SubmitResult:
        """Context rules against the parent (§5); invalid headers are remembered as failed."""
        entry = IndexEntry.of(header, parent.height + 1, parent.chain_work + header.block_work, parent=parent,
                              keep_header=False)
        h = header.hash
        if parent.failed:
            self._store_entry(batch, entry.with_status(FAILED_CHILD))
            return SubmitResult(INVALID, h, Reason.BAD_PREVBLK)
        try:
            check_header_context(header, parent, self.index.timestamps(parent, MEDIAN_TIME_SPAN),
                                 self.now(), self.network)
        except FutureBlock as exc:
            return SubmitResult.invalid(h, exc, FUTURE)
        except InvalidBlock as exc:
            self._store_entry(batch, entry.with_status(FAILED))
            return SubmitResult.invalid(h, exc)
        self._store_entry(batch, entry)
        return entry

    def _batch(self) -> ChainBatch:
        return self.store.batch(self.index.get)

    def _store_entry(self, batch: ChainBatch, entry: IndexEntry) -> None:
        """Put an entry in the index; persist it unless it is loose (header-only, no block after it)."""
        for pinned in self.index.put(entry):
            batch.put_entry(pinned)
        if entry.hash not in self.index.loose:
            batch.put_entry(entry)

    # --- moving the tip --------------------------------------------------------------
    def _tip_entry(self) -> IndexEntry:
        return self.index.entries[self._active[-1]]

    def _on_active(self, entry: IndexEntry, active: list[bytes] | None = None) -> bool:
        active = self._active if active is None else active
        return entry.height < len(active) and active[entry.height] == entry.hash

    def _rebuild_candidates(self) -> None:
        self._candidates = {h for h in self.index.linked if not self.index.entries[h].failed}

    def _best_candidate(self) -> IndexEntry:
        tip = self._tip_entry()
        best = None if tip.failed else tip
        for h in list(self._candidates):
            entry = self.index.entries[h]
            if entry.failed:
                self._candidates.discard(h)
            elif best is None or entry.rank > best.rank:
                best = entry
        if best is None:  # everything above genesis invalidated
            return self.index.entries[self._active[0]]
        return best

    def _activate(self, batch: ChainBatch) -> dict[bytes, ConsensusError]:
        """Reorganise to the best valid candidate (§5); on a failing block mark it, fall back
        and retry.  Returns the blocks found invalid, with their reasons."""
        failures: dict[bytes, ConsensusError] = {}
        while (best := self._best_candidate()).hash != self._tip_entry().hash:
            fork, path = self._path_to(best)
            failed = self._reorganise(batch, fork, path)
            batch = self._batch()
            if failed is None:
                self._drop_weaker_candidates()
            else:
                failures[failed[0].hash] = failed[1]
                self._rebuild_candidates()
        if batch:
            self.store.commit(batch)
        return failures

    def _path_to(self, best: IndexEntry) -> tuple[IndexEntry, list[IndexEntry]]:
        """The last best-chain ancestor of ``best``, and the entries after it up to ``best``."""
        path = []
        fork = best
        while not self._on_active(fork):
            path.append(fork)
            fork = self.index.entries[fork.prev]
        path.reverse()
        return fork, path

    def _reorganise(self, batch: ChainBatch, fork: IndexEntry, path: list[IndexEntry]) -> tuple[IndexEntry, ConsensusError] | None:
        """Disconnect the best chain down to ``fork``, then connect ``path``, and commit.

        A reorg commits whole or not at all; extending the tip commits per group of blocks.
        On an invalid block, what is kept (the groups before it, or nothing of a reorg) is
        committed with the block marked failed; returns it and its error."""
        disconnect = [self.index.entries[h] for h in reversed(self._active[fork.height + 1:])]
        saved = batch.copy() if disconnect else None
        events: list[ChainEvent] = []
        for entry in disconnect:
            self._disconnect(batch, entry, events)
        batch, events, validated, failed = self._connect_path(batch, events, path, grouped=saved is None)
        if failed is None:
            self._commit(batch, events)
            return None
        entry, error = failed
        if saved is not None:  # nothing of the attempt is written, so forget its VALID marks too
            batch, events = saved, []
            for h in validated:
                self.index.put(self.index.entries[h].with_status(clear_bits=VALID))
        self._mark_failed(batch, entry)
        self._commit(batch, events)
        return entry, error

    def _connect_path(self, batch: ChainBatch, events: list[ChainEvent], path: list[IndexEntry], grouped: bool
                      ) -> tuple[ChainBatch, list[ChainEvent], list[bytes], tuple[IndexEntry, ConsensusError] | None]:
        """Connect ``path`` in order until a block fails, its tx checks started ``LOOKAHEAD``
        blocks ahead; ``grouped``: commit every ``GROUP_BLOCKS`` blocks or ``GROUP_BYTES``.
        Returns the batch and events not committed yet, the blocks marked VALID just now,
        and the failure."""
        validated: list[bytes] = []
        dispatched = 0
        for i, entry in enumerate(path):
            while dispatched < min(len(path), i + LOOKAHEAD):
                ahead = path[dispatched].hash
                if ahead not in self._checks:
                    self._checks[ahead] = self._checker.start(self._get_block(ahead))
                dispatched += 1
            try:
                if self._connect(batch, entry, events):
                    validated.append(entry.hash)
            except ConsensusError as exc:
                return batch, events, validated, (entry, exc)
            if grouped and ((i + 1) % GROUP_BLOCKS == 0 or batch.size > GROUP_BYTES):
                self._commit(batch, events)
                batch, events = self._batch(), []
        return batch, events, validated, None

    def _drop_weaker_candidates(self) -> None:
        """After a successful move: candidates ranked below the new tip cannot win."""
        tip_rank = self._tip_entry().rank
        self._candidates = {h for h in self._candidates if self.index.entries[h].rank >= tip_rank}

    def _get_block(self, block_hash: bytes) -> Block:
        block = self._recent.get(block_hash)
        if block is None:
            raw = self.store.block_bytes(block_hash)
            try:
                block = Block.decode(raw or b"")
            except DecodeError:
                raise DatadirCorrupt(f"stored block {block_hash.hex()} in {self.store.path} is missing or "
                                     f"unreadable; restart with --reindex") from None
            self._recent[block_hash] = block
        return block

    def _connect(self, batch: ChainBatch, entry: IndexEntry, events: list[ChainEvent]) -> bool:
        """Connect a block on top of the batch's tip; True if it was marked VALID just now."""
        block = self._get_block(entry.hash)
        pending = self._checks.pop(entry.hash, None) or self._checker.start(block)
        self._checker.wait(pending)
        diff, undo = apply_block(batch, block, self.network, stateless_checked=True)
        batch.apply(diff)
        batch.put_undo(entry.hash, undo)
        batch.set_best(entry.height, entry.hash)
        batch.index_txs(block, True)
        if self.address_index:
            batch.index_addresses(block_entries(block), entry.height, True)
        batch.set_tip(entry.hash)
        events.append(ChainEvent("connected", block, entry.height))
        if entry.valid:
            return False
        self._store_entry(batch, entry.with_status(VALID))
        return True

    def _disconnect(self, batch: ChainBatch, entry: IndexEntry, events: list[ChainEvent]) -> None:
        block = self._get_block(entry.hash)
        batch.apply(batch.undo(entry.hash))
        batch.delete_undo(entry.hash)
        batch.set_best(entry.height, None)
        batch.index_txs(block, False)
        if self.address_index:
            batch.index_addresses(block_entries(block), entry.height, False)
        batch.set_tip(entry.prev)
        self._candidates.add(entry.hash)
        events.append(ChainEvent("disconnected", block, entry.height))

    def _mark_failed(self, batch: ChainBatch, entry: IndexEntry) -> None:
        """Mark a block invalid and every descendant invalid-child."""
        self._store_entry(batch, self.index.entries[entry.hash].with_status(FAILED))
        for child in list(self.index.descendants(entry.hash)):
            self._store_entry(batch, child.with_status(FAILED_CHILD))
        self._candidates.discard(entry.hash)

    def _commit(self, batch: ChainBatch, events: list[ChainEvent]) -> None:
        """Write, then update the in-memory best chain, then tell listeners (in order)."""
        active = self._active.copy() if events else self._active
        for event in events:
            if event.kind == "connected":
                active.append(event.block.hash)
            else:
                active.pop()
        self._commits += 1
        try:
            self.store.commit(batch)
            self._active = active
        finally:
            self._commits += 1
        for event in events:
            self._events.publish(event)

    # --- invalidate / reconsider ---------------------------------------------------
    def invalidate_block(self, block_hash: bytes) -> None:
        """Treat a block and its descendants as invalid and move off them (like Bitcoin Core)."""
        with self._lock:
            entry = self.index.get(block_hash)
            if entry is None:
                raise KeyError(f"unknown block {block_hash.hex()}")
            if entry.height == 0:
                raise ValueError("genesis cannot be invalidated")
            batch = self._batch()
            self._mark_failed(batch, entry)
            self._rebuild_candidates()
            self._activate(batch)

    def reconsider_block(self, block_hash: bytes) -> None:
        """Clear invalid marks on a block, its ancestors and descendants; revalidate as needed."""
        with self._lock:
            entry = self.index.get(block_hash)
            if entry is None:
                raise KeyError(f"unknown block {block_hash.hex()}")
            batch = self._batch()
            for e in [entry, *self.index.descendants(block_hash), *self.index.ancestors(entry)]:
                if e.failed:
                    self._store_entry(batch, e.with_status(clear_bits=FAILED_MASK))
            self._rebuild_candidates()
            self._activate(batch)

    # --- queries ---------------------------------------------------------------------
    @property
    def tip(self) -> Tip:
        e = self._tip_entry()
        return Tip(e.hash, e.height, e.header, e.chain_work)

    def header(self, block_hash: bytes) -> Header | None:
        """The header of a block whose data arrived (header-only entries keep a few fields only)."""
        entry = self.index.get(block_hash)
        return None if entry is None else entry.header

    def entry(self, block_hash: bytes) -> IndexEntry | None:
        return self.index.get(block_hash)

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.store.block_bytes(block_hash)

    def block(self, block_hash: bytes) -> Block | None:
        raw = self.store.block_bytes(block_hash)
        return None if raw is None else Block.decode(raw)

    def hash_at(self, height: int) -> bytes | None:
        active = self._active
        return active[height] if 0 <= height < len(active) else None

    def account(self, address: bytes) -> Account:
        return self.store.reader().account(address) or EMPTY_ACCOUNT

    def job(self, job_id: bytes) -> Job | None:
        return self.store.reader().job(job_id)

    def tx_location(self, txid: bytes) -> tuple[bytes, int] | None:
        """(block hash, position in the block) of a tx on the best chain."""
        return self.store.tx_location(txid)

    def tip_state_view(self) -> StateReader:
        """A StateView of the tip on a LevelDB snapshot: it does not move when the tip does."""
        return self.tip_view()[0]

    def tip_view(self) -> tuple[StateReader, int]:
        """The tip's state (a snapshot) and the height of its child, taken together."""
        while True:
            before = self._commits
            if before % 2 == 0:
                view, height = self.store.reader(snapshot=True), len(self._active)
                if self._commits == before:
                    return view, height
            time.sleep(0)

    def median_time_past(self) -> int:
        return median_time_past(self.index.timestamps(self._tip_entry(), MEDIAN_TIME_SPAN))

    def next_target(self) -> int:
        """The target the tip's child must carry (§5)."""
        tip = self._tip_entry()
        return expected_target(self.network, tip, self.index.timestamps(tip, 2))

    def state_root_after(self, txs: Sequence[Tx]) -> bytes:
        """The state root of a child of the tip holding ``txs`` (for block templates, §3a)."""
        view, height = self.tip_view()
        diff, _ = apply_effects(view, txs, height, self.network, matured_payout(view, height, self.network),
                                stateless_checked=True)
        return diff.state_root  # type: ignore[return-value]

    def immature_rewards(self, address: bytes) -> list[tuple[int, int]]:
        """(height, subsidy + fees) of best-chain blocks mined by ``address`` not yet paid (§5)."""
        active = self._active
        tip = len(active) - 1
        out = []
        for height in range(max(1, tip - self.network.coinbase_maturity + 1), tip + 1):
            entry = self.index.entries[active[height]]
            if entry.header.miner == address:
                out.append((height, subsidy(height) + entry.fees))
        return out

    def locator(self) -> list[bytes]:
        """Best-chain hashes: the last ten, then exponentially sparser, then genesis (§7)."""
        active = self._active
        out, step, height = [], 1, len(active) - 1
        while height > 0:
            out.append(active[height])
            if len(out) >= 10:
                step *= 2
            height -= step
        out.append(active[0])
        return out

    def headers_after(self, locator: Sequence[bytes], stop: bytes, limit: int = MAX_HEADERS) -> list[IndexEntry]:
        """§7 getheaders: the entries of up to ``limit`` best-chain headers after the first locator
        hash on it (each with its canonical header bytes, ``raw``: a reply needs no re-encoding)."""
        active = self._active
        start = 0
        for h in locator:
            entry = self.index.get(h)
            if entry is not None and self._on_active(entry, active):
                start = entry.height
                break
        out = []
        for height in range(start + 1, min(len(active), start + 1 + min(limit, MAX_HEADERS))):
            out.append(self.index.entries[active[height]])
            if active[height] == stop:
                break
        return out

    def chain_tips(self) -> list[dict]:
        """Bitcoin's getchaintips: every leaf of the tree and the active tip."""
        tips = {e.hash: e for e in self.index.tips()}
        tip = self._tip_entry()
        tips[tip.hash] = tip
        out = []
        for entry in tips.values():
            fork = entry
            while not self._on_active(fork):
                fork = self.index.entries[fork.prev]
            if self._on_active(entry):
                status = BranchStatus.ACTIVE
            elif entry.failed:
                status = BranchStatus.INVALID
            elif entry.hash not in self.index.linked:
                status = BranchStatus.HEADERS_ONLY
            else:
                status = BranchStatus.VALID_FORK if entry.valid else BranchStatus.VALID_HEADERS
            out.append({"height": entry.height, "hash": entry.hash.hex(),
                        "branchlen": entry.height - fork.height, "status": status})
        return sorted(out, key=lambda t: (-t["height"], t["hash"]))

    def best_header_height(self) -> int:
        """Height of the highest header with verified work (headers-first progress, and whether
        the node is still in its initial download).  Headers carry no checkable work, so only
        blocks whose data arrived count — sync fetches a random block of every headers batch
        early for this (docs/p2p.md) — never header-only entries a peer may have forged."""
        return max(self.index.best_verified_height(), self.tip.height)

    def header_tip_height(self) -> int:
        """Height of the highest header known, verified or not: the target of progress displays
        only (never a decision, see ``best_header_height``)."""
        return max((e.height for e in self.index.tips() if not e.failed), default=self.tip.height)

    def waiting(self, block_hash: bytes) -> bool:
        """Whether the block's data waits in the pool as a download (any thread)."""
        return self._waiting.kind(block_hash) is Kind.DOWNLOAD

    def orphan_roots(self) -> list[bytes]:
        """Parents that held orphans wait for."""
        return self._waiting.roots()

    # --- listeners and lifecycle -------------------------------------------------------
    @property
    def write_error(self) -> str | None:
        """Why the database cannot be written any more (the node is read-only), or None."""
        return self.store.write_error

    def subscribe(self, callback: Listener, kinds: Collection[str] = BLOCK_MOVES) -> Callable[[], None]:
        """Call ``callback(event)`` for the ``node.events`` of ``kinds`` (by default each committed
        connect/disconnect); returns an unsubscribe."""
        return self._events.subscribe(callback, kinds)

    def close(self) -> None:
        self._checker.close()
        self.store.close()

    def __enter__(self) -> "Chain":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
