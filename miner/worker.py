"""The mining loop: template → work → submit, refreshed on every new tip (PROTOCOL §4, §5).

A background thread long-polls ``getblocktemplate`` with the current tip as
``longpollid``; when the tip moves it flags the work in hand as stale, so the loop
drops it between two matmuls and never submits a block for an old tip.

The loop never spins against the node: it builds no header whose timestamp the node
would hold (it waits for the clock when median time past runs ahead, §5), and after a
rejected block it says why and backs off, 1 s doubling to 60 s, until a block is accepted.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from consensus.block import WorkSpec
from consensus.work import assemble_block, commit_a, commit_b, win_threshold

from . import kernel
from .rpcclient import RpcClient, RpcClientError
from .synthetic import synthetic_matrices
from .template import Template

TEMPLATE_REFRESH_SECONDS = 30.0  # pick up new mempool txs even without a new tip
BACKOFF_FIRST = 1.0  # seconds after the first rejected block in a row
BACKOFF_MAX = 60.0
TIME_TOO_NEW = "time-too-new"  # submitblock's answer for a block held for its timestamp


@dataclass
class MinerStats:
    started: float = field(default_factory=time.monotonic)
    macs: int = 0
    tiles: int = 0
    matmuls: int = 0
    found: int = 0
    accepted: int = 0
    rejected: int = 0
    stale: int = 0
    clock_waits: int = 0  # times the loop waited for the clock instead of building a held block
    last_reject: str = ""
    win_probability: float = 0.0  # per tile, under the current target

    def gmacs(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.macs / elapsed / 1e9 if elapsed > 0 else 0.0

    def tiles_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tiles / elapsed if elapsed > 0 else 0.0

    def expected_seconds_to_block(self) -> float | None:
        rate = self.tiles_per_second() * self.win_probability
        return 1.0 / rate if rate > 0 else None


class TipWatcher(threading.Thread):
    """Long-polls the node and records each template whose tip differs from the last seen."""

    def __init__(self, client: RpcClient, longpollid: str, on_error: Callable[[str], None]) -> None:
        super().__init__(daemon=True, name="tip-watcher")
        self.client = client
        self.longpollid = longpollid
        self.on_error = on_error
        self.changed = threading.Event()
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: dict[str, Any] | None = None

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                tpl = self.client.call("getblocktemplate", {"longpollid": self.longpollid})
            except RpcClientError as exc:
                self.on_error(str(exc))
                self.stop_event.wait(2.0)
                continue
            if tpl["longpollid"] != self.longpollid:
                with self._lock:
                    self._latest = tpl
                    self.longpollid = tpl["longpollid"]
                self.changed.set()

    def take(self) -> dict[str, Any] | None:
        with self._lock:
            tpl, self._latest = self._latest, None
            self.changed.clear()
            return tpl


class Backoff:
    """The pause after a rejected block: doubles from ``first`` up to ``cap``; ``reset`` on acceptance."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> None:
        self.first, self.cap = first, cap
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self.cap, self._next * 2)
        return delay

    def reset(self) -> None:
        self._next = self.first


def win_probability(target: int, k: int) -> float:
    return min(1.0, win_threshold(target, k) / 2**256)


class Miner:
    """Mines synthetic matrices of one shape against a node until stopped."""

    def __init__(self, client: RpcClient, watcher_client: RpcClient, address: bytes,
                 shape: tuple[int, int, int, int], threads: int | None = None,
                 log: Callable[[str], None] = print, min_interval: float = 0.0,
                 backoff: Backoff | None = None) -> None:
        self.client = client
        self.watcher_client = watcher_client
        self.address = address
        self.m, self.n, self.k, self.r = shape
        self.threads = threads
        self.log = log
        self.min_interval = min_interval
        self.backoff = backoff or Backoff()
        self.stats = MinerStats()
        self.stop_event = threading.Event()
        self.a, self.b = synthetic_matrices(hashlib.sha256(address + os.urandom(16)).digest(), self.m, self.n, self.k)
        self.spec = WorkSpec(self.m, self.n, self.k, self.r, commit_a(self.a), commit_b(self.b))

    def run(self, max_blocks: int | None = None) -> None:
        template = Template.from_json(self.client.call("getblocktemplate"))
        watcher = TipWatcher(self.watcher_client, template.longpollid, lambda e: self.log(f"node: {e}"))
        watcher.start()
        fetched = time.monotonic()
        nonce = int.from_bytes(os.urandom(4), "little") << 32
        try:
            while not self.stop_event.is_set():
                if max_blocks is not None and self.stats.accepted >= max_blocks:
                    return
                fresh = watcher.take() if watcher.changed.is_set() else None
                if fresh is not None or time.monotonic() - fetched > TEMPLATE_REFRESH_SECONDS:
                    template = Template.from_json(fresh or self.client.call("getblocktemplate"))
                    fetched = time.monotonic()
                wait = template.clock_wait(int(time.time()))
                if wait:
                    self.stats.clock_waits += 1
                    self.log(f"the chain's median time past is ahead of the clock: the next block may be "
                             f"stamped no earlier than {template.mintime}; waiting {wait}s for the clock")
                    self.stop_event.wait(wait)
                    continue
                self.stats.win_probability = win_probability(template.target, self.k)
                header = template.header_for(self.address, nonce, self.spec, int(time.time()))
                nonce += 1
                winners = kernel.mine(header, self.a, self.b, self.threads)
                self.stats.macs += self.m * self.n * self.k
                self.stats.tiles += (self.m // 32) * (self.n // 32)
                self.stats.matmuls += 1
                if not winners:
                    continue
                self.stats.found += 1
                if watcher.changed.is_set() or self.client.call("getbestblockhash") != template.prev_hash.hex():
                    self.stats.stale += 1  # the tip moved while we computed: never submit for an old tip
                    continue
                self.stop_event.wait(self._submit(assemble_block(header, self.a, self.b, winners[0], template.txs)))
                template = Template.from_json(self.client.call("getblocktemplate"))
                fetched = time.monotonic()
        finally:
            watcher.stop_event.set()

    def _submit(self, block) -> float:
        """Submit a found block; returns how long to pause before mining again."""
        reason = self.client.call("submitblock", block.encode().hex())
        if reason is None:
            self.stats.accepted += 1
            self.backoff.reset()
            self.log(f"block {block.hash.hex()} at height {block.header.height} accepted")
            return self.min_interval
        self.stats.rejected += 1
        self.stats.last_reject = str(reason)
        delay = self.backoff.next()
        if reason == TIME_TOO_NEW:  # we never stamp beyond our clock's limit: the node's clock is behind
            self.log(f"block {block.hash.hex()} held by the node: {reason} (the node's clock is behind this "
                     f"machine's); waiting {delay:g}s for its clock")
            return delay
        self.log(f"block {block.hash.hex()} rejected: {reason}; backing off {delay:g}s")
        return delay


def status_line(stats: MinerStats) -> str:
    eta = stats.expected_seconds_to_block()
    eta_text = "—" if eta is None else (f"{eta:.1f}s" if eta < 600 else f"{eta / 3600:.1f}h")
    return (f"{stats.gmacs():7.2f} GMAC/s  {stats.tiles_per_second():9.0f} tickets/s  "
            f"expected block in {eta_text}  found {stats.found}  accepted {stats.accepted}  "
            f"rejected {stats.rejected}  stale {stats.stale}")

