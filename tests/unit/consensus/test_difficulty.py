"""Relative ASERT (PROTOCOL §5): on schedule it holds, a half-life late doubles the target,
the first blocks use the initial target, regtest is fixed, and a chain started long after
its genesis time converges to the block time from the initial target."""
from __future__ import annotations

import random
import statistics

import pytest

from consensus.difficulty import asert_step, next_target
from consensus.params import DEV, MAIN, REGTEST, TEST

T0 = 1_800_000_000


@pytest.mark.parametrize("net", [MAIN, TEST, DEV])
def test_on_schedule_holds_and_half_lives_double_or_halve(net) -> None:
    target = net.initial_target >> 4
    assert next_target(net, 10, target, T0 + net.block_time, T0) == target
    for halflives in (1, 2, 3):
        late = next_target(net, 10, target, T0 + net.block_time + net.halflife * halflives, T0)
        early = next_target(net, 10, target, T0 + net.block_time - net.halflife * halflives, T0)
        assert late == min(target << halflives, net.pow_limit)
        assert early == target >> halflives


def test_monotonic_in_solvetime_and_clamped() -> None:
    values = [asert_step(1 << 200, dt, 60, 3600) for dt in range(-4000, 4000, 97)]
    assert values == sorted(values)
    assert next_target(MAIN, 10, MAIN.pow_limit, T0 + 10**9, T0) == MAIN.pow_limit
    assert next_target(MAIN, 10, 1 << 20, T0 - 10**9, T0) == 1


def test_first_blocks_and_regtest() -> None:
    for net in (MAIN, TEST, DEV):
        assert next_target(net, 0, 1, T0 + 10**6, None) == net.initial_target
        assert next_target(net, 1, 1, T0 + 10**6, T0) == net.initial_target
        with pytest.raises(ValueError):
            next_target(net, 2, 1, T0, None)
    assert next_target(REGTEST, 500, 1, T0, T0 - 10**6) == REGTEST.pow_limit


def _simulate(net, macs_per_s: float, blocks: int, rng: random.Random, start: int,
              pause_at: int | None = None, pause: int = 0) -> tuple[list[int], list[int]]:
    """A miner of constant speed: each block's solve time is exponential with mean work/speed."""
    times, targets = [start], [net.initial_target]
    for height in range(1, blocks + 1):
        parent_target = targets[-1]
        grand = times[-2] if len(times) >= 2 else None
        target = next_target(net, height - 1, parent_target, times[-1], grand)
        solve = rng.expovariate(macs_per_s / ((1 << 256) // target))
        if height == pause_at:
            solve += pause
        times.append(times[-1] + max(1, round(solve)))
        targets.append(target)
    return times, targets


def test_dev_converges_to_block_time_from_any_start() -> None:
    """A dev miner at 40 GMAC/s started long after genesis: after convergence the mean interval is
    5 s ± 20 % over any 100 blocks and ± 5 % over 400 (the median of memoryless block times is
    T·ln 2, about 3.5 s); a 10-minute pause costs a bounded recovery: the target came
    up by 2^(pause/halflife) and comes back down by at most 2^(−(T − 1 s)/halflife) a block
    (timestamps are whole seconds), so within about pause / (T − 1 s) blocks."""
    rng = random.Random(1)
    late_start = DEV.genesis_timestamp + 3 * 365 * 86400
    times, targets = _simulate(DEV, 40e9, 800, rng, late_start, pause_at=600, pause=600)
    intervals = [b - a for a, b in zip(times, times[1:])]
    assert 4 <= statistics.mean(intervals[400:500]) <= 6
    assert 4.75 <= statistics.mean(intervals[200:599]) <= 5.25
    assert 3 <= statistics.median(intervals[200:599]) <= 4
    settled = statistics.median(targets[400:500])
    assert targets[601] > settled * 4  # the pause raised the target …
    recovered = next(h for h in range(601, 800) if targets[h] <= settled * 1.5)
    assert recovered - 601 <= 600 // (DEV.block_time - 1) + 30  # … and came back within a bounded number
