"""p2p.addrbook and p2p.bans: parsing, bounds, backoff, expiry and persistence."""
from __future__ import annotations

import pytest

from p2p.addrbook import AddressBook, format_addr, parse_addr
from p2p.bans import MAX_BAN_SECONDS, BanList, ban_subnet, netgroup, parse_subnet
from p2p.interfaces import MemoryRecords


@pytest.mark.parametrize("text,expected", [
    ("1.2.3.4:5", ("1.2.3.4", 5)),
    ("1.2.3.4", ("1.2.3.4", 38733)),
    ("node-1.example.org:8733", ("node-1.example.org", 8733)),
    ("[::1]:9", ("::1", 9)),
    ("::1", ("::1", 38733)),
])
def test_parse_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_addr(text, 38733) == expected
    assert parse_addr(format_addr(*expected), 1) == expected


@pytest.mark.parametrize("text", ["", "1.2.3.4:0", "1.2.3.4:65536", "a b:1", "[::1]x", "0.0.0.0:1", "h:port"])
def test_parse_addr_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_addr(text, 1)


def test_address_book_bounds_backoff_and_persistence() -> None:
    records = MemoryRecords()
    now = [1000.0]
    book = AddressBook(records, max_size=3, clock=lambda: now[0])
    assert book.add("10.0.0.1", 1, 900) and not book.add("10.0.0.1", 1, 950)
    assert book.add("10.0.0.2", 1, 5000)  # from the future: clamped to now
    assert book.add("10.0.0.3", 1, 800)
    assert book.add("10.0.0.4", 1, 990)  # full: the least recently seen (10.0.0.3) goes
    assert "10.0.0.3:1" not in book and len(book) == 3
    assert not book.add("bad host", 1, 0) and not book.add("10.0.0.5", 0, 0)

    book.attempt("10.0.0.1:1", 50.0)
    skip = {"10.0.0.2:1", "10.0.0.4:1"}
    assert book.candidate(skip, 50.5, retry_base=1.0) is None  # backing off (2 s after one failure)
    assert book.candidate(skip, 52.5, retry_base=1.0).key == "10.0.0.1:1"

    again = AddressBook(records, clock=lambda: now[0])
    again.load()
    assert {i.key for i in again.sample(10)} == {"10.0.0.1:1", "10.0.0.2:1", "10.0.0.4:1"}
    assert next(i for i in again.sample(10) if i.key == "10.0.0.1:1").attempts == 1
    assert next(i for i in again.sample(10) if i.key == "10.0.0.2:1").last_seen == 1000

    records.put_record("peer", b"garbage", b"\x00")
    fresh = AddressBook(records)
    fresh.load()
    assert len(fresh) == 3 and records.get_record("peer", b"garbage") is None


def test_bans_expire_match_subnets_and_persist() -> None:
    records = MemoryRecords()
    now = [1000.0]
    bans = BanList(records, clock=lambda: now[0])
    bans.ban(parse_subnet("10.1.0.0/16"), 100, "test")
    bans.ban(parse_subnet("2001:db8::1"), 50, "v6")
    assert bans.is_banned("10.1.2.3") and not bans.is_banned("10.2.0.1")
    assert bans.is_banned("::ffff:10.1.0.9")  # IPv4-mapped
    assert bans.is_banned("2001:db8::1") and not bans.is_banned("2001:db8::2")
    assert not bans.is_banned("not-an-ip")

    loaded = BanList(records, clock=lambda: now[0])
    loaded.load()
    assert [b["address"] for b in loaded.listing()] == ["10.1.0.0/16", "2001:db8::1/128"]
    now[0] += 60
    loaded.sweep()
    assert [b["address"] for b in loaded.listing()] == ["10.1.0.0/16"]
    assert records.get_record("ban", b"2001:db8::1/128") is None
    now[0] += 50
    assert not loaded.is_banned("10.1.2.3")

    records.put_record("ban", b"nonsense", b"\x01")
    BanList(records).load()
    assert records.get_record("ban", b"nonsense") is None


@pytest.mark.parametrize("text", ["", "1.2.3", "10.0.0.0/33", "host.example"])
def test_parse_subnet_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_subnet(text)


def test_ban_time_is_clamped_and_disk_matches_memory() -> None:
    records = MemoryRecords()
    bans = BanList(records, clock=lambda: 1000.0)
    bans.ban(parse_subnet("10.0.0.1"), 2**64 - 1, "forever")  # raised OverflowError after the memory update
    loaded = BanList(records, clock=lambda: 1000.0)
    loaded.load()
    assert loaded.listing() == bans.listing()
    assert bans.listing()[0]["banned_until"] == 1000 + MAX_BAN_SECONDS


def test_automatic_bans_cover_an_ipv6_64() -> None:
    bans = BanList(MemoryRecords())
    bans.ban(ban_subnet("2001:db8:1:2::5"), 60, "misbehaving")
    assert bans.is_banned("2001:db8:1:2:ffff::1") and not bans.is_banned("2001:db8:1:3::5")
    assert str(ban_subnet("2001:db8:1:2::5", v6_prefix=128)) == "2001:db8:1:2::5/128"
    assert str(ban_subnet("::ffff:10.0.0.1")) == "10.0.0.1/32"


def test_netgroups() -> None:
    assert netgroup("10.1.2.3") == netgroup("10.1.200.1") != netgroup("10.2.0.1")
    assert netgroup("2001:db8:1::1") == netgroup("2001:db8:2::1") != netgroup("2001:db9::1")
    assert netgroup("127.0.0.1") == netgroup("127.0.0.2") == netgroup("::1")
