"""The devnet's live view (scripts/devnet.py) shows the miner's figures from its status file
(``pouw-miner --status-file``, written by ``miner.worker.status_record``); a missing, partial or
foreign file is said in the line and never stops the view."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from miner.jobs import JobStats
from miner.worker import MinerStats, status_record

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from devnet import MINER_STATUS, miner_line  # noqa: E402


def test_the_miner_line_shows_what_the_miner_wrote(tmp_path) -> None:
    stats = MinerStats()
    stats.add_matmul(3 * 10**9, 10, useful=True)
    stats.add_matmul(10**9, 10)
    stats.found, stats.accepted, stats.stale = 4, 3, 1
    jobs = SimpleNamespace(stats=JobStats(taken=5, claimed=4, paid=2, reward=250_000_000))
    (tmp_path / MINER_STATUS).write_text(json.dumps(status_record(stats, jobs)))
    line = miner_line(tmp_path)
    assert "blocks found 4  accepted 3  stale 1" in line
    assert "75% of its MACs on jobs  jobs taken 5  claimed 4  paid 2 (+2.5 coins)" in line
    (tmp_path / MINER_STATUS).write_text(json.dumps(status_record(stats, None)))  # --no-jobs
    assert "stale 1" in miner_line(tmp_path) and "jobs" not in miner_line(tmp_path)


@pytest.mark.parametrize("text, said", [
    (None, "miner: starting"),
    ("{\"mac_rate\": 1", "miner: starting"),  # caught mid-write by a writer that is not atomic
    ("[1, 2]", "is not one this devnet reads"),
    ("{\"mac_rate\": 1, \"found\": 1}", "is not one this devnet reads"),
    ("{\"mac_rate\": 1, \"found\": 1, \"accepted\": 1, \"stale\": 0, \"jobs\": 5}", "is not one this devnet reads"),
])
def test_a_status_file_the_view_cannot_read_is_said(tmp_path, text, said) -> None:
    if text is not None:
        (tmp_path / MINER_STATUS).write_text(text)
    assert said in miner_line(tmp_path)
