"""The state root in the node (PROTOCOL §3a): the store keeps the tip's LtHash lanes from each
block's diff, restores them from undo data on a reorg, and ``getstateinfo``'s summary balances."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from consensus.lthash import LtHash
from consensus.params import REGTEST
from consensus.state import state_records
from node.chain import ACCEPTED, INVALID
from node.stateinfo import state_info, tip_facts
from node.store import LANES

from .helpers import (FAUCET, genesis_header, job_accept, job_post, job_result, key, make_block, tracker,
                      transfer)

KEYS = [FAUCET] + [key(i) for i in range(1, 4)]


def assert_store_consistent(chain) -> dict:
    """Stored lanes = a recomputation from the stored records = the tip header's root; supply balances."""
    view = chain.tip_state_view()
    recomputed = LtHash.of(state_records(view.accounts(), view.jobs()))
    assert chain.store.dump([LANES])[LANES] == recomputed.to_bytes()
    assert recomputed.root() == chain.tip.header.state_root
    info = state_info(REGTEST, tip_facts(chain), chain.tip_state_view(), verify=True)
    assert info["verified"] and info["supply_balanced"] and info["lanes_match_header"], info
    return info


def test_template_root_and_state_info(chain) -> None:
    post = job_post(FAUCET, 0, reward=5000, expiry=40)
    b1 = make_block(genesis_header(), [post, transfer(FAUCET, 1, KEYS[1].address, 10**6, fee=7)])
    assert chain.submit_block(b1).status == ACCEPTED
    b2 = make_block(b1.header, [job_result(KEYS[1], 0, post.txid, bond=500)])
    assert chain.submit_block(b2).status == ACCEPTED
    info = assert_store_consistent(chain)
    assert info["jobs"]["claimed"] == 1 and info["accounts"] == 2
    assert info["total_escrow"] == 5500 and info["pending_fees"] == 1 + 7 + 1 and info["total_burned"] == 0
    assert chain.state_root_after([]) == make_block(b2.header).header.state_root


def test_block_with_a_wrong_state_root_is_invalid(chain) -> None:
    bad = make_block(genesis_header(), [transfer(FAUCET, 0, KEYS[1].address, 5)], state_root=b"\x01" * 32)
    result = chain.submit_block(bad)
    assert (result.status, result.reason) == (INVALID, "bad-state-root")
    assert chain.tip.height == 0
    assert_store_consistent(chain)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32))
def test_random_trees_keep_stored_lanes_exact(open_chain, tmp_path_factory, seed: int) -> None:
    """Random block trees (transfers, job posts, claims, accepts, lapses, refunds) submitted in
    random order, so the tip reorganises back and forth (and the odd invalid block is rejected):
    after every submission the stored lanes
    equal a full recomputation and the supply balances."""
    rng = random.Random(seed)
    chain = open_chain(tmp_path_factory.mktemp("tree"))
    blocks = [genesis_header()]
    built = []
    for _ in range(40):
        parent = blocks[-1] if rng.random() < 0.7 else rng.choice(blocks[-6:])
        state = tracker().state_at(parent)
        txs = []
        for sender in rng.sample(KEYS, 2):
            acct = state.account(sender.address)
            if acct is None or acct.balance < 10**4:
                continue
            roll = rng.random()
            if roll < 0.5:
                txs.append(transfer(sender, acct.nonce, rng.choice(KEYS).address,
                                    rng.randint(1, acct.balance // 2)))
            elif roll < 0.7:
                txs.append(job_post(sender, acct.nonce, reward=rng.randint(1, 5000),
                                    expiry=parent.height + rng.randint(2, 15)))
            elif roll < 0.8:
                claimed = [j for j, job in sorted(state.jobs.items()) if job.status == 1
                           and job.poster == sender.address]
                if claimed:
                    txs.append(job_accept(sender, acct.nonce, rng.choice(claimed)))
            else:
                open_jobs = [j for j, job in sorted(state.jobs.items()) if job.status == 0
                             and job.expiry > parent.height]
                if open_jobs:
                    job_id = rng.choice(open_jobs)
                    txs.append(job_result(sender, acct.nonce, job_id, bond=-(-state.jobs[job_id].reward // 10)))
        block = make_block(parent, txs, nonce=rng.randrange(1 << 30))
        if tracker().state_at(block.header) is not None:  # else invalid (two claims on one job): no children
            blocks.append(block.header)
        built.append(block)
    rng.shuffle(built)
    for block in built:
        chain.submit_block(block)
        assert_store_consistent(chain)
