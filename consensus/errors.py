"""Typed consensus errors (ARCHITECTURE: errors carry a short machine-readable reason).

The ``reason`` strings are stable identifiers used by p2p ban logic and RPC
error messages; they are listed in docs/protocol.md.
"""
from __future__ import annotations


class ConsensusError(Exception):
    """Base class: ``reason`` is a short machine-readable token, ``detail`` is prose."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DecodeError(ConsensusError):
    """Bytes that are not the canonical encoding of the expected object (§2)."""

    def __init__(self, detail: str) -> None:
        super().__init__("decode", detail)


class InvalidTx(ConsensusError):
    """A transaction that fails a §3/§6 rule."""


class InvalidBlock(ConsensusError):
    """A block that fails a §5 rule."""


class FutureBlock(InvalidBlock):
    """Timestamp beyond the future limit: hold and retry later, not a permanent failure (§5)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("time-too-new", detail)


class AddressError(ValueError):
    """A malformed, wrong-network or bad-checksum bech32m address (§3)."""
