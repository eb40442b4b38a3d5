"""pouw-miner takes jobs (PROTOCOL §6): a real miner process with a wallet key mines useful
blocks on posted jobs, recovers A·B from its first template and claims them; the market
client splits a product that is not one job's shape into jobs, verifies every piece and
assembles A·B exactly. Without a wallet the miner says why it takes no jobs."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np

from client.market import MarketClient
from consensus.keys import decode_address
from consensus.params import REGTEST

from .framework import REPO, wait_until
from .rpcutil import FAUCET, address, transfer

PASSWORD = "miner-test"


def run_cli(node, *args: str) -> str:
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    out = subprocess.run([sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(node.datadir),
                          *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def start_miner(node, miner_address: str, *extra: str, threads: int = 1) -> subprocess.Popen:
    """pouw-miner paced to a block a second: on regtest every tile wins, and a claim's window
    (10 blocks) must leave the poster's client time to verify and accept."""
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    return subprocess.Popen([sys.executable, "-m", "miner.cli", "--network", "regtest", "--datadir",
                             str(node.datadir), "--rpc-url", node.url, "--address", miner_address, "--threads", str(threads),
                             "--shape", "64,64,64", "--min-interval", "1", *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_miner_takes_split_jobs_and_client_assembles_the_product(start_nodes) -> None:
    (node,) = start_nodes(1)
    worker = run_cli(node, "wallet", "create")
    node.sendrawtransaction(transfer(FAUCET, 0, decode_address(worker, REGTEST.hrp), 10**10).encode().hex())
    node.generatetoaddress(1, address(FAUCET))
    rng = np.random.default_rng(5)
    a = rng.integers(-64, 65, size=(100, 70), dtype=np.int8)  # no dimension a job allows as it is
    b = rng.integers(-64, 65, size=(70, 50), dtype=np.int8)
    client = MarketClient(node.rpc, REGTEST, FAUCET, log=lambda text: None)
    miner = start_miner(node, worker)
    result: dict[str, np.ndarray] = {}
    poster = threading.Thread(target=lambda: result.update(c=client.matmul(a, b, 10**6, timeout=240, tile_m=64,
                                                                           tile_n=32, expiry_blocks=10_000)),
                              daemon=True)
    try:
        poster.start()
        poster.join(300)
        assert "c" in result, "the product did not come back"
    finally:
        miner.terminate()
        output = miner.communicate(timeout=60)[0]
    assert (result["c"] == a.astype(np.int64) @ b.astype(np.int64)).all() and result["c"].dtype == np.int32
    assert client.counts["posted"] == 4 and client.counts["accepted"] == 4  # 2 row tiles × 2 column tiles
    assert "took job" in output and "claimed job" in output, output
    jobs = node.listjobs("settled")
    assert len(jobs) == 4 and all(j["worker"] == worker for j in jobs)
    useful = [node.getblockheader(node.getblockhash(h))["useful"] for h in range(1, node.getblockcount() + 1)]
    assert any(useful), "no block named a job"
    wait_until(lambda: node.getaccount(worker)["balance"] >= 10**10 + 4 * 250_000 - 4 * 10**5, 30,
               what="the job rewards at the worker")


def test_a_job_of_several_panels_wins_a_block_in_each(start_nodes) -> None:
    """On regtest every tile wins: the miner submits a useful block at the end of each 256-row
    panel of the job's product and mines the rest on the next template, so a 1024-row job wins
    four blocks (one header for the whole product could win only one), and its C is exact."""
    (node,) = start_nodes(1)
    worker = run_cli(node, "wallet", "create")
    node.sendrawtransaction(transfer(FAUCET, 0, decode_address(worker, REGTEST.hrp), 10**10).encode().hex())
    node.generatetoaddress(1, address(FAUCET))
    rng = np.random.default_rng(6)
    a, b = rng.integers(-64, 65, size=(1024, 64), dtype=np.int8), rng.integers(-64, 65, size=(64, 384), dtype=np.int8)
    client = MarketClient(node.rpc, REGTEST, FAUCET, log=lambda text: None)
    miner = start_miner(node, worker, threads=2)  # 4 units a panel for 2 threads: one panel a block
    try:
        c = client.matmul(a, b, 10**6, timeout=240, tile_m=1024, tile_n=384, expiry_blocks=10_000)
    finally:
        miner.terminate()
        output = miner.communicate(timeout=60)[0]
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64)), output
    (job,) = node.listjobs("settled")
    headers = [node.getblockheader(node.getblockhash(height)) for height in range(2, node.getblockcount() + 1)]
    useful = [header for header in headers if header["work"]["job_id"] == job["job_id"]]
    assert [header["ticket"]["a"] // 8 for header in useful] == [0, 1, 2, 3], output


def test_miner_without_a_wallet_says_it_takes_no_jobs(start_nodes) -> None:
    (node,) = start_nodes(1)
    proc = start_miner(node, address(FAUCET), "--blocks", "1")
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output
    assert "taking no jobs: no wallet at" in output and "accepted 1" in output, output
