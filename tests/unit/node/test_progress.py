"""Progress lines for long block runs: rate-limited, with bar, share, rate and time left."""
from __future__ import annotations

import logging

from node.progress import Progress


def test_lines_at_most_every_interval_then_a_summary(caplog) -> None:
    clock = {"now": 0.0}
    progress = Progress("initial sync", logging.getLogger("test.progress"), every=2.0, clock=lambda: clock["now"])
    with caplog.at_level(logging.INFO, "test.progress"):
        for height in range(1, 1001):  # 100 blocks/s
            clock["now"] = height / 100
            progress.update(height, 2000)
        progress.finish(1000)
    lines = [r.getMessage() for r in caplog.records]
    assert 5 <= len(lines) <= 7, lines  # the first, one per 2 s of 10 s, the summary
    assert lines[0].startswith("initial sync [") and "1/2000 blocks" in lines[0]
    middle = lines[-2]
    assert "/2000 blocks" in middle and "100.0 blocks/s" in middle and "s left" in middle and "%" in middle
    assert lines[-1].startswith("initial sync done: height 1000, 999 blocks in")
    assert not progress.active


def test_the_last_block_of_a_run_always_shows(caplog) -> None:
    clock = {"now": 0.0}
    progress = Progress("reindex", logging.getLogger("test.progress"), every=60.0, clock=lambda: clock["now"])
    with caplog.at_level(logging.INFO, "test.progress"):
        for done in (256, 512, 600):
            clock["now"] += 0.5
            progress.update(done, 600)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "100.0%" in lines[-1] and "600/600 blocks" in lines[-1]
    assert "[" + "#" * 20 + "]" in lines[-1]
