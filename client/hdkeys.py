"""Deterministic wallet keys: SLIP-0010 derivation for Ed25519 (hardened children only)
from a BIP-39 seed, on the path ``m/44'/8733'/0'/0'/i'`` for the wallet's i-th key.

SLIP-0010: ``I = HMAC-SHA512("ed25519 seed", seed)`` gives the master key ``I[:32]`` and
chain code ``I[32:]``; child ``i`` (≥ 2^31) is ``HMAC-SHA512(chain code, 0x00 || key ||
ser32(i))`` split the same way. Ed25519 has no public derivation, so every level is
hardened. 8733 (pouw's main-network port) is the coin type on every network; the
networks' addresses differ by their hrp only.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Sequence

from mnemonic import Mnemonic

from consensus.keys import PrivateKey

HARDENED = 2**31
COIN_TYPE = 8733
PURPOSE = 44
WORD_COUNTS = {12: 16, 24: 32}  # BIP-39 words → bytes of entropy


class PhraseError(ValueError):
    """A backup phrase that is not a valid English BIP-39 mnemonic."""


def master_key(seed: bytes) -> tuple[bytes, bytes]:
    """``(key, chain code)`` of the SLIP-0010 Ed25519 master node."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def child_key(key: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """``(key, chain code)`` of hardened child ``index`` (2^31 ≤ index < 2^32)."""
    if not HARDENED <= index < 2**32:
        raise ValueError(f"Ed25519 derivation is hardened only: index {index} is not in [2^31, 2^32)")
    digest = hmac.new(chain_code, b"\x00" + key + index.to_bytes(4, "big"), hashlib.sha512).digest()
    return digest[:32], digest[32:]


def derive(seed: bytes, path: Sequence[int]) -> tuple[bytes, bytes]:
    """``(key, chain code)`` at ``path`` (absolute indexes, each ≥ 2^31) below the master of ``seed``."""
    key, chain_code = master_key(seed)
    for index in path:
        key, chain_code = child_key(key, chain_code, index)
    return key, chain_code


def key_path(index: int) -> list[int]:
    """The wallet's i-th key: ``m/44'/8733'/0'/0'/i'``."""
    if not 0 <= index < HARDENED:
        raise ValueError(f"key index {index} out of range")
    return [PURPOSE + HARDENED, COIN_TYPE + HARDENED, HARDENED, HARDENED, index + HARDENED]


def format_path(path: Sequence[int]) -> str:
    return "m" + "".join(f"/{i - HARDENED}'" for i in path)


def new_entropy(words: int) -> bytes:
    if words not in WORD_COUNTS:
        raise ValueError(f"a backup phrase has {' or '.join(map(str, WORD_COUNTS))} words, not {words}")
    return secrets.token_bytes(WORD_COUNTS[words])


def phrase_of(entropy: bytes) -> str:
    """The BIP-39 English phrase of ``entropy``."""
    return Mnemonic("english").to_mnemonic(entropy)


def entropy_of(phrase: str) -> bytes:
    """The entropy behind a phrase (words separated by any whitespace, any case); ``PhraseError`` if invalid."""
    words = " ".join(phrase.lower().split())
    mnemonic = Mnemonic("english")
    if len(words.split()) not in WORD_COUNTS or not mnemonic.check(words):
        raise PhraseError("not a valid backup phrase (12 or 24 English BIP-39 words with a matching checksum)")
    return bytes(mnemonic.to_entropy(words))


def seed_of(entropy: bytes) -> bytes:
    """The BIP-39 seed of the phrase of ``entropy`` (no BIP-39 passphrase)."""
    return Mnemonic.to_seed(phrase_of(entropy))


def wallet_key(seed: bytes, index: int) -> PrivateKey:
    """The wallet's i-th key below a BIP-39 ``seed``."""
    return PrivateKey(derive(seed, key_path(index))[0])
