"""pouwd's HTTP surface beyond JSON-RPC methods: authentication, REST, /health,
/metrics (read back by Prometheus' own parser) and the /ws event stream."""
from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consensus.block import Block, Header

from .framework import NodeProcess
from .rpcutil import FAUCET, address, basic, cookie, get, key, post, request, transfer

USER, PASSWORD = "alice", "s3cret:with:colons"


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[NodeProcess]:
    n = NodeProcess(0, Path(tmp_path_factory.mktemp("http")),
                    extra_args=["--rpc-user", USER, "--rpc-password", PASSWORD])
    n.start()
    n.generate(5)
    yield n
    n.cleanup()


# --- auth ----------------------------------------------------------------------------------

GETCOUNT = {"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}


def test_rpc_requires_auth(node) -> None:
    status, _ = post(node, GETCOUNT, auth=None)
    assert status == 401
    status, _, response = request(node, "POST", "/", json.dumps(GETCOUNT).encode())
    assert status == 401 and response.getheader("WWW-Authenticate", "").startswith("Basic")
    user, secret = cookie(node)
    for creds in [("__cookie__", "0" * 64), ("__cookie__", secret[:-1]), (USER, "wrong"), ("bob", PASSWORD),
                  (USER, ""), ("", ""), ("__cookie__", PASSWORD), ("älice", PASSWORD), ("__cookie__", "é" * 64)]:
        status, _ = post(node, GETCOUNT, auth=creds)
        assert status == 401, creds
    for header in ("Bearer abc", "Basic !!!notbase64", "Basic", basic(user, secret).lower()):
        status, _, _ = request(node, "POST", "/", json.dumps(GETCOUNT).encode(), headers={"Authorization": header})
        assert status == 401, header


def test_cookie_and_configured_user_work(node) -> None:
    user, secret = cookie(node)
    assert user == "__cookie__" and len(secret) == 64
    for creds in [(user, secret), (USER, PASSWORD)]:
        status, reply = post(node, GETCOUNT, auth=creds)
        assert status == 200 and reply["result"] == 5, creds


def test_cookie_changes_on_restart(tmp_path, start_nodes) -> None:
    (n,) = start_nodes(1)
    old = cookie(n)
    n.restart()
    assert cookie(n) != old
    assert post(n, GETCOUNT, auth=old)[0] == 401
    assert post(n, GETCOUNT)[0] == 200


def test_ws_requires_auth(node) -> None:
    async def attempt(headers):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"http://127.0.0.1:{node.rpc_port}/ws", headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(attempt({})) == 401
    assert asyncio.run(attempt({"Authorization": basic(USER, "nope")})) == 401
    assert asyncio.run(attempt({"Authorization": basic(*cookie(node))})) == 101
    assert asyncio.run(attempt({"Authorization": basic(USER, PASSWORD)})) == 101


# --- websocket events ----------------------------------------------------------------------

def test_ws_events(node) -> None:
    nonce = node.getaccount(address(FAUCET))["pending_nonce"]
    tx = transfer(FAUCET, nonce, key(40).address, 123)

    async def scenario() -> list[dict]:
        events: list[dict] = []
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{node.rpc_port}/ws",
                                          headers={"Authorization": basic(USER, PASSWORD)}) as ws:
                await asyncio.sleep(0.1)  # the server registers the subscriber after the handshake
                (block_hash,) = await asyncio.to_thread(node.generate, 1)
                events.append(await asyncio.wait_for(ws.receive_json(), 10))
                await asyncio.to_thread(node.sendrawtransaction, tx.encode().hex())
                events.append(await asyncio.wait_for(ws.receive_json(), 10))
                (mined,) = await asyncio.to_thread(node.generate, 1)
                events.append(await asyncio.wait_for(ws.receive_json(), 10))
                events.append(await asyncio.wait_for(ws.receive_json(), 10))
                events.append({"expected": [block_hash, mined]})
        return events

    connected, tx_event, mined_event, removed_event, expected = asyncio.run(scenario())
    first, second = expected["expected"]
    height = node.getblockcount()
    assert connected == {"event": "block_connected", "hash": first, "height": height - 1, "tip": first}
    assert tx_event == {"event": "tx", "txid": tx.txid.hex()}
    assert mined_event["event"] == "block_connected" and mined_event["hash"] == second
    assert node.getblock(second)["tx"] == [tx.txid.hex()]
    assert removed_event == {"event": "tx_removed", "txid": tx.txid.hex(), "reason": "mined"}


def test_ws_sees_disconnects(node) -> None:
    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{node.rpc_port}/ws",
                                          headers={"Authorization": basic(USER, PASSWORD)}) as ws:
                await asyncio.sleep(0.1)
                tip = await asyncio.to_thread(node.getbestblockhash)
                await asyncio.to_thread(node.invalidateblock, tip)
                first = await asyncio.wait_for(ws.receive_json(), 10)
                await asyncio.to_thread(node.reconsiderblock, tip)
                second = await asyncio.wait_for(ws.receive_json(), 10)
                return [first, second, {"tip": tip}]

    disconnected, reconnected, meta = asyncio.run(scenario())
    assert disconnected["event"] == "block_disconnected" and disconnected["hash"] == meta["tip"]
    assert disconnected["tip"] == node.getblockheader(meta["tip"])["previousblockhash"]
    assert reconnected["event"] == "block_connected" and reconnected["hash"] == meta["tip"]


