#!/usr/bin/env python3
"""Benchmark node.mempool against the consensus checks it cannot avoid.

Signs ``--senders × --chain`` regtest transfers, then prints, side by side in one
run: ``check_tx_stateless`` alone (signature check: the floor for admission),
``Mempool.add`` (same checks plus state and queues), a full block template
(``select_for_block``), a full ``revalidate`` and ``on_block_connected`` for
the template's block.  State is an in-memory dict view, so storage costs are excluded,
except in the two rows of the pool kept over a restart (``node.mempoolkeep``): writing
it into a LevelDB store in a temporary directory, and loading it from there into an
empty pool (read, decode, ``Mempool.add`` in batches, as pouwd does while it serves).

    python scripts/bench_mempool.py [--senders N] [--chain N]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from consensus.block import EMPTY_PROOF, HEADER_VERSION, Block, Header, Ticket, WorkSpec, tx_root
from consensus.keys import PrivateKey, address_of
from consensus.params import MAX_BLOCK_SIZE, MAX_TARGET, REGTEST
from consensus.memstate import MemoryState
from consensus.state import Account, apply_effects, check_tx_stateless, matured_payout
from consensus.tx import Transfer, Tx, make_tx
from node.mempool import Mempool, MempoolPolicy
from node.mempoolkeep import KeptMempool
from node.store import Store


class DictState(MemoryState):
    """Tip state in dicts (a consensus.state.StateView) that connects blocks of mempool txs."""

    def __init__(self, accounts: dict[bytes, Account]) -> None:
        super().__init__(REGTEST, accounts)
        self.height = 0

    def block_payout(self, height: int) -> tuple[bytes, int]:
        return bytes(20), 0

    def tip(self) -> tuple[DictState, int]:
        return self, self.height + 1

    def connect(self, txs: list[Tx]) -> Block:
        height = self.height + 1
        diff, _ = apply_effects(self, txs, height, REGTEST, matured_payout(self, height, REGTEST),
                                stateless_checked=True)
        header = Header(HEADER_VERSION, REGTEST.chain_id, height, bytes(32), 0, MAX_TARGET, tx_root(txs),
                        diff.state_root, bytes(20), 0, WorkSpec(32, 32, 64, 16, bytes(32), bytes(32)),
                        Ticket(0, 0, bytes(32)))
        self.apply(diff)
        self.height += 1
        return Block(header, EMPTY_PROOF, tuple(txs))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=2000)
    parser.add_argument("--chain", type=int, default=5, help="txs per sender (consecutive nonces)")
    args = parser.parse_args()

    keys = [PrivateKey(i.to_bytes(32, "big")) for i in range(1, args.senders + 1)]
    state = DictState({address_of(k.pubkey): Account(10**12, 0) for k in keys})
    txs = [make_tx(k, REGTEST.chain_id, n, 500 + (i * 7919) % 5000, Transfer(bytes(20), 1_000))
           for n in range(args.chain) for i, k in enumerate(keys)]
    for tx in txs:
        tx.txid  # cache, as a decoded tx from the wire would be hashed once  # noqa: B018

    pool = Mempool(REGTEST, state.tip, MempoolPolicy(max_account_txs=max(256, args.chain)))
    t_check = timed(lambda: [check_tx_stateless(tx, REGTEST) for tx in txs])
    t_add = timed(lambda: [pool.add(tx) for tx in txs])
    with tempfile.TemporaryDirectory(prefix="bench_mempool_") as tmp:
        store = Store(Path(tmp), "regtest")
        try:
            t_save = timed(lambda: asyncio.run(KeptMempool(pool, store).save()))
            again = Mempool(REGTEST, state.tip, pool.policy)
            t_load = timed(lambda: asyncio.run(KeptMempool(again, store).load()))
            if len(again) != len(pool):
                raise SystemExit(f"the kept pool came back with {len(again)} of {len(pool)} txs")
        finally:
            store.close()
    template: list[Tx] = []
    t_select = timed(lambda: template.extend(pool.select_for_block(MAX_BLOCK_SIZE - 64 * 1024)))
    pooled = len(pool)
    t_reval = timed(pool.revalidate)
    block = state.connect(template)
    t_connect = timed(lambda: pool.on_block_connected(block))

    n = len(txs)
    print(f"{n} transfers from {args.senders} senders; {len(template)} in the template, {len(pool)} left after it")
    print(f"{'operation':<34}{'total s':>9}{'per tx µs':>11}{'tx/s':>10}{'× stateless':>13}")
    rows = [("check_tx_stateless (floor)", t_check, n), ("Mempool.add", t_add, n),
            ("kept at shutdown (LevelDB, synced)", t_save, n), ("kept txs loaded at start", t_load, n),
            ("select_for_block (4 MiB)", t_select, len(template)),
            ("on_block_connected", t_connect, len(template)), ("revalidate (whole pool)", t_reval, pooled)]
    per_check = t_check / n
    for name, seconds, count in rows:
        per = seconds / max(count, 1)
        print(f"{name:<34}{seconds:>9.3f}{per * 1e6:>11.1f}{1 / per if per else 0:>10.0f}{per / per_check:>13.2f}")


if __name__ == "__main__":
    main()
