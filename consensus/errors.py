"""Typed consensus errors (ARCHITECTURE: errors carry a short machine-readable reason).

Each error's ``code`` is a ``consensus.reasons.Reason`` (anything else is a
``TypeError`` at the raise site) and its ``detail`` is free prose.
"""
from __future__ import annotations

from .reasons import Reason


class ConsensusError(Exception):
    """Base class: ``code`` says which rule failed, ``detail`` says how."""

    def __init__(self, code: Reason, detail: str = "") -> None:
        if not isinstance(code, Reason):
            raise TypeError(f"{type(self).__name__} code must be a consensus.reasons.Reason, not {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else str(code))


class DecodeError(ConsensusError):
    """Bytes that are not the canonical encoding of the expected object (§2)."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.DECODE, detail)


class InvalidTx(ConsensusError):
    """A transaction that fails a §3/§6 rule."""


class InvalidBlock(ConsensusError):
    """A block that fails a §5 rule; for ``Reason.BAD_TX``, ``tx_code`` is the failing tx's code."""

    def __init__(self, code: Reason, detail: str = "", tx_code: Reason | None = None) -> None:
        super().__init__(code, detail)
        self.tx_code = tx_code

    @classmethod
    def bad_tx(cls, index: int, txid: bytes, code: Reason, detail: str = "") -> InvalidBlock:
        """The block's tx number ``index`` breaks rule ``code`` (§5: every tx applies in order)."""
        why = f"{code}: {detail}" if detail else str(code)
        return cls(Reason.BAD_TX, f"tx {index} ({txid.hex()}): {why}", tx_code=code)


class FutureBlock(InvalidBlock):
    """Timestamp beyond the future limit: hold and retry later, not a permanent failure (§5)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(Reason.TIME_TOO_NEW, detail)


class AddressError(ValueError):
    """A malformed, wrong-network or bad-checksum bech32m address (§3)."""
