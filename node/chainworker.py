"""The chain's own thread: every write to ``node.chain.Chain`` that comes from the event
loop — blocks and headers from peers, RPC ``submitblock``, the in-process miner,
``invalidateblock`` — runs there, one at a time, so validating a batch of blocks never
stalls the loop (RPC, ``/health``, peers).  The loop awaits the result.

Reads stay on the loop and take no lock (``node.chain`` says which are safe from any
thread).  The events of a write run here reach the listeners subscribed through the
worker on the loop that queued it, all of them in order in one loop callback once
the write is done (as if it had run on the loop); listeners subscribed to the chain
itself hear them on the chain's thread, during the write.  ``ChainWorker`` is the
``p2p.interfaces.ChainView`` the node gives p2p.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from consensus.block import Header

from .blockindex import IndexEntry
from .chain import MAX_HEADERS, BlockInput, Chain, SubmitResult, Tip
from .events import BLOCK_MOVES, Listener
from .waiting import Source

log = logging.getLogger(__name__)
T = TypeVar("T")


def _nothing() -> None:
    """A write that writes nothing (``ChainWorker.settled``)."""


class ChainWorker:
    """A ``Chain`` whose writes run on one worker thread, awaited from the event loop."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.network = chain.network
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chain")
        self._thread_id: int | None = None  # set by the thread itself
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that queued the running write
        self._heard: list[tuple[Listener, Any]] = []  # events of the running write, for the loop

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the chain's thread, after every write queued before it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._call, loop, fn, args)

    def _call(self, loop: asyncio.AbstractEventLoop | None, fn: Callable[..., T], args: tuple) -> T:
        self._thread_id = threading.get_ident()
        self._loop = loop = loop or self._loop
        try:
            return fn(*args)
        finally:
            heard, self._heard = self._heard, []
            if heard and loop is not None:
                try:
                    loop.call_soon_threadsafe(self._deliver, heard)
                except RuntimeError:  # the loop is closed: shutting down
                    pass

    async def settled(self) -> None:
        """Return once every write queued before this call has finished and its events have
        reached the loop's listeners (the mempool among them): the tip becomes visible to
        reads as a write commits, but its events arrive only when the write is done."""
        await self.run(_nothing)

    @staticmethod
    def _deliver(heard: list[tuple[Listener, Any]]) -> None:
        for callback, event in heard:
            try:
                callback(event)
            except Exception:  # a listener must not break the others
                log.exception("listener failed on %s", event.kind)

    def subscribe(self, callback: Listener, kinds: Collection[str] = BLOCK_MOVES) -> Callable[[], None]:
        """``Chain.subscribe``, with the events of the writes run here delivered on the loop."""
        def hear(event: Any) -> None:
            if threading.get_ident() == self._thread_id:
                self._heard.append((callback, event))
            else:
                callback(event)  # a write made on the caller's own thread (tests, start-up)
        return self.chain.subscribe(hear, kinds)

    # --- writes ----------------------------------------------------------------------
    async def submit_block(self, block: BlockInput) -> SubmitResult:
        return await self.run(self.chain.submit_block, block)

    async def submit_blocks(self, blocks: Iterable[BlockInput],
                            sources: Sequence[Source] | None = None) -> list[SubmitResult]:
        return await self.run(self.chain.submit_blocks, list(blocks), sources)

    async def retry_future(self) -> list[SubmitResult]:
        return await self.run(self.chain.retry_future)

    async def add_headers(self, headers: Sequence[Header], keep: Collection[bytes] = ()) -> list[SubmitResult]:
        return await self.run(self.chain.add_headers, list(headers), frozenset(keep))

    def forget_headers(self, hashes: Iterable[bytes], keep: Collection[bytes] = ()) -> None:
        """At once when no write is under way (a quick walk over leaves), else queued after it;
        nobody waits for it."""
        hashes, keep = list(hashes), frozenset(keep)
        if self.chain.try_forget_headers(hashes, keep) is None:
            self._thread.submit(self._call, None, self.chain.forget_headers, (hashes, keep))

    async def invalidate_block(self, block_hash: bytes) -> None:
        await self.run(self.chain.invalidate_block, block_hash)

    async def reconsider_block(self, block_hash: bytes) -> None:
        await self.run(self.chain.reconsider_block, block_hash)

    # --- reads (ChainView) -------------------------------------------------------------
    @property
    def tip(self) -> Tip:
        return self.chain.tip

    def entry(self, block_hash: bytes) -> IndexEntry | None:
        return self.chain.entry(block_hash)

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.chain.block_bytes(block_hash)

    def waiting(self, block_hash: bytes) -> bool:
        return self.chain.waiting(block_hash)

    def hash_at(self, height: int) -> bytes | None:
        return self.chain.hash_at(height)

    def locator(self) -> list[bytes]:
        return self.chain.locator()

    def headers_after(self, locator: Sequence[bytes], stop: bytes, limit: int = MAX_HEADERS) -> list[IndexEntry]:
        return self.chain.headers_after(locator, stop, limit)

    def close(self) -> None:
        """Finish the queued writes and stop the thread (before the chain closes)."""
        self._thread.shutdown(wait=True)
