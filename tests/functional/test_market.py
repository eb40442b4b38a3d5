"""The job market end to end with real pouwd processes and real sockets (PROTOCOL §6, §7): a
poster's client on one node, workers on another; matrices travel over p2p ``getmatrix``.

An honest worker is paid when the poster's client has verified C and accepted (the client's
wait returns that C, fetched once); a wrong C is caught and proved, the bond goes to the
prover and the job reopens; a worker that never serves C lapses (bond back, reward burned,
supply balanced); a copied claim earns nothing; refused uploads say why; a restarted worker
node still serves C; client.matmul posts a piece again whose job expired or lapsed, as often
as it may; a worker takes no job below its price or paying no more than the fee of claiming
it, nor more than its node can deliver to posters before their claims would lapse."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from client.market import MarketClient, MarketClientError, NotClaimed, npy_bytes
from consensus.params import REGTEST
from consensus.tx import JobResult, claim_of, make_tx
from consensus.work import commit_result
from miner.jobs import DEFAULT_FEE, TMAC, BlockPace, JobLimits, JobTaker
from client.rpc import BadResponse

from .framework import NodeProcess, sync_blocks, sync_mempools, wait_until
from .marketutil import away
from .p2putil import connected_pair, wait_connected
from .rpcutil import FAUCET, address, key, transfer

HONEST, CHEAT, COPIER, MINER = key(50), key(51), key(52), key(53)
M, K, N = 64, 128, 96
REWARD = 10**9
WINDOW = REGTEST.challenge_window


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """poster node (0) and worker node (1), connected; the workers funded and matured."""
    with connected_pair(Path(tmp_path_factory.mktemp("market"))) as (poster, worker):
        for i, k in enumerate((HONEST, CHEAT, COPIER)):
            poster.sendrawtransaction(transfer(FAUCET, i, k.address, 100 * 10**8).encode().hex())
        poster.generatetoaddress(1, address(MINER))
        sync_blocks([poster, worker])
        yield poster, worker


def operands(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(-64, 65, size=(M, K), dtype=np.int8), rng.integers(-64, 65, size=(K, N), dtype=np.int8)


def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def post_job(poster: NodeProcess, worker: NodeProcess, seed: int) -> tuple[MarketClient, np.ndarray, np.ndarray, str]:
    """The poster's client posts A·B (operands of ``seed``) and the post is mined: (client, A, B, job id)."""
    a, b = operands(seed)
    client = client_of(poster)
    job_id = client.post(a, b, REWARD)
    mine(poster, worker)
    return client, a, b, job_id


def client_of(node: NodeProcess) -> MarketClient:
    return MarketClient(node.rpc, REGTEST, FAUCET, log=lambda text: None)


def taker(node: NodeProcess, k, limits: JobLimits = JobLimits()) -> JobTaker:
    return JobTaker(node.rpc, REGTEST, k, limits, say=lambda text: None)


def mine(poster: NodeProcess, worker: NodeProcess, blocks: int = 1) -> None:
    """Mine what both pools hold, paying a bystander so that no tested balance moves by rewards."""
    sync_mempools([poster, worker])
    poster.generatetoaddress(blocks, address(MINER))
    sync_blocks([poster, worker])


def balance(node: NodeProcess, k) -> int:
    return node.getaccount(address(k))["balance"]


def take(node: NodeProcess, k, job_id: str):
    """The worker's JobTaker picks ``job_id`` (the only open job) and fetches A, B through its node."""
    work = taker(node, k).choose()
    assert work is not None and work.job_id.hex() == job_id
    return work


