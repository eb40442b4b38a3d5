"""Banned subnets, persisted as "ban" records (PROTOCOL §7: 24 h by default).

Keys are the normalised subnet ("1.2.3.4/32", "2001:db8::/32"); values are the
canonical encoding of ``[created u64, until u64, reason str]``.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from consensus import encoding as enc
from consensus.encoding import U64, Str, Tuple
from consensus.errors import DecodeError

from .interfaces import Records

log = logging.getLogger(__name__)
_SCHEMA = Tuple(U64, U64, Str(256))
MAX_BAN_SECONDS = 100 * 365 * 86400  # longer bans are clamped to this (a century)
Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IP literal, with IPv4-mapped IPv6 addresses folded to IPv4."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_subnet(text: str) -> Subnet:
    """"1.2.3.4", "1.2.3.0/24" or an IPv6 form; ``ValueError`` for anything else."""
    if "/" not in text:
        ip = parse_ip(text)
        return ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")
    return ipaddress.ip_network(text, strict=False)


def ban_subnet(host: str, v6_prefix: int = 64) -> Subnet:
    """The subnet an automatic ban of ``host`` covers: the IPv4 address, or its IPv6 /``v6_prefix``
    (one IPv6 host usually holds a whole /64)."""
    ip = parse_ip(host)
    prefix = ip.max_prefixlen if ip.version == 4 else v6_prefix
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


def netgroup(host: str) -> str:
    """Peers likely run by one operator: the IPv4 /16 or IPv6 /32 (all loopback addresses are one)."""
    try:
        ip = parse_ip(host)
    except ValueError:
        return host
    if ip.is_loopback:
        return "loopback"
    return str(ipaddress.ip_network(f"{ip}/{16 if ip.version == 4 else 32}", strict=False))


@dataclass(frozen=True)
class Ban:
    created: int
    until: int
    reason: str


class BanList:
    """Subnet bans with expiry; every change is written through ``records``."""

    def __init__(self, records: Records, clock: Callable[[], float] = time.time) -> None:
        self._records = records
        self._clock = clock
        self._bans: dict[Subnet, Ban] = {}

    def load(self) -> None:
        for key, value in self._records.records("ban"):
            try:
                subnet = parse_subnet(key.decode())
                created, until, reason = enc.decode(value, _SCHEMA, 512, "ban")
            except (ValueError, DecodeError):
                log.warning("dropping unreadable ban record %r", key)
                self._records.delete_record("ban", key)
                continue
            self._bans[subnet] = Ban(created, until, reason)
        self.sweep()

    def ban(self, subnet: Subnet, seconds: int, reason: str) -> None:
        """Ban for ``seconds`` (clamped to 0…``MAX_BAN_SECONDS``): on disk first, then in memory."""
        now = int(self._clock())
        entry = Ban(now, now + min(max(0, seconds), MAX_BAN_SECONDS), reason[:256])
        self._records.put_record("ban", str(subnet).encode(), enc.encode([entry.created, entry.until, entry.reason]))
        self._bans[subnet] = entry

    def unban(self, subnet: Subnet) -> bool:
        if self._bans.pop(subnet, None) is None:
            return False
        self._records.delete_record("ban", str(subnet).encode())
        return True

    def clear(self) -> None:
        for subnet in list(self._bans):
            self.unban(subnet)

    def sweep(self) -> None:
        """Forget expired bans."""
        now = self._clock()
        for subnet, entry in list(self._bans.items()):
            if entry.until <= now:
                self.unban(subnet)

    def is_banned(self, host: str) -> bool:
        try:
            ip = parse_ip(host)
        except ValueError:
            return False
        now = self._clock()
        return any(ip in subnet and entry.until > now for subnet, entry in self._bans.items()
                   if subnet.version == ip.version)

    def __contains__(self, subnet: object) -> bool:
        return subnet in self._bans

    def listing(self) -> list[dict]:
        """Bitcoin's listbanned shape (plus the reason)."""
        self.sweep()
        now = int(self._clock())
        return [{"address": str(s), "ban_created": b.created, "banned_until": b.until,
                 "ban_duration": b.until - b.created, "time_remaining": max(0, b.until - now),
                 "reason": b.reason} for s, b in sorted(self._bans.items(), key=lambda i: i[1].created)]
