"""Ed25519 keys and bech32m addresses (PROTOCOL §3).

Bech32m (BIP 350) is written out here because the address form — 20 bytes, no
witness version symbol — is not what the segwit-oriented libraries produce.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from .errors import AddressError
from .hashing import tagged

ADDRESS_SIZE = 20
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def address_of(pubkey: bytes) -> bytes:
    """``address = tagged("pouw/addr", pubkey)[:20]``."""
    return tagged("pouw/addr", pubkey)[:ADDRESS_SIZE]


@dataclass(frozen=True)
class PrivateKey:
    """An Ed25519 key made from its 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def pubkey(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def address(self) -> bytes:
        return address_of(self.pubkey)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    @classmethod
    def generate(cls) -> "PrivateKey":
        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(raw)


@lru_cache(maxsize=65536)
def _public_key(pubkey: bytes) -> Ed25519PublicKey:
    """Parsed keys are cached: senders repeat, and parsing costs about a sixth of a verify."""
    return Ed25519PublicKey.from_public_bytes(pubkey)


def verify(pubkey: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification; any malformed key or signature is simply invalid."""
    try:
        _public_key(pubkey).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _to_5bit(data: bytes) -> list[int]:
    acc, bits, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def _from_5bit(values: list[int]) -> bytes:
    acc, bits, out = 0, 0, bytearray()
    for v in values:
        acc = (acc << 5) | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or (acc & ((1 << bits) - 1)):
        raise AddressError("invalid padding in address")
    return bytes(out)


def encode_address(hrp: str, address: bytes) -> str:
    if len(address) != ADDRESS_SIZE:
        raise AddressError("address must be 20 bytes")
    data = _to_5bit(address)
    mod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ _BECH32M_CONST
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_address(text: str, hrp: str) -> bytes:
    """Parse a bech32m address for the network whose hrp is ``hrp``."""
    if not isinstance(text, str) or not text.isascii():
        raise AddressError("address must be an ASCII string")
    if text.lower() != text and text.upper() != text:
        raise AddressError("mixed-case address")
    s = text.lower()
    pos = s.rfind("1")
    if pos < 1 or pos + 7 > len(s):
        raise AddressError("malformed address")
    got_hrp, rest = s[:pos], s[pos + 1:]
    if got_hrp != hrp:
        raise AddressError(f"address is for hrp '{got_hrp}', this network uses '{hrp}'")
    if any(c not in _CHARSET for c in rest):
        raise AddressError("invalid character in address")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != _BECH32M_CONST:
        raise AddressError("bad address checksum")
    raw = _from_5bit(values[:-6])
    if len(raw) != ADDRESS_SIZE:
        raise AddressError("address payload must be 20 bytes")
    return raw
