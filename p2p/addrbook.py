"""Known peer addresses from ``addr`` gossip and our own connections, persisted as
"peer" records: key ``host:port``, value ``[last_seen u64, attempts u32, last_success u64]``."""
from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consensus import encoding as enc
from consensus.encoding import U32, U64, Tuple
from consensus.errors import DecodeError

from .interfaces import Records

log = logging.getLogger(__name__)
_SCHEMA = Tuple(U64, U32, U64)
_HOSTNAME = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^[0-9A-Fa-f:.]{2,45}$")


def parse_addr(text: str, default_port: int) -> tuple[str, int]:
    """"host:port", "[v6]:port", "host" or "v6" → (host, port); ``ValueError`` if malformed."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text else default_port
    if not valid_host(host) or not 0 < port < 65536:
        raise ValueError(f"bad address {text!r}")
    return host, port


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def valid_host(host: str) -> bool:
    return bool(_HOSTNAME.match(host)) and host not in ("0.0.0.0", "::")


@dataclass
class AddrInfo:
    host: str
    port: int
    last_seen: int
    attempts: int = 0
    last_success: int = 0
    last_try: float = 0.0  # monotonic, not persisted

    @property
    def key(self) -> str:
        return format_addr(self.host, self.port)


class AddressBook:
    """At most ``max_size`` addresses; the least recently seen is dropped first."""

    def __init__(self, records: Records, max_size: int = 4096, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self._records = records
        self.max_size = max_size
        self._clock = clock
        self._rng = rng or random.Random()
        self._book: dict[str, AddrInfo] = {}

    def __len__(self) -> int:
        return len(self._book)

    def __contains__(self, key: object) -> bool:
        return key in self._book

    def load(self) -> None:
        for key, value in self._records.records("peer"):
            try:
                host, port = parse_addr(key.decode(), 0)
                seen, attempts, success = enc.decode(value, _SCHEMA, 64, "peer")
            except (ValueError, DecodeError, UnicodeDecodeError):
                log.warning("dropping unreadable peer record %r", key)
                self._records.delete_record("peer", key)
                continue
            self._book[format_addr(host, port)] = AddrInfo(host, port, seen, attempts, success)
        self._trim()

    def add(self, host: str, port: int, last_seen: int) -> bool:
        """Learn or refresh an address; True if it was new."""
        if not valid_host(host) or not 0 < port < 65536:
            return False
        last_seen = min(int(last_seen), int(self._clock()))
        key = format_addr(host, port)
        info = self._book.get(key)
        if info is not None:
            if last_seen > info.last_seen:
                info.last_seen = last_seen
                self._save(info)
            return False
        info = AddrInfo(host, port, last_seen)
        self._book[key] = info
        self._save(info)
        self._trim()
        return True

    def attempt(self, key: str, monotonic_now: float) -> None:
        info = self._book.get(key)
        if info is not None:
            info.attempts += 1
            info.last_try = monotonic_now
            self._save(info)

    def success(self, key: str) -> None:
        info = self._book.get(key)
        if info is not None:
            info.attempts = 0
            info.last_success = info.last_seen = int(self._clock())
            self._save(info)

    def remove(self, key: str) -> None:
        if self._book.pop(key, None) is not None:
            self._records.delete_record("peer", key.encode())

    def sample(self, count: int) -> list[AddrInfo]:
        items = list(self._book.values())
        return self._rng.sample(items, min(count, len(items)))

    def candidate(self, exclude: Iterable[str], monotonic_now: float, retry_base: float) -> AddrInfo | None:
        """A random address not in ``exclude`` whose exponential retry backoff has passed."""
        skip = set(exclude)
        ready = [i for i in self._book.values() if i.key not in skip and (
            i.last_try == 0.0 or monotonic_now - i.last_try >= retry_base * 2 ** min(i.attempts, 8))]
        return self._rng.choice(ready) if ready else None

    def _save(self, info: AddrInfo) -> None:
        self._records.put_record("peer", info.key.encode(),
                                 enc.encode([info.last_seen, min(info.attempts, 2**32 - 1), info.last_success]))

    def _trim(self) -> None:
        while len(self._book) > self.max_size:
            oldest = min(self._book.values(), key=lambda i: i.last_seen)
            self.remove(oldest.key)
