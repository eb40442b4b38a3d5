"""The miner's figures: odds and expected work per block (PROTOCOL §4), rates over a
window of wall time that includes pauses, and units on every number."""
from __future__ import annotations

import math

import pytest

from consensus.params import MAX_TARGET
from miner import worker
from miner.odds import expected_macs, matmul_win_probability
from miner.units import duration, si


def test_expected_work_is_one_matmul_at_the_pow_limit_and_the_chain_work_when_wins_are_rare() -> None:
    assert expected_macs(MAX_TARGET, 256, 256, 64) == 256 * 256 * 64
    target = 1 << 200
    assert expected_macs(target, 256, 256, 64) == pytest.approx(2**256 / target, rel=1e-6)
    p = target * 1024 * 64 / 2**256
    assert matmul_win_probability(target, 256, 256, 64) == pytest.approx(64 * p, rel=1e-6)


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
