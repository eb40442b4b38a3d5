"""node.mempool: admission, nonce queues, replacement, eviction, expiry, templates, reorgs."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.block import EMPTY_PROOF, HEADER_VERSION, Block, Header, Ticket, WorkSpec, tx_root
from consensus.errors import InvalidTx
from consensus.keys import PrivateKey, address_of
from consensus.params import MAIN, MAX_TARGET, REGTEST
from consensus.memstate import MemoryState
from consensus.state import Account, Job, Overlay, StateDiff, apply_effects, apply_tx, matured_payout
from consensus.tx import JobPost, JobResult, Transfer, Tx, make_tx
from node.events import TX_REMOVED, TxRemoved
from node.mempool import Mempool, MempoolPolicy, MempoolPolicyError, PolicyReason
from node.mempoolkeep import KeptMempool
from node.store import Store, StoreError

NET = REGTEST
FEE = 1_000
SINK = b"\xee" * 20
DAY = 24 * 3600.0


def key(i: int) -> PrivateKey:
    return PrivateKey(bytes([i]) * 32)


def addr(k: PrivateKey) -> bytes:
    return address_of(k.pubkey)


def pay(k: PrivateKey, nonce: int, amount: int = 1_000, fee: int = FEE, to: bytes = SINK,
        chain_id: int = NET.chain_id) -> Tx:
    return make_tx(k, chain_id, nonce, fee, Transfer(to, amount))


class FakeChain(MemoryState):
    """A dict-backed StateView with a tip; blocks connect and disconnect through consensus.apply_effects."""

    def __init__(self, balances: dict[bytes, int]) -> None:
        super().__init__(NET, {a: Account(b, 0) for a, b in balances.items()})
        self.height = 0
        self.blocks: list[tuple[Block, StateDiff]] = []

    def block_payout(self, height: int) -> tuple[bytes, int]:
        return bytes(20), 0

    def tip(self) -> tuple[FakeChain, int]:
        return self, self.height + 1

    def _write(self, diff: StateDiff) -> None:
        self.apply(diff)

    def connect(self, txs: list[Tx]) -> Block:
        height = self.height + 1
        diff, undo = apply_effects(self, txs, height, NET, matured_payout(self, height, NET))
        header = Header(HEADER_VERSION, NET.chain_id, height, bytes(32), 0, MAX_TARGET, tx_root(txs),
                        diff.state_root, bytes(20), 0, WorkSpec(32, 32, 64, 16, bytes(32), bytes(32)),
                        Ticket(0, 0, bytes(32)))
        block = Block(header, EMPTY_PROOF, tuple(txs))
        self._write(diff)
        self.height += 1
        self.blocks.append((block, undo))
        return block

    def disconnect(self) -> Block:
        block, undo = self.blocks.pop()
        self._write(undo)
        self.height -= 1
        return block


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


A, B, C = key(1), key(2), key(3)


@pytest.fixture
def chain() -> FakeChain:
    return FakeChain({addr(A): 1_000_000, addr(B): 1_000_000, addr(C): 1_000_000})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(chain: FakeChain, clock: Clock) -> Mempool:
    return Mempool(NET, chain.tip, clock=clock)


def reject(pool: Mempool, tx: Tx, reason: str) -> None:
    """``pool.add(tx)`` fails with ``reason``: a policy refusal, or else a broken consensus rule."""
    error = MempoolPolicyError if reason in {r.value for r in PolicyReason} else InvalidTx
    with pytest.raises(error) as exc:
        pool.add(tx)
    assert exc.value.code == reason, exc.value


def mine(pool: Mempool, chain: FakeChain, txs: list[Tx]) -> Block:
    block = chain.connect(txs)
    pool.on_block_connected(block)
    return block


# --- admission ---------------------------------------------------------------------

def test_accept_and_queries(pool: Mempool) -> None:
    tx = pay(A, 0)
    assert pool.add(tx) == [tx]
    assert tx.txid in pool and pool.get(tx.txid) == tx and pool.txids() == [tx.txid]
    assert pool.txs(Transfer) == [tx] and pool.txs(JobPost, JobResult) == []  # by payload kind
    assert pool.txs_by_sender(addr(A)) == [tx] and pool.txs_by_sender(addr(B)) == []
    assert pool.pending_nonce(addr(A)) == 1 and pool.pending_nonce(addr(B)) == 0
    info = pool.info()
    size = len(tx.encode())
    assert (info["size"], info["bytes"], info["future"]) == (1, size, 0)
    assert info["usage"] == size / MempoolPolicy().max_bytes
    assert info["min_fee_per_byte"] == 1 and info["lowest_fee_rate"] == FEE / size


def test_rejects_duplicate_bad_signature_and_wrong_chain(pool: Mempool) -> None:
    tx = pay(A, 0)
    pool.add(tx)
    reject(pool, tx, "duplicate")
    reject(pool, replace(pay(B, 0), signature=bytes(64), _txid=None), "bad-signature")
    reject(pool, replace(pay(B, 0), fee=FEE + 1, _txid=None), "bad-signature")  # tampered after signing
    reject(pool, pay(B, 0, chain_id=MAIN.chain_id), "bad-chain-id")  # cross-chain replay
    assert len(pool) == 1


def test_rejects_low_fee_and_policy_is_per_byte(chain: FakeChain) -> None:
    tx = pay(A, 0, fee=100)
    size = len(tx.encode())
    reject(Mempool(NET, chain.tip), tx, "fee-too-low")
    assert Mempool(NET, chain.tip, MempoolPolicy(min_fee_per_byte=0)).add(tx) == [tx]
    reject(Mempool(NET, chain.tip, MempoolPolicy(min_fee_per_byte=2)), pay(A, 0, fee=2 * size - 1), "fee-too-low")


def test_rejects_insufficient_funds_including_pooled_spends(pool: Mempool) -> None:
    reject(pool, pay(A, 0, amount=1_000_000), "insufficient-funds")  # fee on top
    pool.add(pay(A, 0, amount=600_000))
    reject(pool, pay(A, 1, amount=400_000), "insufficient-funds")  # after the pooled spend
    pool.add(pay(A, 1, amount=400_000 - 2 * FEE))
    assert pool.pending_nonce(addr(A)) == 2


def test_rejects_used_nonce_and_double_spend(pool: Mempool, chain: FakeChain) -> None:
    confirmed = pay(A, 0)
    mine(pool, chain, [confirmed])
    reject(pool, confirmed, "nonce-too-old")
    reject(pool, pay(A, 0, to=b"\x01" * 20), "nonce-too-old")  # same nonce, other tx: a double spend
    reject(pool, pay(C, 0, amount=0), "bad-amount")  # consensus reasons pass through


# --- nonce queues ------------------------------------------------------------------

def test_future_txs_held_then_promoted_when_gap_fills(pool: Mempool) -> None:
    t0, t1, t2 = pay(A, 0), pay(A, 1), pay(A, 2)
    assert pool.add(t2) == [] and pool.add(t1) == []
    assert pool.info()["future"] == 2 and pool.pending_nonce(addr(A)) == 0
    assert pool.select_for_block(1 << 20) == []
    assert pool.add(t0) == [t0, t1, t2]
    assert pool.info()["future"] == 0 and pool.pending_nonce(addr(A)) == 3
    assert pool.select_for_block(1 << 20) == [t0, t1, t2]


def test_future_promoted_by_block_from_elsewhere(pool: Mempool, chain: FakeChain) -> None:
    t1 = pay(A, 1)
    pool.add(t1)
    mine(pool, chain, [pay(A, 0)])  # nonce 0 confirmed without passing through this pool
    assert pool.pending_nonce(addr(A)) == 2 and pool.select_for_block(1 << 20) == [t1]


def test_future_promotion_drops_a_tx_that_no_longer_applies(pool: Mempool) -> None:
    pool.add(pay(A, 1, amount=600_000))
    t0 = pay(A, 0, amount=600_000)
    assert pool.add(t0) == [t0]  # nonce 1 cannot be paid for after nonce 0
    assert pool.txs_by_sender(addr(A)) == [t0]


def test_future_bounds(chain: FakeChain) -> None:
    policy = MempoolPolicy(max_nonce_gap=4, max_future_per_account=2, max_future=3, max_account_txs=4)
    pool = Mempool(NET, chain.tip, policy)
    reject(pool, pay(A, 5), "nonce-gap-too-large")
    pool.add(pay(A, 3))
    pool.add(pay(A, 4))
    reject(pool, pay(A, 2), "future-queue-full")  # per account
    pool.add(pay(B, 2))
    reject(pool, pay(C, 2), "future-queue-full")  # global
    pool.add(pay(A, 0))
    pool.add(pay(A, 1))
    assert pool.pending_nonce(addr(A)) == 2 and pool.info()["future"] == 3
    a2 = pay(A, 2)
    assert [t.nonce for t in pool.add(a2)] == [2, 3]  # the account is full: nonce 4 makes room
    assert [t.nonce for t in pool.txs_by_sender(addr(A))] == [0, 1, 2, 3] and pool.info()["future"] == 1
    reject(pool, pay(A, 4), "account-queue-full")
    pool2 = Mempool(NET, chain.tip, policy)
    for n in range(4):
        pool2.add(pay(A, n))
    reject(pool2, pay(A, 4), "account-queue-full")


# --- replacement ---------------------------------------------------------------------

def test_replacement_needs_fee_margin(pool: Mempool) -> None:
    old = pay(A, 0)
    pool.add(old)
    reject(pool, pay(A, 0, fee=FEE * 109 // 100), "replacement-fee-too-low")
    new = pay(A, 0, fee=FEE * 110 // 100)
    assert pool.add(new) == [new]
    assert old.txid not in pool and pool.txs_by_sender(addr(A)) == [new]
    future = pay(A, 5)
    pool.add(future)
    reject(pool, pay(A, 5, fee=FEE + 1), "replacement-fee-too-low")
    bumped = pay(A, 5, fee=2 * FEE)
    assert pool.add(bumped) == [] and future.txid not in pool and bumped.txid in pool


def test_replacement_must_itself_apply_and_drops_unaffordable_followers(pool: Mempool) -> None:
    t0 = pay(A, 0, amount=400_000)
    t1 = pay(A, 1, amount=500_000)
    t2 = pay(A, 2, amount=1_000)
    for t in (t0, t1, t2):
        pool.add(t)
    t2b = pay(A, 2, amount=1_000, fee=2 * FEE)
    assert pool.add(t2b) == [t2b]
    reject(pool, pay(A, 0, amount=999_999, fee=2 * FEE), "insufficient-funds")
    assert pool.txs_by_sender(addr(A)) == [t0, t1, t2b]
    bigger = pay(A, 0, amount=500_000, fee=2 * FEE)  # t1 no longer fits the balance
    pool.add(bigger)
    assert pool.txs_by_sender(addr(A)) == [bigger, t2b]  # t2b waits as future behind the gap
    assert pool.pending_nonce(addr(A)) == 1 and pool.info()["future"] == 1


# --- size limit and eviction ------------------------------------------------------

def test_eviction_by_fee_rate_under_size_limit(chain: FakeChain) -> None:
    size = len(pay(A, 0).encode())
    pool = Mempool(NET, chain.tip, MempoolPolicy(max_bytes=3 * size))
    low, mid, high = pay(A, 0, fee=1_000), pay(B, 0, fee=2_000), pay(C, 0, fee=3_000)
    for t in (low, mid, high):
        pool.add(t)
    richer = pay(A, 1, fee=2_500)  # A's own chain: its tail goes before its head could
    pool.add(richer)
    assert set(pool.txids()) == {low.txid, richer.txid, high.txid}  # mid was the lowest tail
    assert pool.txids(2) == pool.txids()[:2] and pool.txids(0) == []  # what a new peer is told, bounded
    reject(pool, pay(B, 0, fee=1_500), "mempool-full")
    assert set(pool.txids()) == {low.txid, richer.txid, high.txid}
    better = pay(B, 0, fee=2_700)
    pool.add(better)  # A's tail goes; its head stays
    assert set(pool.txids()) == {low.txid, high.txid, better.txid}
    assert {t.txid for t in pool.txs(Transfer)} == set(pool.txids())  # the kind index lost the evicted
    assert pool.info()["bytes"] <= 3 * size and pool.pending_nonce(addr(A)) == 1


def test_eviction_takes_the_tail_not_a_cheap_head(chain: FakeChain) -> None:
    size = len(pay(A, 0).encode())
    pool = Mempool(NET, chain.tip, MempoolPolicy(max_bytes=3 * size))
    head, tail, other = pay(A, 0, fee=1_000), pay(A, 1, fee=5_000), pay(B, 0, fee=2_000)
    for t in (head, tail, other):
        pool.add(t)
    newcomer = pay(C, 0, fee=3_000)
    pool.add(newcomer)  # A's head is the cheapest but its tail outbids: B's tx goes
    assert set(pool.txids()) == {head.txid, tail.txid, newcomer.txid}
    assert pool.select_for_block(1 << 20) == [newcomer, head, tail]


def test_eviction_index_stays_small(pool: Mempool, chain: FakeChain) -> None:
    for n in range(1_100):  # each tx leaves a stale entry in the eviction heap
        tx = pay(A, n, amount=1, fee=300)
        pool.add(tx)
        mine(pool, chain, [tx])
    assert len(pool._tails) <= 1_100 - 1_024 + 2  # compacted along the way


# --- expiry ---------------------------------------------------------------------------

def test_expiry_by_clock(pool: Mempool, chain: FakeChain, clock: Clock) -> None:
    old0 = pay(A, 0)
    pool.add(old0)
    clock.now += 10 * DAY
    young1, young_b = pay(A, 1), pay(B, 0)
    pool.add(young1)
    pool.add(young_b)
    clock.now += 4 * DAY + 1
    assert pool.expire() == 1
    assert old0.txid not in pool and young1.txid in pool  # kept, but now behind a gap
    assert pool.pending_nonce(addr(A)) == 0 and pool.select_for_block(1 << 20) == [young_b]
    clock.now += 14 * DAY
    mine(pool, chain, [])  # expiry also runs on each block
    assert len(pool) == 0


# --- tx-removed events -----------------------------------------------------------------

def test_every_removal_is_published_with_its_reason(pool: Mempool, chain: FakeChain, clock: Clock) -> None:
    heard: list[TxRemoved] = []
    pool.subscribe(heard.append, (TX_REMOVED,))
    a0, a0b = pay(A, 0), pay(A, 0, fee=2 * FEE)
    b0, b1 = pay(B, 0, amount=400_000), pay(B, 1, amount=500_000)
    richer_b0 = pay(B, 0, amount=700_000, fee=2 * FEE)  # b1 no longer fits the balance
    for tx in (a0, a0b, b0, b1, richer_b0):
        pool.add(tx)
    mine(pool, chain, [a0b])
    a1 = pay(A, 1)
    pool.add(a1)
    mine(pool, chain, [pay(A, 1, amount=7)])  # another tx used a1's nonce
    c0 = pay(C, 0)
    pool.add(c0)
    clock.now += 15 * DAY
    assert pool.expire() == 2  # c0 and the B tx still pooled
    assert heard == [TxRemoved(a0.txid, "replaced"), TxRemoved(b0.txid, "replaced"),
                     TxRemoved(b1.txid, "conflicted"), TxRemoved(a0b.txid, "mined"),
                     TxRemoved(a1.txid, "conflicted"), TxRemoved(richer_b0.txid, "expired"),
                     TxRemoved(c0.txid, "expired")]
    assert len(pool) == 0


def test_evictions_are_published_but_a_refused_newcomer_is_not(chain: FakeChain) -> None:
    size = len(pay(A, 0).encode())
    pool = Mempool(NET, chain.tip, MempoolPolicy(max_bytes=2 * size))
    heard: list[TxRemoved] = []
    pool.subscribe(heard.append, (TX_REMOVED,))
    low, high, mid = pay(A, 0, fee=1_000), pay(B, 0, fee=3_000), pay(C, 0, fee=2_000)
    for tx in (low, high, mid):
        pool.add(tx)
    reject(pool, pay(A, 0, fee=1_500), "mempool-full")
    assert heard == [TxRemoved(low.txid, "evicted")]
    assert set(pool.txids()) == {high.txid, mid.txid}


# --- block templates ---------------------------------------------------------------

def test_template_prefers_fee_rate_and_keeps_nonce_order(pool: Mempool) -> None:
    a0, a1 = pay(A, 0, fee=1_000), pay(A, 1, fee=9_000)
    b0, b1 = pay(B, 0, fee=5_000), pay(B, 1, fee=2_000)
    c0 = pay(C, 0, fee=3_000)
    for t in (a1, a0, b0, b1, c0):
        pool.add(t)
    assert pool.select_for_block(1 << 20) == [b0, c0, b1, a0, a1]
    assert pool.select_for_block(1 << 20, max_count=2) == [b0, c0]
    size = len(b0.encode())
    assert pool.select_for_block(size) == [b0]
    assert pool.select_for_block(size - 1) == []


def test_template_skips_conflicting_job_results(chain: FakeChain) -> None:
    job_id = b"\x42" * 32
    chain.jobs[job_id] = Job(addr(C), 32, 32, 64, b"\x01" * 32, b"\x02" * 32, 1_000, 100)
    pool = Mempool(NET, chain.tip)
    claim_a = make_tx(A, NET.chain_id, 0, 2_000, JobResult(job_id, b"\xaa" * 32, 100))
    claim_b = make_tx(B, NET.chain_id, 0, 3_000, JobResult(job_id, b"\xbb" * 32, 100))
    b_next = pay(B, 1)
    for t in (claim_a, claim_b, b_next):
        pool.add(t)  # each applies on the tip alone
    assert pool.select_for_block(1 << 20) == [claim_b, b_next]
    block = mine(pool, chain, [claim_b])
    assert claim_a.txid not in pool and b_next.txid in pool  # the job is no longer open
    assert block.txs == (claim_b,)


def test_template_applies_in_sequence() -> None:
    chain = FakeChain({addr(A): 10_000, addr(B): 100})
    pool = Mempool(NET, chain.tip, MempoolPolicy(min_fee_per_byte=0))
    for n in range(5):
        pool.add(pay(A, n, amount=1_000, fee=n, to=addr(B)))
    reject(pool, pay(B, 0, amount=1_000, fee=0), "insufficient-funds")  # pooled credits do not count
    pool.add(pay(B, 0, amount=100, fee=0))
    txs = pool.select_for_block(1 << 20)
    state = Overlay(chain)
    for tx in txs:
        apply_tx(state, tx, chain.height + 1, NET)
    assert len(txs) == 6


# --- tip changes ------------------------------------------------------------------------

def test_block_connected_removes_confirmed_and_invalidated(pool: Mempool, chain: FakeChain) -> None:
    a0, a1 = pay(A, 0), pay(A, 1)
    b0, b1 = pay(B, 0, amount=500_000), pay(B, 1, amount=400_000)
    for t in (a0, a1, b0, b1):
        pool.add(t)
    spend = pay(B, 0, amount=900_000, fee=5 * FEE)  # conflicts with b0 and leaves too little for b1
    mine(pool, chain, [a0, spend])
    assert pool.txids() == [a1.txid] and pool.pending_nonce(addr(B)) == 1


def test_block_connected_expires_height_dependent_txs(pool: Mempool, chain: FakeChain) -> None:
    post = make_tx(A, NET.chain_id, 0, 5_000, JobPost(32, 32, 64, b"\x01" * 32, b"\x02" * 32, 10, 3))
    pool.add(post)
    mine(pool, chain, [])
    assert post.txid in pool
    mine(pool, chain, [])  # next height 3 = expiry
    assert post.txid not in pool


def test_credit_from_a_block_is_seen_by_a_pooled_sender(pool: Mempool, chain: FakeChain) -> None:
    pool.add(pay(A, 0, amount=900_000))
    mine(pool, chain, [pay(B, 0, amount=500_000, to=addr(A))])
    pool.add(pay(A, 1, amount=500_000))  # needs the credit from the block
    assert pool.pending_nonce(addr(A)) == 2


def test_block_disconnected_returns_txs(pool: Mempool, chain: FakeChain) -> None:
    a0, a1, a2 = pay(A, 0), pay(A, 1), pay(A, 2)
    for t in (a0, a1, a2):
        pool.add(t)
    mine(pool, chain, pool.select_for_block(1 << 20, max_count=2))
    assert pool.txids() == [a2.txid]
    pool.on_block_disconnected(chain.disconnect())
    assert pool.txs_by_sender(addr(A)) == [a0, a1, a2] and pool.pending_nonce(addr(A)) == 3
    assert pool.select_for_block(1 << 20) == [a0, a1, a2]


def test_block_disconnected_drops_txs_that_spent_an_undone_credit(pool: Mempool, chain: FakeChain) -> None:
    d = key(9)
    mine(pool, chain, [pay(A, 0, amount=50_000, to=addr(d))])
    spend = pay(d, 0, amount=40_000)
    pool.add(spend)
    pool.on_block_disconnected(chain.disconnect())
    assert spend.txid not in pool and pool.txs_by_sender(addr(A))[0].nonce == 0


def test_revalidate_after_unannounced_tip_change(pool: Mempool, chain: FakeChain) -> None:
    pool.add(pay(A, 0))
    chain.connect([pay(A, 0, to=addr(B))])  # the pool is not told
    pool.revalidate()
    assert len(pool) == 0


# --- properties ---------------------------------------------------------------------

KEYS = [key(i) for i in range(11, 14)]
SIGNED: dict[tuple[int, int, int, int], Tx] = {}


def signed(sender: int, nonce: int, amount: int, fee: int) -> Tx:
    k = (sender, nonce, amount, fee)
    if k not in SIGNED:
        SIGNED[k] = pay(KEYS[sender], nonce, amount=amount, fee=fee, to=addr(KEYS[(sender + 1) % 3]))
    return SIGNED[k]


def check_invariants(pool: Mempool, chain: FakeChain) -> None:
    txs = [pool.get(t) for t in pool.txids()]
    assert pool.info()["bytes"] == sum(len(t.encode()) for t in txs if t) <= pool.policy.max_bytes
    state = Overlay(chain)
    future = 0
    for k in KEYS:
        queue = pool.txs_by_sender(addr(k))
        tip_nonce = (chain.account(addr(k)) or Account()).nonce
        ready = pool.pending_nonce(addr(k)) - tip_nonce
        assert [t.nonce for t in queue[:ready]] == list(range(tip_nonce, tip_nonce + ready))
        assert all(t.nonce > tip_nonce + ready for t in queue[ready:])
        future += len(queue) - ready
        for tx in queue[:ready]:
            apply_tx(state, tx, chain.height + 1, NET)
    assert pool.info()["future"] == future
    template = pool.select_for_block(1 << 20)
    state = Overlay(chain)
    for tx in template:
        apply_tx(state, tx, chain.height + 1, NET)


OPS = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(-1, 3), st.integers(1, 200_000),
              st.sampled_from([300, 400, 700, 1_500])),
    st.tuples(st.just("mine"), st.integers(0, 4)),
    st.tuples(st.just("foreign"), st.integers(0, 2), st.integers(1, 200_000)),
    st.tuples(st.just("reorg")),
    st.tuples(st.just("tick")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=30))
def test_pool_stays_consistent(ops: list[tuple]) -> None:
    chain = FakeChain({addr(k): 400_000 for k in KEYS})
    clock = Clock()
    size = len(signed(0, 0, 1, 300).encode())
    pool = Mempool(NET, chain.tip, MempoolPolicy(max_bytes=8 * size, max_age=3 * DAY,
                                                 max_future_per_account=2, max_nonce_gap=3), clock)
    for op in ops:
        if op[0] == "add":
            _, s, offset, amount, fee = op
            try:
                pool.add(signed(s, pool.pending_nonce(addr(KEYS[s])) + offset, amount, fee))
            except (InvalidTx, MempoolPolicyError):
                pass
        elif op[0] == "mine":
            mine(pool, chain, pool.select_for_block(1 << 20, max_count=op[1]))
        elif op[0] == "foreign":
            _, s, amount = op
            nonce = (chain.account(addr(KEYS[s])) or Account()).nonce
            tx = signed(s, nonce, amount, 2_000)
            try:
                apply_tx(Overlay(chain), tx, chain.height + 1, NET)
            except InvalidTx:
                continue
            mine(pool, chain, [tx])
        elif op[0] == "reorg" and chain.blocks:
            pool.on_block_disconnected(chain.disconnect())
        elif op[0] == "tick":
            clock.now += DAY
        check_invariants(pool, chain)


def test_docs_name_every_policy_reason() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert [r.value for r in PolicyReason if f"`{r.value}`" not in docs] == []


# --- kept over a restart (node.mempoolkeep) ------------------------------------------

def kept_again(store: Store, pool: Mempool) -> tuple[int, int]:
    """A restart's load of the kept records into ``pool``: (admitted, dropped)."""
    return asyncio.run(KeptMempool(pool, store).load())


