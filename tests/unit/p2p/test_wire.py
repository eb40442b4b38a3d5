"""p2p.wire: frames and strict message schemas (PROTOCOL §7), every malformed case."""
from __future__ import annotations

import struct
import tracemalloc

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from consensus.params import MAX_MATRIX_DIM, REGTEST
from p2p import wire
from p2p.wire import WireError
from tests.unit.p2p.helpers import read_frame_of
from tests.unit.node.helpers import FAUCET, bogus_headers, genesis_header, make_block, transfer

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


@pytest.mark.parametrize("command", sorted(SAMPLES))
def test_round_trip(command: str) -> None:
    payload = wire.payload(command, *SAMPLES[command])
    data = wire.frame(MAGIC, payload)
    assert data[:4] == MAGIC and struct.unpack("<I", data[4:8])[0] == len(payload)
    msg = wire.decode(read_frame_of(data))
    assert msg is not None and msg.command == command and msg.args == SAMPLES[command]


def test_block_and_tx_payloads_reuse_canonical_bytes() -> None:
    raw = BLOCK.encode()
    assert wire.block_payload(raw) == wire.payload("block", BLOCK.to_list())
    msg = wire.decode(wire.block_payload(raw))
    block, got_raw = wire.block_from_message(msg)
    assert block == BLOCK and got_raw == raw
    assert wire.tx_payload(BLOCK.txs[0]) == wire.payload("tx", BLOCK.txs[0].to_list())
    assert wire.headers_from_message(wire.decode(wire.payload("headers", [BLOCK.header.to_list()]))) == [BLOCK.header]
    for count in (0, 1, 15, 16, wire.MAX_HEADERS):  # fixarray and array16 lengths
        headers = bogus_headers(genesis_header(), count, salt=count)
        payload = wire.headers_payload([h.encode() for h in headers])
        assert payload == wire.payload("headers", [h.to_list() for h in headers])
        assert wire.headers_from_message(wire.decode(payload)) == headers


@pytest.mark.parametrize("widths", [[], [1], [31, 32], [255, 256], [65535, 65536], [8192] * 512, [1] * 16])
def test_matrix_payload_is_the_canonical_encoding(widths: list[int]) -> None:
    """bin8/16/32 rows, fixarray and array16 lists: the buffer sized ahead packs the same bytes."""
    rows = [bytes([i % 251]) * w for i, w in enumerate(widths)]
    payload = wire.matrix_payload(bytes(range(32)), 70000, rows)
    assert payload == wire.payload("matrix", bytes(range(32)), 70000, rows)
    assert wire.decode(payload).args == [bytes(range(32)), 70000, rows]


def test_a_matrix_reply_with_a_row_in_a_longer_form_is_refused() -> None:
    """A row's bin8 length written as bin16: the same value, one byte longer."""
    rows = [b"\x01" * 40, b"\x02" * 40]
    payload = wire.matrix_payload(bytes(32), 0, rows)
    at = payload.index(b"\xc4\x28\x02")
    longer = payload[:at] + b"\xc5\x00\x28" + payload[at + 2:]
    with pytest.raises(WireError) as err:
        wire.decode(longer)
    assert err.value.reason == "non-canonical"


def _schema_outcome(data: bytes) -> list | str:
    """What the schema's own decode makes of a ``matrix`` payload: its arguments, or the reason."""
    try:
        return wire._decode_by_schema("matrix", wire._PLANS["matrix"], data).args
    except WireError as exc:
        return exc.reason


MATRIX_ROWS = st.lists(st.sampled_from([0, 1, 31, 255, 256, 300, 65535, 65536]).map(lambda n: b"\x07" * n),
                       max_size=20).filter(lambda rows: sum(map(len, rows)) <= wire.MAX_MATRIX_BYTES)
FIRSTS = st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1])


@settings(max_examples=150, deadline=None)
@given(rows=MATRIX_ROWS, first=FIRSTS)
def test_a_well_formed_matrix_reply_is_read_in_place(rows: list[bytes], first: int) -> None:
    """The fast path takes every canonical reply, with the schema decode's values, its rows
    views of the payload (not copies)."""
    payload = wire.payload("matrix", H, first, rows)
    args = wire._matrix_args(payload)
    assert args is not None and args == _schema_outcome(payload) == [H, first, rows]
    assert all(isinstance(row, memoryview) and row.obj is payload for row in args[2])
    assert wire.decode(payload).args == args


