"""The optional address index: kept with connects and reorgs, built by a reindex, dropped
when the node runs without it; history pages read from it (docs/storage.md)."""
from __future__ import annotations

import pytest

from consensus.keys import encode_address
from consensus.params import REGTEST, subsidy
from node.addrindex import MINED, MINED_POSITION, RECEIVED, SENT, History, block_entries, mempool_rows
from node.chain import ACCEPTED
from node.store import ADDRESS_HISTORY, StoreError

from .helpers import FAUCET, build_chain, genesis_header, key, make_block, transfer

ALICE, BOB = key(1), key(2)
MINER_A, MINER_B = b"\xaa" * 20, b"\xbb" * 20
MATURITY = REGTEST.coinbase_maturity


def addr(raw: bytes) -> str:
    return encode_address(REGTEST.hrp, raw)


def submit_all(chain, blocks):
    assert all(r.status == ACCEPTED for r in chain.submit_blocks(blocks))


def expected_index(chain) -> dict[bytes, bytes]:
    """The H records an index of the current best chain must hold, computed from its blocks."""
    out = {}
    for height in range(1, chain.tip.height + 1):
        for (address, position), roles in block_entries(chain.block(chain.hash_at(height))).items():
            out[ADDRESS_HISTORY + address + height.to_bytes(8, "big") + position.to_bytes(4, "big")] = bytes([roles])
    return out


def test_block_entries_roles():
    pay = transfer(FAUCET, 0, ALICE.address, 5)
    to_self = transfer(ALICE, 0, ALICE.address, 1)
    block = make_block(genesis_header(), [pay, to_self], MINER_A)
    assert block_entries(block) == {(FAUCET.address, 0): SENT, (ALICE.address, 0): RECEIVED,
                                    (ALICE.address, 1): SENT | RECEIVED, (MINER_A, MINED_POSITION): MINED}


def test_off_by_default_writes_nothing(chain):
    submit_all(chain, [make_block(genesis_header(), [transfer(FAUCET, 0, ALICE.address, 5)])])
    assert chain.store.dump([ADDRESS_HISTORY]) == {} and not chain.store.address_index_on()


def test_index_follows_connects_and_reorgs(open_chain):
    chain = open_chain(address_index=True)
    assert chain.store.address_index_on()
    pay = transfer(FAUCET, 0, ALICE.address, 700, fee=3)
    a = [make_block(genesis_header(), [pay], MINER_A)]
    a += build_chain(a[0].header, 2, miner=MINER_A)
    submit_all(chain, a)
    assert chain.store.dump([ADDRESS_HISTORY]) == expected_index(chain) != {}
    b = build_chain(genesis_header(), 4, miner=MINER_B, nonce=1)  # reorg: the transfer leaves the chain
    submit_all(chain, b)
    assert chain.tip.hash == b[-1].hash
    index = chain.store.dump([ADDRESS_HISTORY])
    assert index == expected_index(chain)
    assert not any(k.startswith(ADDRESS_HISTORY + ALICE.address) or k.startswith(ADDRESS_HISTORY + MINER_A)
                   for k in index)


def test_history_rows(open_chain):
    chain = open_chain(address_index=True)
    pay = transfer(FAUCET, 0, ALICE.address, 700, fee=3)
    back = transfer(ALICE, 0, BOB.address, 100, fee=2)
    to_self = transfer(ALICE, 1, ALICE.address, 50, fee=1)
    b1 = make_block(genesis_header(), [pay], ALICE.address)
    b2 = make_block(b1.header, [back, to_self], MINER_A)
    rest = build_chain(b2.header, MATURITY - 1, miner=MINER_A)  # tip = 1 + MATURITY: block 1 paid
    submit_all(chain, [b1, b2, *rest])
    tip = chain.tip.height
    rows = History(chain.tip_state_view(), REGTEST).page([ALICE.address], 0, 100)
    shape = [(r["category"], r["amount"], r.get("fee"), r["blockheight"], r["confirmations"]) for r in rows]
    assert shape == [("send", -50, -1, 2, tip - 1), ("receive", 50, None, 2, tip - 1),
                     ("send", -100, -2, 2, tip - 1),
                     ("generate", subsidy(1) + 3, None, 1, tip), ("receive", 700, None, 1, tip)]
    assert rows[2]["to"] == addr(BOB.address) and rows[4]["from"] == addr(FAUCET.address)
    assert rows[0]["txid"] == to_self.txid.hex() and rows[0]["blockhash"] == b2.hash.hex()
    assert rows[3]["matures_at"] == 1 + MATURITY and all(r["address"] == addr(ALICE.address) for r in rows)
    # two addresses merge newest first; skip and count page over index entries
    both = History(chain.tip_state_view(), REGTEST).page([ALICE.address, BOB.address], 0, 100)
    assert len(both) == len(rows) + 1
    assert [r["blockheight"] for r in both] == sorted((r["blockheight"] for r in both), reverse=True)
    assert {(r["address"], r["category"], r["amount"]) for r in both} - \
        {(r["address"], r["category"], r["amount"]) for r in rows} == {(addr(BOB.address), "receive", 100)}
    page = History(chain.tip_state_view(), REGTEST).page([ALICE.address], 1, 1)
    assert [(r["category"], r["blockheight"]) for r in page] == [("send", 2)] and page[0]["amount"] == -100


def test_immature_reward_row(open_chain):
    chain = open_chain(address_index=True)
    submit_all(chain, build_chain(genesis_header(), 2, miner=MINER_A))
    rows = History(chain.tip_state_view(), REGTEST).page([MINER_A], 0, 10)
    assert [(r["category"], r["blockheight"], r["amount"]) for r in rows] == \
        [("immature", 2, subsidy(2)), ("immature", 1, subsidy(1))]


def test_mempool_rows():
    pay = transfer(FAUCET, 0, ALICE.address, 9, fee=4)
    rows = mempool_rows(REGTEST, {ALICE.address, BOB.address}, [pay, transfer(FAUCET, 1, MINER_A, 1)])
    assert rows == [{"address": addr(ALICE.address), "txid": pay.txid.hex(), "kind": "transfer", "nonce": 0,
                     "category": "receive", "amount": 9, "from": addr(FAUCET.address), "confirmations": 0}]


def test_enabling_on_a_used_datadir_needs_reindex(open_chain, tmp_path):
    chain = open_chain()
    blocks = [make_block(genesis_header(), [transfer(FAUCET, 0, ALICE.address, 5)], MINER_A)]
    blocks += build_chain(blocks[0].header, 3, miner=MINER_B)
    submit_all(chain, blocks)
    chain.close()
    with pytest.raises(StoreError, match="--addressindex --reindex"):
        open_chain(address_index=True)
    rebuilt = open_chain(address_index=True, reindex=True)
    assert rebuilt.tip.hash == blocks[-1].hash and rebuilt.store.address_index_on()
    assert rebuilt.store.dump([ADDRESS_HISTORY]) == expected_index(rebuilt) != {}
    rebuilt.close()
    kept = open_chain(address_index=True)  # the flag on again: nothing to rebuild
    assert kept.store.dump([ADDRESS_HISTORY]) == expected_index(kept)
    kept.close()
    dropped = open_chain()  # without the flag the index would go stale: it is dropped
    assert not dropped.store.address_index_on() and dropped.store.dump([ADDRESS_HISTORY]) == {}