def test_a_pool_kept_at_shutdown_comes_back_in_arrival_order_with_its_ages(chain: FakeChain, clock: Clock,
                                                                           tmp_path: Path) -> None:
    pool = Mempool(NET, chain.tip, clock=clock)
    mined, ready, future = pay(A, 0), pay(B, 0), pay(B, 2)  # B's nonce 1 never came: 2 waits as future
    for tx in (mined, ready, future):
        pool.add(tx)
        clock.now += 60
    store = Store(tmp_path, "regtest")
    try:
        assert asyncio.run(KeptMempool(pool, store).save()) == 3
        store.put_record("mempool", b"\x01" * 32, b"\xc1not a kept tx")
        chain.connect([mined])  # a block took A's tx while the node was down
        clock.now += 3600
        again = Mempool(NET, chain.tip, clock=clock)
        kept = KeptMempool(again, store)
        assert asyncio.run(kept.load()) == (2, 2)  # the unreadable record and the mined tx dropped
        assert [(arrived, tx.txid) for arrived, tx in again.arrivals()] == \
            [(1_800_000_060.0, ready.txid), (1_800_000_120.0, future.txid)]
        assert again.pending_nonce(addr(B)) == 1  # the ready one counts, the future one waits
        assert kept_again(store, Mempool(NET, chain.tip, clock=clock)) == (2, 2)  # kept until the next save
        clock.now = 1_800_000_060 + MempoolPolicy().max_age + 1  # the ready tx's age counted from its arrival
        assert again.expire() == 1 and again.txids() == [future.txid]
        assert asyncio.run(kept.save()) == 1
        assert [txid for txid, _ in store.records("mempool")] == [future.txid]
    finally:
        store.close()


