"""Frames and message schemas of the wire protocol (PROTOCOL §7).

A frame is ``magic (4) || u32le(len) || SHA-256(payload)[0:4] || payload`` and the
payload the canonical MessagePack array ``[command str, args…]``.  Every known
command's arguments are decoded under a strict schema built from
``consensus.encoding``, bounded as they are read (``bounded``); a frame that
breaks any rule raises ``WireError``, which means: disconnect and ban the
sender.  Unknown commands decode to ``None`` without their arguments being
read (§7: ignored; the peer scores a large one).
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Sequence

import msgpack

from consensus import encoding as enc
from consensus.block import BLOCK_SCHEMA, HEADER_SCHEMA, Block, Header, Proof, ReceivedBlock
from consensus.encoding import BIN32, U8, U16, U32, U64, Bin, ListOf, Str, Tuple
from consensus.errors import DecodeError
from consensus.params import MAX_MATRIX_DIM
from consensus.tx import TX_SCHEMA, Tx

from .bounded import Plan

MAX_PAYLOAD = 8 * 1024 * 1024
MAX_HANDSHAKE_PAYLOAD = 4096  # before verack only version/verack (and small unknown commands) fit
THREAD_HASH_BYTES = 256 * 1024
FRAME_HEADER = 12
MAX_ADDR = 1000
MAX_INV = 50000
MAX_LOCATOR = 101
MAX_HEADERS = 2000
MAX_MATRIX_BYTES = 4 * 1024 * 1024
MAX_USER_AGENT = 256
MAX_HOST = 255
MAX_COMMAND = 32
INV_TX, INV_BLOCK = 1, 2
PROTOCOL_VERSION = 2

INV_SCHEMA = Tuple(ListOf(Tuple(U8, BIN32), MAX_INV))
SCHEMAS: dict[str, Tuple] = {
    "version": Tuple(U32, U32, U64, U64, U64, Str(MAX_USER_AGENT), U64, U16),
    "verack": Tuple(),
    "ping": Tuple(U64),
    "pong": Tuple(U64),
    "getaddr": Tuple(),
    "addr": Tuple(ListOf(Tuple(Str(MAX_HOST), U16, U64), MAX_ADDR)),
    "inv": INV_SCHEMA,
    "getdata": INV_SCHEMA,
    "notfound": INV_SCHEMA,
    "tx": Tuple(TX_SCHEMA),
    "block": Tuple(BLOCK_SCHEMA),
    "getheaders": Tuple(ListOf(BIN32, MAX_LOCATOR), BIN32),
    "headers": Tuple(ListOf(HEADER_SCHEMA, MAX_HEADERS)),
    "getmatrix": Tuple(BIN32, U32, U32),
    "matrix": Tuple(BIN32, U32, ListOf(Bin(max_size=MAX_MATRIX_BYTES), MAX_MATRIX_DIM)),
}
HANDSHAKE = ("version", "verack")
_PLANS = {command: Plan(schema) for command, schema in SCHEMAS.items()}


class WireError(Exception):
    """A malformed frame or message: the sender is disconnected and banned (§7)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Message:
    """One decoded message; ``raw`` is the whole payload (a block's bytes are a slice of it).

    ``objects`` holds what a ``tx`` (``Tx``), ``block`` (``ReceivedBlock``) or ``headers``
    (``list[Header]``) message carries, built during the decode (off the event loop for
    large payloads)."""

    command: str
    args: list[Any]
    raw: bytes | memoryview = b""  # a memoryview: a matrix reply read in place
    objects: Any = None  # the typed value of tx / block / headers, built with the decode


def checksum(payload: bytes | memoryview) -> bytes:
    return hashlib.sha256(payload).digest()[:4]


