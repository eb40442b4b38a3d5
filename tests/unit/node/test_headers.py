"""Header-only entries: kept in memory only, capped, evicted least useful first (docs/storage.md).

Headers carry no checkable work here (the proof travels with the block), so the chain
must not let headers without blocks grow memory or disk without bound.
"""
from __future__ import annotations

import gc
import tracemalloc

from consensus.block import Header
from node.blockindex import FAILED_CHILD, HAVE_DATA, IndexEntry
from node.chain import ACCEPTED, DUPLICATE, INVALID, ORPHAN

from .helpers import bogus_headers, build_chain, genesis_header, make_block


def stored_hashes(chain) -> set[bytes]:
    return {e.hash for e in chain.store.entries()}


def count_commits(chain) -> list[int]:
    calls: list[int] = []
    commit = chain.store.commit
    chain.store.commit = lambda batch: (calls.append(1), commit(batch))[1]
    return calls


def test_add_headers_is_one_call_without_writes(chain):
    blocks = build_chain(genesis_header(), 30)
    commits = count_commits(chain)
    results = chain.add_headers([b.header for b in blocks])
    assert [r.status for r in results] == [ACCEPTED] * 30
    assert commits == []  # header-only entries are not persisted
    assert stored_hashes(chain) == {genesis_header().hash}
    assert len(chain.index.loose) == 30
    assert [r.status for r in chain.add_headers([b.header for b in blocks[:3]])] == [DUPLICATE] * 3
    assert chain.add_header(blocks[5].header).status == DUPLICATE
    assert chain.submit_blocks(blocks)[-1].tip_changed
    assert chain.tip.hash == blocks[-1].hash and not chain.index.loose
    assert stored_hashes(chain) == {genesis_header().hash} | {b.hash for b in blocks}


def test_add_headers_stops_at_the_first_failure(chain):
    g = genesis_header()
    good = bogus_headers(g, 3, salt=1)
    bad = make_block(good[-1], timestamp=good[-1].timestamp - 100).header  # before median time past
    after = bogus_headers(bad, 5, salt=1)
    results = chain.add_headers(good + [bad] + after)
    assert [r.status for r in results] == [ACCEPTED] * 3 + [INVALID]
    assert results[-1].reason == "time-too-old"
    assert chain.entry(after[0].hash) is None
    results = chain.add_headers(after)
    assert [(r.status, r.reason) for r in results] == [(INVALID, "bad-prevblk")]
    assert chain.entry(after[0].hash).status & FAILED_CHILD and chain.entry(after[1].hash) is None
    assert [r.status for r in chain.add_headers(after[2:])] == [ORPHAN]
    assert stored_hashes(chain) == {g.hash}  # failed header-only entries are not persisted either


def test_cap_holds_under_a_flood_from_many_peers(open_chain):
    cap = 3000
    chain = open_chain(max_header_only=cap)
    honest = build_chain(genesis_header(), 40)
    chain.submit_blocks(honest[:20])
    chain.add_headers([b.header for b in honest[20:]])
    base = len(chain.index)
    sent = {b.hash: b.header for b in honest[20:]}  # header-only entries keep no whole header
    for peer in range(30):  # 30 "peers", each a 2000-header chain off genesis, the tip or another fork
        parent = genesis_header() if peer % 3 == 0 else honest[19].header if peer % 3 == 1 else \
            sent[next(iter(chain.index.loose))]
        forged = bogus_headers(parent, 2000, salt=100 + peer)
        sent.update((h.hash, h) for h in forged)
        results = chain.add_headers(forged)
        assert all(r.status == ACCEPTED for r in results)
        assert len(chain.index.loose) <= cap
        assert len(chain.index) <= base + cap
        links = sum(len(chain.index.children_of(h)) for h in chain.index.entries)
        assert links == len(chain.index) - 1  # no dangling links
    # the honest headers claimed the least work, so they went first; the blocks (or a peer's
    # next headers reply) bring them back and they connect
    assert chain.entry(honest[-1].hash) is None
    assert chain.submit_blocks(honest[20:])[-1].tip_changed and chain.tip.hash == honest[-1].hash
    assert len(chain.index.loose) <= cap
    assert stored_hashes(chain) == {genesis_header().hash} | {b.hash for b in honest}


