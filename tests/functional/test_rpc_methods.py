"""Every JSON-RPC method of a real pouwd, success and error paths, plus the JSON-RPC 2.0
envelope (batches, notifications, parse errors). One regtest node serves the module;
each test builds the state it checks on top of whatever tip it finds."""
from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest

from client.rpc import RpcError
from consensus.block import Block, Header
from consensus.keys import decode_address, encode_address
from consensus.params import DEV, REGTEST
from consensus.tx import Tx
from miner.template import Template
from node.mining import solve_template
from p2p.bans import MAX_BAN_SECONDS

from .framework import NodeProcess, wait_until
from .rpcutil import FAUCET, FAUCET_ADDRESS, FEE, address, key, post, rpc_error, transfer

# Every method this module exercises; test_every_method_is_covered keeps it honest.
COVERED = {
    "help", "getblockchaininfo", "getblockcount", "getbestblockhash", "waitfornewblock", "getblockhash", "getblock",
    "getblockheader", "getchaintips", "getdifficulty", "getmininginfo", "getstateinfo", "getblocktemplate",
    "submitblock",
    "generatetoaddress", "generate", "getrawmempool", "getmempoolinfo", "savemempool", "sendrawtransaction",
    "gettransaction", "getaccount", "getjob", "listjobs", "getmarketinfo", "submitmatrix", "getmatrix", "getnetworkinfo", "getpeerinfo", "getconnectioncount",
    "addnode", "disconnectnode", "setban", "listbanned", "clearbanned", "invalidateblock", "reconsiderblock",
    "uptime", "stop", "validateaddress", "getaddressbalance", "getaddresshistory", "estimatefee",
}
ZERO_HASH = "00" * 32
UNKNOWN_HASH = "ab" * 32


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[NodeProcess]:
    n = NodeProcess(0, Path(tmp_path_factory.mktemp("rpc")))
    n.start()
    yield n
    n.cleanup()


def faucet_nonce(node) -> int:
    return node.getaccount(FAUCET_ADDRESS)["pending_nonce"]


# --- dispatcher surface ----------------------------------------------------------------

def test_every_method_is_covered(node) -> None:
    listed = {line.split()[0] for line in node.help().splitlines()}
    assert listed == COVERED, f"untested: {listed - COVERED}, gone: {COVERED - listed}"


def test_help(node) -> None:
    text = node.help("getblock")
    assert text.startswith("getblock blockhash ( verbosity )") and "canonical hex" in text
    assert rpc_error(node, "help", "nosuchmethod")["code"] == -5


def test_unknown_method(node) -> None:
    err = rpc_error(node, "getinfo")
    assert err["code"] == -32601 and "getinfo" in err["message"]


@pytest.mark.parametrize("method, params, code", [
    ("getblockhash", [], -32602),  # missing
    ("getblockhash", ["1"], -32602),  # str for int
    ("getblockhash", [True], -32602),  # bool is not an int
    ("getblockhash", [1.0], -32602),  # float is not an int
    ("getblockhash", [0, 1], -32602),  # too many
    ("getblock", [1], -32602),
    ("getblock", [ZERO_HASH, "1"], -32602),
    ("getblockheader", [ZERO_HASH, 1], -32602),  # verbose must be a bool
    ("getrawmempool", ["yes"], -32602),
    ("generate", ["1"], -32602),
    ("getblocktemplate", [[]], -32602),
    ("getblockcount", [1], -32602),
    ("getblockhash", [None], -32602),
])
def test_bad_params(node, method, params, code) -> None:
    assert rpc_error(node, method, *params)["code"] == code


def test_named_params(node) -> None:
    status, reply = post(node, {"jsonrpc": "2.0", "id": "n", "method": "getblockhash", "params": {"height": 0}})
    assert status == 200 and reply == {"jsonrpc": "2.0", "result": node.getblockhash(0), "id": "n"}
    status, reply = post(node, {"jsonrpc": "2.0", "id": 2, "method": "getblock",
                                "params": {"blockhash": node.getblockhash(0), "verbosity": 0}})
    assert isinstance(reply["result"], str)
    _, reply = post(node, {"jsonrpc": "2.0", "id": 3, "method": "getblockhash", "params": {"hieght": 0}})
    assert reply["error"]["code"] == -32602 and "hieght" in reply["error"]["message"]
    _, reply = post(node, {"jsonrpc": "2.0", "id": 4, "method": "getblockhash", "params": {}})
    assert reply["error"]["code"] == -32602 and "height" in reply["error"]["message"]
    _, reply = post(node, {"jsonrpc": "2.0", "id": 5, "method": "getblockhash", "params": 0})
    assert reply["error"]["code"] == -32600


