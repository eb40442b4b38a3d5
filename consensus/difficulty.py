"""Difficulty: ASERT relative to the parent, integer form (PROTOCOL §5)."""
from __future__ import annotations

from .params import Network


def asert_step(parent_target: int, solvetime: int, block_time: int, halflife: int) -> int:
    """``parent_target · 2^((solvetime − T) / halflife)`` in the spec's fixed-point form (unclamped)."""
    exponent = ((solvetime - block_time) * 65536) // halflife
    shifts = exponent >> 16
    frac = exponent & 0xFFFF
    factor = 65536 + ((195766423245049 * frac + 971821376 * frac**2 + 5127 * frac**3 + (1 << 47)) >> 48)
    target = parent_target * factor
    shift = shifts - 16
    return target << shift if shift >= 0 else target >> -shift


def next_target(network: Network, parent_height: int, parent_target: int, parent_time: int,
                grand_time: int | None) -> int:
    """The target a child of ``parent`` must carry; ``grand_time`` is the parent's parent's
    timestamp (unused below height 2). regtest: always pow_limit."""
    if network.halflife is None:
        return network.pow_limit
    if parent_height < 2:
        target = network.initial_target
    else:
        if grand_time is None:
            raise ValueError("the grandparent's timestamp is needed from height 3 on")
        target = asert_step(parent_target, parent_time - grand_time, network.block_time, network.halflife)
    return min(max(target, 1), network.pow_limit)