def test_eviction_takes_least_work_then_newest_and_never_pinned_or_kept(open_chain):
    chain = open_chain(max_header_only=100)
    g = genesis_header()
    long_chain = bogus_headers(g, 60, salt=1)
    short = bogus_headers(g, 30, salt=2)
    chain.add_headers(long_chain)
    chain.add_headers(short)
    assert len(chain.index.loose) == 90
    later = bogus_headers(g, 30, salt=3)  # equal work to ``short``, seen later
    chain.add_headers(later)  # 120 > 100: evict down to 90
    assert len(chain.index.loose) == 90
    assert all(chain.entry(h.hash) is not None for h in long_chain)
    assert all(chain.entry(h.hash) is not None for h in short)  # first seen wins the tie
    assert all(chain.entry(h.hash) is None for h in later)

    # a block on top of header-only ancestors pins them: never evicted, persisted with it
    blocks = build_chain(g, 12)
    chain.add_headers([b.header for b in blocks[:10]])
    assert chain.submit_block(blocks[4]).status == ACCEPTED  # stored, waiting for its ancestors' data
    assert {b.hash for b in blocks[:4]} <= stored_hashes(chain)
    assert not any(b.hash in chain.index.loose for b in blocks[:5])
    # entries given as ``keep`` (blocks in flight) and their ancestors stay
    flood = bogus_headers(long_chain[-1], 200, salt=4)  # more work than everything else
    results = chain.add_headers(flood, keep={blocks[9].hash, short[-1].hash})
    assert [r.status for r in results] == [ACCEPTED] * 200
    assert len(chain.index.loose) == 90
    assert all(chain.entry(b.hash) is not None for b in blocks[:10])
    assert all(chain.entry(h.hash) is not None for h in short)
    # 295 loose → 90: the only evictable leaves were the flood's tail, then long_chain's
    assert all(chain.entry(h.hash) is None for h in flood)
    assert [chain.entry(h.hash) is not None for h in long_chain] == [True] * 55 + [False] * 5
    chain.submit_blocks([b for i, b in enumerate(blocks[:10]) if i != 4])
    assert chain.tip.hash == blocks[9].hash


def test_restart_forgets_header_only_spam(open_chain, tmp_path):
    chain = open_chain()
    blocks = build_chain(genesis_header(), 10)
    chain.submit_blocks(blocks[:3])
    chain.add_headers([b.header for b in blocks[3:]])
    chain.add_headers(bogus_headers(genesis_header(), 2000, salt=1))
    chain.add_headers(bogus_headers(blocks[2].header, 2000, salt=2))
    assert chain.submit_block(blocks[6]).status == ACCEPTED  # pins headers 4-6
    chain.close()
    reopened = open_chain()
    assert reopened.tip.hash == blocks[2].hash
    assert len(reopened.index) == 1 + 3 + 4  # genesis, 3 connected, 3 pinned headers + 1 stored block
    assert not reopened.index.loose
    assert reopened.entry(blocks[5].hash).status & HAVE_DATA == 0
    assert reopened.entry(blocks[7].hash) is None
    # sync asks for headers again; the blocks then connect
    assert [r.status for r in reopened.add_headers([b.header for b in blocks[3:]])] == \
        [DUPLICATE] * 4 + [ACCEPTED] * 3
    reopened.submit_blocks(blocks[3:6] + blocks[7:])
    assert reopened.tip.hash == blocks[-1].hash


