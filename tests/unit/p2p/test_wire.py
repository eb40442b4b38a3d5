"""p2p.wire: frames and strict message schemas (PROTOCOL §7), every malformed case."""
from __future__ import annotations

import asyncio
import struct

import msgpack
import pytest

from consensus.params import REGTEST
from p2p import wire
from p2p.wire import WireError
from tests.unit.node.helpers import FAUCET, genesis_header, make_block, transfer

MAGIC = REGTEST.magic
H = bytes(range(32))
BLOCK = make_block(genesis_header(), [transfer(FAUCET, 0, b"\x22" * 20, 5, fee=1000)])

SAMPLES: dict[str, list] = {
    "version": [1, 4, 1, 1_790_000_000, 2**64 - 1, "/pouw:0.1/", 7, 38733],
    "verack": [],
    "ping": [5],
    "pong": [2**64 - 1],
    "getaddr": [],
    "addr": [[["127.0.0.1", 38733, 1_790_000_000], ["example.org", 1, 0]]],
    "inv": [[[1, H], [2, H]]],
    "getdata": [[[2, H]]],
    "notfound": [[]],
    "tx": [BLOCK.txs[0].to_list()],
    "block": [BLOCK.to_list()],
    "getheaders": [[H, bytes(32)], bytes(32)],
    "headers": [[BLOCK.header.to_list()]],
    "getmatrix": [H, 0, 32],
    "matrix": [H, 0, [b"\x01" * 64, b"\x02" * 64]],
}


def test_every_command_has_a_sample() -> None:
    assert set(SAMPLES) == set(wire.SCHEMAS)


def read(data: bytes) -> bytes:
    """``read_frame`` over a stream holding ``data``."""
    async def go() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await wire.read_frame(reader, MAGIC)
    return asyncio.run(go())


@pytest.mark.parametrize("command", sorted(SAMPLES))
def test_round_trip(command: str) -> None:
    payload = wire.payload(command, *SAMPLES[command])
    data = wire.frame(MAGIC, payload)
    assert data[:4] == MAGIC and struct.unpack("<I", data[4:8])[0] == len(payload)
    msg = wire.decode(read(data))
    assert msg is not None and msg.command == command and msg.args == SAMPLES[command]


def test_block_and_tx_payloads_reuse_canonical_bytes() -> None:
    raw = BLOCK.encode()
    assert wire.block_payload(raw) == wire.payload("block", BLOCK.to_list())
    msg = wire.decode(wire.block_payload(raw))
    block, got_raw = wire.block_from_message(msg)
    assert block == BLOCK and got_raw == raw
    assert wire.tx_payload(BLOCK.txs[0]) == wire.payload("tx", BLOCK.txs[0].to_list())
    assert wire.headers_from_message(wire.decode(wire.payload("headers", [BLOCK.header.to_list()]))) == [BLOCK.header]


def test_bad_magic() -> None:
    data = wire.frame(b"PONW", wire.payload("verack"))
    with pytest.raises(WireError) as err:
        read(data)
    assert err.value.reason == "bad-magic"


def test_bad_checksum() -> None:
    data = bytearray(wire.frame(MAGIC, wire.payload("ping", 1)))
    data[-1] ^= 1
    with pytest.raises(WireError) as err:
        read(bytes(data))
    assert err.value.reason == "bad-checksum"


def test_oversized_length_is_refused_before_reading() -> None:
    head = MAGIC + struct.pack("<I", wire.MAX_PAYLOAD + 1) + bytes(4)
    with pytest.raises(WireError) as err:
        read(head)  # no payload follows: the length alone is enough
    assert err.value.reason == "oversized"
    with pytest.raises(ValueError):
        wire.frame(MAGIC, bytes(wire.MAX_PAYLOAD + 1))


def test_truncated_frame_is_eof() -> None:
    data = wire.frame(MAGIC, wire.payload("ping", 1))
    with pytest.raises(asyncio.IncompleteReadError):
        read(data[:-1])


@pytest.mark.parametrize("payload", [
    b"\x92\xa4ping\xcc\x05",  # u8 form of 5: not the shortest encoding
    b"\x92\xa4ping\x05\x05",  # trailing byte
    b"\x81\xa4ping\x05",  # a map
    b"\x92\xc4\x04ping\x05",  # command as bin, not str
    b"\x92\xa4ping\xca\x00\x00\x00\x00",  # a float
    b"\xdc\x00\x02\xa4ping\x05",  # array16 for a short array
    b"\xc1",  # never used byte
])
def test_non_canonical(payload: bytes) -> None:
    with pytest.raises(WireError) as err:
        wire.decode(read(wire.frame(MAGIC, payload)))
    assert err.value.reason in ("non-canonical", "bad-message")


@pytest.mark.parametrize("value", [
    [], 5, "ping", [5, 1], [b"ping", 1], ["x" * 33],
])
def test_not_a_command_array(value: object) -> None:
    with pytest.raises(WireError) as err:
        wire.decode(msgpack.packb(value, use_bin_type=True))
    assert err.value.reason == "bad-message"


@pytest.mark.parametrize("command,args", [
    ("ping", []),  # arity
    ("ping", [1, 2]),
    ("ping", ["1"]),  # type
    ("ping", [-1]),  # range
    ("pong", [-2**63]),
    ("verack", [0]),
    ("version", SAMPLES["version"][:-1]),
    ("version", SAMPLES["version"][:7] + [65536]),  # listen_port is u16
    ("version", SAMPLES["version"][:5] + ["x" * 257] + SAMPLES["version"][6:]),  # user agent ≤ 256 bytes
    ("addr", [[["h", 1, 0]] * (wire.MAX_ADDR + 1)]),
    ("addr", [[["h", 1]]]),
    ("inv", [[[1, H]] * (wire.MAX_INV + 1)]),
    ("inv", [[[1, H[:31]]]]),
    ("inv", [[[256, H]]]),
    ("getdata", [[[1, "x"]]]),
    ("getheaders", [[H] * (wire.MAX_LOCATOR + 1), bytes(32)]),
    ("getheaders", [[H], b""]),
    ("headers", [[BLOCK.header.to_list()] * (wire.MAX_HEADERS + 1)]),
    ("headers", [[BLOCK.header.to_list()[:-1]]]),
    ("block", [BLOCK.header.to_list()]),
    ("tx", [BLOCK.txs[0].to_list()[:7]]),
    ("getmatrix", [H, 0]),
    ("matrix", [H, 0, [b"\x00" * (2 * 1024 * 1024 + 1), b"\x00" * (2 * 1024 * 1024)]]),  # over 4 MiB
])
def test_schema_violations(command: str, args: list) -> None:
    with pytest.raises(WireError) as err:
        wire.decode(wire.payload(command, *args))
    assert err.value.reason == "bad-message"


def test_unknown_command_is_ignored() -> None:
    assert wire.decode(wire.payload("sendcmpct", 1, b"x", ["anything"])) is None
    assert wire.decode(wire.payload("feefilter")) is None


def test_unknown_inv_kind_decodes() -> None:
    """Kinds other than 1 and 2 are valid u8s; relay ignores them."""
    assert wire.decode(wire.payload("inv", [[9, H]])).args == [[[9, H]]]
