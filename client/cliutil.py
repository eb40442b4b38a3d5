"""What pouw-cli's RPC and wallet commands share: the user-facing error, amounts, addresses,
numeric flags (pouw-miner's too)."""
from __future__ import annotations

import argparse
import json
import math
import re
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Callable

from consensus.errors import AddressError
from consensus.keys import decode_address
from consensus.params import COIN, NETWORKS, Network

U64_MAX = 2**64 - 1
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def number_flag(low: float, high: float | None = None, kind: type = int) -> Callable[[str], int | float]:
    """An argparse type: a finite number of ``kind`` in [low, high] (no upper bound if None);
    anything else is refused with the flag's name, as argparse refuses (exit code 2)."""
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not ((kind is int or math.isfinite(value)) and low <= value and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"{text} is not " + (f"in {low}..{high}" if high is not None
                                                                    else f"at least {low}"))
        return value
    return parse


def dimensions_flag(names: str, high: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: comma-separated integers, one for each of ``names`` (say "m,n,k"), each
    in 1..``high``; anything else is refused with the flag's name (exit code 2)."""
    count = len(names.split(","))

    def parse(text: str) -> tuple[int, ...]:
        try:
            dims = tuple(int(part) for part in text.split(","))
        except ValueError:
            dims = ()
        if len(dims) != count or not all(1 <= d <= high for d in dims):
            raise argparse.ArgumentTypeError(f"{text!r} is not {names} with each from 1 to {high}")
        return dims
    return parse


def parse_amount(text: str, what: str = "amount") -> int:
    """Decimal coins → base units, exactly; at most 8 decimals, never negative."""
    if not _AMOUNT.fullmatch(text):
        raise CliError(f"invalid {what} {text!r}: use a decimal number of coins like 1.5")
    with localcontext() as ctx:
        ctx.prec = len(text) + 10  # room for every digit: the product is exact
        units = Decimal(text) * COIN
    if units != units.to_integral_value():
        raise CliError(f"invalid {what} {text!r}: at most 8 decimal places")
    if units > U64_MAX:
        raise CliError(f"invalid {what} {text!r}: too large")
    return int(units)


def format_amount(units: int) -> str:
    """Base units → coins with 8 decimals."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), COIN)
    return f"{sign}{whole}.{frac:08d}"


def parse_address(text: str, network: Network) -> bytes:
    """A recipient address for ``network``, naming the right network when it is another's."""
    try:
        return decode_address(text, network.hrp)
    except AddressError as exc:
        hrp = text.lower().rpartition("1")[0]
        other = next((n.name for n in NETWORKS.values() if n.hrp == hrp and n is not network), None)
        if other:
            raise CliError(f"{text} is a {other} address; this is {network.name} "
                           f"(addresses here start with '{network.hrp}1')") from None
        raise CliError(f"invalid address {text!r}: {exc}") from None


def write_status_file(path: Path, record: dict) -> None:
    """``record`` as JSON at ``path``, replaced atomically (written beside it, then renamed), so a
    reader never sees half of it; ``OSError`` if it cannot be written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
