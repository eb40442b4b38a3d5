"""Schema-driven, bounded decoding of message arguments (PROTOCOL §2, §7).

``msgpack.unpackb`` builds the whole value before a schema can look at it, so a
payload of millions of empty arrays costs hundreds of megabytes first.  Here the
schema drives a streaming ``msgpack.Unpacker``: every array header is checked
against the schema's arity or length limit *before* its items are read, scalars
are read one by one with the unpacker's limits set to the command's largest
``bin``/``str`` and no arrays or maps at all, so no value bigger than the
schema allows is ever built.  Canonical form is still checked by the caller
(re-encoding must give back the payload).

A schema class this module does not know (a custom ``Schema.check``) is read
generically: any array, each one's length checked against a small element
budget before its items are read, then handed to ``check``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from consensus.encoding import MAX_NESTING, Bin, ListOf, Schema, Str, Tuple, UInt
from consensus.errors import DecodeError

Reader = Callable[[msgpack.Unpacker], Any]
GENERIC_BUDGET = 1024  # elements of one value read for a schema class known only by its check()
UNBOUNDED = 2**32 - 1  # no limit of its own: the payload's size bounds it


class Plan:
    """How to read one command's payload ``[command, args…]`` without building more than it allows."""

    def __init__(self, args: Tuple) -> None:
        self.items = [_reader(s) for s in args.items]
        self.max_bin, self.max_str = _leaf_limits(args)

    def read(self, data: bytes, max_command: int) -> list[Any]:
        """The payload's value (command first); ``DecodeError`` or msgpack's errors if it breaks the schema."""
        u = msgpack.Unpacker(None, raw=False, strict_map_key=True, max_buffer_size=max(1, len(data)),
                             max_array_len=0, max_map_len=0, max_ext_len=0,
                             max_bin_len=self.max_bin, max_str_len=max(self.max_str, max_command))
        u.feed(data)
        if u.read_array_header() != 1 + len(self.items):
            raise DecodeError(f"expected {len(self.items)} arguments")
        value = [u.unpack(), *(r(u) for r in self.items)]
        if u.tell() != len(data):
            raise DecodeError("trailing bytes")
        return value


def _leaf_limits(schema: Schema) -> tuple[int, int]:
    """(largest bin, largest str) the schema admits; generic schemas get the payload's size."""
    if isinstance(schema, Bin):
        bound = schema.size if schema.size is not None else schema.max_size
        return (UNBOUNDED if bound is None else bound), 0
    if isinstance(schema, Str):
        return 0, schema.max_bytes
    if isinstance(schema, UInt):
        return 0, 0
    if isinstance(schema, ListOf):
        return _leaf_limits(schema.item)
    if isinstance(schema, Tuple):
        limits = [_leaf_limits(s) for s in schema.items] or [(0, 0)]
        return max(b for b, _ in limits), max(s for _, s in limits)
    return UNBOUNDED, UNBOUNDED  # unknown shape: bounded by the payload size only


def _reader(schema: Schema) -> Reader:
    if isinstance(schema, UInt):
        return _uint_reader(schema)
    if isinstance(schema, Bin):
        return _bin_reader(schema)
    if isinstance(schema, Str):
        return _leaf_reader(schema)
    if isinstance(schema, Tuple):
        return _tuple_reader([_reader(s) for s in schema.items])
    if isinstance(schema, ListOf):
        return _list_reader(_reader(schema.item), schema.max_len)
    return _generic_reader(schema)


def _uint_reader(schema: UInt) -> Reader:
    limit = 1 << schema.bits

    def read(u: msgpack.Unpacker) -> int:
        v = u.unpack()
        if type(v) is not int or not 0 <= v < limit:
            schema.check(v, "value")  # raises with the schema's own message
        return v
    return read


def _bin_reader(schema: Bin) -> Reader:
    size, max_size = schema.size, schema.max_size

    def read(u: msgpack.Unpacker) -> bytes:
        v = u.unpack()
        if type(v) is not bytes or (size is not None and len(v) != size) \
                or (max_size is not None and len(v) > max_size):
            schema.check(v, "value")  # raises with the schema's own message
        return v
    return read


def _leaf_reader(schema: Schema) -> Reader:
    def read(u: msgpack.Unpacker) -> Any:
        v = u.unpack()
        schema.check(v, "value")
        return v
    return read


def _tuple_reader(items: list[Reader]) -> Reader:
    arity = len(items)

    def read(u: msgpack.Unpacker) -> list:
        if u.read_array_header() != arity:
            raise DecodeError(f"expected {arity} items")
        return [r(u) for r in items]
    return read


def _list_reader(item: Reader, max_len: int) -> Reader:
    def read(u: msgpack.Unpacker) -> list:
        n = u.read_array_header()
        if n > max_len:
            raise DecodeError(f"more than {max_len} items")
        return [item(u) for _ in range(n)]
    return read


def _generic_reader(schema: Schema) -> Reader:
    def read(u: msgpack.Unpacker) -> Any:
        value = _read_any(u, [GENERIC_BUDGET], 0)
        schema.check(value, "value")
        return value
    return read


def _read_any(u: msgpack.Unpacker, budget: list[int], depth: int) -> Any:
    """Any value, charging each array's length to ``budget`` before reading its items."""
    if depth > MAX_NESTING:
        raise DecodeError("nesting too deep")
    try:
        return u.unpack()  # a scalar or an empty array: the unpacker builds nothing bigger
    except ValueError:
        n = u.read_array_header()  # an array of n > 0 items (anything else raises again)
    budget[0] -= n
    if budget[0] < 0:
        raise DecodeError("value too large for its schema")
    return [_read_any(u, budget, depth + 1) for _ in range(n)]