def test_a_burst_kept_within_one_second_comes_back_gapless(chain: FakeChain, clock: Clock, tmp_path: Path) -> None:
    """Arrival times are kept in whole seconds and records come back in txid order: a sender's
    txs of one second are offered in nonce order, or most would wait as future (and past the
    future limit be dropped)."""
    pool = Mempool(NET, chain.tip, clock=clock)
    burst = [pay(A, nonce) for nonce in range(8)]
    for tx in burst:
        pool.add(tx)
    assert sorted(tx.txid for tx in burst) != [tx.txid for tx in burst]  # the store's order is not the nonce order
    store = Store(tmp_path, "regtest")
    try:
        asyncio.run(KeptMempool(pool, store).save())
        again = Mempool(NET, chain.tip, MempoolPolicy(max_future_per_account=1), clock=clock)
        assert kept_again(store, again) == (8, 0)
        assert again.info()["future"] == 0 and again.pending_nonce(addr(A)) == 8
    finally:
        store.close()


def test_kept_txs_load_a_batch_per_turn_of_the_loop_and_expire_in_arrival_order(
        chain: FakeChain, clock: Clock, tmp_path: Path) -> None:
    """The node serves while the kept pool loads; a tx that arrives meanwhile is newer than every
    kept one, and expiry still takes the kept ones first."""
    pool = Mempool(NET, chain.tip, clock=clock)
    kept_txs = [pay(A, nonce) for nonce in range(5)]
    for tx in kept_txs:
        pool.add(tx)
        clock.now += 1
    store = Store(tmp_path, "regtest")
    try:
        asyncio.run(KeptMempool(pool, store).save())
        clock.now += DAY
        again = Mempool(NET, chain.tip, clock=clock)
        kept = KeptMempool(again, store)
        fresh = pay(B, 0)

        async def restart() -> tuple[int, int]:
            loading = asyncio.create_task(kept.load(batch=2))
            turns = 0
            while not again:
                await asyncio.sleep(0)
                turns += 1
            assert turns == 3 and len(again) == 2 and not kept.loaded  # 2 records read a turn, then 2 offered
            again.add(fresh)  # a peer's tx between two batches
            return await loading

        assert asyncio.run(restart()) == (5, 0) and kept.loaded
        assert [tx.txid for _, tx in again.arrivals()] == [tx.txid for tx in kept_txs] + [fresh.txid]
        clock.now = 1_800_000_000 + MempoolPolicy().max_age + 2.5  # the first three kept txs are too old
        assert again.expire() == 3
        assert again.txids() == [kept_txs[3].txid, kept_txs[4].txid, fresh.txid]
    finally:
        store.close()


