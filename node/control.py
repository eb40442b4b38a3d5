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

    async def wait_for_tip_change(self, timeout: float | None) -> None:
        """Wait for a new tip (long-poll; ``timeout`` None: no limit); returns at once when the
        node is shutting down."""
        if self.stopping():
            return
        self._tip_changed.clear()
        try:
            await asyncio.wait_for(self._tip_changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass
