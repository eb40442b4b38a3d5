"""Chain manager: connect, reorganise, invalid branches, orphans, rewards, queries (PROTOCOL §4-§7)."""
from __future__ import annotations

from dataclasses import replace

from consensus.block import Block
from consensus.genesis import genesis_block
from consensus.params import REGTEST, subsidy
from consensus.state import CLAIMED, REFUNDED, Account
from node.blockindex import FAILED, FAILED_CHILD, VALID
from node.chain import ACCEPTED, DUPLICATE, FUTURE, INVALID, ORPHAN, ChainEvent

from .conftest import NOW
from .helpers import FAUCET, build_chain, genesis_header, job_post, job_result, key, make_block, transfer

ALICE, BOB = key(1), key(2)
MINER_A, MINER_B = b"\xaa" * 20, b"\xbb" * 20
MATURITY = REGTEST.coinbase_maturity


def submit_all(chain, blocks):
    results = [chain.submit_block(b) for b in blocks]
    assert all(r.status == ACCEPTED for r in results), results
    return results


def test_genesis_and_faucet(chain):
    assert chain.tip.height == 0
    assert chain.tip.hash == genesis_block(REGTEST).hash
    assert chain.account(FAUCET.address).balance == 10**7 * 10**8
    assert chain.account(ALICE.address) == Account(0, 0)
    assert chain.network is REGTEST


def test_connect_transfer_and_queries(chain):
    tx = transfer(FAUCET, 0, ALICE.address, 500, fee=3)
    b1 = make_block(genesis_header(), [tx])
    res = chain.submit_block(b1)
    assert (res.status, res.tip_changed) == (ACCEPTED, True)
    assert chain.tip.hash == b1.hash and chain.hash_at(1) == b1.hash and chain.hash_at(2) is None
    assert chain.account(ALICE.address).balance == 500
    assert chain.account(FAUCET.address) == Account(10**15 - 503, 1)
    assert chain.tx_location(tx.txid) == (b1.hash, 0)
    assert chain.block(b1.hash) == b1 and chain.block_bytes(b1.hash) == b1.encode()
    assert chain.header(b1.hash) == b1.header
    entry = chain.entry(b1.hash)
    assert entry.fees == 3 and entry.status & VALID and entry.chain_work == 2 * b1.header.block_work
    assert chain.median_time_past() == b1.header.timestamp  # median of [genesis, b1] takes the upper
    assert chain.next_target() == REGTEST.pow_limit
    view = chain.tip_state_view()
    assert view.account(ALICE.address) == Account(500, 0)
    assert chain.submit_block(b1).status == DUPLICATE


def test_short_reorg_undoes_txs_and_notifies_in_order(chain):
    events: list[ChainEvent] = []
    chain.subscribe(events.append)
    tx = transfer(FAUCET, 0, ALICE.address, 700)
    a = [make_block(genesis_header(), [tx], MINER_A)]
    a += build_chain(a[0].header, 2, miner=MINER_A)
    submit_all(chain, a)
    assert chain.account(ALICE.address).balance == 700
    b = build_chain(genesis_header(), 4, miner=MINER_B, nonce=1)
    results = submit_all(chain, b)
    assert [r.tip_changed for r in results] == [False, False, False, True]
    assert chain.tip.hash == b[-1].hash
    assert chain.account(ALICE.address).balance == 0
    assert chain.account(FAUCET.address) == Account(10**15, 0)
    assert chain.tx_location(tx.txid) is None
    kinds = [(e.kind, e.height) for e in events]
    assert kinds[:3] == [("connected", 1), ("connected", 2), ("connected", 3)]
    assert kinds[3:] == [("disconnected", 3), ("disconnected", 2), ("disconnected", 1)] + \
        [("connected", h) for h in range(1, 5)]
    assert [e.block.hash for e in events[6:]] == [x.hash for x in b]


def test_equal_work_keeps_first_seen(chain):
    a = build_chain(genesis_header(), 2, miner=MINER_A)
    b = build_chain(genesis_header(), 2, miner=MINER_B, nonce=1)
    submit_all(chain, a + b)
    assert chain.tip.hash == a[-1].hash
    tips = {t["hash"]: t for t in chain.chain_tips()}
    assert tips[a[-1].hash.hex()]["status"] == "active"
    assert tips[b[-1].hash.hex()] == {"height": 2, "hash": b[-1].hash.hex(), "branchlen": 2,
                                      "status": "valid-headers"}


