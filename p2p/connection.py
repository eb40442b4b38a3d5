"""A peer's TCP connection, read and written a frame at a time (PROTOCOL §7).

Frames are received straight into a buffer of their own (``asyncio.BufferedProtocol``): the
socket fills the 12-byte header, then a fresh buffer of the payload's length, so a payload is
never copied on its way in (a ``StreamReader`` copied each byte three or four times: into its
buffer, out of it, into ``bytes``, and moved its tail down). The buffer is numpy's
uninitialised memory: a bytearray would be zeroed first, a pass over it as long as a copy.

Reading is pulled: after each frame, nothing more is read until the next ``read_frame`` asks
for it, with the payload limit that applies then (the handshake's is smaller), so the kernel's
socket buffer holds a peer that sends faster than we read, as it did before. The first frame is
read as soon as the connection opens, under the limit given at construction: reading is never
paused before the transport has started it (Debian's Python 3.11.2 starts reading after
``connection_made`` even when that paused it, and then could not pause it after a frame). A
frame is sent as its header and its payload, never joined.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from . import wire

FrameOpened = Callable[["FrameConnection"], None]


class FrameConnection(asyncio.BufferedProtocol):
    """One TCP connection of the network whose frames start with ``magic``: ``read_frame``
    for the next checked payload; ``send_frame``, ``drain``, ``close`` and ``wait_closed`` as
    on a ``StreamWriter``.

    Past the first frame (held to ``first_limit``), the socket is read only while a
    ``read_frame`` waits, so a frame's header is checked against that call's limit; a frame it
    no longer waits for (cancelled) is kept for the next call."""

    def __init__(self, magic: bytes, first_limit: int, on_open: FrameOpened | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self._on_open = on_open
        self._head = bytearray(wire.FRAME_HEADER)
        self._buf: bytearray | memoryview = self._head  # what the socket fills: the header, then the payload
        self._pos = 0
        self._check = b""  # the payload's checksum, from its header
        self.magic = magic
        self._limit = first_limit  # the payload limit of the frame being read
        self._ready: tuple[memoryview, bytes] | None = None  # a whole frame not yet returned
        self._reader: asyncio.Future[None] | None = None  # read_frame waiting
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._lost: BaseException | None = None  # reading ended: the error every later read gets
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- the transport's calls ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_open is not None:
            self._on_open(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buf)[self._pos:]

    def buffer_updated(self, nbytes: int) -> None:
        self._pos += nbytes
        if self._pos < len(self._buf):
            return
        if self._buf is self._head:
            try:
                length, self._check = wire.parse_frame_header(self.magic, bytes(self._head), self._limit)
            except wire.WireError as exc:
                self._end_read(exc)
                return
            self._buf, self._pos = memoryview(np.empty(length, np.uint8)), 0
            if length:
                return
        self._ready, self._buf, self._pos = (memoryview(self._buf), self._check), self._head, 0
        self._pause_reading()
        self._wake(self._reader)

    def eof_received(self) -> bool:
        self._end_read(self._incomplete())
        return True  # the peer closes the connection on the read's error

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is None:
            self._end_read(exc if exc is not None else self._incomplete())
        self._wake(self._writable)  # drain() sees the connection closed
        self._wake(self._closed)

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake(self._writable)

    # --- the peer's calls --------------------------------------------------------------
    async def read_frame(self, max_payload: int = wire.MAX_PAYLOAD) -> memoryview:
        """The next frame's payload (bytes of its own), its checksum checked (``WireError``: a bad frame; EOF
        raises ``IncompleteReadError``). A large payload is hashed on a worker thread
        (hashlib releases the GIL), so the event loop keeps serving others meanwhile."""
        if self._ready is None:
            if self._lost is not None:
                raise self._lost
            if self._reader is not None:
                raise RuntimeError("read_frame is already waiting for a frame")
            assert self.transport is not None
            self._limit = max_payload
            self._reader = asyncio.get_running_loop().create_future()
            self.transport.resume_reading()
            try:
                await self._reader
            finally:
                self._reader = None
                self._pause_reading()  # cancelled: what was read stays for the next call
            if self._ready is None:
                raise self._lost or ConnectionResetError("connection lost")
        (payload, check), self._ready = self._ready, None
        if len(payload) > max_payload:  # the first frame, read before this call's limit was known
            raise wire.WireError("oversized", f"{len(payload)} bytes")
        digest = wire.checksum(payload) if len(payload) < wire.THREAD_HASH_BYTES else \
            await asyncio.to_thread(wire.checksum, payload)
        if digest != check:
            raise wire.WireError("bad-checksum")
        return payload

    def send_frame(self, payload: bytes) -> int:
        """Write one frame, its header and then its payload as it is; the bytes written."""
        self.write(wire.frame_header(self.magic, payload))
        self.write(payload)
        return wire.FRAME_HEADER + len(payload)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def buffered(self) -> int:
        """Bytes written that the socket has not taken yet."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    async def drain(self) -> None:
        """Wait while the send buffer is above its high-water mark (``ConnectionResetError``
        once the connection is lost)."""
        if self._writable is not None and not self._closed.done():
            await asyncio.shield(self._writable)
        if self._closed.done():
            raise ConnectionResetError("connection lost")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default) if self.transport is not None else default

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    # --- helpers -----------------------------------------------------------------------
    def _end_read(self, exc: BaseException) -> None:
        """Reading is over (EOF, a reset, a bad header): the waiting read and every later one
        fail with ``exc``."""
        self._lost = exc
        self._pause_reading()
        if self._reader is not None and not self._reader.done():
            self._reader.set_exception(exc)

    def _incomplete(self) -> asyncio.IncompleteReadError:
        return asyncio.IncompleteReadError(bytes(memoryview(self._buf)[:self._pos]), len(self._buf))

    def _pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
