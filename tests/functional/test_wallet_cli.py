"""pouw-cli against a real pouwd: the dev-faucet wallet, transfers with --wait while
blocks are mined, exact balances and nonces, rewards before and after maturity."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from consensus.params import COIN, DEV_FAUCET_ALLOC, REGTEST

from .framework import REPO, NodeProcess
from .rpcutil import FAUCET_ADDRESS, address, key

PASSWORD = "correct horse"
USER, RPCPASS = "cli", "clipass"
CLI_FEE = 10**4  # pouw-cli's default fee, 0.0001 coins


def cli(node: NodeProcess, *args: str, datadir: Path | None = None, password: str = PASSWORD,
        user: bool = False, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "node.cli", "--network", "regtest", "--datadir", str(datadir or node.datadir),
           "--rpcport", str(node.rpc_port)]
    if user:
        cmd += ["--rpcuser", USER, "--rpcpassword", RPCPASS]
    env = {**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": password}
    result = subprocess.run([*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def spawn_cli(node: NodeProcess, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "node.cli", "--network", "regtest", "--datadir", str(node.datadir),
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
    assert again.returncode == 1 and "already exists" in again.stderr

    # genesis alloc: 10^7 coins = 10^15 units, spendable at once
    balance = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert balance["balance"] == DEV_FAUCET_ALLOC == 10**15 and balance["nonce"] == 0
    assert "10000000.00000000 coins" in cli(node, "wallet", "balance").stdout

    # a second wallet in its own datadir, talking to the node with the configured user
    other_dir = tmp_path / "w2"
    bob = cli(node, "wallet", "create", datadir=other_dir, user=True).stdout.strip()
    assert bob.startswith("rpw1") and bob != FAUCET_ADDRESS
    broke = cli(node, "wallet", "send", FAUCET_ADDRESS, "1", datadir=other_dir, user=True, check=False)
    assert broke.returncode == 1 and "insufficient funds" in broke.stderr

    # faucet → bob 1.5 coins, waiting for one confirmation while blocks are mined
    proc = spawn_cli(node, "--json", "wallet", "send", bob, "1.5", "--wait", "1")
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
        [sys.executable, "-m", "node.cli", "--network", "regtest", "--datadir", str(other_dir), "--rpcport",
         str(node.rpc_port), "--rpcuser", USER, "--rpcpassword", RPCPASS, "wallet", "send", FAUCET_ADDRESS, "1",
         "--wait", "1"],
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
    assert info["balance"] == 0 and [i["height"] for i in info["immature"]] == [1, 2]
    text = cli(node, "wallet", "balance").stdout
    assert "immature  100.00000000 coins" in text and "in 2 reward(s)" in text
    node.generatetoaddress(maturity - 1, FAUCET_ADDRESS)  # tip 11: block 1's reward paid
    info = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert info["balance"] == 50 * COIN and [i["height"] for i in info["immature"]] == [2]
    node.generatetoaddress(1, FAUCET_ADDRESS)
    info = json.loads(cli(node, "--json", "wallet", "balance").stdout)
    assert info["balance"] == 100 * COIN and info["immature"] == []
    # the matured coins are spendable
    proc = spawn_cli(node, "--json", "wallet", "send", address(key(61)), "99.9999", "--wait", "1")
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