def test_deep_reorg_back_and_forth(open_chain, tmp_path):
    chain = open_chain()
    a = build_chain(genesis_header(), 110, miner=MINER_A)
    assert all(r.status == ACCEPTED for r in chain.submit_blocks(a))
    rewards_a = chain.account(MINER_A).balance
    assert rewards_a == 100 * subsidy(1)
    b = build_chain(genesis_header(), 121, miner=MINER_B, nonce=1)
    results = chain.submit_blocks(b)
    assert all(r.status == ACCEPTED and r.tip_changed for r in results)
    assert chain.tip.hash == b[-1].hash and chain.tip.height == 121
    assert chain.account(MINER_A).balance == 0  # reorged-away blocks are never paid (§5)
    assert chain.account(MINER_B).balance == 111 * subsidy(1)
    more_a = build_chain(a[-1].header, 15, miner=MINER_A)
    chain.submit_blocks(more_a)
    assert chain.tip.hash == more_a[-1].hash and chain.tip.height == 125
    assert chain.account(MINER_B).balance == 0
    assert chain.account(MINER_A).balance == 115 * subsidy(1)
    chain.close()
    reopened = open_chain()
    assert reopened.tip.hash == more_a[-1].hash
    assert reopened.account(MINER_A).balance == 115 * subsidy(1)
    assert reopened.hash_at(50) == a[49].hash


def test_invalid_block_in_branch_marks_descendants(chain):
    a = build_chain(genesis_header(), 5, miner=MINER_A)
    submit_all(chain, a)
    b = build_chain(genesis_header(), 2, miner=MINER_B, nonce=1)
    bad = make_block(b[-1].header, [transfer(FAUCET, 7, ALICE.address, 1)], MINER_B)  # wrong nonce
    b += [bad] + build_chain(bad.header, 5, miner=MINER_B)
    results = chain.submit_blocks(b)
    assert [r.status for r in results[:2]] == [ACCEPTED] * 2
    assert results[2].status == INVALID and results[2].reason == "bad-tx"
    assert all(r.status == INVALID and r.reason == "bad-prevblk" for r in results[3:])
    assert chain.tip.hash == a[-1].hash
    assert chain.entry(bad.hash).status & FAILED
    assert all(chain.entry(x.hash).status & FAILED_CHILD for x in b[3:])
    tips = {t["hash"]: t["status"] for t in chain.chain_tips()}
    assert tips[b[-1].hash.hex()] == "invalid"
    child = make_block(b[-1].header, (), MINER_B)
    assert chain.submit_block(child).status == INVALID
    assert chain.submit_block(bad).reason == "duplicate-invalid"


def test_failed_reorg_falls_back_to_best_valid_chain(chain):
    events = []
    a = build_chain(genesis_header(), 5, miner=MINER_A)
    submit_all(chain, a)
    chain.subscribe(events.append)
    b = build_chain(genesis_header(), 6, miner=MINER_B, nonce=1)
    bad = make_block(b[-1].header, [transfer(ALICE, 0, BOB.address, 5)], MINER_B)  # no funds
    b += [bad] + build_chain(bad.header, 1, miner=MINER_B)
    results = chain.submit_blocks(b)
    assert chain.tip.hash == b[5].hash  # the valid prefix has more work than chain A
    assert [r.status for r in results] == [ACCEPTED] * 6 + [INVALID, INVALID]
    assert results[6].reason == "bad-tx"
    assert [e.kind for e in events] == ["disconnected"] * 5 + ["connected"] * 6


def test_header_rule_violations_are_remembered(chain):
    g = genesis_header()
    bad_time = make_block(g, timestamp=g.timestamp)  # not after median time past
    res = chain.submit_block(bad_time)
    assert (res.status, res.reason) == (INVALID, "time-too-old")
    assert chain.entry(bad_time.hash).status & FAILED
    child = make_block(bad_time.header)
    assert chain.submit_block(child).reason == "bad-prevblk"
    bad_target = make_block(g, target=REGTEST.pow_limit - 1)
    assert chain.submit_block(bad_target).reason in ("bad-target", "ticket-does-not-win")
    assert chain.tip.height == 0


def test_mutated_body_is_rejected_without_poisoning_the_header(chain):
    good = make_block(genesis_header(), [transfer(FAUCET, 0, ALICE.address, 5)])
    mutated = Block(good.header, good.proof, ())
    res = chain.submit_block(mutated)
    assert (res.status, res.reason) == (INVALID, "bad-tx-root")
    assert chain.entry(good.hash) is None
    assert chain.submit_block(good).status == ACCEPTED


def test_undecodable_bytes_are_invalid(chain):
    res = chain.submit_block(b"\x93\x01\x02")
    assert res.status == INVALID and res.reason == "decode"
    raw = make_block(genesis_header()).encode()
    assert chain.submit_block(raw).status == ACCEPTED


