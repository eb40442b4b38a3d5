"""MiningSession against a real regtest pouwd: exact products of any shape and range,
and the blocks its kernel calls win reach the node (PROTOCOL §4, §5)."""
from __future__ import annotations

import numpy as np
import pytest

from consensus.keys import encode_address
from consensus.params import NETWORKS
from client.rpc import cookie_auth
from miner import session as session_module
from miner.session import MiningSession
from miner.template import REFRESH_SECONDS

from .rpcutil import FAUCET, transfer

ADDRESS = encode_address("rpw", b"\x37" * 20)


def test_products_are_exact_and_blocks_are_submitted(start_nodes) -> None:
    (node,) = start_nodes(1)
    rng = np.random.default_rng(14)
    lines: list[str] = []
    with MiningSession(node.url, ADDRESS, datadir=node.datadir, threads=1, log=lines.append) as session:
        for (m, k, n), low, high in [((5, 3, 7), -64, 64),            # tiny: padded to 32x64x32
                                     ((50, 70, 45), -128, 127),       # the whole int8 range: split entries
                                     ((33, 1500, 40), -128, 127)]:    # k beyond r=16's range: a larger r
            a = rng.integers(low, high + 1, (m, k), dtype=np.int8)
            b = rng.integers(low, high + 1, (k, n), dtype=np.int8)
            c = session.matmul(a, b)
            assert c.dtype == np.int64 and c.shape == (m, n)
            assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
        stats = session.stats
    assert stats.products == 3 and stats.kernel_calls == 1 + 4 + 4
    # regtest's target is the pow limit: every kernel call wins, and each block is submitted
    assert stats.found == stats.kernel_calls and stats.rejected == 0 and stats.accepted >= 1
    assert stats.accepted + stats.stale + stats.held == stats.found
    assert node.getblockcount() == stats.accepted == len([line for line in lines if "accepted" in line])
    for height in range(1, stats.accepted + 1):
        block = node.getblock(node.getblockhash(height))
        assert block["miner"] == ADDRESS


def test_a_product_of_several_panels_wins_a_block_in_each(start_nodes) -> None:
    """On regtest every tile wins: the kernel stops at the end of each 256-row panel, that block
    is submitted, and the next panel is mined on the next block's template, so a 1024-row
    product wins four blocks where one header for all of it would have won one."""
    (node,) = start_nodes(1)
    a, b = (np.random.default_rng(15).integers(-64, 65, shape, dtype=np.int8) for shape in ((1024, 64), (64, 384)))
    with MiningSession(node.url, ADDRESS, datadir=node.datadir, threads=2) as session:
        c = session.matmul(a, b)
        stats = session.stats
    assert np.array_equal(c, a.astype(np.int64) @ b.astype(np.int64))
    assert stats.kernel_calls == stats.found == stats.accepted == 4 and stats.macs == 1024 * 384 * 64
    blocks = [node.getblockheader(node.getblockhash(height)) for height in (1, 2, 3, 4)]
    assert [block["ticket"]["a"] // 8 for block in blocks] == [0, 1, 2, 3]  # a tile of each panel (8 tile-rows)
    assert len({block["work"]["H_A"] for block in blocks}) == 1


def test_bad_operands_are_refused_before_any_work(start_nodes) -> None:
    (node,) = start_nodes(1)
    with MiningSession(node.url, ADDRESS, datadir=node.datadir) as session:
        with pytest.raises(ValueError, match="A's columns must equal B's rows"):
            session.matmul(np.zeros((4, 5), np.int8), np.zeros((6, 4), np.int8))
        with pytest.raises(ValueError, match=r"entries must lie in \[-128, 127\]"):
            session.matmul(np.full((4, 4), 300), np.zeros((4, 4), np.int8))
        with pytest.raises(ValueError, match="integers"):
            session.matmul(np.zeros((4, 4)), np.zeros((4, 4)))
        assert session.stats.kernel_calls == 0
    user, password = cookie_auth(node.datadir, "regtest")
    with pytest.raises(ValueError, match="is on regtest"):
        MiningSession(node.url, encode_address("dpw", b"\x37" * 20), rpc_user=user, rpc_password=password)


def test_a_tx_reaching_the_mempool_is_in_the_template_once_it_is_refreshed(start_nodes, monkeypatch) -> None:
    """With no new tip, the template is fetched again after REFRESH_SECONDS (a fake clock here),
    so a tx that reached the mempool meanwhile goes into the next block found; every network's
    blocks come slower than that."""
    (node,) = start_nodes(1)
    clock = [1000.0]
    monkeypatch.setattr(session_module.time, "monotonic", lambda: clock[0])
    with MiningSession(node.url, ADDRESS, datadir=node.datadir) as session:
        first = session._current_template()
        tx = transfer(FAUCET, 0, b"\x38" * 20, 10**6)
        node.sendrawtransaction(tx.encode().hex())
        clock[0] += REFRESH_SECONDS / 2
        assert session._current_template() is first and tx not in first.txs  # fresh enough: kept
        clock[0] += REFRESH_SECONDS
        assert tx in session._current_template().txs
    assert all(REFRESH_SECONDS < network.block_time for network in NETWORKS.values())
