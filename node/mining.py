"""Block templates from the node's tip and mempool, and in-process mining for dev/regtest
(``generatetoaddress``), through the miner kernel API (PROTOCOL §4, §5)."""
from __future__ import annotations

import hashlib
import os
from typing import Callable

from consensus.block import Block, WorkSpec, tx_root
from consensus.params import MAX_BLOCK_SIZE, MAX_K
from consensus.work import assemble_block
from miner import kernel
from miner.synthetic import synthetic_matrices
from miner.template import Template, default_shape

from .chain import Chain
from .mempool import Mempool

PROOF_RESERVE = 2 * 32 * MAX_K + 8 * 1024  # the largest proof plus header and paths


def new_template(chain: Chain, mempool: Mempool, now: int) -> Template:
    """A template on the current tip with the best-paying mempool txs that fit."""
    tip = chain.tip
    mintime = chain.median_time_past() + 1
    txs = tuple(mempool.select_for_block(MAX_BLOCK_SIZE - PROOF_RESERVE))
    return Template(chain.network, tip.height + 1, tip.hash, max(now, mintime), mintime, chain.next_target(),
                    txs, tx_root(txs), chain.state_root_after(txs), tip.hash.hex())


def solve_template(template: Template, miner: bytes, max_tries: int = 10_000,
                   stop: Callable[[], bool] = lambda: False) -> Block | None:
    """Mine synthetic matrices on ``template`` until a tile wins (new nonce, new noise each try).

    Nonces start at a random point, so mining again on the same parent (after
    invalidateblock, say) yields a new block rather than one already known.
    """
    m, n, k, r = default_shape(template.network)
    seed = hashlib.sha256(template.prev_hash + miner).digest()
    a, b = synthetic_matrices(seed, m, n, k)
    roots = kernel.operand_roots(a, b)  # H_A, H_B and the proof's paths
    spec = WorkSpec(m, n, k, r, roots.h_a, roots.h_b)
    first = int.from_bytes(os.urandom(8), "little") >> 1  # never rebuild a block seen before
    for nonce in range(first, first + max_tries):
        if stop():
            return None
        header = template.header_for(miner, nonce, spec)
        winners = kernel.mine(header, a, b)
        if winners:
            return assemble_block(header, a, b, winners[0], template.txs, roots)
    return None
