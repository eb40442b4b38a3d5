"""Canonical MessagePack encoding with strict schemas (PROTOCOL §2).

Every consensus object is an array of integers, byte strings, ``str`` (only
where the spec says so) and nested arrays.  ``decode`` accepts exactly the
bytes that ``encode`` would produce for a value that fits the schema; anything
else raises ``DecodeError`` and nothing else escapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import msgpack

from .errors import DecodeError

MAX_NESTING = 16


def encode(value: Any, size_hint: int = 0) -> bytes:
    """Canonical bytes of a value made of ints, bytes, str and lists/tuples. ``size_hint``:
    about how many bytes they will be, so that a large value is packed into one buffer of
    that size (msgpack otherwise starts small and copies its buffer each time it grows)."""
    if size_hint:
        return msgpack.Packer(use_bin_type=True, buf_size=size_hint).pack(value)
    return msgpack.packb(value, use_bin_type=True)


class Schema:
    """A strict shape check for one decoded msgpack value."""

    def check(self, value: Any, where: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class UInt(Schema):
    bits: int

    def check(self, value: Any, where: str) -> None:
        if type(value) is not int:
            raise DecodeError(f"{where}: expected u{self.bits}, got {type(value).__name__}")
        if not 0 <= value < (1 << self.bits):
            raise DecodeError(f"{where}: u{self.bits} out of range")


@dataclass(frozen=True)
class Bin(Schema):
    """A byte string of exactly ``size`` bytes, or of at most ``max_size`` bytes."""

    size: int | None = None
    max_size: int | None = None

    def check(self, value: Any, where: str) -> None:
        if type(value) is not bytes:
            raise DecodeError(f"{where}: expected bin, got {type(value).__name__}")
        if self.size is not None and len(value) != self.size:
            raise DecodeError(f"{where}: expected {self.size} bytes, got {len(value)}")
        if self.max_size is not None and len(value) > self.max_size:
            raise DecodeError(f"{where}: more than {self.max_size} bytes")


@dataclass(frozen=True)
class Str(Schema):
    max_bytes: int

    def check(self, value: Any, where: str) -> None:
        if type(value) is not str:
            raise DecodeError(f"{where}: expected str, got {type(value).__name__}")
        if len(value.encode("utf-8")) > self.max_bytes:
            raise DecodeError(f"{where}: str longer than {self.max_bytes} bytes")


@dataclass(frozen=True)
class ListOf(Schema):
    item: Schema
    max_len: int

    def check(self, value: Any, where: str) -> None:
        if type(value) is not list:
            raise DecodeError(f"{where}: expected array, got {type(value).__name__}")
        if len(value) > self.max_len:
            raise DecodeError(f"{where}: more than {self.max_len} items")
        for i, v in enumerate(value):
            self.item.check(v, f"{where}[{i}]")


class Tuple(Schema):
    """An array of fixed arity whose items follow ``items`` in order."""

    def __init__(self, *items: Schema) -> None:
        self.items: Sequence[Schema] = items

    def check(self, value: Any, where: str) -> None:
        if type(value) is not list:
            raise DecodeError(f"{where}: expected array, got {type(value).__name__}")
        if len(value) != len(self.items):
            raise DecodeError(f"{where}: expected {len(self.items)} items, got {len(value)}")
        for i, (schema, v) in enumerate(zip(self.items, value)):
            schema.check(v, f"{where}[{i}]")


U8, U16, U32, U64 = UInt(8), UInt(16), UInt(32), UInt(64)
BIN20, BIN32, BIN64 = Bin(20), Bin(32), Bin(64)


def unpack(data: bytes, max_size: int) -> Any:
    """Parse one canonical msgpack value; reject trailing bytes and non-canonical forms."""
    if type(data) is not bytes:
        raise DecodeError("expected bytes")
    if len(data) > max_size:
        raise DecodeError(f"encoding longer than {max_size} bytes")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max_size,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types; none may escape (§2)
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}") from None
    _reject_foreign_types(value, 0)
    try:
        again = encode(value)
    except Exception:
        raise DecodeError("value cannot be re-encoded") from None
    if again != data:
        raise DecodeError("non-canonical encoding")
    return value


def _reject_foreign_types(value: Any, depth: int) -> None:
    if depth > MAX_NESTING:
        raise DecodeError("nesting too deep")
    t = type(value)
    if t is list:
        for v in value:
            _reject_foreign_types(v, depth + 1)
    elif t not in (int, bytes, str):
        raise DecodeError(f"type {t.__name__} not allowed")


def decode(data: bytes, schema: Schema, max_size: int, what: str) -> Any:
    """Canonical decode of ``data`` and a strict check against ``schema``."""
    value = unpack(data, max_size)
    schema.check(value, what)
    return value
