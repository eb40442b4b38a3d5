"""Initial sync and --reindex show progress lines (bar, %, blocks; rate and time left once
known, see tests/unit/node/test_progress.py) instead of a "new tip" line per block, on a
real pouwd syncing 600 blocks over loopback."""
from __future__ import annotations

from tests.unit.node.helpers import build_chain, genesis_header

from .framework import NodeProcess, sync_blocks
from .p2putil import seed_datadir

BLOCKS = 600


def test_initial_sync_and_reindex_show_progress(tmp_path) -> None:
    source = NodeProcess(0, tmp_path)
    seed_datadir(source, build_chain(genesis_header(), BLOCKS))
    fresh = NodeProcess(1, tmp_path)
    try:
        source.start()
        fresh.extra_args = ["--connect", source.p2p_address]
        fresh.start()
        sync_blocks([source, fresh], timeout=120)
        fresh.stop()
        log = fresh.log_path.read_text()
        assert log.count("new tip") < 10, "a line per block during the initial sync"
        assert "initial sync [" in log and f"/{BLOCKS} blocks" in log  # rate and time left: unit-tested
        assert f"initial sync done: height {BLOCKS}" in log

        fresh.start(["--reindex"])
        assert fresh.getblockcount() == BLOCKS
        log = fresh.log_path.read_text()
        assert f"reindex [{'#' * 20}] 100.0%  {BLOCKS}/{BLOCKS} blocks" in log, log[-2000:]
    finally:
        source.cleanup()
        fresh.cleanup()
