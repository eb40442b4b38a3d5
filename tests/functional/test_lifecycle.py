"""pouwd's lifecycle: clean shutdown by RPC and by signal, crash recovery after kill -9,
the datadir lock against a second daemon, and a main-network node from an empty datadir."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from consensus.keys import encode_address
from consensus.params import MAIN, REGTEST

from .framework import REPO, NodeProcess, free_port, wait_until
from .rpcutil import FAUCET, FAUCET_ADDRESS, FEE, address, key, rpc_error, transfer


def cookie_path(node: NodeProcess):
    return node.datadir / node.network / ".cookie"


def test_stop_rpc_and_restart(start_nodes) -> None:
    (node,) = start_nodes(1)
    assert cookie_path(node).exists()
    assert oct(cookie_path(node).stat().st_mode & 0o777) == "0o600"
    hashes = node.generate(3)
    assert node.stop() == 0
    assert not cookie_path(node).exists()
    assert "shutdown complete" in node.log_tail()
    node.start()
    assert node.getblockcount() == 3 and node.getbestblockhash() == hashes[-1]
    node.restart()
    assert node.getblockhash(2) == hashes[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_gives_clean_shutdown(start_nodes, sig) -> None:
    (node,) = start_nodes(1)
    tip = node.generate(2)[-1]
    node.process.send_signal(sig)
    assert node.process.wait(30) == 0, node.log_tail()
    assert not cookie_path(node).exists()
    log = node.log_tail()
    assert "shutting down" in log and "shutdown complete" in log and "Traceback" not in log
    node.start()
    assert node.getbestblockhash() == tip


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, …), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found.update(children)
        todo.extend(children)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` that still run (not exited, not a zombie)."""
    def running(pid: int) -> bool:
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    return {p for p in pids if running(p)}


def test_kill9_keeps_chain_and_balances(start_nodes) -> None:
    (node,) = start_nodes(1)
    miner, alice, bob, carol = key(31), key(32), key(33), key(34)
    node.generatetoaddress(REGTEST.coinbase_maturity + 2, address(miner))
    sends = [(alice, 7 * 10**8), (bob, 3 * 10**8), (alice, 1)] + [(carol, 1)] * 7
    for nonce, (to, amount) in enumerate(sends):
        node.sendrawtransaction(transfer(FAUCET, nonce, to.address, amount).encode().hex())
    node.generatetoaddress(1, address(miner))  # 10 txs: their signatures are checked in worker processes
    workers = descendants(node.process.pid)
    assert workers, "the block's txs were not checked in worker processes: nothing was tested"
    pending = transfer(alice, 0, bob.address, 10**8)  # still in the mempool when the node dies
    node.sendrawtransaction(pending.encode().hex())

    before = {a: node.getaccount(a) for a in map(address, (miner, alice, bob))}
    before[FAUCET_ADDRESS] = node.getaccount(FAUCET_ADDRESS)
    tip, height = node.getbestblockhash(), node.getblockcount()
    assert before[address(alice)]["balance"] == 7 * 10**8 + 1
    assert before[address(miner)]["balance"] == 3 * 50 * 10**8  # blocks 1..3 matured at 11..13
    assert before[FAUCET_ADDRESS]["balance"] == 10**15 - 10 * 10**8 - 1 - 7 - 10 * FEE
    assert before[FAUCET_ADDRESS]["nonce"] == 10

    node.kill9()
    assert cookie_path(node).exists()  # a crash leaves the stale cookie behind
    # the tx-check workers die with the node: none keeps its RPC or p2p port
    wait_until(lambda: not alive(workers), 10, what=f"worker processes {sorted(alive(workers))} to exit")
    node.start()  # on the same ports
    assert node.getbestblockhash() == tip and node.getblockcount() == height
    for addr, acct in before.items():
        now = node.getaccount(addr)
        assert (now["balance"], now["nonce"], now["immature"]) == (acct["balance"], acct["nonce"], acct["immature"])
    # a mempool is kept only by a clean stop (node.mempoolkeep): the pending tx is gone and can be sent again
    assert node.getrawmempool() == []
    assert node.getaccount(address(alice))["pending_nonce"] == 0
    node.sendrawtransaction(pending.encode().hex())
    node.generatetoaddress(1, address(miner))
    assert node.getaccount(address(bob))["balance"] == 4 * 10**8
    assert node.getaccount(address(alice))["balance"] == 7 * 10**8 + 1 - 10**8 - FEE
    # and a clean stop after the recovery still works
    assert node.stop() == 0


