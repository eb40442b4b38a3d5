"""Helpers for tests of the market client against real nodes."""
from __future__ import annotations

import threading

from client.market import MarketClient


def away(client: MarketClient) -> threading.Lock:
    """A lock that, while held, keeps the client's looks at its jobs waiting: blocks mined in a
    burst then reach it as if they came while it was away (it would otherwise repost mid-burst,
    at an expiry the rest of the burst uses up)."""
    lock, jobs = threading.Lock(), client.jobs

    def look(ids: list[str]) -> dict:
        with lock:
            return jobs(ids)
    client.jobs = look
    return lock
