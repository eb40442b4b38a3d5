"""Canonical encoding: round trips and strict rejection (PROTOCOL §2)."""
from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from consensus.block import Block, Header
from consensus.encoding import BIN32, U32, Tuple, decode, encode
from consensus.errors import DecodeError
from consensus.genesis import genesis_block
from consensus.keys import PrivateKey
from consensus.params import REGTEST
from consensus.tx import PAYLOAD_TYPES, FraudProof, JobAccept, JobPost, JobResult, Transfer, Tx, make_tx

from .chainmaker import child_block, funded_state

u64 = st.integers(0, 2**64 - 1)
u32 = st.integers(0, 2**32 - 1)
b32 = st.binary(min_size=32, max_size=32)
b20 = st.binary(min_size=20, max_size=20)
paths = st.lists(b32, max_size=4).map(tuple)
payloads = st.one_of(
    st.builds(Transfer, b20, u64),
    st.builds(JobPost, u32, u32, u32, b32, b32, u64, u64),
    st.builds(JobResult, b32, b32, u64),
    st.builds(FraudProof, b32, b32, u32, u32, st.binary(max_size=64), paths, st.binary(max_size=64), paths,
              st.binary(max_size=128), paths),
    st.builds(JobAccept, b32),
)
KIND = {t: k for k, t in PAYLOAD_TYPES.items()}
txs = st.builds(lambda cid, s, nonce, fee, p, sig: Tx(2, cid, KIND[type(p)], s, nonce, fee, p, sig),
                u32, b32, u64, u64, payloads, st.binary(min_size=64, max_size=64))


@given(txs)
def test_tx_round_trip(tx: Tx) -> None:
    raw = tx.encode()
    assert Tx.decode(raw) == tx
    assert Tx.decode(raw).encode() == raw


@pytest.fixture(scope="module")
def sample_block() -> Block:
    key = PrivateKey(bytes(range(32)))
    t = make_tx(key, REGTEST.chain_id, 0, 5, Transfer(b"\x22" * 20, 7))
    return child_block(REGTEST, genesis_block(REGTEST).header, (t,),
                       state=funded_state(REGTEST, {key.address: (100, 0)}))


def test_block_round_trip(sample_block: Block) -> None:
    raw = sample_block.encode()
    again = Block.decode(raw)
    assert again == sample_block and again.hash == sample_block.hash
    assert Header.decode(sample_block.header.encode()) == sample_block.header


def test_genesis_round_trip() -> None:
    g = genesis_block(REGTEST)
    assert Block.decode(g.encode()) == g


NON_CANONICAL = [
    b"\x93\xcd\x00\x01\x01\x01",            # u16 form for a fixint
    b"\x93\xd0\x01\x01\x01",                # signed int8 for a positive
    b"\x93\x01\x01\x01\x00",                # trailing byte
    b"\xdc\x00\x03\x01\x01\x01",            # array16 for a short array
    b"\x93\x01\x01\xca\x00\x00\x00\x00",    # float32
    b"\x93\x01\x01\xc3",                    # boolean
    b"\x93\x01\x01\x81\x01\x01",            # map
    b"\x93\x01\x01\xc0",                    # nil
    b"\x93\x01\x01\xd9\x01a",               # str8 for a 1-byte string
    b"\x93\x01\x01\xd4\x01\x00",            # ext type
    b"\x93\x01\x01",                        # truncated
    b"",                                    # empty
]


@pytest.mark.parametrize("raw", NON_CANONICAL)
def test_non_canonical_rejected(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(raw, Tuple(U32, U32, U32), 1000, "x")


def test_schema_violations_rejected() -> None:
    schema = Tuple(U32, BIN32)
    bad = [[1], [1, b"\x00" * 32, 3], [2**32, b"\x00" * 32], [1, b"\x00" * 31], [1, "x" * 32], ["1", b"\x00" * 32],
           [-1, b"\x00" * 32], [[1], b"\x00" * 32]]
    for value in bad:
        with pytest.raises(DecodeError):
            decode(encode(value), schema, 1000, "x")


def test_unknown_tx_kind_rejected(sample_block: Block) -> None:
    v = sample_block.txs[0].to_list()
    v[2] = 9
    with pytest.raises(DecodeError):
        Tx.decode(msgpack.packb(v, use_bin_type=True))


def test_oversized_input_rejected() -> None:
    with pytest.raises(DecodeError):
        Tx.decode(encode([b"\x00" * (200 * 1024)]))


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_decode_error(raw: bytes) -> None:
    for decoder in (Tx.decode, Header.decode, Block.decode):
        try:
            decoder(raw)
        except DecodeError:
            pass


@settings(max_examples=300)
@given(st.data())
def test_mutated_block_only_raises_decode_error(sample_block: Block, data: st.DataObject) -> None:
    raw = bytearray(sample_block.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            raw.insert(pos, data.draw(st.integers(0, 255)))
        elif op == "delete":
            del raw[pos]
        else:
            del raw[pos:]
        if not raw:
            raw.append(0)
    try:
        decoded = Block.decode(bytes(raw))
    except DecodeError:
        return
    assert decoded.encode() == bytes(raw)  # anything accepted is canonical
