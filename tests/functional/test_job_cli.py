"""pouw-cli job (PROTOCOL §6) against a real pouwd: post with clear errors for bad matrices,
status and list, result that verifies and accepts (or proves fraud and says so), watch,
repost of a job that ended without a result (and what it says once the node pruned A, B), a
refusal of another wallet's job, and
matmul: a product of any shape through the network, or the reason it is refused."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from client.market import MarketClient, npy_bytes
from consensus.params import COIN, REGTEST
from consensus.tx import JobResult, claim_of, make_tx
from consensus.work import commit_result
from miner.jobs import JobTaker

from .framework import REPO, wait_until
from .marketutil import away
from .rpcutil import FAUCET, address, key, transfer

PASSWORD = "job-cli"
WORKER = key(60)


def cli(node, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    out = subprocess.run([sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(node.datadir),
                          "--rpc-url", node.url, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def save(path: Path, array: np.ndarray) -> str:
    np.save(path, array, allow_pickle=False)
    return str(path)


@pytest.fixture
def poster(start_nodes):
    (node,) = start_nodes(1)
    cli(node, "wallet", "import-dev-faucet")
    node.sendrawtransaction(transfer(FAUCET, 0, WORKER.address, 10**10).encode().hex())
    node.generatetoaddress(1, address(key(61)))
    return node


def operands(tmp_path: Path, seed: int) -> tuple[np.ndarray, np.ndarray, str, str]:
    rng = np.random.default_rng(seed)
    a = rng.integers(-64, 65, size=(64, 64), dtype=np.int8)
    b = rng.integers(-64, 65, size=(64, 32), dtype=np.int8)
    return a, b, save(tmp_path / f"a{seed}.npy", a), save(tmp_path / f"b{seed}.npy", b)


def claim(node, job_id: str, c: np.ndarray) -> None:
    taker = JobTaker(node.rpc, REGTEST, WORKER, say=lambda text: None)
    work = taker.choose()
    assert work is not None and work.job_id.hex() == job_id
    assert taker.deliver(work, c)
    node.generatetoaddress(1, address(key(61)))


def test_post_refuses_bad_matrices_with_the_reason(poster, tmp_path) -> None:
    _, b, _, b_path = operands(tmp_path, 1)
    cases = [
        (save(tmp_path / "wide.npy", np.zeros((64, 64), np.int16)), "int8"),
        (save(tmp_path / "rows.npy", np.zeros((60, 64), np.int8)), "m=60"),
        (save(tmp_path / "range.npy", np.full((64, 64), 100, np.int8)), "outside"),
        (str(tmp_path / "missing.npy"), "no such file"),
    ]
    (tmp_path / "junk.npy").write_bytes(b"not a matrix")
    cases.append((str(tmp_path / "junk.npy"), "not a .npy"))
    for a_path, why in cases:
        out = cli(poster, "job", "post", a_path, b_path, "--reward", "1", check=False)
        assert out.returncode == 1 and why in out.stderr and "Traceback" not in out.stderr, (why, out.stderr)
    assert poster.listjobs() == []


def test_post_status_list_result_and_watch(poster, tmp_path) -> None:
    a, b, a_path, b_path = operands(tmp_path, 2)
    job_id = cli(poster, "job", "post", a_path, b_path, "--reward", "2.5").stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    assert '"status": "open"' in cli(poster, "job", "status", job_id).stdout
    assert job_id in cli(poster, "job", "list", "--mine").stdout
    out = cli(poster, "job", "result", job_id, "-o", str(tmp_path / "c.npy"), check=False)
    assert out.returncode == 1 and "no result yet" in out.stderr
    product = a.astype(np.int64) @ b.astype(np.int64)
    claim(poster, job_id, product)
    cli(poster, "job", "result", job_id, "-o", str(tmp_path / "c.npy"))
    assert (np.load(tmp_path / "c.npy") == product).all()
    poster.generatetoaddress(1, address(key(61)))
    assert poster.getjob(job_id)["status"] == "settled"

    a2, b2, a2_path, b2_path = operands(tmp_path, 3)
    wrong_id = cli(poster, "job", "post", a2_path, b2_path, "--reward", "1").stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    wrong = a2.astype(np.int64) @ b2.astype(np.int64)
    wrong[7, 9] += 1
    claim(poster, wrong_id, wrong)
    out = cli(poster, "job", "result", wrong_id, "-o", str(tmp_path / "c2.npy"), check=False)
    assert out.returncode == 1 and "C[7, 9] is wrong" in out.stderr and "fraud proof sent" in out.stderr
    poster.generatetoaddress(1, address(key(61)))
    assert poster.getjob(wrong_id)["status"] == "open"

    claim(poster, wrong_id, a2.astype(np.int64) @ b2.astype(np.int64))
    cli(poster, "job", "watch", "--once")
    poster.generatetoaddress(1, address(key(61)))
    assert poster.getjob(wrong_id)["status"] == "settled"


def test_result_wait_settles_once_the_claim_is_mined(poster, tmp_path) -> None:
    """``job result --wait`` on an open job waits on the node for the next block (no polling
    of its own), and settles the claim that block brings."""
    a, b, a_path, b_path = operands(tmp_path, 4)
    job_id = cli(poster, "job", "post", a_path, b_path, "--reward", "1").stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    waiting = subprocess.Popen([sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir",
                                str(poster.datadir), "--rpc-url", poster.url, "job", "result", job_id, "-o",
                                str(tmp_path / "c.npy"), "--wait", "--timeout", "60"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        assert waiting.poll() is None  # still waiting: the job is open
        product = a.astype(np.int64) @ b.astype(np.int64)
        claim(poster, job_id, product)
        _, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert (np.load(tmp_path / "c.npy") == product).all() and len(poster.getrawmempool()) == 1  # the accept


def test_watch_comes_back_to_a_result_whose_product_arrives_late(poster, tmp_path) -> None:
    """The worker's JOB_RESULT is mined before its C reaches any node: ``watch`` finds C not
    available, says so, and settles the job once C is there (it used to mark the claim
    answered on the first look and let a good result lapse)."""
    a, b, a_path, b_path = operands(tmp_path, 4)
    job_id = cli(poster, "job", "post", a_path, b_path, "--reward", "1").stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    product = (a.astype(np.int64) @ b.astype(np.int64)).astype("<i4")
    nonce = poster.getaccount(address(WORKER))["pending_nonce"]
    result = make_tx(WORKER, REGTEST.chain_id, nonce, 10_000,
                     JobResult(bytes.fromhex(job_id), claim_of(WORKER.address, commit_result(product)), COIN // 10))
    poster.sendrawtransaction(result.encode().hex())
    poster.generatetoaddress(1, address(key(61)))
    assert poster.getjob(job_id)["status"] == "claimed"

    log = tmp_path / "watch.log"
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    with open(log, "w") as out:
        watch = subprocess.Popen([sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir",
                                  str(poster.datadir), "--rpc-url", poster.url, "job", "watch", "--interval", "0.3"],
                                 cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "C not available" not in log.read_text():
            assert watch.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        poster.rpc.http("PUT", f"/matrix/C?worker={address(WORKER)}&job_id={job_id}", npy_bytes(product))
        while poster.getjob(job_id)["status"] == "claimed":
            assert watch.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
            poster.generatetoaddress(1, address(key(61)))
        assert poster.getjob(job_id)["status"] == "settled", log.read_text()
    finally:
        watch.kill()
        watch.wait(10)


def test_repost_posts_an_ended_job_again_with_the_same_matrices(poster, tmp_path) -> None:
    a, b, a_path, b_path = operands(tmp_path, 5)
    job_id = cli(poster, "job", "post", a_path, b_path, "--reward", "1.5", "--expiry", "2").stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    out = cli(poster, "job", "repost", job_id, check=False)
    assert out.returncode == 1 and "is open: only a refunded or lapsed job is posted again" in out.stderr
    poster.generatetoaddress(3, address(key(61)))  # past its expiry, untaken
    assert poster.getjob(job_id)["status"] == "refunded"
    out = cli(poster, "job", "result", job_id, "-o", str(tmp_path / "c.npy"), check=False)
    assert out.returncode == 1 and f"pouw-cli job repost {job_id}" in out.stderr
    again = cli(poster, "job", "repost", job_id).stdout.strip()
    poster.generatetoaddress(1, address(key(61)))
    new, old = poster.getjob(again), poster.getjob(job_id)
    assert new["status"] == "open" and new["reward"] == old["reward"] == 150_000_000
    assert (new["H_A"], new["H_B"], new["m"], new["n"], new["k"]) == (old["H_A"], old["H_B"], 64, 32, 64)
    product = a.astype(np.int64) @ b.astype(np.int64)
    claim(poster, again, product)
    cli(poster, "job", "result", again, "-o", str(tmp_path / "c.npy"))
    assert (np.load(tmp_path / "c.npy") == product).all()
    bigger = cli(poster, "--json", "job", "repost", job_id, "--reward", "3").stdout
    assert '"reward": 300000000' in bigger


def test_result_and_repost_refuse_a_job_another_wallet_posted(poster, tmp_path) -> None:
    a, b, _, _ = operands(tmp_path, 7)
    job_id = MarketClient(poster.rpc, REGTEST, WORKER, log=lambda text: None).post(a, b, COIN, 2)
    poster.generatetoaddress(1, address(key(61)))
    for args in (("result", job_id, "-o", str(tmp_path / "c.npy")), ("repost", job_id)):
        out = cli(poster, "job", *args, check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"posted by {address(WORKER)}, which is not a key of this wallet" in out.stderr
    assert not (tmp_path / "c.npy").exists()


def test_repost_says_so_once_the_node_has_pruned_the_matrices(poster, tmp_path) -> None:
    _, _, a_path, b_path = operands(tmp_path, 6)
    job_id = cli(poster, "job", "post", a_path, b_path, "--reward", "1", "--expiry", "2").stdout.strip()
    poster.generatetoaddress(3 + 2 * REGTEST.challenge_window, address(key(61)))  # refunded, then a window more
    assert poster.getjob(job_id)["status"] == "refunded"
    wait_until(lambda: not poster.getjob(job_id)["matrices"]["A"]["held"], 30, 0.5, "A pruned")
    out = cli(poster, "job", "repost", job_id, check=False)
    assert out.returncode == 1 and "the node no longer holds A" in out.stderr and "from its files" in out.stderr
    assert "Traceback" not in out.stderr


def test_matmul_multiplies_any_shape_through_the_network(poster, tmp_path) -> None:
    """``job matmul`` pads a 50×70 · 70×20 product to a job the protocol allows, posts it, and
    saves the exact A·B once it verified and accepted the worker's result; the test mines and
    plays the worker."""
    rng = np.random.default_rng(7)
    a = rng.integers(-64, 65, size=(50, 70), dtype=np.int8)
    b = rng.integers(-64, 65, size=(70, 20), dtype=np.int8)
    out_path = tmp_path / "ab.npy"
    env = {**os.environ, "POUW_WALLET_PASSWORD": PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir",
                             str(poster.datadir), "--rpc-url", poster.url, "job", "matmul",
                             save(tmp_path / "a.npy", a), save(tmp_path / "b.npy", b), "--reward", "1",
                             "-o", str(out_path)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    taker = JobTaker(poster.rpc, REGTEST, WORKER, say=lambda text: None)
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            work = taker.choose()
            if work is not None:  # the padded piece: its product, as an honest worker computes it
                assert taker.deliver(work, work.a.astype(np.int64) @ work.b.astype(np.int64))
            poster.generatetoaddress(1, address(key(61)))
            time.sleep(0.3)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout.strip() == str(out_path) and "verified result saved" in stderr
    c = np.load(out_path)
    assert c.dtype == np.int32 and (c == a.astype(np.int64) @ b.astype(np.int64)).all()
    (job,) = poster.listjobs("settled")[-1:]
    assert (job["m"], job["k"], job["n"]) != (50, 70, 20)  # padded to the protocol's multiples


def test_matmul_uploads_a_piece_again_once_its_node_pruned_it(poster) -> None:
    """A piece whose job ended untaken, and whose A and B the node pruned before the client
    looked again, is posted again with a fresh upload (``MatricesGone``: a repost under the
    same H_A and H_B would name matrices no node holds), and its product still comes back."""
    rng = np.random.default_rng(9)
    a = rng.integers(-64, 65, size=(64, 64), dtype=np.int8)
    b = rng.integers(-64, 65, size=(64, 32), dtype=np.int8)
    said: list[str] = []
    result: dict[str, np.ndarray] = {}
    client = MarketClient(poster.rpc, REGTEST, FAUCET, log=said.append)
    client_away = away(client)
    thread = threading.Thread(target=lambda: result.update(c=client.matmul(
        a, b, COIN, expiry_blocks=2, reposts=1, timeout=120)), daemon=True)
    thread.start()
    wait_until(lambda: len(poster.getrawmempool()) == 1, 10, 0.1, "the piece's JOB_POST")
    with client_away:  # its next look finds the job refunded and A gone
        poster.generatetoaddress(4 + 2 * REGTEST.challenge_window, address(key(61)))  # refunded, then final
        (first,) = poster.listjobs()
        assert first["status"] == "refunded"
        wait_until(lambda: not poster.getjob(first["job_id"])["matrices"]["A"]["held"], 10, 0.2, "A pruned")
    wait_until(lambda: len(poster.getrawmempool()) == 1, 30, 0.2, "the piece posted again")
    poster.generatetoaddress(1, address(key(61)))
    (again,) = [job for job in poster.listjobs() if job["job_id"] != first["job_id"]]
    assert (again["H_A"], again["H_B"], again["status"]) == (first["H_A"], first["H_B"], "open")
    assert poster.getjob(again["job_id"])["matrices"]["A"]["held"]  # uploaded again, not merely reposted
    claim(poster, again["job_id"], a.astype(np.int64) @ b.astype(np.int64))
    wait_until(lambda: len(poster.getrawmempool()) == 1, 30, 0.2, "the client's JOB_ACCEPT")
    poster.generatetoaddress(1, address(key(61)))
    thread.join(30)
    assert (result["c"] == a.astype(np.int64) @ b.astype(np.int64)).all()
    assert any("ended refunded without a result: posted again" in line for line in said), said


def test_matmul_refuses_bad_operands_with_the_reason(poster, tmp_path) -> None:
    _, b, _, b_path = operands(tmp_path, 8)
    for a, why in ((np.zeros((64, 64), np.int16), "int8"), (np.full((64, 64), 100, np.int8), "[-64, 64]"),
                   (np.zeros((64, 50), np.int8), "cannot multiply")):
        out = cli(poster, "job", "matmul", save(tmp_path / "a.npy", a), b_path, "--reward", "1",
                  "-o", str(tmp_path / "c.npy"), check=False)
        assert out.returncode == 1 and why in out.stderr and "Traceback" not in out.stderr, (why, out.stderr)
    for flag, value, why in (("--expiry", "0", "0 is not in 1..4294967296"), ("--reposts", "-1", "-1 is not at least 0"),
                             ("--timeout", "nan", "nan is not at least 0")):
        out = cli(poster, "job", "matmul", b_path, b_path, "--reward", "1", "-o", str(tmp_path / "c.npy"), flag, value,
                  check=False)
        assert out.returncode == 2 and f"argument {flag}: {why}" in out.stderr, out.stderr
    assert poster.listjobs() == []
