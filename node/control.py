"""The node's lifecycle as RPC and HTTP see it: uptime, stop requests and waits for a
new tip (``getblocktemplate`` long-polls, ``waitfornewblock``)."""
from __future__ import annotations

import asyncio
import time

from .chainworker import ChainWorker


class NodeControl:
    """Created with the node; its events bind to the loop that first waits on them."""

    def __init__(self, chain: ChainWorker) -> None:
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self._tip_changed = asyncio.Event()
        self._chain = chain.chain
        chain.subscribe(lambda event: self._tip_changed.set())  # on the loop

    def uptime(self) -> int:
        return int(time.time() - self.started_at)

    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop once the loop gets to it (an RPC ``stop`` still answers first)."""
        asyncio.get_running_loop().call_soon(self._stop.set)

    async def wait_stop(self) -> None:
        await self._stop.wait()
        self._tip_changed.set()  # release long-polling calls

    async def wait_for_new_tip(self, start: bytes, timeout: float | None) -> None:
        """Wait until the best block is another than ``start`` or ``timeout`` seconds pass (None:
        no limit); returns at once when the node is shutting down. The tip is looked at again
        before each wait, so a block between two waits is not missed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._chain.tip.hash == start and not self.stopping():
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return
            self._tip_changed.clear()
            try:
                await asyncio.wait_for(self._tip_changed.wait(), left)
            except asyncio.TimeoutError:
                return