def frame_header(magic: bytes, payload: bytes | memoryview) -> bytes:
    """The 12 bytes in front of a payload; refuses payloads over the limit."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return magic + struct.pack("<I", len(payload)) + checksum(payload)


def frame(magic: bytes, payload: bytes) -> bytes:
    """A whole frame (a connection sends the header and the payload without joining them)."""
    return frame_header(magic, payload) + payload


def payload(command: str, *args: Any) -> bytes:
    return enc.encode([command, *args])


def matrix_payload(key: bytes, first: int, rows: Sequence[bytes | memoryview]) -> bytes:
    """``matrix [key, first, rows]``, its canonical encoding written once: each row is copied
    straight from the buffer it is in (a store's memory map) behind its bin header."""
    parts: list[bytes | memoryview] = [_MATRIX_PREFIX, enc.encode(key), enc.encode(first),
                                       msgpack.Packer().pack_array_header(len(rows))]
    for row in rows:
        parts += (_bin_header(len(row)), row)
    return b"".join(parts)


def _bin_header(length: int) -> bytes:
    """The shortest msgpack bin header of ``length`` bytes (bin8, bin16, bin32)."""
    if length < 0x100:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 0x10000:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


def block_payload(block_bytes: bytes) -> bytes:
    """``block [block]`` around already-canonical block bytes, without re-encoding them."""
    return _BLOCK_PREFIX + block_bytes


def tx_payload(tx: Tx) -> bytes:
    return _TX_PREFIX + tx.encode()


def headers_payload(headers: Sequence[bytes]) -> bytes:
    """``headers [headers]`` around already-canonical header bytes, without re-encoding them."""
    return _HEADERS_PREFIX + msgpack.Packer().pack_array_header(len(headers)) + b"".join(headers)


_MATRIX_PREFIX = b"\x94" + enc.encode("matrix")  # fixarray(4), "matrix"
_MATRIX_KEY_HEAD = _MATRIX_PREFIX + b"\xc4\x20"  # … and the key's bin8 header (32 bytes)
_BLOCK_PREFIX = b"\x92" + enc.encode("block")  # fixarray(2), "block"
_HEADERS_PREFIX = b"\x92" + enc.encode("headers")
_TX_PREFIX = b"\x92" + enc.encode("tx")


def parse_frame_header(magic: bytes, head: bytes, max_payload: int = MAX_PAYLOAD) -> tuple[int, bytes]:
    """(payload length, checksum) of a 12-byte frame header, or ``WireError``."""
    if head[:4] != magic:
        raise WireError("bad-magic", head[:4].hex())
    (length,) = struct.unpack_from("<I", head, 4)
    if length > max_payload:
        raise WireError("oversized", f"{length} bytes")
    return length, head[8:12]


def command_of(data: bytes | memoryview) -> tuple[str, int]:
    """The command of a payload and its argument count, read from the first bytes only.

    Nothing else of the payload is looked at, so an unknown command's arguments
    cost nothing (§7: ignored).
    """
    if not data:
        raise WireError("bad-message", "empty payload")
    head = data[0]
    if 0x91 <= head <= 0x9F:
        count, pos = head & 0x0F, 1
    elif head == 0xDC and len(data) >= 3:
        count, pos = int.from_bytes(data[1:3], "big"), 3
    elif head == 0xDD and len(data) >= 5:
        count, pos = int.from_bytes(data[1:5], "big"), 5
    else:
        raise WireError("bad-message", "payload is not [command str, args…]")
    tag = data[pos] if pos < len(data) else None
    if tag is not None and 0xA0 <= tag <= 0xBF:
        size, pos = tag & 0x1F, pos + 1
    elif tag == 0xD9 and pos + 1 < len(data):
        size, pos = data[pos + 1], pos + 2
    elif tag in (0xDA, 0xDB):
        raise WireError("bad-message", "command too long")
    else:
        raise WireError("bad-message", "payload is not [command str, args…]")
    if size > MAX_COMMAND:
        raise WireError("bad-message", "command too long")
    try:
        command = bytes(data[pos:pos + size]).decode()
    except UnicodeDecodeError:
        raise WireError("bad-message", "command is not UTF-8") from None
    if len(command.encode()) != size:
        raise WireError("bad-message", "truncated command")
    return command, count - 1


def decode(data: bytes | memoryview) -> Message | None:
    """Strict, bounded decode of a payload: a ``Message``, ``None`` for an unknown command, or ``WireError``.

    The command's schema drives the decoder (``bounded``): nothing larger than
    the schema admits is built, whatever the payload holds. A payload received into a
    buffer (a memoryview) is read in place only for a ``matrix`` reply (its rows are views of it); any
    other message gets ``bytes`` of its own, which it may keep (a block's go to the store).
    """
    command, _ = command_of(data)
    plan = _PLANS.get(command)
    if plan is None:
        return None
    if command == "matrix" and (args := _matrix_args(data)) is not None:
        return Message(command, args, data)
    return _decode_by_schema(command, plan, bytes(data))


def _decode_by_schema(command: str, plan: Plan, data: bytes) -> Message:
    """Every known command's decode: its schema drives msgpack's reader, then the value must
    encode back to exactly ``data`` (canonical)."""
    try:
        value = plan.read(data, MAX_COMMAND)
    except DecodeError as exc:
        raise WireError("bad-message", exc.detail) from None
    except ValueError as exc:  # msgpack: a type or size the schema does not allow at this place
        raise WireError("bad-message", f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # msgpack: truncated or malformed
        raise WireError("non-canonical", f"{type(exc).__name__}: {exc}") from None
    if enc.encode(value, size_hint=len(data)) != data:
        raise WireError("non-canonical", "re-encoding differs")
    args = value[1:]
    if command == "matrix" and sum(len(r) for r in args[2]) > MAX_MATRIX_BYTES:
        raise WireError("bad-message", "matrix reply over 4 MiB")
    msg = Message(command, args, data)
    build = _OBJECTS.get(command)
    return msg if build is None else Message(command, args, data, build(msg))


def _matrix_args(data: bytes | memoryview) -> list[Any] | None:
    """The arguments of a well-formed ``matrix`` payload, read in place: its rows are
    memoryviews of ``data``, never copied. ``None`` for anything else — a longer form than
    canonical, a wrong type, a size past the schema, a truncation — which the schema's decode
    then refuses with its reason (the fast path accepts only what that decode accepts)."""
    if data[:len(_MATRIX_KEY_HEAD)] != _MATRIX_KEY_HEAD:  # bin8 of 32 bytes: the key
        return None
    key_end = len(_MATRIX_KEY_HEAD) + 32
    first, at = _shortest_number(data, key_end, _UINT_FORMS, fixed=(0x00, 0x7F))
    if first is None or first >= 1 << 32:
        return None
    count, at = _shortest_number(data, at, _ARRAY_FORMS, fixed=(0x90, 0x9F))
    if count is None or count > MAX_MATRIX_DIM:
        return None
    view, rows, total = memoryview(data), [], 0
    for _ in range(count):
        width, at = _shortest_number(data, at, _BIN_FORMS)
        if width is None or at + width > len(data):
            return None
        rows.append(view[at:at + width])
        at += width
        total += width
    if at != len(data) or total > MAX_MATRIX_BYTES:
        return None
    return [bytes(data[key_end - 32:key_end]), first, rows]


# msgpack's longer forms of a number in a header: tag → (bytes, the least value it may hold in
# canonical encoding, below which a shorter form exists)
_UINT_FORMS = {0xCC: (1, 0x80), 0xCD: (2, 0x100), 0xCE: (4, 0x10000), 0xCF: (8, 1 << 32)}
_ARRAY_FORMS = {0xDC: (2, 0x10), 0xDD: (4, 0x10000)}
_BIN_FORMS = {0xC4: (1, 0), 0xC5: (2, 0x100), 0xC6: (4, 0x10000)}


def _shortest_number(data: bytes | memoryview, at: int, forms: dict[int, tuple[int, int]],
                     fixed: tuple[int, int] | None = None) -> tuple[int | None, int]:
    """The number a header at ``at`` holds (a uint, an array's or a bin's length) and where the
    header ends, if it is written in its shortest form: one of ``forms``, or the one-byte form
    whose tags run ``fixed`` (the number is the tag's offset in it); else (None, at)."""
    if at >= len(data):
        return None, at
    tag = data[at]
    if fixed is not None and fixed[0] <= tag <= fixed[1]:
        return tag - fixed[0], at + 1
    size, least = forms.get(tag, (0, 0))
    if not size or at + 1 + size > len(data):
        return None, at
    value = int.from_bytes(data[at + 1:at + 1 + size], "big")
    return (value, at + 1 + size) if value >= least else (None, at)


def block_from_message(msg: Message) -> ReceivedBlock:
    """The ``Block`` of a decoded ``block`` message with its canonical bytes, sliced from the
    payload: what the chain stores, never re-encoded."""
    v = msg.args[0]
    block = Block(Header.from_list(v[0]), Proof.from_list(v[1]), tuple(Tx.from_list(t) for t in v[2]))
    return ReceivedBlock(block, msg.raw[len(_BLOCK_PREFIX):])


def headers_from_message(msg: Message) -> list[Header]:
    headers = [Header.from_list(h) for h in msg.args[0]]
    for h in headers:
        h.hash  # computed (and cached) here, off the event loop when the decode is
    return headers


_OBJECTS = {
    "tx": lambda msg: Tx.from_list(msg.args[0]),
    "block": block_from_message,
    "headers": headers_from_message,
}
