"""Ed25519 keys and bech32m addresses (PROTOCOL §3)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from consensus.errors import AddressError
from consensus.keys import PrivateKey, decode_address, encode_address, verify


@given(st.binary(min_size=20, max_size=20), st.sampled_from(["pw", "tpw", "dpw", "rpw"]))
def test_address_round_trip(raw: bytes, hrp: str) -> None:
    text = encode_address(hrp, raw)
    assert decode_address(text, hrp) == raw
    assert decode_address(text.upper(), hrp) == raw


def test_wrong_network_is_a_clear_error() -> None:
    text = encode_address("dpw", b"\x01" * 20)
    with pytest.raises(AddressError, match="'dpw'.*'pw'"):
        decode_address(text, "pw")


@pytest.mark.parametrize("mutate", [
    lambda s: s[:-1] + ("q" if s[-1] != "q" else "p"),      # checksum
    lambda s: s[:5] + ("q" if s[5] != "q" else "p") + s[6:],  # data
    lambda s: s[:-2],                                          # truncated
    lambda s: s[:4] + s[4].upper() + s[5:],                    # mixed case
    lambda s: s.replace("1", "b", 1),                          # no separator
    lambda s: s + "ü",                                         # non-ascii
])
def test_corrupted_addresses_rejected(mutate) -> None:
    text = encode_address("rpw", bytes(range(20)))
    with pytest.raises(AddressError):
        decode_address(mutate(text), "rpw")


def test_signatures() -> None:
    key = PrivateKey(b"\x07" * 32)
    sig = key.sign(b"msg")
    assert verify(key.pubkey, sig, b"msg")
    assert not verify(key.pubkey, sig, b"msh")
    assert not verify(key.pubkey, bytes(64), b"msg")
    assert not verify(b"\x00" * 31, sig, b"msg")