# --- REST ----------------------------------------------------------------------------------

def test_rest_chaininfo(node) -> None:
    status, body, response = get(node, "/rest/chaininfo")
    assert status == 200 and response.getheader("Content-Type").startswith("application/json")
    info = json.loads(body)
    chain = node.getblockchaininfo()
    assert info["chain"] == "regtest" and info["blocks"] == chain["blocks"]
    assert info["bestblockhash"] == chain["bestblockhash"] and info["chainwork"] == chain["chainwork"]


def test_rest_block_formats(node) -> None:
    tip = node.getbestblockhash()
    status, body, _ = get(node, f"/rest/block/{tip}.bin")
    assert status == 200
    block = Block.decode(body)
    assert block.hash.hex() == tip and body.hex() == node.getblock(tip, 0)
    status, body, _ = get(node, f"/rest/block/{tip}.hex")
    assert status == 200 and body.decode().strip() == node.getblock(tip, 0)
    for path in (f"/rest/block/{tip}.json", f"/rest/block/{tip}"):
        status, body, _ = get(node, path)
        assert status == 200 and json.loads(body) == node.getblock(tip, 1), path
    genesis = node.getblockhash(0)
    status, body, _ = get(node, f"/rest/block/{genesis}.json")
    assert json.loads(body)["nextblockhash"] == node.getblockhash(1)


def test_rest_block_on_a_stale_branch(node) -> None:
    base = node.getblockcount()
    stale = node.generate(2)
    node.invalidateblock(stale[0])
    node.generate(3)  # the new branch is longer than the stale one
    node.reconsiderblock(stale[0])
    assert node.getblockcount() == base + 3 and node.getblockhash(base + 1) != stale[0]
    for h in stale:
        status, body, _ = get(node, f"/rest/block/{h}.json")
        rest = json.loads(body)
        assert status == 200 and rest == node.getblock(h)
        assert rest["confirmations"] == -1 and "nextblockhash" not in rest, rest


@pytest.mark.parametrize("path, status", [
    ("/rest/block/" + "ab" * 32 + ".json", 404),
    ("/rest/block/" + "ab" * 32 + ".bin", 404),
    ("/rest/block/nothex.json", 400),
    ("/rest/block/" + "ab" * 31, 400),
    ("/rest/headers/5/" + "zz" * 32, 400),
    ("/rest/headers/0/{genesis}", 400),
    ("/rest/headers/-1/{genesis}", 400),
    ("/rest/headers/2001/{genesis}", 400),
    ("/rest/headers/many/{genesis}", 400),
    ("/rest/headers/5/{genesis}.bin", 400),
    ("/rest/block/{genesis}.xml", 400),
    ("/rest/nosuch", 404),
    ("/rest/block/", 404),
])
def test_rest_bad_inputs(node, path, status) -> None:
    got, body, _ = get(node, path.format(genesis=node.getblockhash(0)))
    assert got == status, (path, got, body)


def test_rest_headers(node) -> None:
    genesis = node.getblockhash(0)
    height = node.getblockcount()
    status, body, _ = get(node, f"/rest/headers/3/{genesis}.json")
    assert status == 200
    headers = json.loads(body)
    assert [h["hash"] for h in headers] == [node.getblockhash(i) for i in range(3)]
    assert headers[1] == {k: v for k, v in node.getblockheader(node.getblockhash(1)).items()
                          if k not in ("confirmations", "nextblockhash")}
    # asking past the tip returns what exists
    status, body, _ = get(node, f"/rest/headers/2000/{node.getblockhash(height - 1)}")
    assert [h["height"] for h in json.loads(body)] == [height - 1, height]
    status, body, _ = get(node, f"/rest/headers/2/{genesis}.hex")
    raw = bytes.fromhex(body.decode().strip())
    first = node.getblockheader(genesis, False)
    assert raw.hex().startswith(first) and Header.decode(bytes.fromhex(first)).hash.hex() == genesis
    assert len(raw) == len(bytes.fromhex(first)) + len(bytes.fromhex(node.getblockheader(node.getblockhash(1), False)))


def test_rest_and_health_need_no_auth(node) -> None:
    for path in ("/rest/chaininfo", "/health", "/metrics"):
        assert get(node, path)[0] == 200, path


# --- /health and /metrics ------------------------------------------------------------------

