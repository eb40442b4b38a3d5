"""Pruning the node's matrix store (PROTOCOL §6; docs/market.md): a settled job's matrices go
a window after the claim's window, whatever its expiry; a post or a result waiting in the
mempool keeps what it names (A and B; the claim's C), though only final jobs named them so far."""
from __future__ import annotations

import numpy as np

from consensus.params import REGTEST
from consensus.state import SETTLED
from consensus.work import commit_result
from node.market import JobMarket
from node.matrices import MatrixStore

from .helpers import FAUCET, build_chain, genesis_header, job_accept, job_matrices, job_post, job_result, key, \
    make_block, transfer
from .test_chain import submit_all

ALICE = key(1)
WINDOW = REGTEST.challenge_window


def test_a_settled_jobs_matrices_go_two_windows_after_its_claim_unless_pooled_txs_name_them(chain, tmp_path):
    a, b = job_matrices()
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    post = job_post(FAUCET, 0, reward=1000, expiry=500)
    result = job_result(ALICE, 0, post.txid, bond=100, h_c=commit_result(c))
    blocks = [make_block(genesis_header(), [post, transfer(FAUCET, 1, ALICE.address, 10**6)])]
    blocks.append(make_block(blocks[-1].header, [result]))  # claimed at 2
    blocks.append(make_block(blocks[-1].header, [job_accept(FAUCET, 2, post.txid)]))  # settled at 3
    blocks += build_chain(blocks[-1].header, 2 + 2 * WINDOW - 3)
    submit_all(chain, blocks)
    assert chain.tip.height == 2 + 2 * WINDOW and chain.job(post.txid).status == SETTLED
    market = JobMarket(chain, MatrixStore(tmp_path / "matrices", chain.network, 1 << 30))
    ea, eb = market.store.put("A", a), market.store.put("B", b)
    ec = market.store.put("C", c, worker=ALICE.address, job_id=post.txid)
    assert ec.key == result.payload.claim
    assert market.prune() == []  # a window has not passed since the claim's window
    submit_all(chain, build_chain(blocks[-1].header, 1))
    again = job_post(FAUCET, 3, reward=1000, expiry=500)  # the same A and B, posted anew
    same_c = job_result(ALICE, 1, again.txid, bond=100, h_c=commit_result(c))  # the same worker's same C
    assert market.prune([again.payload, same_c.payload]) == []  # both wait in the mempool
    assert market.prune([same_c.payload]) == [ea.key, eb.key]  # only the result waits now
    assert [e.key for e in market.store.entries()] == [ec.key]
    assert market.prune() == [ec.key]  # 476 blocks before the expiry