def test_a_save_before_the_kept_txs_are_all_offered_keeps_them_too(chain: FakeChain, clock: Clock,
                                                                   tmp_path: Path) -> None:
    pool = Mempool(NET, chain.tip, clock=clock)
    for nonce in range(3):
        pool.add(pay(A, nonce))
    store = Store(tmp_path, "regtest")
    try:
        asyncio.run(KeptMempool(pool, store).save())
        again = Mempool(NET, chain.tip, clock=clock)
        assert asyncio.run(KeptMempool(again, store).save()) == 3  # a stop before the load began
        kept = KeptMempool(again, store)

        async def stop_while_reading() -> int:
            loading = asyncio.create_task(kept.load(batch=1))
            await asyncio.sleep(0)  # one record read
            again.add(pay(B, 0))
            loading.cancel()
            return await kept.save()

        assert asyncio.run(stop_while_reading()) == 4 and not kept.loaded
        assert len(list(store.records("mempool"))) == 4
    finally:
        store.close()


def test_kept_records_the_database_cannot_read_on_give_back_what_was_read(chain: FakeChain, clock: Clock,
                                                                          tmp_path: Path) -> None:
    """A damaged table under the kept records (a real LevelDB file, bytes overwritten): the load
    offers what it read before the damage, says so, and the node goes on; a save then refuses
    with the store's reason (which the daemon logs) rather than raise LevelDB's own error."""
    pool = Mempool(NET, chain.tip, clock=clock)
    for nonce in range(200):
        for sender in (A, B):
            pool.add(pay(sender, nonce))
    store = Store(tmp_path, "regtest")
    asyncio.run(KeptMempool(pool, store).save())
    store.db.compact_range()  # into a table file of many blocks
    store.close()
    table = max((tmp_path / "regtest" / "chain").glob("*.ldb"), key=lambda f: f.stat().st_size)
    damaged = bytearray(table.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 4096] = bytes(4096)
    table.write_bytes(damaged)
    store = Store(tmp_path, "regtest")
    try:
        again = Mempool(NET, chain.tip, clock=clock)
        kept = KeptMempool(again, store)
        admitted, dropped = asyncio.run(kept.load())
        assert admitted > 0 and admitted + dropped < 400 and kept.loaded  # read up to the damage, in txid order
        with pytest.raises(StoreError, match="corrupt"):
            asyncio.run(kept.save())
    finally:
        store.close()
