"""pouw-miner against a real regtest pouwd: blocks are accepted, stale work is never submitted."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from consensus.genesis import dev_faucet_key
from consensus.keys import encode_address
from miner import kernel, worker
from client.rpc import RpcClient, cookie_auth

from .framework import REPO, wait_until

ADDRESS = encode_address("rpw", b"\x42" * 20)


def test_cli_mines_blocks_the_node_accepts(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1)
    status = tmp_path / "miner.json"
    out = subprocess.run([sys.executable, "-m", "miner.cli", "--network", "regtest", "--datadir", str(node.datadir),
                          "--rpc", node.url, "--address", ADDRESS, "--blocks", "3", "--quiet",
                          "--status-file", str(status)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "accepted 3" in out.stderr
    assert node.getblockcount() == 3
    for height in (1, 2, 3):
        assert node.getblock(node.getblockhash(height))["miner"] == ADDRESS
    figures = json.loads(status.read_text())  # written at the end too, whatever the run's length
    assert figures["accepted"] == 3 and figures["found"] >= 3 and figures["rejected"] == 0
    assert figures["mac_rate"] > 0 and figures["jobs"] is None  # no wallet on a bare regtest node: no jobs
    assert figures["useful_share"] == 0.0 and not list(tmp_path.glob("*.tmp"))
    # regtest's pow limit: every matmul wins, and the lottery owes each exactly one block
    assert figures["macs"] > 0 and figures["expected_blocks"] == figures["found"]


def test_a_status_file_that_cannot_be_written_is_said_and_mining_goes_on(start_nodes, tmp_path) -> None:
    (node,) = start_nodes(1)
    out = subprocess.run([sys.executable, "-m", "miner.cli", "--network", "regtest", "--datadir", str(node.datadir),
                          "--rpc", node.url, "--address", ADDRESS, "--blocks", "2", "--quiet",
                          "--status-file", str(tmp_path / "no such folder" / "miner.json")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "accepted 2" in out.stderr, out.stderr
    assert "cannot write the status file" in out.stderr and "Traceback" not in out.stderr
    assert node.getblockcount() == 2


def test_cli_reports_node_errors_plainly(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "miner.cli", "--network", "regtest", "--rpc",
                          "http://127.0.0.1:9/", "--rpc-user", "u", "--rpc-password", "p", "--address", ADDRESS],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "cannot reach the node" in out.stderr and "Traceback" not in out.stderr
    bad = subprocess.run([sys.executable, "-m", "miner.cli", "--network", "regtest", "--address",
                          encode_address("dpw", b"\x42" * 20)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "bad --address" in bad.stderr


def test_stale_work_is_never_submitted(start_nodes, monkeypatch) -> None:
    (node,) = start_nodes(1)
    user, password = cookie_auth(node.datadir, "regtest")
    client = RpcClient(node.url, user, password, timeout=30)
    miner = worker.Miner(client, RpcClient(node.url, user, password, timeout=120), b"\x42" * 20,
                         (64, 64, 64, 16), threads=1, log=lambda _: None)
    real_mine = kernel.mine
    calls = {"n": 0}

    def mine_while_the_tip_moves(header, a, b, threads=None):
        calls["n"] += 1
        winners = real_mine(header, a, b, threads)
        if calls["n"] == 1:  # another miner finds a block while this work is in flight
            node.generatetoaddress(1, encode_address("rpw", dev_faucet_key().address))
        return winners

    monkeypatch.setattr(kernel, "mine", mine_while_the_tip_moves)
    miner.run(max_blocks=1)
    assert miner.stats.stale == 1 and miner.stats.accepted == 1 and miner.stats.rejected == 0
    assert node.getblockcount() == 2
    tips = node.getchaintips()
    assert len(tips) == 1, f"a stale block reached the node: {tips}"
    assert node.getblock(node.getblockhash(2))["miner"] == encode_address("rpw", b"\x42" * 20)


def test_the_tip_watcher_flags_a_new_tip_but_not_one_the_loop_fetched_itself(start_nodes) -> None:
    """The flag is the kernel's stop byte: a job's product stops on another miner's block, not on
    the template the loop took after its own (PROTOCOL §5)."""
    (node,) = start_nodes(1)
    user, password = cookie_auth(node.datadir, "regtest")
    client = RpcClient(node.url, user, password, timeout=30)
    flag, errors = np.zeros(1, np.uint8), []
    watcher = worker.TipWatcher(RpcClient(node.url, user, password, timeout=120),
                                client.call("getblocktemplate")["longpollid"], errors.append, lambda: flag.fill(1))
    watcher.start()
    faucet = encode_address("rpw", dev_faucet_key().address)
    try:
        node.generatetoaddress(1, faucet)  # another miner's block
        wait_until(lambda: flag[0] == 1, 10, what="the flag for a new tip")
        assert watcher.take()["height"] == 2 and not watcher.changed.is_set()
        node.generatetoaddress(1, faucet)  # as if this loop's own block: it fetches the template itself
        watcher.seen(client.call("getblocktemplate")["longpollid"])
        flag[0] = 0
        time.sleep(1.5)  # the watcher's long poll, sent before, answers with that tip meanwhile
        assert flag[0] == 0 and watcher.take() is None
        node.generatetoaddress(1, faucet)
        wait_until(lambda: flag[0] == 1, 10, what="the flag for the next tip")
        assert watcher.take()["height"] == 4
    finally:
        watcher.stop_event.set()
    assert errors == []
