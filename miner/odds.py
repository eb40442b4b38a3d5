"""The odds of the work lottery (PROTOCOL §4): a tile wins with probability
``min(1, target·1024·k / 2^256)``; a matmul of T = (m/32)·(n/32) tiles wins when any
of its tiles does. What a block is expected to cost follows from that, in MACs: a product's
MACs over the blocks it is owed — ``m·n·k / P(matmul wins)`` with one header, a panel's MACs
over its odds when mined in parts. That is the consensus chain work ``2^256 / target`` when
wins are rare, but never less than the one matmul (or panel) every block needs (at the pow
limit every tile wins, and ``2^256 / target`` would count 1 MAC for a 4 MMAC block).
"""
from __future__ import annotations

import math

from consensus.block import ZERO32, Header
from consensus.work import TILE, win_threshold


def tile_win_probability(target: int, k: int) -> float:
    return min(1.0, win_threshold(target, k) / 2**256)


def matmul_win_probability(target: int, m: int, n: int, k: int) -> float:
    """``1 − (1 − p)^T``, accurate for tiny p."""
    p = tile_win_probability(target, k)
    if p >= 1.0:
        return 1.0
    return -math.expm1((m // TILE) * (n // TILE) * math.log1p(-p))


def expected_macs(target: int, m: int, n: int, k: int, panel_rows: int | None = None) -> float:
    """MACs a miner of this shape is expected to spend per block at ``target``: with one header
    a product, or in parts of ``panel_rows`` (``expected_blocks``)."""
    blocks = expected_blocks(target, m, n, k, panel_rows)
    return m * n * k / blocks if blocks > 0 else math.inf


def expected_blocks(target: int, rows: int, n: int, k: int, panel_rows: int | None = None) -> float:
    """The blocks ``rows`` rows of an n-column product can be expected to win at ``target``: one at
    most with one header (``kernel.mine``, ``kernel.matmul``), one at most a panel of
    ``panel_rows`` when mined in parts (``kernel.matmul_rows`` with a stop: the kernel finishes
    the winning panel and the rest goes on under another header)."""
    if panel_rows is None:
        return matmul_win_probability(target, rows, n, k)
    full, rest = divmod(rows, panel_rows)
    last = matmul_win_probability(target, rest, n, k) if rest else 0.0
    return full * matmul_win_probability(target, panel_rows, n, k) + last


def expected_block_macs(header: Header, panel_rows: int | None = None) -> float:
    """``expected_macs`` of the shape and target a block was mined with: a job's product as
    ``pouw-miner`` mines one, in parts of ``panel_rows``; any other block with one header."""
    w = header.work
    return expected_macs(header.target, w.m, w.n, w.k, panel_rows if w.job_id != ZERO32 else None)