def test_future_block_is_held_and_retried(open_chain):
    clock = [NOW]
    chain = open_chain(now=lambda: clock[0])
    g = genesis_header()
    early = make_block(g, timestamp=NOW + REGTEST.future_time_limit + 1)
    res = chain.submit_block(early)
    assert res.status == FUTURE and chain.entry(early.hash) is None
    assert chain.retry_future()[0].status == FUTURE
    clock[0] += 10
    assert chain.retry_future()[0].status == ACCEPTED
    assert chain.tip.hash == early.hash


def test_orphans_connect_when_parent_arrives(chain):
    blocks = build_chain(genesis_header(), 6)
    for b in reversed(blocks[1:]):
        assert chain.submit_block(b).status == ORPHAN
    assert chain.orphan_roots() == [blocks[0].hash]
    assert chain.submit_block(blocks[3]).status == DUPLICATE
    res = chain.submit_block(blocks[0])
    assert res.status == ACCEPTED and res.tip_changed
    assert chain.tip.hash == blocks[-1].hash
    assert chain.orphan_roots() == []


def test_orphan_pool_is_bounded(open_chain):
    blocks = build_chain(genesis_header(), 8)
    size = len(blocks[1].encode())
    chain = open_chain(waiting_count=4, waiting_bytes=3 * size + 10)
    for b in blocks[1:]:
        assert chain.submit_block(b).status == ORPHAN
    assert len(chain._waiting) == 3  # the byte bound bites before the count bound
    chain.submit_block(blocks[0])
    assert chain.tip.height == 1  # the evicted middle of the chain is missing
    chain.submit_blocks(blocks[1:5])
    assert chain.tip.hash == blocks[-1].hash


def test_headers_first_then_blocks(chain):
    blocks = build_chain(genesis_header(), 4)
    for b in blocks:
        assert chain.add_header(b.header).status == ACCEPTED
    assert chain.add_header(blocks[0].header).status == DUPLICATE
    assert chain.tip.height == 0
    tips = chain.chain_tips()
    assert tips[0]["status"] == "headers-only" and tips[0]["height"] == 4
    chain.submit_block(blocks[2])  # stored, waiting for its ancestors' data
    assert chain.tip.height == 0
    chain.submit_blocks([blocks[0], blocks[1], blocks[3]])
    assert chain.tip.hash == blocks[-1].hash


def test_header_with_unknown_parent_is_orphan(chain):
    blocks = build_chain(genesis_header(), 2)
    assert chain.add_header(blocks[1].header).status == ORPHAN


def test_invalidate_and_reconsider(chain):
    a = build_chain(genesis_header(), 5, miner=MINER_A)
    b = build_chain(genesis_header(), 4, miner=MINER_B, nonce=1)
    submit_all(chain, a)
    chain.submit_blocks(b)
    assert chain.tip.hash == a[-1].hash
    chain.invalidate_block(a[2].hash)
    assert chain.tip.hash == b[-1].hash
    assert chain.entry(a[2].hash).status & FAILED and chain.entry(a[4].hash).status & FAILED_CHILD
    chain.invalidate_block(b[0].hash)
    assert chain.tip.hash == a[1].hash
    chain.reconsider_block(a[4].hash)  # clears the ancestor's mark too
    assert chain.tip.hash == a[-1].hash
    chain.reconsider_block(b[0].hash)
    assert chain.tip.hash == a[-1].hash
    assert not chain.entry(b[-1].hash).failed


def test_reconsidered_invalid_block_fails_again(chain):
    bad = make_block(genesis_header(), [transfer(ALICE, 0, BOB.address, 1)])
    assert chain.submit_block(bad).status == INVALID
    chain.reconsider_block(bad.hash)
    assert chain.tip.height == 0 and chain.entry(bad.hash).status & FAILED


def test_deferred_reward_after_maturity(chain):
    tx = transfer(FAUCET, 0, ALICE.address, 10, fee=25)
    first = make_block(genesis_header(), [tx], MINER_A)
    submit_all(chain, [first])
    rest = build_chain(first.header, MATURITY - 1, miner=MINER_B)
    submit_all(chain, rest)
    assert chain.account(MINER_A).balance == 0
    assert chain.immature_rewards(MINER_A) == [(1, subsidy(1) + 25)]
    submit_all(chain, build_chain(rest[-1].header, 1, miner=MINER_B))
    assert chain.account(MINER_A).balance == subsidy(1) + 25
    assert chain.immature_rewards(MINER_A) == []
    assert len(chain.immature_rewards(MINER_B)) == MATURITY


def test_no_reward_for_reorged_away_block(chain):
    a = build_chain(genesis_header(), MATURITY, miner=MINER_A)
    submit_all(chain, a)
    b = build_chain(genesis_header(), MATURITY + 3, miner=MINER_B, nonce=1)
    chain.submit_blocks(b)
    assert chain.account(MINER_A).balance == 0
    assert chain.account(MINER_B).balance == 3 * subsidy(1)
    assert chain.immature_rewards(MINER_A) == []


