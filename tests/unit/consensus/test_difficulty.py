"""ASERT (PROTOCOL §5): steady on schedule, ×2 / ÷2 one half-life off."""
from __future__ import annotations

import pytest

from consensus.difficulty import asert_target, next_target
from consensus.params import DEV, MAIN, REGTEST, TEST

ANCHOR = 1 << 220
LIMIT = 1 << 240


@pytest.mark.parametrize("height", [0, 1, 100, 123_456])
def test_on_schedule_is_steady(height: int) -> None:
    g = 1_790_000_000
    parent_time = g + 60 * height
    assert asert_target(ANCHOR, g, parent_time, height, 60, 3600, LIMIT) == ANCHOR


@pytest.mark.parametrize("halflives", [1, 2, 3])
def test_half_life_behind_doubles_and_ahead_halves(halflives: int) -> None:
    g, h = 1_790_000_000, 500
    on_time = g + 60 * h
    late = asert_target(ANCHOR, g, on_time + 3600 * halflives, h, 60, 3600, LIMIT)
    early = asert_target(ANCHOR, g, on_time - 3600 * halflives, h, 60, 3600, LIMIT)
    assert late == ANCHOR << halflives
    assert early == ANCHOR >> halflives


def test_monotone_and_clamped() -> None:
    g = 1_790_000_000
    values = [asert_target(ANCHOR, g, g + 60 * 10 + dt, 10, 60, 3600, LIMIT) for dt in range(-4000, 4000, 97)]
    assert values == sorted(values)
    assert asert_target(ANCHOR, g, g + 10**9, 10, 60, 3600, LIMIT) == LIMIT
    assert asert_target(ANCHOR, g, g - 10**9, 10, 60, 3600, LIMIT) == 1


def test_network_rules() -> None:
    assert next_target(REGTEST, 0, 5) == REGTEST.pow_limit
    for net in (MAIN, TEST, DEV):
        on_time = net.genesis_timestamp + net.block_time * 7
        assert next_target(net, on_time, 7) == net.initial_target
