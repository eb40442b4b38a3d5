"""The job key index (docs/storage.md, ``K``): H_A, H_B and claim → job, kept with the chain
state through connects, reorgs, reindex and the schema-2 migration; the node's market
reads it instead of scanning the jobs."""
from __future__ import annotations

import os

import plyvel

from consensus import encoding as enc
from consensus.state import CLAIMED, NO_CLAIM
from node.market import JobMarket
from node.matrices import MatrixStore
from node.store import JOB_KEYS, VERSION

from .helpers import FAUCET, build_chain, genesis_header, job_dims, job_post, job_result, key, make_block, transfer
from .test_chain import submit_all

ALICE, BOB = key(1), key(2)


def index_of(chain) -> dict[bytes, bytes]:
    return chain.store.dump((JOB_KEYS,))


def expected_index(chain) -> dict[bytes, bytes]:
    """The index rebuilt from the job records themselves."""
    out = {}
    for job_id, job in chain.tip_state_view().jobs():
        out[JOB_KEYS + job.h_a + job_id] = b"\x00"
        out[JOB_KEYS + job.h_b + job_id] = b"\x01"
        if job.claim != NO_CLAIM:
            out[JOB_KEYS + job.claim + job_id] = b"\x02"
    return out


def two_jobs_and_a_claim(chain):
    """Two jobs on the same matrices (so H_A and H_B name both), the first claimed."""
    first, second = job_post(FAUCET, 0, reward=1000, expiry=40), job_post(FAUCET, 1, reward=900, expiry=40)
    blocks = [make_block(genesis_header(), [first, second, transfer(FAUCET, 2, ALICE.address, 10**6)])]
    claim = job_result(ALICE, 0, first.txid, bond=100)
    blocks.append(make_block(blocks[-1].header, [claim]))
    blocks += build_chain(blocks[-1].header, 2)
    submit_all(chain, blocks)
    return first, second, claim, blocks


def test_index_follows_posts_claims_and_reorgs(chain) -> None:
    first, second, claim, blocks = two_jobs_and_a_claim(chain)
    _, _, _, h_a, h_b = job_dims()
    view = chain.tip_state_view()
    assert view.jobs_naming(h_a) == sorted([(first.txid, "A"), (second.txid, "A")])
    assert view.jobs_naming(h_b) == sorted([(first.txid, "B"), (second.txid, "B")])
    assert view.jobs_naming(claim.payload.claim) == [(first.txid, "C")]
    assert index_of(chain) == expected_index(chain) and len(index_of(chain)) == 5

    chain.invalidate_block(blocks[1].hash)  # the claim is reorged away
    assert chain.tip_state_view().jobs_naming(claim.payload.claim) == []
    assert index_of(chain) == expected_index(chain) and len(index_of(chain)) == 4
    other = job_result(BOB, 0, first.txid, bond=100, h_c=b"\x44" * 32)
    side = [make_block(blocks[0].header, [transfer(FAUCET, 3, BOB.address, 10**6)], nonce=7)]
    side.append(make_block(side[-1].header, [other], nonce=7))
    side += build_chain(side[-1].header, 3, nonce=7)
    submit_all(chain, side)
    assert chain.job(first.txid).status == CLAIMED
    assert chain.tip_state_view().jobs_naming(other.payload.claim) == [(first.txid, "C")]
    assert index_of(chain) == expected_index(chain)

    chain.invalidate_block(blocks[0].hash)  # the posts too: nothing is named any more
    assert index_of(chain) == {} and chain.tip_state_view().jobs_naming(h_a) == []
    chain.reconsider_block(blocks[0].hash)
    chain.reconsider_block(blocks[1].hash)
    assert index_of(chain) == expected_index(chain) and len(index_of(chain)) == 5


def test_reindex_rebuilds_the_index(chain) -> None:
    two_jobs_and_a_claim(chain)
    before = index_of(chain)
    chain.reindex()
    assert index_of(chain) == before == expected_index(chain)


def test_schema_2_datadir_gets_the_index_on_open(open_chain, tmp_path) -> None:
    chain = open_chain()
    two_jobs_and_a_claim(chain)
    before = index_of(chain)
    chain.close()
    db = plyvel.DB(os.path.join(tmp_path, "regtest", "chain"))
    for record in db.iterator(prefix=JOB_KEYS, include_value=False):
        db.delete(record)
    db.put(VERSION, enc.encode(2))
    db.close()
    reopened = open_chain()
    assert index_of(reopened) == before
    assert enc.decode(reopened.store.db.get(VERSION), enc.U32, 16, "version") == 3


def test_market_finds_jobs_by_key_through_the_index(chain, tmp_path) -> None:
    first, second, claim, _ = two_jobs_and_a_claim(chain)
    _, _, _, h_a, h_b = job_dims()
    market = JobMarket(chain, MatrixStore(tmp_path / "matrices", chain.network, 1 << 20))
    assert market.job_naming(h_a)[2] == "A" and market.job_naming(h_b)[2] == "B"
    assert market.job_naming(h_a)[0] in (first.txid, second.txid)
    job_id, job, kind = market.job_naming(claim.payload.claim)
    assert (job_id, kind, job.status) == (first.txid, "C", CLAIMED)
    assert market.job_naming(b"\x55" * 32) is None


def test_market_stats_are_computed_once_per_tip(chain, tmp_path) -> None:
    _, _, _, blocks = two_jobs_and_a_claim(chain)
    market = JobMarket(chain, MatrixStore(tmp_path / "matrices", chain.network, 1 << 20))
    walks = []
    figures = market._chain_figures
    market._chain_figures = lambda tip, window: walks.append((tip, window)) or figures(tip, window)
    first = market.stats()
    assert market.stats() == first and walks == [(4, 1000)]
    assert first["jobs"]["claimed"] == 1 and first["jobs"]["open"] == 1
    market.stats(2)
    ended = market.stats(2, 3)
    assert (ended["first"], ended["last"]) == (2, 3)
    submit_all(chain, build_chain(blocks[-1].header, 1))
    assert market.stats()["window"] == 5 and walks == [(4, 1000), (4, 2), (3, 2), (5, 1000)]
