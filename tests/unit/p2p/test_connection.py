"""p2p.connection: frames read straight into their own buffers over real sockets (PROTOCOL §7):
every malformed frame, frames split and joined on the wire, limits, cancelled reads, sending."""
from __future__ import annotations

import asyncio
import asyncio.selector_events
import socket
import struct
from collections.abc import Callable

import pytest

from consensus.params import REGTEST
from p2p import wire
from p2p.wire import WireError
from tests.unit.p2p.helpers import frames_from, open_connection, read_frame_of

MAGIC = REGTEST.magic


def test_bad_magic() -> None:
    with pytest.raises(WireError) as err:
        read_frame_of(wire.frame(b"PONW", wire.payload("verack")))
    assert err.value.reason == "bad-magic"


def test_bad_checksum() -> None:
    data = bytearray(wire.frame(MAGIC, wire.payload("ping", 1)))
    data[-1] ^= 1
    with pytest.raises(WireError) as err:
        read_frame_of(bytes(data))
    assert err.value.reason == "bad-checksum"


def test_a_bad_checksum_of_a_large_payload_hashed_on_a_thread() -> None:
    data = bytearray(wire.frame(MAGIC, wire.payload("ufo", bytes(wire.THREAD_HASH_BYTES))))
    data[-1] ^= 1
    with pytest.raises(WireError) as err:
        read_frame_of(bytes(data))
    assert err.value.reason == "bad-checksum"


def test_oversized_length_is_refused_before_reading() -> None:
    head = MAGIC + struct.pack("<I", wire.MAX_PAYLOAD + 1) + bytes(4)
    with pytest.raises(WireError) as err:
        read_frame_of(head)  # no payload follows: the length alone is enough
    assert err.value.reason == "oversized"
    with pytest.raises(ValueError):
        wire.frame(MAGIC, bytes(wire.MAX_PAYLOAD + 1))


def test_oversized_for_the_handshake() -> None:
    data = wire.frame(MAGIC, wire.payload("ufo", b"x" * wire.MAX_HANDSHAKE_PAYLOAD))
    with pytest.raises(WireError) as err:
        read_frame_of(data, wire.MAX_HANDSHAKE_PAYLOAD)
    assert err.value.reason == "oversized"


@pytest.mark.parametrize("cut", [0, 5, wire.FRAME_HEADER, wire.FRAME_HEADER + 3])
def test_a_truncated_frame_is_eof(cut: int) -> None:
    data = wire.frame(MAGIC, wire.payload("ping", 1))[:cut]
    with pytest.raises(asyncio.IncompleteReadError) as err:
        read_frame_of(data)
    assert err.value.partial == data[wire.FRAME_HEADER if cut >= wire.FRAME_HEADER else 0:]


def test_frames_joined_on_the_wire_come_back_one_a_read_then_eof() -> None:
    payloads = [wire.payload("ping", i) for i in range(3)] + [b"", wire.payload("ufo", bytes(300_000))]
    data = b"".join(wire.frame(MAGIC, p) for p in payloads)
    got = asyncio.run(frames_from(data, [wire.MAX_PAYLOAD] * len(payloads)))
    assert [bytes(p) for p in got] == payloads
    with pytest.raises(asyncio.IncompleteReadError) as err:
        asyncio.run(frames_from(data, [wire.MAX_PAYLOAD] * (len(payloads) + 1)))
    assert err.value.partial == b""


def test_each_frame_is_held_to_the_limit_of_the_read_that_asks_for_it() -> None:
    """Nothing past a frame is read before the next call, so a handshake-sized read followed by
    a full-sized one takes a large second frame (a connection that read ahead under the first
    call's limit would refuse it)."""
    big = wire.payload("ufo", bytes(wire.MAX_HANDSHAKE_PAYLOAD * 4))
    data = wire.frame(MAGIC, wire.payload("verack")) + wire.frame(MAGIC, big)
    got = asyncio.run(frames_from(data, [wire.MAX_HANDSHAKE_PAYLOAD, wire.MAX_PAYLOAD]))
    assert [bytes(p) for p in got] == [wire.payload("verack"), big]
    with pytest.raises(WireError) as err:
        asyncio.run(frames_from(data, [wire.MAX_HANDSHAKE_PAYLOAD, wire.MAX_HANDSHAKE_PAYLOAD]))
    assert err.value.reason == "oversized"


def _add_reader_as_in_python_3_11_2(self: asyncio.selector_events._SelectorTransport, fd: int,
                                    callback: Callable[..., object], *args: object) -> None:
    """Debian bookworm's Python 3.11.2 (the container image's): the transport starts reading
    after ``connection_made`` even when that paused it, and stays marked paused."""
    if self._closing:
        return
    self._loop._add_reader(fd, callback, *args)


