"""Frames and message schemas of the wire protocol (PROTOCOL §7).

A frame is ``magic (4) || u32le(len) || SHA-256(payload)[0:4] || payload`` and the
payload the canonical MessagePack array ``[command str, args…]``.  Every known
command's arguments are checked against a strict schema built from
``consensus.encoding``; a frame that breaks any rule raises ``WireError``, which
means: disconnect and ban the sender.  Unknown commands decode to ``None`` (§7:
ignored).
"""
from __future__ import annotations

import asyncio
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from consensus import encoding as enc
from consensus.block import BLOCK_SCHEMA, HEADER_SCHEMA, Block, Header, Proof
from consensus.encoding import BIN32, U8, U16, U32, U64, Bin, ListOf, Schema, Str, Tuple
from consensus.errors import DecodeError
from consensus.params import MAX_MATRIX_DIM
from consensus.tx import TX_SCHEMA, Tx

MAX_PAYLOAD = 8 * 1024 * 1024
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
PROTOCOL_VERSION = 1

INV_SCHEMA = Tuple(ListOf(Tuple(U8, BIN32), MAX_INV))
SCHEMAS: dict[str, Schema] = {
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


class WireError(Exception):
    """A malformed frame or message: the sender is disconnected and banned (§7)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Message:
    """One decoded message; ``raw`` is the whole payload (a block's bytes are a slice of it)."""

    command: str
    args: list[Any]
    raw: bytes = b""


def checksum(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()[:4]


def frame(magic: bytes, payload: bytes) -> bytes:
    """Wrap a payload in a frame; refuses payloads over the limit."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return magic + struct.pack("<I", len(payload)) + checksum(payload) + payload


def payload(command: str, *args: Any) -> bytes:
    return enc.encode([command, *args])


def block_payload(block_bytes: bytes) -> bytes:
    """``block [block]`` around already-canonical block bytes, without re-encoding them."""
    return _BLOCK_PREFIX + block_bytes


def tx_payload(tx: Tx) -> bytes:
    return _TX_PREFIX + tx.encode()


_BLOCK_PREFIX = b"\x92" + enc.encode("block")  # fixarray(2), "block"
_TX_PREFIX = b"\x92" + enc.encode("tx")


def parse_frame_header(magic: bytes, head: bytes) -> tuple[int, bytes]:
    """(payload length, checksum) of a 12-byte frame header, or ``WireError``."""
    if head[:4] != magic:
        raise WireError("bad-magic", head[:4].hex())
    (length,) = struct.unpack_from("<I", head, 4)
    if length > MAX_PAYLOAD:
        raise WireError("oversized", f"{length} bytes")
    return length, head[8:12]


async def read_frame(reader: asyncio.StreamReader, magic: bytes) -> bytes:
    """Read one frame and return its checked payload (EOF raises ``IncompleteReadError``)."""
    length, check = parse_frame_header(magic, await reader.readexactly(FRAME_HEADER))
    data = await reader.readexactly(length)
    if checksum(data) != check:
        raise WireError("bad-checksum")
    return data


def decode(data: bytes) -> Message | None:
    """Strict decode of a payload: a ``Message``, ``None`` for an unknown command, or ``WireError``."""
    try:
        value = enc.unpack(data, MAX_PAYLOAD)
    except DecodeError as exc:
        raise WireError("non-canonical", exc.detail) from None
    if type(value) is not list or not value or type(value[0]) is not str:
        raise WireError("bad-message", "payload is not [command str, args…]")
    command = value[0]
    if len(command.encode()) > MAX_COMMAND:
        raise WireError("bad-message", "command too long")
    schema = SCHEMAS.get(command)
    if schema is None:
        return None
    args = value[1:]
    try:
        schema.check(args, command)
    except DecodeError as exc:
        raise WireError("bad-message", exc.detail) from None
    if command == "matrix" and sum(len(r) for r in args[2]) > MAX_MATRIX_BYTES:
        raise WireError("bad-message", "matrix reply over 4 MiB")
    return Message(command, args, data)


def block_from_message(msg: Message) -> tuple[Block, bytes]:
    """The ``Block`` of a decoded ``block`` message and its canonical bytes."""
    v = msg.args[0]
    block = Block(Header.from_list(v[0]), Proof.from_list(v[1]), tuple(Tx.from_list(t) for t in v[2]))
    return block, msg.raw[len(_BLOCK_PREFIX):]


def headers_from_message(msg: Message) -> list[Header]:
    return [Header.from_list(h) for h in msg.args[0]]
