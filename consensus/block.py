"""Block, header, work and proof objects with their canonical encodings (PROTOCOL §5)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from . import encoding as enc
from .encoding import BIN20, BIN32, U32, U64, Bin, ListOf, Tuple
from .hashing import merkle_root, tagged
from .params import MAX_BLOCK_SIZE, MAX_K
from .tx import TX_SCHEMA, Tx

HEADER_VERSION = 2
ZERO32 = bytes(32)
MAX_PATH_LEN = 32
MAX_TXS = MAX_BLOCK_SIZE // 100  # a lower bound on a tx's size bounds the count

WORK_SCHEMA = Tuple(U32, U32, U32, U32, BIN32, BIN32, BIN32)
TICKET_SCHEMA = Tuple(U32, U32, BIN32)
HEADER_SCHEMA = Tuple(U32, U32, U64, BIN32, U64, BIN32, BIN32, BIN32, BIN20, U64, WORK_SCHEMA, TICKET_SCHEMA)
PATH_SCHEMA = ListOf(BIN32, MAX_PATH_LEN)
PROOF_SCHEMA = Tuple(Bin(max_size=32 * MAX_K), PATH_SCHEMA, Bin(max_size=32 * MAX_K), PATH_SCHEMA)
BLOCK_SCHEMA = Tuple(HEADER_SCHEMA, PROOF_SCHEMA, ListOf(TX_SCHEMA, MAX_TXS))
HEADER_SIZE_MAX = 512


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """``work = [m, n, k, r, H_A, H_B, job_id]``."""

    m: int
    n: int
    k: int
    r: int
    h_a: bytes
    h_b: bytes
    job_id: bytes = ZERO32

    def to_list(self) -> list[Any]:
        return [self.m, self.n, self.k, self.r, self.h_a, self.h_b, self.job_id]

    @classmethod
    def from_list(cls, v: list[Any]) -> "WorkSpec":
        return cls(*v)


@dataclass(frozen=True, slots=True)
class Ticket:
    """``ticket = [a, b, digest]``: the winning tile and its digest."""

    a: int
    b: int
    digest: bytes

    def to_list(self) -> list[Any]:
        return [self.a, self.b, self.digest]

    @classmethod
    def from_list(cls, v: list[Any]) -> "Ticket":
        return cls(*v)


@dataclass(frozen=True, slots=True)
class Header:
    """``[version, chain_id, height, prev_hash, timestamp, target, tx_root, state_root, miner,
    nonce, work, ticket]`` (§5); ``state_root`` commits to the state after the block (§3a)."""

    version: int
    chain_id: int
    height: int
    prev_hash: bytes
    timestamp: int
    target: int
    tx_root: bytes
    state_root: bytes
    miner: bytes
    nonce: int
    work: WorkSpec
    ticket: Ticket
    _hash: bytes | None = field(default=None, compare=False, repr=False)

    def to_list(self) -> list[Any]:
        return [self.version, self.chain_id, self.height, self.prev_hash, self.timestamp,
                self.target.to_bytes(32, "big"), self.tx_root, self.state_root, self.miner, self.nonce,
                self.work.to_list(), self.ticket.to_list()]

    @classmethod
    def from_list(cls, v: list[Any]) -> "Header":
        return cls(v[0], v[1], v[2], v[3], v[4], int.from_bytes(v[5], "big"), v[6], v[7], v[8], v[9],
                   WorkSpec.from_list(v[10]), Ticket.from_list(v[11]))

    def encode(self) -> bytes:
        return enc.encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "Header":
        return cls.from_list(enc.decode(data, HEADER_SCHEMA, HEADER_SIZE_MAX, "header"))

    @property
    def hash(self) -> bytes:
        """``block_hash = tagged("pouw/block", canonical(header))`` (cached)."""
        if self._hash is None:
            object.__setattr__(self, "_hash", tagged("pouw/block", self.encode()))
        return self._hash  # type: ignore[return-value]

    def replace(self, **changes: Any) -> "Header":
        return replace(self, _hash=None, **changes)

    @property
    def block_work(self) -> int:
        """``floor(2^256 / target)``: expected MACs behind this header (§4)."""
        return (1 << 256) // self.target if self.target else 0


@dataclass(frozen=True)
class Proof:
    """The 32 rows of A and 32 columns of B of the winning tile, with group audit paths."""

    a_rows: bytes
    a_path: tuple[bytes, ...]
    b_cols: bytes
    b_path: tuple[bytes, ...]

    def to_list(self) -> list[Any]:
        return [self.a_rows, list(self.a_path), self.b_cols, list(self.b_path)]

    @classmethod
    def from_list(cls, v: list[Any]) -> "Proof":
        return cls(v[0], tuple(v[1]), v[2], tuple(v[3]))


EMPTY_PROOF = Proof(b"", (), b"", ())


@dataclass(frozen=True)
class Block:
    header: Header
    proof: Proof
    txs: tuple[Tx, ...]

    def to_list(self) -> list[Any]:
        return [self.header.to_list(), self.proof.to_list(), [t.to_list() for t in self.txs]]

    def encode(self) -> bytes:
        return enc.encode(self.to_list())

    @classmethod
    def decode(cls, data: bytes) -> "Block":
        v = enc.decode(data, BLOCK_SCHEMA, MAX_BLOCK_SIZE, "block")
        return cls(Header.from_list(v[0]), Proof.from_list(v[1]), tuple(Tx.from_list(t) for t in v[2]))

    @property
    def hash(self) -> bytes:
        return self.header.hash


class ReceivedBlock(NamedTuple):
    """A block with its canonical bytes (§2): decoded once where it came in, stored as
    these bytes, never re-encoded on the way."""

    block: Block
    raw: bytes

    @classmethod
    def decode(cls, raw: bytes) -> "ReceivedBlock":
        """Decode canonical bytes (raises ``DecodeError``)."""
        return cls(Block.decode(raw), bytes(raw))

    @classmethod
    def of(cls, block: Block) -> "ReceivedBlock":
        """A block built here (a miner's, a test's): encoded this once."""
        return cls(block, block.encode())

    @property
    def hash(self) -> bytes:
        return self.block.hash


def tx_root(txs: tuple[Tx, ...] | list[Tx]) -> bytes:
    """``tx_root = MTH(txids)`` (§5)."""
    return merkle_root([t.txid for t in txs])

