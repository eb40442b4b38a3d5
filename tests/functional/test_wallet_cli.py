"""pouw-cli against a real pouwd: the dev-faucet wallet, transfers with --wait while
blocks are mined, exact balances and nonces, rewards before and after maturity; several
keys in a wallet kept in its own datadir (--rpc and --cookie), sends between them,
history from the address index (--addressindex, built by --reindex), estimated fees."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from consensus.keys import encode_address
from consensus.params import COIN, DEV_FAUCET_ALLOC, MAIN, REGTEST

from .framework import REPO, NodeProcess
from .rpcutil import FAUCET_ADDRESS, address, key

PASSWORD = "correct horse"
USER, RPCPASS = "cli", "clipass"
CLI_FEE = 10**4  # the fee these sends pass, 0.0001 coins


def cli(node: NodeProcess, *args: str, datadir: Path | None = None, password: str = PASSWORD,
        user: bool = False, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(datadir or node.datadir),
           "--rpcport", str(node.rpc_port)]
    if user:
        cmd += ["--rpcuser", USER, "--rpcpassword", RPCPASS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": password}
    result = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def spawn_cli(node: NodeProcess, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(node.datadir),
           "--rpcport", str(node.rpc_port), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": PASSWORD}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mine_until_exit(node: NodeProcess, proc: subprocess.Popen, miner: str, timeout: float = 60) -> tuple[str, str]:
    """Mine a block every 0.3 s (to ``miner``) until the CLI process exits."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "pouw-cli did not finish"
        node.generatetoaddress(1, miner)
        time.sleep(0.3)
    out, err = proc.communicate()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out, err


def test_wallet_send_and_balances(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1, extra_args=[["--rpc-user", USER, "--rpc-password", RPCPASS]])
    miner = address(key(60))  # blocks go to a third party so the faucet's balance moves only by transfers

    imported = cli(node, "wallet", "import-dev-faucet")
    assert imported.stdout.strip() == FAUCET_ADDRESS
    assert cli(node, "wallet", "address").stdout.strip() == FAUCET_ADDRESS
    again = cli(node, "wallet", "import-dev-faucet", check=False)
    assert again.returncode == 1 and "already in this wallet" in again.stderr

    # genesis alloc: 10^7 coins = 10^15 units, spendable at once
    balance = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert balance["balance"] == DEV_FAUCET_ALLOC == 10**15 and balance["addresses"][0]["nonce"] == 0
    assert "10000000.00000000 coins" in cli(node, "wallet", "balance").stdout

    # a second wallet in its own datadir, talking to the node with the configured user
    other_dir = tmp_path / "w2"
    bob = cli(node, "wallet", "create", datadir=other_dir, user=True).stdout.strip()
    assert bob.startswith("rpw1") and bob != FAUCET_ADDRESS
    broke = cli(node, "wallet", "send", FAUCET_ADDRESS, "1", datadir=other_dir, user=True, check=False)
    assert broke.returncode == 1 and "insufficient funds" in broke.stderr

    # faucet → bob 1.5 coins, waiting for one confirmation while blocks are mined
    proc = spawn_cli(node, "--json", "wallet", "send", bob, "1.5", "--fee", "0.0001", "--wait", "1")
    out, err = mine_until_exit(node, proc, miner)
    sent = json.loads(out)
    assert sent["amount"] == 150_000_000 and sent["fee"] == CLI_FEE and sent["nonce"] == 0
    assert sent["confirmations"] >= 1 and "confirmed" in err
    tx = node.gettransaction(sent["txid"])
    assert tx["blockhash"] == sent["blockhash"] and tx["payload"] == {"to": bob, "amount": 150_000_000}

    # a second send uses the next nonce; --wait 2 needs two blocks
    proc = spawn_cli(node, "--json", "wallet", "send", bob, "0.00000001", "--fee", "0.001", "--wait", "2")
    out, _ = mine_until_exit(node, proc, miner)
    second = json.loads(out)
    assert second["nonce"] == 1 and second["amount"] == 1 and second["fee"] == 10**5
    assert second["confirmations"] >= 2

    faucet = node.getaccount(FAUCET_ADDRESS)
    assert faucet["nonce"] == 2 and faucet["pending_nonce"] == 2 and faucet["immature"] == []
    assert faucet["balance"] == 10**15 - 150_000_000 - CLI_FEE - 1 - 10**5
    bob_acct = node.getaccount(bob)
    assert bob_acct["balance"] == 150_000_001 and bob_acct["nonce"] == 0

    # bob pays back 1 coin: his nonce 0, exact change
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(other_dir), "--rpcport",
         str(node.rpc_port), "--rpcuser", USER, "--rpcpassword", RPCPASS, "wallet", "send", FAUCET_ADDRESS, "1",
         "--fee", "0.0001", "--wait", "1"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": PASSWORD},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = mine_until_exit(node, proc, miner)
    txid = out.strip().splitlines()[0]
    assert node.gettransaction(txid)["nonce"] == 0
    assert node.getaccount(bob)["balance"] == 150_000_001 - COIN - CLI_FEE and node.getaccount(bob)["nonce"] == 1
    assert node.getaccount(FAUCET_ADDRESS)["balance"] == faucet["balance"] + COIN

    # a wrong password fails cleanly and sends nothing
    pool = node.getrawmempool()
    wrong = cli(node, "wallet", "send", bob, "1", password="nope", check=False)
    assert wrong.returncode == 1 and "password" in wrong.stderr.lower() and "Traceback" not in wrong.stderr
    assert node.getrawmempool() == pool
    # more than the balance (including the fee) is refused before signing
    too_much = cli(node, "wallet", "send", FAUCET_ADDRESS, "1.50000001", datadir=other_dir, user=True, check=False)
    assert too_much.returncode == 1 and "insufficient funds" in too_much.stderr


