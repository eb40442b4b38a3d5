"""The miner's figures: odds and expected work per block (PROTOCOL §4), rates over a
window of wall time that includes pauses, and units on every number."""
from __future__ import annotations

import dataclasses
import math

import pytest

from consensus.params import MAX_TARGET
from tests.unit.node.helpers import genesis_header
from miner import worker
from miner.odds import expected_block_macs, expected_blocks, expected_macs, matmul_win_probability
from miner.units import duration, si


def test_expected_work_is_one_matmul_at_the_pow_limit_and_the_chain_work_when_wins_are_rare() -> None:
    assert expected_macs(MAX_TARGET, 256, 256, 64) == 256 * 256 * 64
    target = 1 << 200
    assert expected_macs(target, 256, 256, 64) == pytest.approx(2**256 / target, rel=1e-6)
    p = target * 1024 * 64 / 2**256
    assert matmul_win_probability(target, 256, 256, 64) == pytest.approx(64 * p, rel=1e-6)


def test_a_product_in_parts_is_owed_a_block_a_panel_where_one_header_is_owed_one() -> None:
    assert expected_blocks(MAX_TARGET, 4096, 384, 64) == 1.0  # every tile wins: one block a header
    assert expected_blocks(MAX_TARGET, 4096, 384, 64, panel_rows=256) == 16.0  # … and one a panel in parts
    assert expected_blocks(MAX_TARGET, 288, 384, 64, panel_rows=256) == 2.0  # a panel and the 32 rows left
    target = int(0.69 * 2**256) // (4096 * 4096 * 8192)  # a devnet filler: λ = 0.69 winning tiles
    assert expected_blocks(target, 4096, 4096, 8192) == pytest.approx(1 - math.exp(-0.69), rel=1e-4)
    assert expected_blocks(target, 4096, 4096, 8192, panel_rows=256) == pytest.approx(16 * (1 - math.exp(-0.69 / 16)), rel=1e-4)
    rare = 1 << 200  # wins rare: both are the product's MACs over the chain work 2^256 / target
    macs = 4096 * 4096 * 8192
    assert expected_blocks(rare, 4096, 4096, 8192, 256) == pytest.approx(macs * rare / 2**256, rel=1e-6)
    assert expected_blocks(rare, 4096, 4096, 8192) == pytest.approx(macs * rare / 2**256, rel=1e-6)


def test_a_block_of_a_job_mined_in_parts_is_expected_to_cost_a_panel_where_others_cost_a_product() -> None:
    """What the node counts per block for the network's MAC rate, and the miner for its next
    block: a job's product in parts is owed a block a panel, so a block costs about a panel's
    odds, less than with one header where one product is owed one block at most."""
    target = int(0.69 * 2**256) // (4096 * 4096 * 8192)  # a devnet filler: λ = 0.69 winning tiles
    macs = 4096 * 4096 * 8192
    one_header, in_parts = expected_macs(target, 4096, 4096, 8192), expected_macs(target, 4096, 4096, 8192, 256)
    assert one_header == pytest.approx(macs / (1 - math.exp(-0.69)), rel=1e-4)
    assert in_parts == pytest.approx(macs / (16 * (1 - math.exp(-0.69 / 16))), rel=1e-4)
    assert expected_macs(MAX_TARGET, 1024, 384, 64, 256) == 256 * 384 * 64  # every tile wins: a panel a block
    genesis = genesis_header()
    work = dataclasses.replace(genesis.work, m=4096, n=4096, k=8192)
    synthetic = dataclasses.replace(genesis, target=target, work=work)
    job = dataclasses.replace(synthetic, work=dataclasses.replace(work, job_id=b"\x01" * 32))
    assert expected_block_macs(synthetic, 256) == expected_block_macs(synthetic) == one_header
    assert expected_block_macs(job, 256) == in_parts and expected_block_macs(job) == one_header


def test_units() -> None:
    assert si(840_000, "MAC/s") == "840 kMAC/s"
    assert si(4.194304e6, "MAC") == "4.19 MMAC"
    assert si(3, "MAC/s") == "3.00 MAC/s"
    assert duration(0.0042) == "4.20 ms" and duration(5) == "5.00 s" and duration(90) == "1.50 min"
    assert duration(7200) == "2.00 h" and duration(math.inf) == "never"


def test_a_paced_miner_expects_its_block_after_the_pause(monkeypatch) -> None:
    clock = {"now": 1000.0}
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock["now"])
    stats = worker.MinerStats()
    stats.block_macs = 4 * 2**20  # one 4 MMAC matmul wins (pow limit)
    for _ in range(40):  # a matmul of 10 ms, then the 5 s pause of --min-interval
        clock["now"] += 0.01
        stats.add_matmul(4 * 2**20, 64)
        clock["now"] += 5.0
    assert stats.mac_rate() == pytest.approx(4 * 2**20 / 5.01, rel=0.1)
    assert stats.expected_seconds_to_block() == pytest.approx(5.0, rel=0.1)
    assert "MAC/s" in worker.status_line(stats) and "next block expected in" in worker.status_line(stats)
