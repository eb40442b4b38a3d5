"""ASERT difficulty (aserti3-2d integer form) anchored at genesis (PROTOCOL §5)."""
from __future__ import annotations


def asert_target(anchor_target: int, genesis_time: int, parent_time: int, parent_height: int,
                 block_time: int, halflife: int, pow_limit: int) -> int:
    """Target of the child of a parent at ``parent_height``/``parent_time``."""
    exponent = ((parent_time - (genesis_time - block_time) - block_time * (parent_height + 1)) * 65536) // halflife
    shifts = exponent >> 16
    frac = exponent & 0xFFFF
    factor = 65536 + ((195766423245049 * frac + 971821376 * frac**2 + 5127 * frac**3 + (1 << 47)) >> 48)
    target = anchor_target * factor
    shift = shifts - 16
    target = target << shift if shift >= 0 else target >> -shift
    return min(max(target, 1), pow_limit)


def next_target(network, parent_time: int, parent_height: int) -> int:
    """The target a child of this parent must carry on ``network`` (regtest: pow_limit)."""
    if network.halflife is None:
        return network.pow_limit
    return asert_target(network.initial_target, network.genesis_timestamp, parent_time, parent_height,
                        network.block_time, network.halflife, network.pow_limit)