def test_wallet_rewards_mature(start_nodes) -> None:
    (node,) = start_nodes(1)
    address_text = cli(node, "wallet", "create").stdout.strip()
    maturity = REGTEST.coinbase_maturity
    node.generatetoaddress(2, address_text)
    info = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert info["balance"] == 0 and [i["height"] for i in info["addresses"][0]["immature"]] == [1, 2]
    text = cli(node, "wallet", "balance").stdout
    assert "immature  100.00000000 coins" in text and "in 2 reward(s)" in text
    node.generatetoaddress(maturity - 1, FAUCET_ADDRESS)  # tip 11: block 1's reward paid
    info = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert info["balance"] == 50 * COIN and [i["height"] for i in info["addresses"][0]["immature"]] == [2]
    node.generatetoaddress(1, FAUCET_ADDRESS)
    info = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert info["balance"] == 100 * COIN and info["immature"] == 0
    # the matured coins are spendable
    proc = spawn_cli(node, "--json", "wallet", "send", address(key(61)), "99.9999", "--fee", "0.0001", "--wait", "1")
    out, _ = mine_until_exit(node, proc, FAUCET_ADDRESS)
    assert json.loads(out)["nonce"] == 0
    assert node.getaccount(address_text)["balance"] == 0
    assert node.getaccount(address(key(61)))["balance"] == 9_999_990_000


def test_cli_rpc_methods(start_nodes) -> None:
    (node,) = start_nodes(1)
    node.generate(2)
    assert cli(node, "getblockcount").stdout.strip() == "2"
    assert cli(node, "getblockhash", "1").stdout.strip() == node.getblockhash(1)
    header = json.loads(cli(node, "getblockheader", node.getblockhash(2), "true").stdout)
    assert header["height"] == 2
    assert cli(node, "getblockheader", node.getblockhash(2), "false").stdout.strip() == \
        node.getblockheader(node.getblockhash(2), False)
    bad = cli(node, "getblockhash", "99", check=False)
    assert bad.returncode == 1 and "-8" in bad.stderr and "out of range" in bad.stderr
    unknown = cli(node, "nosuchmethod", check=False)
    assert unknown.returncode == 1 and "-32601" in unknown.stderr
    node.stop()
    down = cli(node, "getblockcount", check=False)
    assert down.returncode == 1 and "Traceback" not in down.stderr


