"""A token bucket for per-peer rate limits (inv entries, addr entries, getmatrix and upload bytes)."""
from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take(n)`` spends them or refuses."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._clock = clock
        self._last = clock()

    def take(self, n: float = 1.0) -> bool:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def debt(self, n: float) -> float:
        """Spend ``n`` tokens even if that overdraws the bucket; the seconds until it is even again."""
        self.take(0)
        self.tokens -= n
        return max(0.0, -self.tokens / self.rate)
