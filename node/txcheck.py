"""A block's stateless tx checks — Ed25519 signatures above all — run in worker processes.

``consensus.state.check_tx_stateless`` is the rule (PROTOCOL §3); this module only
decides where it runs.  Signature verification dominates block validation and the
GIL serialises it in threads, so blocks with many txs are split across a process
pool while the caller goes on decoding and applying other blocks.

The workers come from a ``forkserver`` (a fresh interpreter, not a fork of the
node): they hold none of the node's sockets or files, start with default signal
handlers, and each watches the node's pid and exits the moment the node is
gone (the fork server then exits too, its last client gone).  So a ``kill -9``
of the node leaves no worker holding its ports or the datadir.
"""
from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from consensus.block import Block
from consensus.errors import DecodeError, InvalidBlock, InvalidTx
from consensus.params import NETWORKS, Network
from consensus.reasons import Reason
from consensus.state import check_tx_stateless
from consensus.tx import Tx

Failure = tuple[int, Reason, str]  # (tx index, code, detail): plain values cross the process boundary


def _worker_init(node_pid: int) -> None:
    """In each worker: default SIGTERM, ignore the terminal's SIGINT, exit when the node does."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl-C goes to the node, which shuts the pool down
    threading.Thread(target=_exit_with, args=(node_pid,), name="exit-with-node", daemon=True).start()


def _exit_with(pid: int) -> None:
    """Return never: ``_exit`` as soon as process ``pid`` is gone (a pidfd where Linux has one)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: poll
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
    select.select([fd], [], [])
    os._exit(1)


def _check_txs(network_name: str, raw_txs: list[bytes], first: int) -> Failure | None:
    """Worker side: the first stateless failure among ``raw_txs`` (numbered from ``first``)."""
    network = NETWORKS[network_name]
    for i, raw in enumerate(raw_txs):
        try:
            check_tx_stateless(Tx.decode(raw), network)
        except (InvalidTx, DecodeError) as exc:
            return first + i, exc.code, exc.detail
    return None


@dataclass
class Pending:
    block: Block
    futures: list[Future] = field(default_factory=list)


class TxChecker:
    """Starts a block's checks early (``start``) and collects the verdict later (``wait``)."""

    def __init__(self, network: Network, workers: int | None = None, min_txs: int = 8) -> None:
        self.network = network
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.min_txs = min_txs
        self._pool: ProcessPoolExecutor | None = None
        self._inflight: set[Future] = set()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload([__name__])
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(os.getpid(),))
        return self._pool

    def start(self, block: Block) -> Pending:
        pending = Pending(block)
        count = len(block.txs)
        if self.workers < 1 or count < self.min_txs:
            return pending
        raw = [tx.encode() for tx in block.txs]
        # split a lone block across the workers; when blocks queue up, one task each is cheaper
        step = count if len(self._inflight) >= self.workers else -(-count // self.workers)
        try:
            pool = self._executor()
            for i in range(0, count, step):
                fut = pool.submit(_check_txs, self.network.name, raw[i:i + step], i)
                self._inflight.add(fut)
                fut.add_done_callback(self._inflight.discard)
                pending.futures.append(fut)
        except (BrokenProcessPool, RuntimeError, OSError):
            self._discard_pool()
            pending.futures = []
        return pending

    def wait(self, pending: Pending) -> None:
        """Raise ``InvalidBlock`` (``BAD_TX``) naming the first tx that fails and its code (§5)."""
        failure: Failure | None = None
        try:
            for fut in pending.futures:
                failure = failure or fut.result()
            if not pending.futures:
                failure = self._inline(pending.block)
        except BrokenProcessPool:
            self._discard_pool()
            failure = self._inline(pending.block)
        if failure is not None:
            index, code, detail = failure
            raise InvalidBlock.bad_tx(index, pending.block.txs[index].txid, code, detail)

    def _inline(self, block: Block) -> Failure | None:
        for i, tx in enumerate(block.txs):
            try:
                check_tx_stateless(tx, self.network)
            except InvalidTx as exc:
                return i, exc.code, exc.detail
        return None

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
