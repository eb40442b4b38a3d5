"""Progress of long runs of blocks — initial sync and ``--reindex`` — as a line at most
every few seconds (like bitcoind's UpdateTip, but not one per block): a bar, blocks
done of all, percentage, rate and time left."""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

from miner.units import duration

BAR = 20
EVERY_SECONDS = 2.0


class Progress:
    """``update(done, total)`` as blocks connect; a line when ``every`` seconds have passed
    since the last, on the first update and on the last (``done == total``); ``finish``
    sums the run up."""

    def __init__(self, what: str, log: logging.Logger, every: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.log = log
        self.every = every
        self.clock = clock
        self._started: float | None = None
        self._first = 0
        self._last_line = -math.inf

    @property
    def active(self) -> bool:
        return self._started is not None

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        if self._started is None:
            self._started, self._first = now, done
        if now - self._last_line >= self.every or done >= total:
            self._last_line = now
            self.log.info("%s", self.line(done, total, now))

    def line(self, done: int, total: int, now: float) -> str:
        rate = self._rate(done, now)
        share = min(1.0, done / total) if total > 0 else 1.0
        filled = int(share * BAR)
        text = f"{self.what} [{'#' * filled}{'.' * (BAR - filled)}] {share:6.1%}  {done}/{total} blocks"
        if rate > 0:  # none yet on the first line
            text += f"  {rate:.1f} blocks/s"
            if done < total:
                text += f"  {duration((total - done) / rate)} left"
        return text

    def finish(self, done: int) -> None:
        """Log the summary of a run that was shown, and start afresh."""
        if self._started is None:
            return
        now = self.clock()
        self.log.info("%s done: height %d, %d blocks in %s (%.1f blocks/s)", self.what, done, done - self._first,
                      duration(now - self._started), self._rate(done, now))
        self._started, self._last_line = None, -math.inf

    def _rate(self, done: int, now: float) -> float:
        elapsed = now - (self._started if self._started is not None else now)
        return (done - self._first) / elapsed if elapsed > 0 else 0.0
