"""pouw-miner's flags: numbers out of range are refused by name before anything starts, and the
job limits take only jobs worth their claim and results its node can deliver in time (PROTOCOL §6)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from client.market import TILE_M, TILE_N, split_product
from consensus.params import COIN, DEV, MAIN, MAX_K
from miner import kernel
from miner.cli import build_parser
from miner.jobs import TMAC, BlockPace, JobLimits, delivery_budget

ADDRESS = ["--address", "rpw1uk87frsj0r5gkdx34hl5zkqtgx78p8p7nj6hdj"]


@pytest.mark.parametrize("flag, value, why", [
    ("--threads", "0", "0 is not in 1.."), ("--threads", "-3", "-3 is not in 1.."),
    ("--threads", "x", "'x' is not an integer"), ("--blocks", "0", "0 is not at least 1"),
    ("--min-interval", "-1", "-1 is not at least 0"), ("--min-interval", "nan", "nan is not at least 0"),
    ("--min-interval", "inf", "inf is not at least 0"), ("--max-job-macs", "0", "0 is not at least 1"),
    ("--min-job-price", "-1", "invalid price '-1'"), ("--min-job-price", "1e-9", "invalid price '1e-9'"),
    ("--shape", "64,64", "'64,64' is not m,n,k with each from 1 to 65536"),
    ("--shape", "64,x,64", "'64,x,64' is not m,n,k"), ("--shape", "0,64,64", "'0,64,64' is not m,n,k"),
    ("--shape", "64,64,65537", "is not m,n,k with each from 1 to 65536"),
])
def test_a_bad_number_is_refused_with_its_flag(flag: str, value: str, why: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*ADDRESS, flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and why in err, err


def test_threads_beyond_the_kernel_are_refused_and_good_flags_parse(capsys) -> None:
    if kernel.MAX_THREADS is not None:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*ADDRESS, "--threads", str(kernel.MAX_THREADS + 1)])
        assert "--threads" in capsys.readouterr().err
    args = build_parser().parse_args([*ADDRESS, "--threads", "1", "--blocks", "2", "--min-interval", "0.5",
                                      "--max-job-macs", "4096", "--min-job-price", "2.5", "--shape", "64,96,128"])
    assert (args.threads, args.blocks, args.min_interval, args.max_job_macs) == (1, 2, 0.5, 4096)
    assert args.shape == (64, 96, 128)
    assert args.min_job_price == 5 * COIN // 2  # base units per TMAC


def test_job_limits_take_a_job_at_its_price_and_never_one_paying_only_the_fee() -> None:
    macs, fee = 2 * TMAC, 10_000
    limits = JobLimits(max_macs=4 * TMAC, min_price=3 * COIN)
    assert limits.takes(macs, 6 * COIN, fee)  # exactly the price
    assert not limits.takes(macs, 6 * COIN - 1, fee)  # one unit under it
    assert not limits.takes(8 * TMAC, 100 * COIN, fee)  # too large
    assert JobLimits().takes(1 << 30, fee + 1, fee) and not JobLimits().takes(1 << 30, fee, fee)


def test_a_default_miner_takes_every_piece_a_default_matmul_posts() -> None:
    """Before, a miner took at most 2^36 MACs by default while client.market split a large
    product into 4096×8192×4096 pieces (2^37): no default miner took them."""
    a, b = np.zeros((2 * TILE_M + 32, MAX_K), np.int8), np.zeros((MAX_K, TILE_N + 32), np.int8)
    sizes = [p.a.shape[0] * p.a.shape[1] * p.b.shape[1] for p in split_product(a, b, DEV)]
    assert len(sizes) == 6 and max(sizes) == TILE_M * MAX_K * TILE_N
    assert all(JobLimits().takes(macs, COIN, 10_000) for macs in sizes)


def test_the_results_a_miner_leaves_waiting_go_out_within_half_the_window_at_its_nodes_rate() -> None:
    """miner.jobs.delivery_budget (§6): 8 MiB/s per peer over half of dev's 10 blocks of 5 s is
    200 MiB (three 64 MiB results of 4096² jobs); main's 100 blocks of 60 s, 23.4 GiB; a node
    serving without a limit, no bound."""
    assert delivery_budget(DEV, 8 * 2**20) == 200 * 2**20
    assert delivery_budget(MAIN, 8 * 2**20) == 3000 * 8 * 2**20
    assert delivery_budget(DEV, 0) == math.inf


def test_on_a_chain_running_fast_the_budget_shrinks_with_its_window() -> None:
    """A dev chain at 3.75 s a block has a 37.5 s window: the budget is 150 MiB, two 64 MiB results
    waiting and not three. A chain slower than its target keeps the target's budget."""
    assert delivery_budget(DEV, 8 * 2**20, 3.75) == 150 * 2**20
    assert delivery_budget(DEV, 8 * 2**20, 9.0) == delivery_budget(DEV, 8 * 2**20, None) == 200 * 2**20
    assert delivery_budget(DEV, 0, 1.0) == math.inf


def test_the_pace_is_measured_between_first_sightings_of_heights_once_enough_came() -> None:
    now = [1000.0]
    pace = BlockPace(enough=10, span=20, clock=lambda: now[0])
    for height in range(100, 110):  # nine blocks watched: not enough
        pace.saw(height)
        pace.saw(height)  # seen again later: its first sight stands
        now[0] += 4.0
    assert pace.seconds_per_block() is None
    pace.saw(110)
    assert pace.seconds_per_block() == 4.0
    pace.saw(105)  # a reorg to a shorter chain, or an old answer: ignored
    for height in range(111, 141):  # a faster stretch: only the last 20 blocks count
        now[0] += 2.0
        pace.saw(height)
    assert pace.seconds_per_block() == 2.0
    now[0] += 30.0
    pace.saw(145)  # a gap of heights seen at once: 30 s for 5 blocks, over the 20-block span
    assert pace.seconds_per_block() == (2.0 * 15 + 30.0) / 20


def test_until_a_window_is_watched_the_pace_is_the_one_the_blocks_stamps_tell() -> None:
    now = [0.0]
    pace = BlockPace(enough=10, span=64, clock=lambda: now[0])
    assert pace.wants_stamps()
    pace.stamped((100, 5000), (109, 5009))  # nine blocks apart: too few to tell a pace
    assert pace.wants_stamps() and pace.seconds_per_block() is None
    pace.stamped((100, 5000), (164, 5192))
    assert not pace.wants_stamps() and pace.seconds_per_block() == 3.0
    pace.stamped((100, 5000), (110, 4990))  # stamps out of order (a miner's clock): no time, not less
    assert pace.seconds_per_block() == 0.0
    for height in range(164, 175):  # a window watched: what the miner saw replaces the stamps
        pace.saw(height)
        now[0] += 4.0
    assert pace.seconds_per_block() == 4.0 and not pace.wants_stamps()