def test_a_clean_stop_keeps_the_mempool_for_the_next_start(start_nodes) -> None:
    """As Bitcoin Core's mempool.dat: a poster's accept still waiting for a block survives its
    node's restart (node.mempoolkeep); a kill -9 keeps what the last clean stop or savemempool
    kept."""
    (node,) = start_nodes(1)
    miner, alice = key(41), key(42)
    node.generatetoaddress(1, address(miner))
    ready = transfer(FAUCET, 0, alice.address, 5 * 10**8)
    future = transfer(FAUCET, 2, alice.address, 10**8)  # nonce 1 not sent: it waits as future
    both = sorted(tx.txid.hex() for tx in (ready, future))
    node.sendrawtransaction(ready.encode().hex())
    assert node.savemempool() == {"size": 1}
    node.sendrawtransaction(future.encode().hex())
    node.kill9()
    node.start()  # waits for getmempoolinfo's "loaded"
    assert node.getrawmempool() == [ready.txid.hex()]  # what savemempool kept, not what came after
    node.sendrawtransaction(future.encode().hex())
    assert node.stop() == 0 and "mempool: 2 txs kept for the next start" in node.log_tail()
    node.start()
    assert "mempool: 2 txs kept from the last shutdown back in the pool, 0 dropped" in node.log_tail()
    assert sorted(node.getrawmempool()) == both and node.getmempoolinfo()["loaded"] is True
    assert node.getaccount(FAUCET_ADDRESS)["pending_nonce"] == 1
    node.kill9()
    node.start()
    assert sorted(node.getrawmempool()) == both
    node.generatetoaddress(1, address(miner))
    assert node.getaccount(address(alice))["balance"] == 5 * 10**8
    assert node.stop() == 0 and "mempool: 1 txs kept for the next start" in node.log_tail()
    node.start()
    assert node.getrawmempool() == [future.txid.hex()]


def test_second_daemon_on_same_datadir_is_refused(start_nodes) -> None:
    (node,) = start_nodes(1)
    node.generate(1)
    other_port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", str(node.datadir),
         "--rpc-port", str(other_port), "--port", str(free_port()), "--bind", "127.0.0.1"],
        cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "another pouwd" in output and str(node.datadir) in output, output
    assert "Traceback" not in output
    # the first one is untouched: still serving, cookie still valid
    assert node.getblockcount() == 1 and cookie_path(node).exists()
    node.generate(1)
    assert node.getblockcount() == 2


def test_rpc_port_in_use_exits_cleanly(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1)
    second = NodeProcess(9, tmp_path)
    second.rpc_port = node.rpc_port
    second.start(wait=False)
    assert second.process.wait(60) == 1
    assert "Traceback" not in second.log_tail() and "pouwd stopped" in second.log_tail()
    # the loser must not have left a cookie pointing at the winner's port
    assert not cookie_path(second).exists()
    assert node.getblockcount() == 0


def test_main_network_refuses_generate(start_nodes) -> None:
    (node,) = start_nodes(1, network="main")
    info = node.getblockchaininfo()
    assert info["chain"] == "main" and info["blocks"] == 0
    err = rpc_error(node, "generate", 1)
    assert err["code"] == -32 and "main" in err["message"]
    err = rpc_error(node, "generatetoaddress", 1, "pw1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq")
    assert err["code"] == -32
    # no dev faucet on main
    assert node.getaccount(encode_address(MAIN.hrp, FAUCET.address))["balance"] == 0
    assert node.getblocktemplate()["height"] == 1
    assert node.stop() == 0


def test_stop_while_longpolling(start_nodes) -> None:
    """A pending long-poll must neither hold up shutdown (it waits up to 60 s) nor be cut off."""
    (node,) = start_nodes(1)
    tip = node.getbestblockhash()
    outcome: list = []

    def poll() -> None:
        try:
            outcome.append(node.rpc.call("getblocktemplate", {"longpollid": tip}))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()
    started = time.monotonic()
    node.process.send_signal(signal.SIGTERM)
    assert node.process.wait(20) == 0, node.log_tail()
    assert time.monotonic() - started < 10
    thread.join(10)
    (answer,) = outcome
    assert isinstance(answer, dict) and answer["previousblockhash"] == tip, answer