def test_open_drops_header_only_entries_an_old_datadir_stored(open_chain):
    chain = open_chain()
    blocks = build_chain(genesis_header(), 5)
    chain.submit_blocks(blocks[:2])
    batch = chain.store.batch()
    parent = chain.entry(blocks[1].hash)
    for h in bogus_headers(blocks[1].header, 50, salt=1):  # what the node wrote before the cap
        parent = IndexEntry.of(h, parent.height + 1, parent.chain_work + h.block_work)  # with the whole header
        batch.put_entry(parent)
    chain.store.commit(batch)
    chain.close()
    reopened = open_chain()
    assert len(reopened.index) == 3 and not reopened.index.loose
    assert len(stored_hashes(reopened)) == 3
    assert reopened.tip.hash == blocks[1].hash
    reopened.submit_blocks(blocks[2:])
    assert reopened.tip.hash == blocks[-1].hash


def test_forget_headers_takes_leaves_only(chain):
    g = genesis_header()
    a = bogus_headers(g, 10, salt=1)
    b = bogus_headers(a[4], 5, salt=2)  # another peer's branch on a's headers
    chain.add_headers(a)
    chain.add_headers(b)
    assert chain.forget_headers([h.hash for h in a], keep={a[9].hash}) == 0  # a[9] in flight: a stays
    assert chain.forget_headers([h.hash for h in a]) == 5  # a[5:]; a[:5] still carry b
    assert [chain.entry(h.hash) is not None for h in a] == [True] * 5 + [False] * 5
    assert chain.forget_headers([h.hash for h in b] + [h.hash for h in a]) == 10
    assert not chain.index.loose and len(chain.index) == 1
    blocks = build_chain(g, 3)
    chain.add_headers([x.header for x in blocks])
    chain.submit_block(blocks[1])
    assert chain.forget_headers([x.hash for x in blocks]) == 1  # blocks[0] is pinned, blocks[1] has data
    assert chain.entry(blocks[0].hash) is not None


def test_header_only_entries_take_a_few_hundred_bytes(chain):
    """A forged header costs its entry's fields, not a decoded header (~1.6 KB before)."""
    count = 10_000
    wire = [h.encode() for h in bogus_headers(genesis_header(), count, salt=9)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(0, count, 2000):  # decoded as a headers message is, hashes included
            assert chain.add_headers([Header.decode(raw) for raw in wire[i:i + 2000]])[-1].status == ACCEPTED
        gc.collect()
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / count
        assert len(chain.index.loose) == count
        chain.forget_headers(list(chain.index.loose))  # the peer that sent them went
        gc.collect()
        left = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert per_entry < 450, f"{per_entry:.0f} bytes per header-only entry"  # ~360 here, up to ~440 as dicts grow
    assert len(chain.index) == 1 and left < per_entry / 3, f"{left:.0f} of {per_entry:.0f} bytes per entry left"


def test_an_entry_keeps_the_whole_header_once_its_block_arrived(open_chain):
    chain = open_chain()
    blocks = build_chain(genesis_header(), 3)
    chain.submit_blocks(blocks[:1])
    chain.add_headers([b.header for b in blocks[1:]])
    entry = chain.entry(blocks[2].hash)
    assert chain.header(blocks[2].hash) is None and entry.header is None and entry.raw is None
    assert (entry.prev, entry.height, entry.timestamp, entry.target) == \
        (blocks[1].hash, 3, blocks[2].header.timestamp, blocks[2].header.target)
    chain.submit_blocks(blocks[2:])  # stored ahead: its header-only parent is pinned, stored by its fields
    assert chain.header(blocks[2].hash) == blocks[2].header and chain.header(blocks[1].hash) is None
    chain.close()
    reopened = open_chain()
    assert reopened.entry(blocks[1].hash) == IndexEntry.of(blocks[1].header, 2, chain.entry(blocks[1].hash).chain_work,
                                                           keep_header=False)
    assert reopened.header(blocks[2].hash) == blocks[2].header
    reopened.submit_blocks(blocks[1:2])
    assert reopened.tip.hash == blocks[2].hash and reopened.tip.header == blocks[2].header
    assert reopened.header(blocks[1].hash) == blocks[1].header
