"""Pruning the node's matrix store (PROTOCOL §6; docs/market.md): a settled job's matrices go
a window after its accept (read from the best chain's blocks, again after a reorg), whatever its
expiry; a post or a result waiting in the mempool keeps what it names (A and B; the claim's C),
though only final jobs named them so far."""
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


def settled_job(chain, tmp_path, accept_at_tip: bool = True):
    """A job posted at 1, claimed at 2 and accepted at 3, and a market holding its A, B and C."""
    a, b = job_matrices()
    c = (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)
    post = job_post(FAUCET, 0, reward=1000, expiry=500)
    result = job_result(ALICE, 0, post.txid, bond=100, h_c=commit_result(c))
    blocks = [make_block(genesis_header(), [post, transfer(FAUCET, 1, ALICE.address, 10**6)])]
    blocks.append(make_block(blocks[-1].header, [result]))  # claimed at 2
    blocks.append(make_block(blocks[-1].header, [job_accept(FAUCET, 2, post.txid)]))  # settled at 3
    submit_all(chain, blocks)
    market = JobMarket(chain, MatrixStore(tmp_path / "matrices", chain.network, 1 << 30))
    keys = [market.store.put("A", a).key, market.store.put("B", b).key,
            market.store.put("C", c, worker=ALICE.address, job_id=post.txid).key]
    assert keys[2] == result.payload.claim
    return market, blocks, post, c, keys


def test_a_settled_jobs_matrices_go_a_window_after_its_accept_unless_pooled_txs_name_them(chain, tmp_path):
    market, blocks, post, c, (ka, kb, kc) = settled_job(chain, tmp_path)
    blocks += build_chain(blocks[-1].header, WINDOW)
    submit_all(chain, blocks[3:])
    assert chain.tip.height == 3 + WINDOW and chain.job(post.txid).status == SETTLED
    assert market.prune() == []  # a window has not passed since the accept
    again_market = JobMarket(chain, market.store)  # a node started now reads the accept back
    submit_all(chain, build_chain(blocks[-1].header, 1))
    again = job_post(FAUCET, 3, reward=1000, expiry=500)  # the same A and B, posted anew
    same_c = job_result(ALICE, 1, again.txid, bond=100, h_c=commit_result(c))  # the same worker's same C
    assert again_market.prune([again.payload, same_c.payload]) == []  # both wait in the mempool
    assert again_market.prune([same_c.payload]) == [ka, kb]  # only the result waits now
    assert [e.key for e in market.store.entries()] == [kc]
    assert again_market.prune() == [kc]  # 486 blocks before the expiry


def test_an_accept_moved_by_a_reorg_is_read_again(chain, tmp_path):
    """The accept read at 3 is reorganised away and mined again at 5: the matrices stay until a
    window after 5, not after 3."""
    market, blocks, post, _, keys = settled_job(chain, tmp_path)
    submit_all(chain, build_chain(blocks[-1].header, WINDOW - 1))  # tip 12
    assert market.prune() == [] and market.accepts.height(post.txid) == 3
    fork = build_chain(blocks[1].header, 2, nonce=1)  # 3 and 4, no accept
    fork.append(make_block(fork[-1].header, [job_accept(FAUCET, 2, post.txid)]))  # settled at 5
    fork += build_chain(fork[-1].header, WINDOW - 1)  # tip 14: more work than 12
    submit_all(chain, fork)
    assert chain.tip.height == 4 + WINDOW and chain.job(post.txid).status == SETTLED
    assert market.prune() == [] and market.accepts.height(post.txid) == 5  # 14 > 3 + window, not 5 + window
    submit_all(chain, build_chain(fork[-1].header, 2))
    assert market.prune() == keys