def own_wallet(node: NodeProcess, wallet_dir: Path, *args: str, check: bool = True,
               stdin: str = "") -> subprocess.CompletedProcess:
    """pouw-cli on a wallet in its own datadir, reaching the node by --rpc URL with --cookie <node datadir>."""
    cmd = [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(wallet_dir),
           "--rpc", node.url, "--cookie", str(node.datadir), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": PASSWORD}
    env.pop("POUW_DATADIR", None)
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, input=stdin)
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def send_and_mine(node: NodeProcess, wallet_dir: Path, *args: str) -> dict:
    """``wallet send ... --wait 1`` in the background while blocks are mined; its JSON report."""
    cmd = [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(wallet_dir),
           "--rpc", node.url, "--cookie", str(node.datadir), "--json", "wallet", "send", *args, "--wait", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": PASSWORD}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = mine_until_exit(node, proc, address(key(62)))
    return json.loads(out)


def test_wallet_keys_sends_history_and_fees(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1, extra_args=[["--addressindex"]])
    wallet_dir = tmp_path / "wallet"  # no node here: the cookie comes from --cookie
    first = own_wallet(node, wallet_dir, "wallet", "create").stdout.strip()
    rent = own_wallet(node, wallet_dir, "wallet", "new-address", "--label", "rent").stdout.strip()
    spare = own_wallet(node, wallet_dir, "wallet", "new-address").stdout.strip()
    faucet = own_wallet(node, wallet_dir, "wallet", "import-dev-faucet").stdout.strip()
    assert faucet == FAUCET_ADDRESS and len({first, rent, spare, faucet}) == 4
    for text in (first, rent, spare):
        assert node.validateaddress(text) == {"isvalid": True, "address": text, "network": "regtest"}

    # faucet → rent, then rent → spare: the wallet pays from the key that holds enough
    funded = send_and_mine(node, wallet_dir, rent, "5", "--fee", "0.0001")
    assert funded["from"] == FAUCET_ADDRESS and funded["confirmations"] >= 1
    moved = send_and_mine(node, wallet_dir, spare, "1")  # estimated fee: the node's feerate × size
    assert moved["from"] == rent and moved["nonce"] == 0
    tx = node.gettransaction(moved["txid"])
    assert moved["fee"] == tx["fee"] and tx["fee"] % tx["size"] == 0 and tx["fee"] // tx["size"] >= 1
    assert node.getaccount(spare)["balance"] == COIN
    assert node.getaccount(rent)["balance"] == 5 * COIN - COIN - moved["fee"]

    # mined rewards to the first key are immature, then the balance counts them as spendable
    node.generatetoaddress(2, first)
    balance = json.loads(own_wallet(node, wallet_dir, "--json", "wallet", "balance").stdout)
    by_address = {a["address"]: a for a in balance["addresses"]}
    assert by_address[first]["balance"] == 0 and by_address[first]["immature_total"] == 100 * COIN
    assert balance["immature"] == 100 * COIN and by_address[rent]["label"] == "rent"
    assert balance["balance"] == sum(node.getaccount(a)["balance"] for a in (first, rent, spare, faucet))
    text = own_wallet(node, wallet_dir, "wallet", "balance").stdout
    assert "immature  100.00000000 coins (10000000000 units) in 2 reward(s)" in text

    # history from the node's address index, newest first, with the wallet's labels
    rows = json.loads(own_wallet(node, wallet_dir, "--json", "wallet", "history", "--count", "50").stdout)
    seen = [(r["category"], r["address"], r["amount"]) for r in rows]
    height = node.getblockcount()
    assert seen[:2] == [("immature", first, 50 * COIN), ("immature", first, 50 * COIN)]
    assert [r["blockheight"] for r in rows[:2]] == [height, height - 1]
    assert ("send", rent, -COIN) in seen and ("receive", spare, COIN) in seen
    assert ("receive", rent, 5 * COIN) in seen and ("send", FAUCET_ADDRESS, -5 * COIN) in seen
    assert {r["label"] for r in rows if r["address"] == rent} == {"rent"}
    assert all(r["confirmations"] >= 1 for r in rows)
    assert [r["blockheight"] for r in rows] == sorted((r["blockheight"] for r in rows), reverse=True)
    # a pooled transfer shows with 0 confirmations
    pending = own_wallet(node, wallet_dir, "wallet", "send", first, "0.5", "--from", spare).stdout.strip()
    rows = json.loads(own_wallet(node, wallet_dir, "--json", "wallet", "history").stdout)
    assert {(r["category"], r["txid"], r["confirmations"]) for r in rows[:2]} == \
        {("send", pending, 0), ("receive", pending, 0)}

    # estimatefee reads the recent blocks' fee rates
    fee = node.estimatefee(10)
    assert fee["txs"] >= 1 and fee["feerate"] >= fee["min_relay_feerate"] == 1  # how many of the sends fall in the last 10 blocks depends on when they were mined


def test_address_index_off_needs_reindex(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1)
    wallet_dir = tmp_path / "wallet"
    mine = own_wallet(node, wallet_dir, "wallet", "create").stdout.strip()
    node.generatetoaddress(1, mine)
    off = own_wallet(node, wallet_dir, "wallet", "history", check=False)
    assert off.returncode == 1 and "--addressindex" in off.stderr and "Traceback" not in off.stderr
    assert node.validateaddress(address(key(3)).replace("rpw", "pw", 1))["isvalid"] is False
    other = node.validateaddress(encode_address(MAIN.hrp, bytes(20)))
    assert other["isvalid"] is False and "network main" in other["error"]

    node.stop()
    node.start(["--addressindex"], wait=False)  # an existing chain: the index must be built first
    assert node.process.wait(60) == 1
    assert "--addressindex --reindex" in node.log_tail()
    node.start(["--addressindex", "--reindex"])
    rows = json.loads(own_wallet(node, wallet_dir, "--json", "wallet", "history").stdout)
    assert [(r["category"], r["blockheight"], r["amount"]) for r in rows] == [("immature", 1, 50 * COIN)]
    node.stop()
    node.start()  # without the flag the index is dropped, and history says how to get it back
    off = own_wallet(node, wallet_dir, "wallet", "history", check=False)
    assert off.returncode == 1 and "--addressindex" in off.stderr


def test_restore_from_phrase_finds_used_keys(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1)
    first_dir, second_dir = tmp_path / "w1", tmp_path / "w2"
    own_wallet(node, first_dir, "wallet", "create")
    for _ in range(3):
        own_wallet(node, first_dir, "wallet", "new-address")
    used = json.loads(own_wallet(node, first_dir, "--json", "wallet", "list").stdout)[3]["address"]
    node.generatetoaddress(1, used)
    phrase = own_wallet(node, first_dir, "wallet", "backup").stdout.strip()
    own_wallet(node, second_dir, "wallet", "restore", "--scan", stdin=phrase + "\n")
    restored = json.loads(own_wallet(node, second_dir, "--json", "wallet", "list").stdout)
    assert [k["address"] for k in restored] == \
        [k["address"] for k in json.loads(own_wallet(node, first_dir, "--json", "wallet", "list").stdout)]
    immature = json.loads(own_wallet(node, second_dir, "--json", "wallet", "balance").stdout)["immature"]
    assert immature == 50 * COIN
