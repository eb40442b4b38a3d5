"""Chain store: datadir lock and corruption errors, reindex, opaque p2p records (docs/storage.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import plyvel
import pytest

from consensus import encoding as enc
from node.store import BEST, REINDEX, TIP, VERSION, DatadirCorrupt, DatadirLocked, Store

from .helpers import FAUCET, build_chain, genesis_header, job_post, key, make_block, transfer

ALICE = key(1)


def chain_path(tmp_path) -> str:
    return os.path.join(tmp_path, "regtest", "chain")


def build_busy_chain(chain):
    """Two branches, transfers and a job: something worth rebuilding."""
    post = job_post(FAUCET, 0, reward=500, expiry=30)
    main = [make_block(genesis_header(), [post, transfer(FAUCET, 1, ALICE.address, 10**6)])]
    main += build_chain(main[-1].header, 4)
    main.append(make_block(main[-1].header, [transfer(ALICE, 0, FAUCET.address, 77)]))
    main += build_chain(main[-1].header, 10)
    side = build_chain(main[2].header, 3, nonce=4)
    chain.submit_blocks(main + side)
    return main, side


def full_dump(chain):
    return chain.store.dump((b"A", b"J", b"K", b"D", b"C", b"X", b"U", b"T"))


def test_datadir_locked_in_process(open_chain, tmp_path):
    open_chain()
    with pytest.raises(DatadirLocked, match="in use by another process") as info:
        open_chain()
    assert chain_path(tmp_path) in str(info.value)


def test_datadir_locked_by_other_process(open_chain, tmp_path):
    code = textwrap.dedent(f"""
        import sys, plyvel
        db = plyvel.DB({chain_path(tmp_path)!r}, create_if_missing=True)
        print("held", flush=True)
        sys.stdin.read()
    """)
    os.makedirs(chain_path(tmp_path), exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DatadirLocked):
            open_chain()
    finally:
        holder.communicate("")
    assert open_chain().tip.height == 0


def test_corrupt_manifest(open_chain, tmp_path):
    open_chain().close()
    path = chain_path(tmp_path)
    manifest = next(f for f in os.listdir(path) if f.startswith("MANIFEST"))
    with open(os.path.join(path, manifest), "r+b") as fh:
        fh.write(b"\xff" * 64)
    with pytest.raises(DatadirCorrupt, match="--reindex"):
        open_chain()


def test_wrong_schema_version(open_chain, tmp_path):
    open_chain().close()
    db = plyvel.DB(chain_path(tmp_path))
    db.put(VERSION, enc.encode(99))
    db.close()
    with pytest.raises(DatadirCorrupt, match="schema version 99"):
        open_chain()


def test_missing_version_on_nonempty_db(tmp_path):
    os.makedirs(chain_path(tmp_path))
    db = plyvel.DB(chain_path(tmp_path), create_if_missing=True)
    db.put(b"zz", b"1")
    db.close()
    with pytest.raises(DatadirCorrupt, match="no schema version"):
        Store(tmp_path, "regtest")


def test_tip_and_best_chain_disagree_then_reindex_repairs(open_chain, tmp_path):
    chain = open_chain()
    main, _ = build_busy_chain(chain)
    expected = full_dump(chain)
    chain.close()
    db = plyvel.DB(chain_path(tmp_path))
    db.delete(BEST + (5).to_bytes(8, "big"))
    db.close()
    with pytest.raises(DatadirCorrupt, match="--reindex"):
        open_chain()
    repaired = open_chain(reindex=True)
    assert repaired.tip.hash == main[-1].hash
    assert full_dump(repaired) == expected


def test_bad_state_record_is_a_typed_error(open_chain, tmp_path):
    open_chain().close()
    db = plyvel.DB(chain_path(tmp_path))
    db.put(b"A" + FAUCET.address, b"\xc1")
    db.close()
    chain = open_chain()
    with pytest.raises(DatadirCorrupt, match="account"):
        chain.account(FAUCET.address)


def test_reindex_gives_identical_state(open_chain):
    chain = open_chain()
    main, side = build_busy_chain(chain)
    chain.invalidate_block(main[4].hash)
    assert chain.tip.hash == side[-1].hash
    chain.reconsider_block(main[4].hash)
    before = full_dump(chain)
    tips = chain.chain_tips()
    tip = chain.tip
    chain.reindex()
    assert chain.tip == tip
    assert full_dump(chain) == before
    # a side branch validated before the reindex is only "valid-headers" after it
    strip = [{**t, "status": t["status"].replace("valid-fork", "valid-headers")} for t in tips]
    assert chain.chain_tips() == strip
    chain.close()
    reopened = open_chain(reindex=True)
    assert full_dump(reopened) == before


def test_interrupted_reindex_resumes_on_open(open_chain, tmp_path):
    chain = open_chain()
    main, _ = build_busy_chain(chain)
    before = full_dump(chain)
    chain.close()
    store = Store(tmp_path, "regtest")
    store.start_reindex()  # as if the node died right after wiping the derived records
    assert store.db.get(TIP) is None and store.db.get(REINDEX) is not None
    store.close()
    chain = open_chain()
    assert chain.tip.hash == main[-1].hash
    assert full_dump(chain) == before
    assert not chain.store.reindexing()


def test_records_for_p2p(tmp_path):
    store = Store(tmp_path, "regtest")
    store.put_record("peer", b"1.2.3.4:38733", b"seen")
    store.put_record("ban", b"5.6.7.8", b"until")
    assert store.get_record("peer", b"1.2.3.4:38733") == b"seen"
    assert list(store.records("ban")) == [(b"5.6.7.8", b"until")]
    store.delete_record("peer", b"1.2.3.4:38733")
    assert store.get_record("peer", b"1.2.3.4:38733") is None
    with pytest.raises(KeyError):
        store.put_record("wallet", b"k", b"v")
    store.close()


def test_restart_keeps_tip_and_balances(open_chain):
    chain = open_chain()
    main, _ = build_busy_chain(chain)
    tip, balance = chain.tip, chain.account(ALICE.address)
    chain.close()
    chain = open_chain()
    assert chain.tip == tip
    assert chain.account(ALICE.address) == balance
    assert chain.submit_block(make_block(main[-1].header)).tip_changed