def test_health(node) -> None:
    status, body, _ = get(node, "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ready" and health["network"] == "regtest"
    assert health["height"] == node.getblockcount() and health["peers"] == 0
    assert isinstance(health["tip_age"], int) and health["tip_age"] >= 0


def _metrics(node) -> dict[str, object]:
    status, body, response = get(node, "/metrics")
    assert status == 200 and response.getheader("Content-Type").startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def _sample(family, name: str, **labels) -> float | None:
    for s in family.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def test_metrics(node) -> None:
    before = _metrics(node)
    for name in ("pouw_chain_height", "pouw_chain_work", "pouw_difficulty", "pouw_mempool_transactions",
                 "pouw_mempool_bytes", "pouw_peers", "pouw_blocks_connected", "pouw_blocks_rejected",
                 "pouw_txs_rejected", "pouw_mempool_removed", "pouw_rpc_latency_seconds"):
        assert name in before, name
    assert _sample(before["pouw_chain_height"], "pouw_chain_height") == node.getblockcount()
    assert _sample(before["pouw_difficulty"], "pouw_difficulty") == 1.0
    connected = _sample(before["pouw_blocks_connected"], "pouw_blocks_connected_total")
    assert before["pouw_rpc_latency_seconds"].type == "histogram"

    mined = _sample(before["pouw_mempool_removed"], "pouw_mempool_removed_total", reason="mined") or 0
    node.sendrawtransaction(transfer(FAUCET, node.getaccount(address(FAUCET))["pending_nonce"],
                                     key(43).address, 1).encode().hex())
    node.generate(2)  # mines the tx: it leaves the mempool as "mined"
    # a tampered block (ticket digest zeroed) is rejected and counted by reason
    tip = node.getbestblockhash()
    block = Block.decode(bytes.fromhex(node.getblock(tip, 0)))
    child = node.getblocktemplate()
    from miner.template import Template
    from node.mining import solve_template
    good = solve_template(Template.from_json(child), b"\x44" * 20, 100)
    bad = Block(good.header.replace(ticket=type(good.header.ticket)(0, 0, bytes(32))), good.proof, good.txs)
    reason = node.submitblock(bad.encode().hex())
    assert reason and block.hash.hex() == tip
    # and a rejected tx, by reason
    post(node, {"jsonrpc": "2.0", "id": 1, "method": "sendrawtransaction",
                "params": [transfer(key(41), 0, key(42).address, 1).encode().hex()]})

    after = _metrics(node)
    assert _sample(after["pouw_chain_height"], "pouw_chain_height") == node.getblockcount()
    assert _sample(after["pouw_blocks_connected"], "pouw_blocks_connected_total") == connected + 2
    assert _sample(after["pouw_blocks_rejected"], "pouw_blocks_rejected_total", reason=reason) == 1
    assert _sample(after["pouw_txs_rejected"], "pouw_txs_rejected_total", reason="insufficient-funds") == 1
    assert _sample(after["pouw_mempool_removed"], "pouw_mempool_removed_total", reason="mined") == mined + 1
    latency = after["pouw_rpc_latency_seconds"]
    count = _sample(latency, "pouw_rpc_latency_seconds_count", method="generate")
    assert count is not None and count >= 2  # the fixture's generate and this test's
    assert _sample(latency, "pouw_rpc_latency_seconds_bucket", method="generate", le="+Inf") == count
    assert _sample(latency, "pouw_rpc_latency_seconds_sum", method="generate") > 0
    # unknown method names are not turned into label values (no unbounded cardinality)
    post(node, {"jsonrpc": "2.0", "id": 1, "method": "x" * 50})
    labels = {s.labels.get("method") for s in _metrics(node)["pouw_rpc_latency_seconds"].samples}
    assert "x" * 50 not in labels


def test_metrics_mempool_gauges(node) -> None:
    nonce = node.getaccount(address(FAUCET))["pending_nonce"]
    tx = transfer(FAUCET, nonce, key(43).address, 5)
    node.sendrawtransaction(tx.encode().hex())
    m = _metrics(node)
    assert _sample(m["pouw_mempool_transactions"], "pouw_mempool_transactions") == 1
    assert _sample(m["pouw_mempool_bytes"], "pouw_mempool_bytes") == len(tx.encode())
    node.generate(1)
    assert _sample(_metrics(node)["pouw_mempool_transactions"], "pouw_mempool_transactions") == 0


def test_shutdown_with_open_websocket(start_nodes) -> None:
    """Open /ws subscribers must not hold up a clean shutdown; they get a 1001 close frame."""
    (n,) = start_nodes(1)

    async def scenario() -> tuple[int, float, list]:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": basic(*cookie(n))}
            url = f"http://127.0.0.1:{n.rpc_port}/ws"
            async with session.ws_connect(url, headers=headers) as reading, \
                    session.ws_connect(url, headers=headers):  # the second one never reads
                await asyncio.sleep(0.1)
                receive = asyncio.create_task(reading.receive())
                loop = asyncio.get_running_loop()
                started = loop.time()
                n.process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(n.process.wait, 30)
                msg = await asyncio.wait_for(receive, 5)
                return code, loop.time() - started, [msg.type, msg.data]

    code, elapsed, (kind, data) = asyncio.run(scenario())
    assert code == 0 and elapsed < 5, (code, elapsed, n.log_tail())
    assert kind == aiohttp.WSMsgType.CLOSE and data == 1001