def test_parse_error_and_invalid_requests(node) -> None:
    status, reply = post(node, b'{"jsonrpc": "2.0", "method": "getblockcount", "id": 1')
    assert status == 400 and reply["error"]["code"] == -32700 and reply["id"] is None
    status, reply = post(node, b"\xff\xfe")
    assert reply["error"]["code"] == -32700
    for depth in (1000, 100_000):  # too deep for the JSON parser: a parse error, not a 500
        status, reply = post(node, b"[" * depth + b"]" * depth)
        assert status == 400 and reply["error"]["code"] == -32700, (depth, status, reply)
    nested = b"[" * 900 + b"]" * 900  # parses, then meets the dispatcher
    status, reply = post(node, b'{"jsonrpc": "2.0", "id": 9, "method": "getblockhash", "params": [' + nested + b"]}")
    assert status == 200 and reply["error"]["code"] == -32602, reply
    for bad in ({"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "2.0", "id": 1, "method": 7}, 5, "getblockcount"):
        status, reply = post(node, bad)
        assert status == 200 and reply["error"]["code"] == -32600, (bad, reply)


def test_batches(node) -> None:
    height = node.getblockcount()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"},
        {"jsonrpc": "2.0", "id": 2, "method": "nosuch"},
        {"jsonrpc": "2.0", "method": "getblockcount"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": "x", "method": "getblockhash", "params": [10**9]},
        7,
        {"jsonrpc": "2.0", "id": 4, "method": "getblockhash", "params": [0]},
    ]
    status, reply = post(node, batch)
    assert status == 200 and isinstance(reply, list) and len(reply) == 5
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    assert by_id[1]["result"] == height
    assert by_id[2]["error"]["code"] == -32601
    assert by_id["x"]["error"]["code"] == -8
    assert by_id[4]["result"] == node.getblockhash(0)
    assert [r["error"]["code"] for r in reply if r["id"] is None] == [-32600]
    # answers come back in request order
    assert [r["id"] for r in reply] == [1, 2, "x", None, 4]

    status, reply = post(node, [])
    assert reply["error"]["code"] == -32600 and "empty" in reply["error"]["message"]
    status, reply = post(node, [{"jsonrpc": "2.0", "id": i, "method": "getblockcount"} for i in range(1001)])
    assert reply["error"]["code"] == -32600


def test_client_batch_returns_each_result_or_error_in_order(node) -> None:
    results = node.rpc.batch([("getblockcount",), ("getblockhash", 10**9), ("getblockhash", 0)])
    assert results[0] == node.getblockcount() and results[2] == node.getblockhash(0)
    assert isinstance(results[1], RpcError) and results[1].code == -8
    assert node.rpc.batch([]) == []


def test_waitfornewblock_returns_on_a_new_tip_or_at_its_timeout(node) -> None:
    tip = {"hash": node.getbestblockhash(), "height": node.getblockcount()}
    assert node.waitfornewblock(50) == tip  # no block within 50 ms: the same tip
    assert node.waitfornewblock(0, UNKNOWN_HASH) == tip  # already another than the one named: at once
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(node.waitfornewblock, 0, tip["hash"])  # no limit
        time.sleep(0.3)
        assert not waiting.done()
        (mined,) = node.generatetoaddress(1, address(key(950)))
        assert waiting.result(30) == {"hash": mined, "height": tip["height"] + 1}
    assert rpc_error(node, "waitfornewblock", -1)["code"] == -8
    assert rpc_error(node, "waitfornewblock", 10, "xyz")["code"] == -8


def test_notifications_get_no_answer(node) -> None:
    status, reply = post(node, {"jsonrpc": "2.0", "method": "getblockcount"})
    assert status == 204 and reply is None
    # a batch of notifications only: nothing at all, not an empty array (JSON-RPC 2.0 §6)
    status, reply = post(node, [{"jsonrpc": "2.0", "method": "getblockcount"},
                                {"jsonrpc": "2.0", "method": "nosuch"}])
    assert status == 204 and reply is None
    # JSON-RPC 1.0 style requests without an id still get an answer (as with bitcoind)
    status, reply = post(node, {"method": "getblockcount"})
    assert status == 200 and reply["result"] == node.getblockcount()


# --- chain ---------------------------------------------------------------------------------

def test_chain_queries(node) -> None:
    start = node.getblockcount()
    hashes = node.generate(3)
    assert len(hashes) == 3 and len(set(hashes)) == 3
    assert node.getblockcount() == start + 3
    assert node.getbestblockhash() == hashes[-1]
    assert [node.getblockhash(start + 1 + i) for i in range(3)] == hashes
    info = node.getblockchaininfo()
    assert info["chain"] == "regtest" and info["blocks"] == start + 3 and info["headers"] == start + 3
    assert info["bestblockhash"] == hashes[-1] and info["initialblockdownload"] is False
    assert int(info["chainwork"], 16) > 0 and info["next_target"] == "f" * 64
    assert info["time"] >= info["mediantime"]
    assert info["useful_blocks"]["blocks"] == start + 3 and info["useful_blocks"]["useful_blocks"] == 0
    assert node.getdifficulty() == 1.0
    mining = node.getmininginfo()
    assert mining["blocks"] == start + 3 and mining["difficulty"] == 1.0 and mining["pooledtx"] == 0
    assert mining["networkmacps"] >= 0
    assert mining["state_root"] == node.getblockheader(hashes[-1])["state_root"]


def test_getstateinfo_balances_and_verifies(node) -> None:
    """getstateinfo (like gettxoutsetinfo): counts, supply terms that balance, and verify=true
    recomputing the state root from every stored record (PROTOCOL §3a)."""
    nonce = faucet_nonce(node)
    node.sendrawtransaction(transfer(FAUCET, nonce, key(901).address, 777, fee=FEE).encode().hex())
    node.generate(1)
    info = node.getstateinfo(True)
    tip = node.getblockheader(node.getbestblockhash())
    assert info["height"] == tip["height"] and info["bestblock"] == tip["hash"]
    assert info["state_root"] == tip["state_root"] and info["verified"] is True
    assert info["supply_balanced"] is True and info["lanes_match_header"] is True
    assert (info["total_balance"] + info["total_escrow"] + info["pending_fees"]
            == info["total_issued"] - info["total_burned"])
    assert info["accounts"] >= 2 and set(info["jobs"]) == {"open", "claimed", "settled", "refunded", "lapsed"}
    assert "verified" not in node.getstateinfo()
    assert rpc_error(node, "getstateinfo", "yes")["code"] == -32602


def test_matrix_rpcs(node) -> None:
    """submitmatrix / getmatrix / listjobs (PROTOCOL §6): checked uploads, keys, refusals."""
    import base64

    import numpy as np

    from client.market import npy_bytes
    from consensus.work import commit_a

    a = np.random.default_rng(0).integers(-64, 65, size=(32, 64), dtype=np.int8)
    data = base64.b64encode(npy_bytes(a)).decode()
    stored = node.submitmatrix("A", data)
    assert stored["key"] == commit_a(a).hex() and stored["shape"] == [32, 64] and stored["kind"] == "A"
    fetched = node.getmatrix(stored["key"], True)
    assert base64.b64decode(fetched["npy_base64"]).endswith(a.tobytes())
    assert rpc_error(node, "submitmatrix", "D", data)["code"] == -8
    assert rpc_error(node, "submitmatrix", "A", "not base64!")["code"] == -8
    assert "worker" in rpc_error(node, "submitmatrix", "C", data)["message"]
    assert "commitment" in rpc_error(node, "submitmatrix", "A", data, None, None, ZERO_HASH)["message"]
    assert rpc_error(node, "getmatrix", UNKNOWN_HASH)["code"] == -5
    assert rpc_error(node, "getmatrix", "xyz")["code"] == -8
    assert rpc_error(node, "listjobs", "done")["code"] == -8
    assert rpc_error(node, "listjobs", "claimed", "not-an-address")["code"] == -5
    assert isinstance(node.listjobs(), list) and node.listjobs("lapsed") == []
    info = node.getmarketinfo(10)
    assert info["window"] == min(10, node.getblockcount()) and info["jobs"]["open"] == 0
    assert info["chain_macs"] > 0 and info["useful_mac_share"] == 0.0 and info["matrices_held"] >= 1
    assert rpc_error(node, "getmarketinfo", 0)["code"] == -8
    earlier = node.getmarketinfo(2, 1)
    assert (earlier["window"], earlier["first"], earlier["last"]) == (1, 1, 1)
    assert rpc_error(node, "getmarketinfo", 10, node.getblockcount() + 1)["code"] == -8
    assert rpc_error(node, "getmarketinfo", 10, -2)["code"] == -8

def test_template_commits_to_the_state_after_its_txs(node) -> None:
    nonce = faucet_nonce(node)
    node.sendrawtransaction(transfer(FAUCET, nonce, key(902).address, 5, fee=FEE).encode().hex())
    template = node.getblocktemplate()
    assert len(template["transactions"]) == 1 and template["version"] == 2
    (mined,) = node.generate(1)
    assert node.getblockheader(mined)["state_root"] == template["state_root"]


@pytest.mark.parametrize("height", [-1, 10**6, 2**63])
def test_getblockhash_out_of_range(node, height) -> None:
    err = rpc_error(node, "getblockhash", height)
    assert err["code"] == -8 and "out of range" in err["message"]


@pytest.mark.parametrize("bad", ["", "zz" * 32, "ab" * 31, "ab" * 33, "0x" + "ab" * 31])
def test_bad_hashes(node, bad) -> None:
    for method in ("getblock", "getblockheader", "invalidateblock", "reconsiderblock"):
        err = rpc_error(node, method, bad)
        assert err["code"] == -8 and "blockhash" in err["message"], (method, err)
    assert rpc_error(node, "gettransaction", bad)["code"] == -8
    assert rpc_error(node, "getjob", bad)["code"] == -8


def test_unknown_block(node) -> None:
    for method in ("getblock", "getblockheader", "invalidateblock", "reconsiderblock"):
        err = rpc_error(node, method, UNKNOWN_HASH)
        assert err["code"] == -5 and err["message"] == "Block not found", method


def test_getblock_verbosity(node) -> None:
    nonce = faucet_nonce(node)
    tx = transfer(FAUCET, nonce, key(900).address, 12345)
    node.sendrawtransaction(tx.encode().hex())
    (block_hash,) = node.generate(1)
    parent = node.getblockhash(node.getblockcount() - 1)

    raw = node.getblock(block_hash, 0)
    block = Block.decode(bytes.fromhex(raw))
    assert block.encode().hex() == raw and block.hash.hex() == block_hash
    assert [t.txid for t in block.txs] == [tx.txid]
    assert node.getblock(block_hash, False) == raw

    v1 = node.getblock(block_hash)
    assert v1 == node.getblock(block_hash, 1) == node.getblock(block_hash, True)
    assert v1["hash"] == block_hash and v1["previousblockhash"] == parent
    assert v1["height"] == node.getblockcount() and v1["confirmations"] == 1 and "nextblockhash" not in v1
    assert v1["tx"] == [tx.txid.hex()] and v1["ntx"] == 1 and v1["fees"] == FEE
    assert v1["size"] == len(raw) // 2 and v1["miner"] == FAUCET_ADDRESS

    v2 = node.getblock(block_hash, 2)
    (t,) = v2["tx"]
    assert t["txid"] == tx.txid.hex() and t["kind"] == "transfer" and t["nonce"] == nonce and t["fee"] == FEE
    assert t["payload"] == {"to": address(key(900)), "amount": 12345} and t["sender"] == FAUCET_ADDRESS

    parent_json = node.getblock(parent)
    assert parent_json["nextblockhash"] == block_hash and parent_json["confirmations"] == 2
    for bad in (3, -1):
        assert rpc_error(node, "getblock", block_hash, bad)["code"] == -8


def test_getblockheader(node) -> None:
    tip = node.getbestblockhash()
    verbose = node.getblockheader(tip)
    assert verbose == node.getblockheader(tip, True)
    block = node.getblock(tip)
    for field in ("hash", "height", "previousblockhash", "time", "target", "tx_root", "miner", "nonce",
                  "work", "ticket", "chainwork", "confirmations"):
        assert verbose[field] == block[field], field
    raw = node.getblockheader(tip, False)
    header = Header.decode(bytes.fromhex(raw))
    assert header.hash.hex() == tip and header.height == verbose["height"]
    genesis = node.getblockheader(node.getblockhash(0))
    assert genesis["height"] == 0 and genesis["previousblockhash"] == ZERO_HASH
    assert genesis["nextblockhash"] == node.getblockhash(1)


def test_invalidate_and_reconsider(node) -> None:
    base = node.getblockcount()
    hashes = node.generate(3)
    tips = node.getchaintips()
    assert tips[0] == {"height": base + 3, "hash": hashes[-1], "branchlen": 0, "status": "active"}

    assert node.invalidateblock(hashes[1]) is None
    assert node.getblockcount() == base + 1 and node.getbestblockhash() == hashes[0]
    tips = {t["hash"]: t for t in node.getchaintips()}
    assert tips[hashes[0]]["status"] == "active"
    assert tips[hashes[2]] == {"height": base + 3, "hash": hashes[2], "branchlen": 2, "status": "invalid"}
    assert node.getblock(hashes[2])["confirmations"] == -1
    assert node.getblockheader(hashes[1])["confirmations"] == -1

    # mining on the invalidated chain's parent makes a fork; the new branch is the active one
    (fork,) = node.generate(1)
    tips = {t["hash"]: t["status"] for t in node.getchaintips()}
    assert tips[fork] == "active" and tips[hashes[2]] == "invalid"

    assert node.reconsiderblock(hashes[2]) is None
    # the longer branch wins back
    assert node.getbestblockhash() == hashes[2] and node.getblockcount() == base + 3
    tips = {t["hash"]: t for t in node.getchaintips()}
    assert tips[hashes[2]]["status"] == "active" and tips[fork]["status"] == "valid-fork"
    assert tips[fork]["branchlen"] == 1

    err = rpc_error(node, "invalidateblock", node.getblockhash(0))
    assert err["code"] == -8 and "genesis" in err["message"]


# --- mining ----------------------------------------------------------------------------------

def _solve(node, template_json: dict, miner: bytes = b"\x22" * 20) -> Block:
    template = Template.from_json(template_json)
    block = solve_template(template, miner, 1000)
    assert block is not None
    return block


def test_getblocktemplate_and_submitblock(node) -> None:
    nonce = faucet_nonce(node)
    tx = transfer(FAUCET, nonce, key(901).address, 777)
    node.sendrawtransaction(tx.encode().hex())
    tpl = node.getblocktemplate()
    tip = node.getbestblockhash()
    assert tpl["height"] == node.getblockcount() + 1 and tpl["previousblockhash"] == tip
    assert tpl["longpollid"] == tip and tpl["target"] == "f" * 64 and tpl["chain_id"] == REGTEST.chain_id
    assert [t["txid"] for t in tpl["transactions"]] == [tx.txid.hex()]
    assert tpl["curtime"] >= tpl["mintime"]
    assert node.getblocktemplate({})["transactions"] == tpl["transactions"]

    block = _solve(node, tpl)
    hexdata = block.encode().hex()

    # tampered copies first: each must be refused with a reason and leave the tip alone
    bad_ticket = Block(block.header.replace(ticket=block.header.ticket.__class__(
        block.header.ticket.a, block.header.ticket.b, bytes(32))), block.proof, block.txs)
    reason = node.submitblock(bad_ticket.encode().hex())
    assert isinstance(reason, str) and reason, reason
    bad_root = Block(block.header, block.proof, ())
    assert node.submitblock(bad_root.encode().hex()) == "bad-tx-root"
    assert node.getbestblockhash() == tip

    assert node.submitblock(hexdata) is None
    assert node.getbestblockhash() == block.hash.hex()
    assert node.getrawmempool() == []
    assert node.gettransaction(tx.txid.hex())["blockhash"] == block.hash.hex()
    assert node.submitblock(hexdata) == "duplicate"

    # a block whose parent the node has never seen is held as an orphan
    from tests.unit.node.helpers import make_block
    stranger = block.header.replace(height=50, prev_hash=bytes.fromhex(UNKNOWN_HASH), target=REGTEST.pow_limit,
                                    miner=bytes(20), nonce=0)
    orphan = make_block(stranger)
    assert node.submitblock(orphan.encode().hex()) == "inconclusive"

    assert rpc_error(node, "submitblock", "zz")["code"] == -8
    err = rpc_error(node, "submitblock", "deadbeef")
    assert err["code"] == -22 and "decode" in err["message"].lower()
    err = rpc_error(node, "submitblock", hexdata + "00")  # trailing bytes: not canonical
    assert err["code"] == -22


def test_getblocktemplate_longpoll(node) -> None:
    tip = node.getbestblockhash()
    result: dict = {}

    def poll() -> None:
        started = time.monotonic()
        result["tpl"] = node.getblocktemplate({"longpollid": tip})
        result["waited"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive(), "longpoll returned before the tip changed"
    (new_tip,) = node.generate(1)
    thread.join(10)
    assert not thread.is_alive()
    assert result["tpl"]["previousblockhash"] == new_tip and result["waited"] >= 0.4
    # a stale longpollid answers at once
    started = time.monotonic()
    assert node.getblocktemplate({"longpollid": tip})["previousblockhash"] == new_tip
    assert time.monotonic() - started < 5
    assert rpc_error(node, "getblocktemplate", {"longpollid": 5})["code"] == -8


def test_generatetoaddress(node) -> None:
    miner = key(902)
    start = node.getblockcount()
    hashes = node.generatetoaddress(2, address(miner))
    assert len(hashes) == 2 and node.getblockcount() == start + 2
    assert all(node.getblock(h)["miner"] == address(miner) for h in hashes)
    assert node.generatetoaddress(0, address(miner)) == []
    for bad in ("rpw1notanaddress", "", encode_address(DEV.hrp, miner.address), address(miner)[:-1] + "q"):
        err = rpc_error(node, "generatetoaddress", 1, bad)
        assert err["code"] == -5 and "address" in err["message"].lower(), bad
    assert rpc_error(node, "generatetoaddress", -1, address(miner))["code"] == -8
    assert rpc_error(node, "generate", 10**6)["code"] == -8
    assert node.getblockcount() == start + 2


# --- mempool and transactions ----------------------------------------------------------------

def test_mempool_and_transactions(node) -> None:
    assert node.getrawmempool() == [] and node.getrawmempool(True) == {}
    info = node.getmempoolinfo()
    assert info["size"] == 0 and info["bytes"] == 0 and info["min_fee_per_byte"] == 1
    nonce = faucet_nonce(node)
    to = key(903)
    txs = [transfer(FAUCET, nonce + i, to.address, 1000 + i) for i in range(3)]
    for tx in txs:
        assert node.sendrawtransaction(tx.encode().hex()) == tx.txid.hex()
    assert node.getrawmempool() == [t.txid.hex() for t in txs]
    verbose = node.getrawmempool(True)
    assert set(verbose) == {t.txid.hex() for t in txs}
    entry = verbose[txs[1].txid.hex()]
    assert entry["nonce"] == nonce + 1 and entry["fee"] == FEE and entry["size"] == len(txs[1].encode())
    assert entry["payload"] == {"to": address(to), "amount": 1001}
    info = node.getmempoolinfo()
    assert info["size"] == 3 and info["bytes"] == sum(len(t.encode()) for t in txs) and info["loaded"] is True
    assert node.savemempool() == {"size": 3}  # test_lifecycle restarts a node on what it kept
    assert rpc_error(node, "savemempool", True)["code"] == -32602
    acct = node.getaccount(FAUCET_ADDRESS)
    assert acct["nonce"] == nonce and acct["pending_nonce"] == nonce + 3

    pending = node.gettransaction(txs[0].txid.hex())
    assert pending["in_mempool"] is True and pending["confirmations"] == 0 and pending["blockhash"] is None
    assert pending["hex"] == txs[0].encode().hex()

    # duplicate of a pooled tx
    err = rpc_error(node, "sendrawtransaction", txs[0].encode().hex())
    assert err["code"] == -26 and "duplicate" in err["message"]

    (block_hash,) = node.generate(1)
    assert node.getrawmempool() == [] and node.getmempoolinfo()["size"] == 0
    mined = node.gettransaction(txs[0].txid.hex())
    assert mined["in_mempool"] is False and mined["blockhash"] == block_hash and mined["confirmations"] == 1
    assert mined["blockheight"] == node.getblockcount()
    node.generate(2)
    assert node.gettransaction(txs[0].txid.hex())["confirmations"] == 3
    assert node.getaccount(address(to))["balance"] == 1000 + 1001 + 1002
    assert node.getaccount(FAUCET_ADDRESS)["nonce"] == nonce + 3

    err = rpc_error(node, "sendrawtransaction", txs[2].encode().hex())
    assert err["code"] == -27 and "already in block chain" in err["message"]
    assert rpc_error(node, "gettransaction", UNKNOWN_HASH)["code"] == -5


def test_sendrawtransaction_errors(node) -> None:
    nonce = faucet_nonce(node)
    assert rpc_error(node, "sendrawtransaction", "xyz")["code"] == -8
    err = rpc_error(node, "sendrawtransaction", "c0ffee")
    assert err["code"] == -22 and "decode" in err["message"].lower()

    good = transfer(FAUCET, nonce, key(904).address, 5)
    forged = Tx(good.version, good.chain_id, good.kind, good.sender, good.nonce, good.fee, good.payload,
                bytes(64))
    err = rpc_error(node, "sendrawtransaction", forged.encode().hex())
    assert err["code"] == -25 and "bad-signature" in err["message"]
    # a valid signature by another key over the same tx does not verify for this sender either
    resigned = Tx(good.version, good.chain_id, good.kind, good.sender, good.nonce, good.fee, good.payload,
                  key(5).sign(good.sighash))
    assert "bad-signature" in rpc_error(node, "sendrawtransaction", resigned.encode().hex())["message"]

    poor = key(905)  # never funded
    err = rpc_error(node, "sendrawtransaction", transfer(poor, 0, key(906).address, 1).encode().hex())
    assert err["code"] == -26 and "insufficient-funds" in err["message"]

    from consensus.tx import Transfer, make_tx
    wrong_chain = make_tx(FAUCET, DEV.chain_id, nonce, FEE, Transfer(key(904).address, 5))
    err = rpc_error(node, "sendrawtransaction", wrong_chain.encode().hex())
    assert err["code"] == -25 and "bad-chain-id" in err["message"]
    nothing = make_tx(FAUCET, REGTEST.chain_id, nonce, FEE, Transfer(key(904).address, 0))
    err = rpc_error(node, "sendrawtransaction", nothing.encode().hex())
    assert err["code"] == -25 and "bad-amount" in err["message"]  # never valid, as tx_stateless says
    cheap = transfer(FAUCET, nonce, key(904).address, 5, fee=1)
    err = rpc_error(node, "sendrawtransaction", cheap.encode().hex())
    assert err["code"] == -26 and "fee-too-low" in err["message"]
    if nonce > 0:
        old = transfer(FAUCET, nonce - 1, key(904).address, 5, fee=FEE + 1)
        err = rpc_error(node, "sendrawtransaction", old.encode().hex())
        assert err["code"] == -26 and "nonce" in err["message"]
    assert node.getrawmempool() == []


def test_getaccount_rewards_mature(node) -> None:
    miner = key(907)
    maturity = REGTEST.coinbase_maturity
    start = node.getblockcount()
    node.generatetoaddress(3, address(miner))
    acct = node.getaccount(address(miner))
    assert acct["balance"] == 0 and acct["nonce"] == 0
    assert [i["height"] for i in acct["immature"]] == [start + 1, start + 2, start + 3]
    assert all(i["amount"] == 50 * 10**8 and i["matures_at"] == i["height"] + maturity for i in acct["immature"])
    assert acct["immature_total"] == 150 * 10**8
    # blocks by someone else up to the height just before the first reward matures...
    node.generatetoaddress(maturity - 3, address(key(908)))
    assert node.getblockcount() == acct["immature"][0]["matures_at"] - 1
    assert node.getaccount(address(miner))["balance"] == 0
    # ...and the block at matures_at pays it
    node.generatetoaddress(1, address(key(908)))
    acct = node.getaccount(address(miner))
    assert acct["balance"] == 50 * 10**8 and len(acct["immature"]) == 2 and acct["immature_total"] == 100 * 10**8
    node.generatetoaddress(2, address(key(908)))
    acct = node.getaccount(address(miner))
    assert acct["balance"] == 150 * 10**8 and acct["immature"] == [] and acct["immature_total"] == 0

    assert node.getaccount(address(key(999)))["balance"] == 0
    for bad in ("", "rpw1qqqq", encode_address(DEV.hrp, miner.address), address(miner).upper()[:-1] + "A"):
        err = rpc_error(node, "getaccount", bad)
        assert err["code"] == -5 and "Invalid address" in err["message"], bad
    # the address comes back normalised
    assert decode_address(node.getaccount(address(miner).upper())["address"], REGTEST.hrp) == miner.address


def test_wallet_address_methods(node) -> None:
    """validateaddress, getaddressbalance, estimatefee; getaddresshistory without the index (the index
    itself: tests/functional/test_wallet_cli.py)."""
    ok = address(key(910))
    assert node.validateaddress(ok.upper()) == {"isvalid": True, "address": ok, "network": "regtest"}
    for bad, why in [("rpw1qqqq", "malformed"), (ok[:-1] + ("q" if ok[-1] != "q" else "p"), "checksum"),
                     (encode_address(DEV.hrp, key(910).address), "address of network dev, this node is regtest"),
                     ("", "malformed")]:
        found = node.validateaddress(bad)
        assert found["isvalid"] is False and why in found["error"], (bad, found)

    miner = key(911)
    node.generatetoaddress(1, address(miner))
    both = node.getaddressbalance([FAUCET_ADDRESS, address(miner), FAUCET_ADDRESS])  # duplicates count once
    assert [a["address"] for a in both["addresses"]] == [FAUCET_ADDRESS, address(miner)]
    assert both["addresses"][0] == node.getaccount(FAUCET_ADDRESS)
    assert both["balance"] == both["addresses"][0]["balance"] and both["immature"] == 50 * 10**8
    assert both["height"] == node.getblockcount()
    for params, fragment in [([[]], "1 to 1000"), ([[5]], "strings"), ([["rpw1qqqq"]], "Invalid address"),
                             ([[ok] * 1001], "1 to 1000")]:
        err = rpc_error(node, "getaddressbalance", *params)
        assert err["code"] in (-8, -5) and fragment in err["message"], (params, err)
    assert rpc_error(node, "getaddressbalance", ok)["code"] == -32602  # a list, not a string

    err = rpc_error(node, "getaddresshistory", [ok])
    assert err["code"] == -1 and "--addressindex" in err["message"]

    # estimatefee: the median fee rate of the last blocks' txs, at least the relay minimum
    assert rpc_error(node, "estimatefee", 0)["code"] == -8 and rpc_error(node, "estimatefee", 101)["code"] == -8
    nonce = faucet_nonce(node)
    txs = [transfer(FAUCET, nonce + i, key(912).address, 1, fee=fee) for i, fee in enumerate((500, 2000, 20_000))]
    for tx in txs:
        node.sendrawtransaction(tx.encode().hex())
    node.generatetoaddress(1, address(miner))
    median = sorted(txs, key=lambda tx: tx.fee / len(tx.encode()))[1]
    assert node.estimatefee(1) == {"feerate": math.ceil(median.fee / len(median.encode())), "min_relay_feerate": 1,
                                   "blocks": 1, "txs": 3}
    node.generatetoaddress(1, address(miner))
    assert node.estimatefee(1)["txs"] == 0 and node.estimatefee(1)["feerate"] == 1  # an empty block: the minimum


def test_getjob_not_found(node) -> None:
    err = rpc_error(node, "getjob", UNKNOWN_HASH)
    assert err["code"] == -5 and "job" in err["message"].lower()


# --- network (p2p may or may not be wired in) -------------------------------------------------

def test_network_methods(node) -> None:
    info = node.getnetworkinfo()
    assert info["subversion"].startswith("/pouw:") and info["protocolversion"] >= 1
    assert info["matrixrate"] == 8 * 2**20  # the default --matrix-rate: getmatrix bytes a second to each peer
    peers = node.getpeerinfo()
    assert isinstance(peers, list) and node.getconnectioncount() == len(peers) == info["connections"] == 0
    assert node.listbanned() == []
    assert rpc_error(node, "addnode", "127.0.0.1:1", "bogus")["code"] == -8
    assert rpc_error(node, "setban", "127.0.0.1", "bogus")["code"] == -8
    assert rpc_error(node, "setban", "127.0.0.1", "add", -5)["code"] == -8
    assert rpc_error(node, "setban", "10.0.0.9", "add", 2**64 - 1)["code"] == -8  # was -32603, ban kept in memory only
    assert node.listbanned() == []
    assert rpc_error(node, "disconnectnode")["code"] == -8
    assert info["networkactive"]
    # bans round-trip and unknown peers are reported as such
    assert node.setban("10.0.0.1", "add", 600) is None
    assert [b["address"].split("/")[0] for b in node.listbanned()] == ["10.0.0.1"]
    assert node.setban("10.0.0.1", "remove") is None and node.listbanned() == []
    node.setban("10.0.0.2", "add")
    assert node.clearbanned() is None and node.listbanned() == []
    assert rpc_error(node, "disconnectnode", "127.0.0.1:1")["code"] == -29
    assert rpc_error(node, "setban", "not-an-ip", "add")["code"] == -30
    assert node.addnode("127.0.0.1:1", "add") is None
    assert rpc_error(node, "addnode", "127.0.0.1:1", "add")["code"] == -23
    assert node.addnode("127.0.0.1:1", "remove") is None
    assert rpc_error(node, "addnode", "127.0.0.1:1", "remove")["code"] == -24


def test_uptime(node) -> None:
    first = node.uptime()
    assert isinstance(first, int) and 0 <= first < 600
    time.sleep(1.1)
    assert node.uptime() >= first + 1


def test_stop(node) -> None:
    assert node.stop() == 0  # NodeProcess.stop calls the stop RPC and waits for the exit code
    wait_until(lambda: not (node.datadir / "regtest" / ".cookie").exists(), 10, what="cookie removal")


def test_setban_memory_and_disk_agree(start_nodes) -> None:
    """An out-of-range bantime is refused before anything changes; the longest allowed ban survives a restart."""
    (node,) = start_nodes(1)
    assert rpc_error(node, "setban", "10.0.0.7", "add", 2**64 - 1)["code"] == -8
    assert rpc_error(node, "setban", "10.0.0.7", "add", MAX_BAN_SECONDS + 1)["code"] == -8
    node.setban("10.0.0.8", "add", MAX_BAN_SECONDS)
    before = node.listbanned()
    assert [b["address"] for b in before] == ["10.0.0.8/32"] and before[0]["ban_duration"] == MAX_BAN_SECONDS
    node.restart()
    after = node.listbanned()
    assert [(b["address"], b["banned_until"]) for b in after] == [(b["address"], b["banned_until"]) for b in before]