@pytest.mark.parametrize("transport", ["this python's", "python 3.11.2's"])
def test_frames_sent_before_the_first_read_come_back_in_order(transport: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's version and verack arrive before the handshake's first read: they are read
    under the connection's first limit, one at a time, none lost (a connection that paused
    before its transport started reading read them under no limit at all: bad magic, a ban)."""
    if transport != "this python's":
        monkeypatch.setattr(asyncio.selector_events._SelectorTransport, "_add_reader",
                            _add_reader_as_in_python_3_11_2)
    payloads = [wire.payload("ping", i) for i in range(3)] + [wire.payload("ufo", bytes(300_000))]

    async def go() -> list[bytes]:
        ours, theirs = socket.socketpair()
        with theirs:
            sending = asyncio.create_task(asyncio.to_thread(
                theirs.sendall, b"".join(wire.frame(MAGIC, p) for p in payloads)))
            conn = await open_connection(ours, wire.MAX_HANDSHAKE_PAYLOAD)
            await asyncio.sleep(0.1)  # the first frames are in before anyone reads
            got = [bytes(await asyncio.wait_for(conn.read_frame(limit), 5))
                   for limit in [wire.MAX_HANDSHAKE_PAYLOAD] * 3 + [wire.MAX_PAYLOAD]]
            conn.close()
            await sending
            return got
    assert asyncio.run(go()) == payloads


def test_the_first_frame_is_held_to_the_first_limit_and_to_the_read_that_takes_it() -> None:
    big = wire.frame(MAGIC, wire.payload("ufo", bytes(wire.MAX_HANDSHAKE_PAYLOAD * 4)))

    async def first_read(first_limit: int, read_limit: int) -> None:
        ours, theirs = socket.socketpair()
        with theirs:
            theirs.sendall(big)
            conn = await open_connection(ours, first_limit)
            await asyncio.sleep(0.05)  # read (or refused) before the call
            try:
                await asyncio.wait_for(conn.read_frame(read_limit), 5)
            finally:
                conn.close()
    for first_limit, read_limit in [(wire.MAX_HANDSHAKE_PAYLOAD, wire.MAX_PAYLOAD),
                                    (wire.MAX_PAYLOAD, wire.MAX_HANDSHAKE_PAYLOAD)]:
        with pytest.raises(WireError) as err:
            asyncio.run(first_read(first_limit, read_limit))
        assert err.value.reason == "oversized"
    asyncio.run(first_read(wire.MAX_PAYLOAD, wire.MAX_PAYLOAD))


def test_a_frame_sent_a_byte_at_a_time_and_a_cancelled_read_loses_nothing() -> None:
    payload = wire.payload("ping", 7)
    data = wire.frame(MAGIC, payload)

    async def go() -> list[bytes]:
        ours, theirs = socket.socketpair()
        with theirs:
            conn = await open_connection(ours)
            got = []
            for _ in range(2):
                for i, byte in enumerate(data):
                    theirs.send(bytes([byte]))
                    if i == len(data) // 2:  # half a frame in: a read that gives up keeps it
                        with pytest.raises(TimeoutError):
                            await asyncio.wait_for(conn.read_frame(), 0.05)
                got.append(bytes(await asyncio.wait_for(conn.read_frame(), 5)))
            conn.close()
            await conn.wait_closed()
            return got
    assert asyncio.run(go()) == [payload, payload]


def test_a_matrix_reply_is_read_in_place_and_other_messages_get_bytes() -> None:
    key, rows = bytes(range(32)), [bytes([i]) * 4096 for i in range(64)]
    matrix = wire.matrix_payload(key, 3, rows)
    payload = read_frame_of(wire.frame(MAGIC, matrix))
    assert isinstance(payload, memoryview)
    msg = wire.decode(payload)
    assert msg is not None and msg.command == "matrix"
    got_key, first, got_rows = msg.args
    assert type(got_key) is bytes and got_key == key and first == 3  # a dict key of pending requests
    assert all(isinstance(r, memoryview) and r.obj is payload.obj for r in got_rows)
    assert [bytes(r) for r in got_rows] == rows
    block = wire.decode(read_frame_of(wire.frame(MAGIC, wire.payload("ping", 9))))
    assert block is not None and type(block.raw) is bytes


def test_send_frame_writes_the_header_then_the_payload_and_drain_ends_with_the_connection() -> None:
    payload = wire.payload("ufo", bytes(range(256)) * 4096)

    async def go() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)  # read by the loop (sock_recv)
        with theirs:
            conn = await open_connection(ours)
            conn.transport.set_write_buffer_limits(high=64 * 1024)
            assert conn.send_frame(payload) == wire.FRAME_HEADER + len(payload)
            assert conn.buffered() > 64 * 1024  # more than the socket took: writing is paused
            received = bytearray()
            drained = asyncio.create_task(conn.drain())
            while len(received) < wire.FRAME_HEADER + len(payload):
                received += await asyncio.get_running_loop().sock_recv(theirs, 1 << 20)
            await asyncio.wait_for(drained, 5)
            assert bytes(received) == wire.frame(MAGIC, payload)
            conn.send_frame(payload)
            waiting = asyncio.create_task(conn.drain())
            await asyncio.sleep(0.05)
            assert not waiting.done()
            theirs.close()  # the peer goes away with our frame unread
            conn.close()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(waiting, 5)
            await asyncio.wait_for(conn.wait_closed(), 5)
            with pytest.raises(ConnectionResetError):
                await conn.drain()
    asyncio.run(go())
