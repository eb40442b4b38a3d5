"""Pieces of the crash-safety test: a block tree with reorgs, orphans and an invalid block; a
child that connects it and SIGKILLs itself around the N-th store commit; and an independent
reference replay of the state at any block (consensus.state.apply_block over plain dicts)."""
from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Iterable

from consensus import encoding as enc
from consensus.block import Block
from consensus.genesis import genesis_alloc
from consensus.lthash import LtHash
from consensus.memstate import MemoryState
from consensus.params import REGTEST
from consensus.state import ACCOUNT_SCHEMA, JOB_SCHEMA, Account, Job, apply_block, block_fees, state_records
from node.store import ACCOUNT, JOB, LANES, Store

from .helpers import FAUCET, genesis_header, key, make_block, transfer

ALICE, BOB = key(1), key(2)
KILL_MODES = ("before", "during", "after")


def build_tree() -> list[Block]:
    """Blocks in submission order: chain A, a longer fork B (reorg), A again (reorg back, with two
    blocks out of order), and an invalid block extending the tip."""
    nonces = {FAUCET.address: 0, ALICE.address: 0}

    def pay(sender, to, amount):
        tx = transfer(sender, nonces[sender.address], to, amount, fee=2)
        nonces[sender.address] += 1
        return tx

    a = [make_block(genesis_header(), [pay(FAUCET, ALICE.address, 10**6)], b"\xaa" * 20)]
    for i in range(7):
        a.append(make_block(a[-1].header, [pay(ALICE, BOB.address, 1000 + i)], b"\xaa" * 20))
    b = [make_block(a[2].header, [transfer(FAUCET, 1, BOB.address, 5)], b"\xbb" * 20, nonce=1)]
    for _ in range(8):
        b.append(make_block(b[-1].header, (), b"\xbb" * 20, nonce=1))
    for i in range(8):
        a.append(make_block(a[-1].header, [pay(FAUCET, BOB.address, 50 + i)], b"\xcc" * 20))
    bad = make_block(a[11].header, [transfer(ALICE, 0, BOB.address, 10**12)], b"\xdd" * 20, nonce=2)
    return a[:8] + b + a[8:12] + [bad] + a[12:14] + [a[15], a[14]]


def child_main(datadir: str, raws: list[bytes], mode: str, kill_at: int, seed: int, report_path: str) -> None:
    """Submit every block, appending each finished index to ``report_path``; die around commit ``kill_at``."""
    report = os.open(report_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    from node.chain import Chain

    rng = random.Random(seed)
    commits = [0]
    original = Store.commit

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def commit(self: Store, batch) -> None:
        commits[0] += 1
        if commits[0] == kill_at:
            if mode == "before":
                die()
            if mode == "during":
                threading.Timer(rng.uniform(0, 0.003), die).start()
            original(self, batch)
            if mode == "after":
                die()
        else:
            original(self, batch)

    Store.commit = commit  # type: ignore[method-assign]
    chain = Chain(datadir, "regtest", now=lambda: 2**40, tx_workers=0)
    for i, raw in enumerate(raws):
        chain.submit_block(raw)
        os.write(report, f"{i}\n".encode())
    chain.close()
    time.sleep(0.01)  # let a pending "during" timer fire
    os._exit(0)


def replay(path: Iterable[Block]) -> tuple[dict, dict, bytes]:
    """Accounts, jobs and LtHash lanes after applying ``path`` (genesis's children first) to
    genesis state."""
    view = MemoryState(REGTEST, genesis_alloc(REGTEST))
    for block in path:
        diff, _ = apply_block(view, block, REGTEST)
        view.apply(diff)
        view.payouts[block.header.height] = (block.header.miner, block_fees(block))
    return view.accounts, view.jobs, view.lanes().to_bytes()


def stored_state(store: Store) -> tuple[dict, dict, bytes]:
    """What the datadir holds; its lanes must match a recomputation from its own records."""
    accounts = {k[1:]: Account(*enc.decode(v, ACCOUNT_SCHEMA, 64, "a")) for k, v in store.dump([ACCOUNT]).items()}
    jobs = {k[1:]: Job(*enc.decode(v, JOB_SCHEMA, 512, "j")) for k, v in store.dump([JOB]).items()}
    lanes = store.dump([LANES])[LANES]
    assert lanes == LtHash.of(state_records(accounts.items(), jobs.items())).to_bytes(), "stored lanes ≠ records"
    return accounts, jobs, lanes
