"""Operands travel before anyone asks (PROTOCOL §6, §7): a node that sees a JOB_POST fetches
its A and B from peers at once; a matrix it holds (the same commitment in another job) is
never fetched again; a peer that serves a matrix contradicting its commitment (or a reply
that breaks its request) during such a prefetch is refused and banned. Real pouwd
processes, real sockets; the bad peer is a raw connection from its own 127.x address."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client.market import MarketClient
from consensus.params import REGTEST
from consensus.tx import JobPost, make_tx
from consensus.work import commit_a, commit_b

from .framework import NodeProcess, sync_blocks, sync_mempools, wait_until
from .p2putil import RawPeer, banned, connected_pair
from .rpcutil import FAUCET, FAUCET_ADDRESS, address, key

M, K, N = 64, 128, 96
REWARD = 10**9


def operand(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    return rng.integers(-64, 65, size=(rows, cols), dtype=np.int8)


def fetched(node: NodeProcess) -> tuple[int, int]:
    """(matrices fetched from peers, matrices held) by ``node``."""
    info = node.getmarketinfo()
    return info["matrices_fetched"], info["matrices_held"]


def fetch_log(node: NodeProcess, kind: str) -> int:
    """How many times ``node`` logged fetching a matrix of ``kind`` from a peer."""
    return node.log_path.read_text(errors="replace").count(f"fetched {kind} ")


def test_a_post_brings_its_operands_to_the_peer_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    a1, a2, b = operand(rng, M, K), operand(rng, M, K), operand(rng, K, N)
    with connected_pair(tmp_path) as (poster, worker):
        client = MarketClient(poster.rpc, REGTEST, FAUCET, log=lambda text: None)
        assert fetched(worker) == (0, 0)
        first = client.post(a1, b, REWARD)
        # no block, nobody asked the worker's node: the post alone brings A and B over
        wait_until(lambda: fetched(worker) == (2, 2), 30, 0.1, "the worker's node prefetched A and B")
        poster.generatetoaddress(1, address(key(9)))
        sync_blocks([poster, worker])
        matrices = worker.getjob(first)["matrices"]
        assert matrices["A"]["held"] and matrices["B"]["held"]

        second = client.post(a2, b, REWARD)  # the same B (fixed weights), a new A
        sync_mempools([poster, worker])
        wait_until(lambda: fetched(worker)[1] == 3, 30, 0.1, "the second A prefetched")
        poster.generatetoaddress(1, address(key(9)))
        sync_blocks([poster, worker])
        job = worker.getjob(second)
        worker_client = MarketClient(worker.rpc, REGTEST, log=lambda text: None)
        assert (worker_client.download(job["H_B"]) == b).all() and (worker_client.download(job["H_A"]) == a2).all()
        assert fetched(worker) == (3, 3)  # B came over once, for both jobs
        assert (fetch_log(worker, "A"), fetch_log(worker, "B")) == (2, 1)


def wrong_rows(wanted: int, width: int) -> list[bytes]:
    """In range, the right shape, but not the committed matrix."""
    return [bytes([1]) * width for _ in range(wanted)]


def wide_rows(wanted: int, width: int) -> list[bytes]:
    return [bytes(width + 1) for _ in range(wanted)]


def out_of_range_rows(wanted: int, width: int) -> list[bytes]:
    return [bytes([100]) * width for _ in range(wanted)]


@pytest.mark.parametrize("serve", [wrong_rows, wide_rows, out_of_range_rows])
def test_a_bad_matrix_during_prefetch_is_refused_and_its_peer_banned(tmp_path: Path, serve) -> None:
    rng = np.random.default_rng(12)
    a, b = operand(rng, M, K), operand(rng, K, N)
    node = NodeProcess(0, tmp_path, extra_args=["--max-outbound", "0"])
    try:
        node.start()
        with RawPeer.to(node) as peer:
            peer.handshake()
            wait_until(lambda: any(p["version"] for p in node.getpeerinfo()), 10, 0.05, "the raw peer ready")
            nonce = node.getaccount(FAUCET_ADDRESS)["pending_nonce"]
            post = JobPost(M, N, K, commit_a(a), commit_b(b), REWARD, node.getblockcount() + 100)
            node.sendrawtransaction(make_tx(FAUCET, REGTEST.chain_id, nonce, 10_000, post).encode().hex())
            asked = peer.expect("getmatrix", timeout=30)  # the node prefetches from its only peer
            key, first, count = asked.args
            assert key in (post.h_a, post.h_b) and first == 0 and count > 0
            peer.send("matrix", key, first, serve(count, K))
            assert peer.closed(30)
        wait_until(lambda: f"{peer.source_ip}/32" in banned(node), 10, 0.1, "the bad peer banned")
        assert fetched(node) == (0, 0)  # nothing of it was stored
    finally:
        node.cleanup()
