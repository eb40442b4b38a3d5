"""Benchmark the chain manager: connect N regtest blocks of T transfers into an empty store, and a
100-block-deep reorg.  Blocks are built (and their txs signed) before any timing.

    python scripts/bench_chain.py [--blocks 5000] [--txs 20] [--reorg 100]

Prints blocks/s, tx/s and where the time goes (decode, proof check, signature checks as seen by
the connecting thread, state apply, of which the state root's lanes, db write), side by side for
the configurations run.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import consensus.block  # noqa: E402
import consensus.state  # noqa: E402
import consensus.validation  # noqa: E402
import node.chain  # noqa: E402
import node.store  # noqa: E402
import node.txcheck  # noqa: E402
from consensus.block import Block  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from consensus.state import check_tx_stateless  # noqa: E402
from consensus.tx import Tx  # noqa: E402
from node.chain import Chain  # noqa: E402
from tests.unit.node.helpers import FAUCET, genesis_header, key, make_block, transfer  # noqa: E402

NOW = 2**40
TIMERS: dict[str, float] = defaultdict(float)


def _timed(owner: object, attr: str, name: str) -> None:
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TIMERS[name] += time.perf_counter() - t

    setattr(owner, attr, wrapper)


def instrument() -> None:
    _timed(consensus.block.Block, "decode", "decode")
    _timed(consensus.validation, "proof_error", "proof check")
    _timed(node.chain, "check_header_context", "header context")
    _timed(node.txcheck.TxChecker, "wait", "signatures (wait)")
    _timed(node.txcheck.TxChecker, "start", "signatures (dispatch)")
    _timed(node.chain, "apply_block", "state apply")
    _timed(consensus.state.Overlay, "diff_and_undo", "state root (lanes)")  # inside state apply
    _timed(node.store.Store, "commit", "db write")


def _sign_sender(args: tuple[int, int, int, int]) -> list[bytes]:
    """All transfers of one sender, encoded: nonce ``first``… for ``count`` blocks."""
    index, first, count, salt = args
    sender = key(1000 + index)
    return [transfer(sender, first + i, key(5000 + (index * 7 + i + salt) % 997).address, 1 + i % 50, fee=1).encode()
            for i in range(count)]


def build_blocks(parent, first_height: int, count: int, senders: int, salt: int, pool) -> list[bytes]:
    """``count`` blocks on ``parent``; block at height 1 funds the senders, later ones carry one
    transfer per sender (nonce = height − 2)."""
    blocks: list[Block] = []
    start = 0
    if first_height == 1:
        funding = [transfer(FAUCET, i, key(1000 + i).address, 10**12) for i in range(senders)]
        blocks.append(make_block(parent, funding, b"\x11" * 20))
        start = 1
    per_block = count - start
    columns = pool.map(_sign_sender, [(i, first_height + start - 2, per_block, salt) for i in range(senders)])
    for j in range(per_block):
        txs = [Tx.decode(columns[i][j]) for i in range(senders)]
        prev = blocks[-1].header if blocks else parent
        blocks.append(make_block(prev, txs, bytes([salt % 256]) * 20, nonce=salt))
    return [b.encode() for b in blocks]


def run(label: str, raws: list[bytes], n_txs: int, make_chain: Callable[[], Chain],
        per_block: bool, rows: list) -> Chain:
    TIMERS.clear()
    chain = make_chain()
    t = time.perf_counter()
    if per_block:
        results = [chain.submit_block(r) for r in raws]
    else:
        results = chain.submit_blocks(raws)
    wall = time.perf_counter() - t
    bad = [r for r in results if r.status != "accepted"]
    assert not bad, bad[:3]
    rows.append((label, len(raws), wall, dict(TIMERS)))
    print(f"{label:<44} {len(raws) / wall:8.0f} blocks/s {len(raws) * n_txs / wall:9.0f} tx/s  ({wall:.2f} s)")
    return chain


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=5000)
    ap.add_argument("--txs", type=int, default=20)
    ap.add_argument("--reorg", type=int, default=100)
    ap.add_argument("--sample", type=int, default=500, help="blocks for the slower comparison rows")
    args = ap.parse_args()

    print(f"building {args.blocks} blocks x {args.txs} transfers (+ a {args.reorg + 1}-block fork) ...")
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count()) as pool:
        raws = build_blocks(genesis_header(), 1, args.blocks, args.txs, 0, pool)
        fork_parent = Block.decode(raws[args.blocks - args.reorg - 1]).header
        fork = build_blocks(fork_parent, fork_parent.height + 1, args.reorg + 1, args.txs, 1, pool)
    print(f"built in {time.perf_counter() - t:.1f} s; {sum(map(len, raws)) / len(raws):.0f} bytes/block; "
          f"{os.cpu_count()} cpus")

    t = time.perf_counter()
    sample_txs = [Tx.decode(r) for r in _sign_sender((0, 0, 200, 0))]
    for tx in sample_txs:
        check_tx_stateless(tx, REGTEST)
    sig_us = (time.perf_counter() - t) / len(sample_txs) * 1e6
    print(f"stateless tx check (Ed25519 verify) inline: {sig_us:.0f} us/tx\n")

    instrument()
    rows: list = []
    tmp = tempfile.mkdtemp(prefix="bench_chain_")
    try:
        def fresh(workers: int | None, address_index: bool = False) -> Callable[[], Chain]:
            def make() -> Chain:
                path = tempfile.mkdtemp(dir=tmp)
                return Chain(path, "regtest", now=lambda: NOW, tx_workers=workers, address_index=address_index)
            return make

        sample = raws[:args.sample]
        run(f"per-block commits, inline sigs ({len(sample)})", sample, args.txs, fresh(0), True, rows).close()
        run(f"per-block commits, sig pool ({len(sample)})", sample, args.txs, fresh(None), True, rows).close()
        run(f"group commits, inline sigs ({len(sample)})", sample, args.txs, fresh(0), False, rows).close()
        run(f"  same, with --addressindex ({len(sample)})", sample, args.txs, fresh(0, True), False, rows).close()
        chain = run(f"group commits, sig pool ({args.blocks}) [sync path]", raws, args.txs, fresh(None), False, rows)

        TIMERS.clear()
        t = time.perf_counter()
        results = chain.submit_blocks(fork)
        reorg_s = time.perf_counter() - t
        assert chain.tip.hash == Block.decode(fork[-1]).hash, results[-1]
        print(f"\n{args.reorg}-block-deep reorg ({args.reorg} disconnects + {args.reorg + 1} connects, "
              f"one commit): {reorg_s:.2f} s")
        rows.append((f"reorg {args.reorg} deep", len(fork), reorg_s, dict(TIMERS)))
        chain.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    names = ["decode", "proof check", "header context", "signatures (dispatch)", "signatures (wait)",
             "state apply", "state root (lanes)", "db write"]
    print("\nbreakdown, ms per block (share of wall time); 'state apply' excludes the state root's lanes:")
    print(f"{'run':<44}" + "".join(f"{n:>22}" for n in names + ["other"]))
    for label, count, wall, timers in rows:
        timers = {**timers, "state apply": timers.get("state apply", 0.0) - timers.get("state root (lanes)", 0.0)}
        cells = [timers.get(n, 0.0) for n in names]
        cells.append(max(wall - sum(cells), 0.0))
        print(f"{label:<44}" + "".join(f"{c / count * 1e3:>13.3f} ({c / wall:4.0%})" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
