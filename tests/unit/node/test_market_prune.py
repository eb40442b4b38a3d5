"""Pruning the node's matrix store (PROTOCOL §6; docs/market.md): a settled job's matrices go
a window after the claim's window, whatever its expiry; a post waiting in the mempool keeps
the A and B it names, though only final jobs named them on chain so far."""
from __future__ import annotations

from consensus.params import REGTEST
from consensus.state import SETTLED
from node.market import JobMarket
from node.matrices import MatrixStore

from .helpers import FAUCET, build_chain, genesis_header, job_accept, job_matrices, job_post, job_result, key, \
    make_block, transfer
from .test_chain import submit_all

ALICE = key(1)
WINDOW = REGTEST.challenge_window


def test_a_settled_jobs_matrices_go_two_windows_after_its_claim_unless_a_pooled_post_names_them(chain, tmp_path):
    post = job_post(FAUCET, 0, reward=1000, expiry=500)
    blocks = [make_block(genesis_header(), [post, transfer(FAUCET, 1, ALICE.address, 10**6)])]
    blocks.append(make_block(blocks[-1].header, [job_result(ALICE, 0, post.txid, bond=100)]))  # claimed at 2
    blocks.append(make_block(blocks[-1].header, [job_accept(FAUCET, 2, post.txid)]))  # settled at 3
    blocks += build_chain(blocks[-1].header, 2 + 2 * WINDOW - 3)
    submit_all(chain, blocks)
    assert chain.tip.height == 2 + 2 * WINDOW and chain.job(post.txid).status == SETTLED
    market = JobMarket(chain, MatrixStore(tmp_path / "matrices", chain.network, 1 << 30))
    a, b = job_matrices()
    stored = {market.store.put("A", a).key, market.store.put("B", b).key}
    assert market.prune() == []  # a window has not passed since the claim's window
    submit_all(chain, build_chain(blocks[-1].header, 1))
    again = job_post(FAUCET, 3, reward=1000, expiry=500)  # the same A and B, posted anew
    assert market.prune([again.payload]) == []  # the post waits in the mempool
    assert set(market.prune()) == stored and market.store.entries() == []  # 477 blocks before the expiry