def state_dump(chain):
    return chain.store.dump()


def test_undo_is_exact_with_jobs(chain):
    """Connect + disconnect restores every account, job and due-index record byte for byte."""
    base = build_chain(genesis_header(), 2)
    submit_all(chain, base)
    before = state_dump(chain)
    post = job_post(FAUCET, 0, reward=1000, expiry=20)
    blocks = [make_block(base[-1].header, [post, transfer(FAUCET, 1, ALICE.address, 10**6)])]
    claim = job_result(ALICE, 0, post.txid, bond=100)
    blocks.append(make_block(blocks[-1].header, [claim, transfer(FAUCET, 2, BOB.address, 9)]))
    blocks += build_chain(blocks[-1].header, 3)
    submit_all(chain, blocks)
    assert chain.job(post.txid).status == CLAIMED
    chain.invalidate_block(blocks[0].hash)
    assert chain.tip.hash == base[-1].hash
    assert state_dump(chain) == before


def test_due_index_counts_duplicate_entries(chain):
    """A claim whose settlement height equals the job's expiry shares its due key; undoing the
    claim must not drop the expiry refund (docs/storage.md, due index)."""
    post = job_post(FAUCET, 0, reward=1000, expiry=12)
    b1 = make_block(genesis_header(), [post, transfer(FAUCET, 1, ALICE.address, 10**6)])
    claim = job_result(ALICE, 0, post.txid, bond=100)
    b2 = make_block(b1.header, [claim])  # settles at 2 + 10 = 12 = expiry
    submit_all(chain, [b1, b2])
    balance = chain.account(FAUCET.address).balance
    chain.invalidate_block(b2.hash)
    assert chain.job(post.txid).status == 0
    side = build_chain(b1.header, 11, nonce=5)
    submit_all(chain, side)
    assert chain.tip.height == 12
    assert chain.job(post.txid).status == REFUNDED
    assert chain.account(FAUCET.address).balance == balance + 1000


def test_useful_block_names_a_job(chain):
    post = job_post(FAUCET, 0, reward=1000, expiry=50)
    b1 = make_block(genesis_header(), [post])
    submit_all(chain, [b1])
    useful = make_block(b1.header, job_id=post.txid)
    assert chain.submit_block(useful).status == ACCEPTED
    unknown = make_block(useful.header, job_id=b"\x44" * 32)
    res = chain.submit_block(unknown)
    assert (res.status, res.reason) == (INVALID, "unknown-job")


def test_locator_and_headers_after(chain):
    blocks = build_chain(genesis_header(), 30)
    chain.submit_blocks(blocks)
    loc = chain.locator()
    heights = [chain.entry(h).height for h in loc]
    assert heights[:10] == list(range(30, 20, -1)) and heights[-1] == 0
    assert heights == sorted(heights, reverse=True) and len(loc) < 20
    got = chain.headers_after([blocks[9].hash], bytes(32))
    assert [h.height for h in got] == list(range(11, 31))
    assert [h.height for h in chain.headers_after([b"\x01" * 32], blocks[4].hash)] == [1, 2, 3, 4, 5]
    assert len(chain.headers_after([], bytes(32), limit=7)) == 7
    side = make_block(genesis_header(), nonce=9)
    chain.submit_block(side)
    assert chain.headers_after([side.hash, blocks[27].hash], bytes(32))[0].height == 29
    assert chain.headers_after([blocks[-1].hash], bytes(32)) == []


def test_listener_errors_do_not_break_the_chain(chain):
    def boom(event):
        raise RuntimeError("listener bug")
    seen = []
    chain.subscribe(boom)
    unsubscribe = chain.subscribe(seen.append)
    submit_all(chain, build_chain(genesis_header(), 2))
    unsubscribe()
    submit_all(chain, build_chain(chain.tip.header, 1))
    assert [e.height for e in seen] == [1, 2]


def test_signatures_checked_in_worker_processes(open_chain):
    chain = open_chain(tx_workers=2)
    txs = [transfer(FAUCET, i, ALICE.address, 1) for i in range(12)]
    forged = replace(txs[9], signature=bytes(64), _txid=None)
    bad = make_block(genesis_header(), txs[:9] + [forged] + txs[10:])
    res = chain.submit_block(bad)
    assert (res.status, res.reason) == (INVALID, "bad-tx")
    assert res.detail.startswith(f"bad-tx: tx 9 ({forged.txid.hex()}): bad-signature")  # the tx's code, from a worker
    good = make_block(genesis_header(), txs, nonce=1)
    assert chain.submit_blocks([good])[0].status == ACCEPTED
    assert chain.account(ALICE.address).balance == 12