def test_honest_worker_is_paid_after_the_poster_verifies(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 1)
    # the post brought A and B to the worker's node over getmatrix (a prefetch), unasked
    wait_until(lambda: worker.getjob(job_id)["matrices"]["A"]["held"], 30, 0.1, "A prefetched")
    t = taker(worker, HONEST)
    work = t.choose()  # through the worker's node
    assert work is not None and work.job_id.hex() == job_id
    assert (work.a == a).all() and (work.b == b).all()
    assert worker.getjob(job_id)["matrices"]["A"]["held"] is True
    before = balance(worker, HONEST)
    assert t.deliver(work, product(a, b))
    claim = work.claim.hex()
    assert poster.getjob(job_id)["matrices"]["C"] is None  # no claim on chain yet: nothing to serve
    mine(poster, worker)
    assert poster.getjob(job_id)["status"] == "claimed"
    verdict, c, txid = client.settle(job_id)  # C comes from the worker's node over p2p
    assert verdict.ok and txid and (c == product(a, b)).all()
    mine(poster, worker)
    job = poster.getjob(job_id)
    assert job["status"] == "settled" and job["claim"] == claim
    with pytest.raises(NotClaimed, match="is settled, not claimed"):  # what wait() looks at again
        client.settle(job_id)
    assert balance(worker, HONEST) == before - 10_000 + REWARD  # fee spent; bond back; reward in
    assert client.wait([job_id], timeout=30, poll=0.2)[job_id].dtype == np.int32
    t.poll()
    assert (t.stats.claimed, t.stats.paid, t.stats.reward) == (1, 1, REWARD)
    info = poster.getstateinfo(True)
    assert info["verified"] and info["supply_balanced"] and info["jobs"]["settled"] >= 1
    market = poster.getmarketinfo()
    assert market["jobs"]["settled"] == 1 and market["settled_macs"] == M * N * K
    assert 0 < market["useful_mac_share"] and market["bytes_served"] > 0
    # a window of blocks that ends before the claim does not count the job; one that ends on it does
    assert poster.getmarketinfo(1000, job["claim_height"] - 1)["settled_macs"] == 0
    claim_block = poster.getmarketinfo(1, job["claim_height"])
    assert (claim_block["first"], claim_block["last"]) == (job["claim_height"],) * 2
    assert claim_block["settled_macs"] == M * N * K and claim_block["useful_blocks"] <= 1
    # settled: its matrices go a window after the claim's window, long before its expiry
    mine(poster, worker, job["claim_height"] + 2 * WINDOW + 1 - poster.getblockcount())
    assert poster.getblockcount() < job["expiry"]
    for node in (poster, worker):
        wait_until(lambda: not any(held(node.getjob(job_id)["matrices"][kind]) for kind in "ABC"), 30, 0.2,
                   f"A, B and C of a settled job pruned on node {node.index}")


def test_wait_returns_the_c_it_verified_without_fetching_it_again(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 9)
    t = taker(worker, HONEST)
    work = t.choose()
    assert work is not None and work.job_id.hex() == job_id and t.deliver(work, product(a, b))
    mine(poster, worker)  # the claim
    fetched: list[str] = []
    looks: list[list[str]] = []
    download, jobs = client.download, client.jobs
    client.download = lambda key: fetched.append(key) or download(key)  # counts what the client fetches
    client.jobs = lambda ids: looks.append(ids) or jobs(ids)  # and its looks at the jobs
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.wait, [job_id], 60, {job_id: (a, b)}, 0.1)
        wait_until(lambda: fetched and len(poster.getrawmempool()) == 1, 30, 0.1, "C verified and accepted")
        time.sleep(0.5)  # polls on the same tip: no look at the jobs
        mine(poster, worker)  # the accept
        c = waiting.result(60)[job_id]
    assert poster.getjob(job_id)["status"] == "settled"
    assert c.dtype == np.int32 and (c == product(a, b)).all()
    assert fetched == [work.claim.hex()]  # once, to verify it; A and B were the caller's
    assert looks == [[job_id], [job_id]]  # at the claim's tip, then at the accept's


def held(matrix: dict | None) -> bool:
    return matrix is not None and matrix["held"]