@settings(max_examples=400, deadline=None)
@given(rows=MATRIX_ROWS, first=FIRSTS, data=st.data())
def test_the_fast_path_accepts_no_reply_the_schema_refuses(rows: list[bytes], first: int, data) -> None:
    """A byte changed, cut, added or a header lengthened: whatever the fast path still reads,
    the schema's decode reads alike; all else it leaves to that decode (and its reason)."""
    payload = bytearray(wire.payload("matrix", H, first, rows))
    at = data.draw(st.integers(0, len(payload)))
    change = data.draw(st.sampled_from(["flip", "cut", "insert", "longer"]))
    if change == "flip" and at < len(payload):
        payload[at] ^= data.draw(st.integers(1, 255))
    elif change == "cut":
        del payload[at:]
    elif change == "insert":
        payload[at:at] = bytes([data.draw(st.integers(0, 255))])
    elif change == "longer" and rows:  # the first row's header one size up (same length, not canonical)
        head = len(wire.payload("matrix", H, first, [])) + (2 if len(rows) >= 16 else 0)
        n = len(rows[0])
        size = 1 if n < 0x100 else 2 if n < 0x10000 else 4
        if size < 4:
            payload[head:head + 1 + size] = bytes([0xC5 if size == 1 else 0xC6]) + n.to_bytes(2 * size, "big")
    payload = bytes(payload)
    try:
        assume(wire.command_of(payload)[0] == "matrix")  # else it is no matrix reply at all
    except WireError:
        assume(False)
    fast, schema = wire._matrix_args(payload), _schema_outcome(payload)
    if fast is not None:
        assert fast == schema
    elif isinstance(schema, list):
        pytest.fail(f"a payload the schema reads was left to it: {payload[:64].hex()}")
    if change == "longer" and rows and len(rows[0]) < 0x10000:
        assert fast is None and schema == "non-canonical"


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
        wire.decode(read_frame_of(wire.frame(MAGIC, payload)))
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
    ("matrix", [H, 2**32, [b"\x00"]]),  # first past u32
    ("matrix", [H[:31], 0, [b"\x00"]]),
    ("matrix", [H, 0, ["\x00"]]),  # a row as str
    ("matrix", [H, 0, [b"\x00"] * (MAX_MATRIX_DIM + 1)]),
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


def _empties_under(command: bytes, count: int) -> bytes:
    """``[command, [[], [], …]]``: ``count`` empty arrays as the argument (the decode-amplification frame)."""
    return b"\x92" + msgpack.packb(command.decode()) + b"\xdd" + count.to_bytes(4, "big") + b"\x90" * count


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_unknown_command_arguments_are_never_decoded() -> None:
    """8 MiB of empty arrays under an unknown command built ~650 MB of lists before (§7)."""
    data = _empties_under(b"zzz", wire.MAX_PAYLOAD - 16)
    assert wire.command_of(data) == ("zzz", 1)
    peak = _peak_bytes(lambda: wire.decode(data))
    assert peak < 64 * 1024, f"decoding an unknown command allocated {peak} bytes"


@pytest.mark.parametrize("command", [b"inv", b"getdata", b"headers", b"addr", b"block", b"matrix"])
def test_known_command_is_bounded_by_its_schema(command: bytes) -> None:
    """The same flood under a known command is refused before the lists are built."""
    data = _empties_under(command, wire.MAX_PAYLOAD - 16)

    def decode() -> None:
        with pytest.raises(WireError):
            wire.decode(data)
    peak = _peak_bytes(decode)
    assert peak < 16 * 1024 * 1024, f"refusing {command!r} allocated {peak} bytes"


def test_nested_flood_inside_a_schema_item_is_refused() -> None:
    """Arrays where the schema wants scalars are refused at the first one, however many follow."""
    entry = b"\xdc\x00\xa0" + b"\x90" * 160  # an inv entry of 160 empty arrays instead of [kind, hash]
    data = b"\x92\xa3inv\xdc" + (50000).to_bytes(2, "big") + entry * 50000
    with pytest.raises(WireError) as err:
        wire.decode(data)
    assert err.value.reason == "bad-message"
    peak = _peak_bytes(lambda: pytest.raises(WireError, wire.decode, data))
    assert peak < 16 * 1024 * 1024


def test_generic_schema_values_are_bounded() -> None:
    """A tx (a schema known only by its check) stuffed with nested arrays is refused too."""
    tx = BLOCK.txs[0].to_list()
    tx[6] = [[[[]] * 1000] * 1000]
    with pytest.raises(WireError):
        wire.decode(wire.payload("tx", tx))
    tx[6] = [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]  # deeper than canonical values may nest
    with pytest.raises(WireError):
        wire.decode(wire.payload("tx", tx))


@pytest.mark.parametrize("payload", [
    b"", b"\x91", b"\x92", b"\x92\xd9", b"\x92\xa5ab", b"\x92\xa2\xff\xfe", b"\x92\xda\x00\x01a",
])
def test_command_header_errors(payload: bytes) -> None:
    with pytest.raises(WireError) as err:
        wire.decode(payload)
    assert err.value.reason == "bad-message"