def test_wrong_result_is_proved_then_done_honestly(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 2)
    cheat = taker(worker, CHEAT)
    work = cheat.choose()
    wrong = product(a, b)
    wrong[17, 33] += 5
    prover_before = balance(poster, FAUCET)
    assert cheat.deliver(work, wrong)
    mine(poster, worker)
    verdict, c, txid = client.settle(job_id)
    assert not verdict.ok and verdict.wrong == (17, 33) and c is None and txid
    assert poster.gettransaction(txid)["kind"] == "fraud_proof"
    mine(poster, worker)
    job = poster.getjob(job_id)
    assert job["status"] == "open" and job["worker"] is None
    bond = -(-REWARD // 10)
    fees = poster.gettransaction(txid)["fee"]
    assert balance(poster, FAUCET) - prover_before == bond - fees
    cheat.poll()
    assert cheat.stats.lost == 1
    honest = taker(worker, HONEST)
    again = honest.choose()
    assert again is not None and again.job_id.hex() == job_id
    assert honest.deliver(again, product(a, b))
    mine(poster, worker)
    verdict, c, txid = client.settle(job_id)
    assert verdict.ok
    mine(poster, worker)
    assert poster.getjob(job_id)["status"] == "settled"


def test_withheld_result_lapses_and_burns_the_reward(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 3)
    work = take(worker, HONEST, job_id)
    c = product(a, b)
    bond = -(-REWARD // 10)
    tx = make_tx(HONEST, REGTEST.chain_id, worker.getaccount(address(HONEST))["pending_nonce"], 10_000,
                 JobResult(work.job_id, claim_of(HONEST.address, commit_result(c)), bond))
    worker.sendrawtransaction(tx.encode().hex())  # the claim, but C is never handed to any node
    mine(poster, worker)
    before = balance(worker, HONEST)
    burned = poster.getstateinfo()["total_burned"]
    verdict, _, txid = client.settle(job_id)
    assert not verdict.ok and txid is None and "not available" in verdict.reason
    mine(poster, worker, WINDOW)
    assert poster.getjob(job_id)["status"] == "lapsed"
    assert balance(worker, HONEST) == before + bond  # bond back, no reward
    info = poster.getstateinfo(True)
    assert info["total_burned"] == burned + REWARD and info["supply_balanced"] and info["verified"]


def test_copied_claim_earns_nothing(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 4)
    honest = taker(worker, HONEST)
    work = honest.choose()
    c = product(a, b)
    copied = make_tx(COPIER, REGTEST.chain_id, worker.getaccount(address(COPIER))["pending_nonce"], 10_000,
                     JobResult(work.job_id, claim_of(HONEST.address, commit_result(c.astype(np.int32))),
                               -(-REWARD // 10)))
    poster.sendrawtransaction(copied.encode().hex())  # the copier saw the claim and got in first
    mine(poster, worker)
    assert honest.deliver(work, c) is False  # the job is claimed: the honest result tx is refused
    job = poster.getjob(job_id)
    assert job["worker"] == address(COPIER)
    verdict, _, txid = client.settle(job_id)  # the C the claim names is nobody's the copier can prove
    assert not verdict.ok and txid is None
    before = balance(worker, COPIER)
    mine(poster, worker, WINDOW)
    assert poster.getjob(job_id)["status"] == "lapsed"
    assert balance(worker, COPIER) == before + -(-REWARD // 10)  # its bond back and nothing more


def test_refused_uploads_say_why(net) -> None:
    poster, _ = net
    client = client_of(poster)
    a, b = operands(5)
    with pytest.raises(BadResponse, match="not a valid .npy"):
        poster.rpc.http("PUT", "/matrix/A", b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(BadResponse, match="outside"):
        poster.rpc.http("PUT", "/matrix/A", npy_bytes(np.full((M, K), 100, np.int8)))
    with pytest.raises(BadResponse, match="does not match its commitment"):
        poster.rpc.http("PUT", f"/matrix/B?expect={'00' * 32}", npy_bytes(b))
    with pytest.raises(MarketClientError, match="multiple of 32"):
        client.post(a[:40], b, REWARD)
    key_a = client.upload("A", a)
    assert poster.getmatrix(key_a)["shape"] == [M, K]


def test_restarted_worker_node_still_serves_c(net) -> None:
    poster, worker = net
    client, a, b, job_id = post_job(poster, worker, 6)
    t = taker(worker, HONEST)
    work = t.choose()
    assert t.deliver(work, product(a, b))
    mine(poster, worker)
    worker.kill9()
    worker.start()
    wait_connected(worker, poster.p2p_address)
    verdict, c, txid = client.settle(job_id)
    assert verdict.ok and txid


def posted_job(poster: NodeProcess, worker: NodeProcess, client: MarketClient, posts: int) -> str:
    """Once the client has sent its ``posts``-th JOB_POST, mine it: the id of the job it opened."""
    wait_until(lambda: client.counts["posted"] == posts, 30, 0.1, f"post {posts}")
    opened = {job["job_id"] for job in poster.listjobs("open")}
    mine(poster, worker)
    (job_id,) = {job["job_id"] for job in poster.listjobs("open")} - opened
    return job_id


def test_matmul_posts_a_piece_again_when_its_job_expires_or_lapses(net) -> None:
    """client.matmul's one piece: refunded at expiry (no taker), posted again; claimed by a
    worker that never delivers C, lapsed, posted again; then done honestly and returned."""
    poster, worker = net
    a, b = operands(7)
    client = client_of(poster)
    client_away = away(client)
    burned = poster.getstateinfo()["total_burned"]
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(client.matmul, a, b, REWARD, timeout=120, expiry_blocks=2)
        first = posted_job(poster, worker, client, 1)
        with client_away:
            mine(poster, worker, 3)  # past its expiry with no taker
        assert poster.getjob(first)["status"] == "refunded"
        second = posted_job(poster, worker, client, 2)
        work = take(worker, HONEST, second)
        tx = make_tx(HONEST, REGTEST.chain_id, worker.getaccount(address(HONEST))["pending_nonce"], 10_000,
                     JobResult(work.job_id, claim_of(HONEST.address, commit_result(product(a, b))), -(-REWARD // 10)))
        worker.sendrawtransaction(tx.encode().hex())  # a claim whose C no node will ever serve
        mine(poster, worker)
        wait_until(lambda: client.counts["undelivered"] >= 1, 30, 0.1, "the client looked for C")
        with client_away:
            mine(poster, worker, WINDOW)
        assert poster.getjob(second)["status"] == "lapsed"
        third = posted_job(poster, worker, client, 3)
        honest = taker(worker, HONEST)
        work = take(worker, HONEST, third)
        assert honest.deliver(work, product(a, b))
        mine(poster, worker)
        wait_until(lambda: client.counts["accepted"] == 1, 30, 0.1, "the accept")
        mine(poster, worker)
        assert (call.result(timeout=60) == product(a, b)).all()
    assert client.counts["reposted"] == 2 and poster.getjob(third)["status"] == "settled"
    assert poster.getstateinfo()["total_burned"] == burned + REWARD  # the lapsed post's reward


def test_matmul_gives_up_on_a_piece_once_its_reposts_are_spent(net) -> None:
    poster, worker = net
    a, b = operands(8)
    client = client_of(poster)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(client.matmul, a, b, REWARD, timeout=120, expiry_blocks=2, reposts=0)
        job_id = posted_job(poster, worker, client, 1)
        mine(poster, worker, 3)
        with pytest.raises(MarketClientError, match=f"job {job_id} ended refunded without a result"):
            call.result(timeout=60)
    assert client.counts["posted"] == 1 and client.counts["reposted"] == 0


def test_worker_takes_no_job_below_its_price_or_paying_only_its_fee(net) -> None:
    poster, worker = net
    client = client_of(poster)
    others = {bytes.fromhex(job["job_id"]) for job in worker.listjobs("open")}
    fee_only = client.post(*operands(20), DEFAULT_FEE, expiry_blocks=3)  # paid, the claim would still lose money
    priced = client.post(*operands(21), DEFAULT_FEE + 1, expiry_blocks=3)
    mine(poster, worker)
    price = (DEFAULT_FEE + 1) * TMAC // (M * N * K)  # what the second job pays per TMAC, rounded down
    work = taker(worker, HONEST, JobLimits(min_price=price)).choose(others)
    assert work is not None and work.job_id.hex() == priced
    assert taker(worker, HONEST, JobLimits(min_price=price + 1)).choose(others) is None
    assert taker(worker, HONEST).choose(others | {bytes.fromhex(priced)}) is None  # the fee-only job: never
    mine(poster, worker, 3)
    assert [poster.getjob(job_id)["status"] for job_id in (fee_only, priced)] == ["refunded", "refunded"]


def test_a_worker_takes_no_more_jobs_than_its_node_can_deliver_in_the_window(tmp_path) -> None:
    """A worker's node serving 0.0015 MiB/s per peer delivers about 38 KiB in half the regtest
    window (miner.jobs.delivery_budget): with one claim's C of 24 KiB waiting for its poster,
    the taker leaves a second such job, whose claim would lapse, and says so; it still takes one
    whose C fits, though it pays less per MAC; with no claim waiting it takes the first, whatever
    its size; a job taken and not yet claimed counts as a claim, and so does a claim waiting in
    the node's mempool, which a restarted miner does not compute again. A miner started afresh
    counts the claims the chain holds under its address. Once the chain runs faster than its
    target, the window's seconds are fewer, and so is the budget (miner.jobs.BlockPace)."""
    rate = 0.0015
    with connected_pair(tmp_path, ["--matrix-rate", str(rate)]) as (poster, worker):
        assert worker.getnetworkinfo()["matrixrate"] == rate * 2**20
        poster.sendrawtransaction(transfer(FAUCET, 0, HONEST.address, 100 * 10**8).encode().hex())
        mine(poster, worker)
        client = client_of(poster)
        big = [client.post(*operands(seed), REWARD) for seed in (101, 102)]
        mine(poster, worker)
        said: list[str] = []
        t = JobTaker(worker.rpc, REGTEST, HONEST, say=said.append)
        first = t.choose()
        assert first is not None and first.job_id.hex() in big
        assert t.choose(taken={first.job_id}) is None  # being computed: its C will wait as much as a claim's
        assert t.deliver(first, product(first.a, first.b)) and first.c.nbytes == 4 * M * N
        assert t.choose() is None  # the other big job: 48 KiB would wait
        assert t.holding_back and any(line.startswith("taking no more jobs for now: 0 MiB of results wait")
                                      for line in said)
        # the claim still in the worker node's mempool: a miner started afresh counts it, and
        # does not compute that job again
        assert worker.getjob(first.job_id.hex())["mempool_workers"] == [address(HONEST)]
        assert {job["job_id"]: job["mempool_workers"] for job in worker.listjobs("open")} == \
            {first.job_id.hex(): [address(HONEST)], **{job_id: [] for job_id in big if job_id != first.job_id.hex()}}
        pooled = JobTaker(worker.rpc, REGTEST, HONEST, say=said.append)
        assert pooled.choose() is None and pooled.holding_back
        mine(poster, worker)  # the claim into a block: a miner started afresh finds it under its address
        assert [job["job_id"] for job in worker.listjobs("claimed", address(HONEST))] == [first.job_id.hex()]
        assert worker.listjobs("claimed", address(CHEAT)) == []
        restarted = JobTaker(worker.rpc, REGTEST, HONEST, say=said.append)
        assert not restarted.claimed and restarted.choose() is None and restarted.holding_back
        rng = np.random.default_rng(103)
        a, b = rng.integers(-64, 65, (32, K), dtype=np.int8), rng.integers(-64, 65, (K, 32), dtype=np.int8)
        small = client.post(a, b, REWARD // 1000)  # a far lower price per MAC than the big job's
        mine(poster, worker)
        fits = t.choose()
        assert fits is not None and fits.job_id.hex() == small and not t.holding_back
        assert said[-2:] == ["taking jobs again: the results waiting for posters fit the window",
                             f"took job {small[:16]}… 32×32×128 for {REWARD // 1000} units"]
        # the chain sped up: the last window's blocks came 0.5 s apart (the taker's own look at
        # the tip is the window's last), so half the window delivers 3.8 KiB: not even the small C
        now = [0.0]
        t.pace = BlockPace(REGTEST.challenge_window, clock=lambda: now[0])
        height = worker.getblockcount()
        for seen in range(height - REGTEST.challenge_window, height):
            t.pace.saw(seen)
            now[0] += 0.5
        assert t.choose() is None and t.holding_back
        assert t.pace.seconds_per_block() == 0.5


def test_a_fresh_worker_reads_the_pace_from_the_blocks_stamps_where_the_target_follows_it(tmp_path) -> None:
    """Before a taker has watched a window of blocks arrive, it reads the chain's pace from the
    time stamps of the tip and of the block up to 64 below it (not genesis), once there is a
    window of them: on a network whose target follows the pace (dev, test, main). Regtest's
    blocks come when a test asks for them, so there it waits to watch (miner.jobs.BlockPace)."""
    paced = replace(REGTEST, halflife=3600)  # regtest's rules, a target that follows the pace
    node = NodeProcess(0, tmp_path)
    node.start()
    try:
        node.generatetoaddress(REGTEST.challenge_window, address(HONEST))
        early = JobTaker(node.rpc, paced, HONEST)
        assert early.choose() is None and early.pace.seconds_per_block() is None  # blocks 1–10: no window yet
        node.generatetoaddress(1, address(HONEST))
        first, tip = (node.getblockheader(node.getblockhash(height))["time"] for height in (1, 11))
        assert early.choose() is None and early.pace.seconds_per_block() == (tip - first) / 10
        assert early.pace.seconds_per_block() < REGTEST.block_time  # generated on demand: faster than the target
        fixed = JobTaker(node.rpc, REGTEST, HONEST)
        assert fixed.choose() is None and fixed.pace.seconds_per_block() is None
    finally:
        node.cleanup()
