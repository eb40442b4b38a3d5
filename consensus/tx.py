"""Transactions: kinds, payloads, signing and canonical encoding (PROTOCOL §3, §6)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Union

from . import encoding as enc
from .encoding import BIN20, BIN32, BIN64, U8, U32, U64, Bin, ListOf, Schema, Tuple
from .errors import DecodeError
from .hashing import tagged
from .keys import PrivateKey, address_of, verify
from .params import MAX_JOB_N, MAX_K, MAX_TX_SIZE

TX_VERSION = 2
TRANSFER, JOB_POST, JOB_RESULT, FRAUD_PROOF, JOB_ACCEPT = 1, 2, 3, 4, 5
KIND_NAMES = {TRANSFER: "transfer", JOB_POST: "job_post", JOB_RESULT: "job_result", FRAUD_PROOF: "fraud_proof",
              JOB_ACCEPT: "job_accept"}
MAX_PATH_LEN = 32


@dataclass(frozen=True)
class Transfer:
    to: bytes
    amount: int

    def to_list(self) -> list[Any]:
        return [self.to, self.amount]


@dataclass(frozen=True)
class JobPost:
    m: int
    n: int
    k: int
    h_a: bytes
    h_b: bytes
    reward: int
    expiry: int

    def to_list(self) -> list[Any]:
        return [self.m, self.n, self.k, self.h_a, self.h_b, self.reward, self.expiry]


def claim_of(worker: bytes, h_c: bytes) -> bytes:
    """``claim = tagged("pouw/claim", worker_address || H_C)``: binds a result to its worker (§3)."""
    return tagged("pouw/claim", worker + h_c)


@dataclass(frozen=True)
class JobResult:
    """``[job_id, claim, bond]``; the claim hides H_C behind the worker's address."""

    job_id: bytes
    claim: bytes
    bond: int

    def to_list(self) -> list[Any]:
        return [self.job_id, self.claim, self.bond]


@dataclass(frozen=True)
class FraudProof:
    """``[job_id, H_C, i, j, a_row, a_path, b_col, b_path, c_row, c_path]`` (§3, §6)."""

    job_id: bytes
    h_c: bytes
    i: int
    j: int
    a_row: bytes
    a_path: tuple[bytes, ...]
    b_col: bytes
    b_path: tuple[bytes, ...]
    c_row: bytes
    c_path: tuple[bytes, ...]

    def to_list(self) -> list[Any]:
        return [self.job_id, self.h_c, self.i, self.j, self.a_row, list(self.a_path), self.b_col,
                list(self.b_path), self.c_row, list(self.c_path)]


@dataclass(frozen=True)
class JobAccept:
    """``[job_id]``: the poster accepts the delivered result and the worker is paid (§6)."""

    job_id: bytes

    def to_list(self) -> list[Any]:
        return [self.job_id]


Payload = Union[Transfer, JobPost, JobResult, FraudProof, JobAccept]

_PATH = ListOf(BIN32, MAX_PATH_LEN)
PAYLOAD_SCHEMAS: dict[int, Schema] = {
    TRANSFER: Tuple(BIN20, U64),
    JOB_POST: Tuple(U32, U32, U32, BIN32, BIN32, U64, U64),
    JOB_RESULT: Tuple(BIN32, BIN32, U64),
    FRAUD_PROOF: Tuple(BIN32, BIN32, U32, U32, Bin(max_size=MAX_K), _PATH, Bin(max_size=MAX_K), _PATH,
                       Bin(max_size=4 * MAX_JOB_N), _PATH),
    JOB_ACCEPT: Tuple(BIN32),
}
PAYLOAD_TYPES = {TRANSFER: Transfer, JOB_POST: JobPost, JOB_RESULT: JobResult, FRAUD_PROOF: FraudProof,
                 JOB_ACCEPT: JobAccept}


class _TxSchema(Schema):
    """``[version, chain_id, kind, sender, nonce, fee, payload, signature]`` with a kind-typed payload."""

    _fields = (U32, U32, U8, BIN32, U64, U64, None, BIN64)

    def check(self, value: Any, where: str) -> None:
        if type(value) is not list or len(value) != 8:
            raise DecodeError(f"{where}: tx must be an array of 8")
        for i, schema in enumerate(self._fields):
            if schema is not None:
                schema.check(value[i], f"{where}[{i}]")
        payload_schema = PAYLOAD_SCHEMAS.get(value[2])
        if payload_schema is None:
            raise DecodeError(f"{where}: unknown tx kind {value[2]}")
        payload_schema.check(value[6], f"{where}.payload")


TX_SCHEMA = _TxSchema()


def _payload_from_list(kind: int, v: list[Any]) -> Payload:
    if kind == FRAUD_PROOF:
        return FraudProof(v[0], v[1], v[2], v[3], v[4], tuple(v[5]), v[6], tuple(v[7]), v[8], tuple(v[9]))
    return PAYLOAD_TYPES[kind](*v)  # type: ignore[return-value]


@dataclass(frozen=True)
class Tx:
    version: int
    chain_id: int
    kind: int
    sender: bytes
    nonce: int
    fee: int
    payload: Payload
    signature: bytes = bytes(64)
    _txid: bytes | None = field(default=None, compare=False, repr=False)

    def unsigned_list(self) -> list[Any]:
        return [self.version, self.chain_id, self.kind, self.sender, self.nonce, self.fee,
                self.payload.to_list()]

    def to_list(self) -> list[Any]:
        return self.unsigned_list() + [self.signature]

    def encode(self) -> bytes:
        return enc.encode(self.to_list())

    @classmethod
    def from_list(cls, v: list[Any]) -> "Tx":
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], _payload_from_list(v[2], v[6]), v[7])

    @classmethod
    def decode(cls, data: bytes) -> "Tx":
        return cls.from_list(enc.decode(data, TX_SCHEMA, MAX_TX_SIZE, "tx"))

    @property
    def sighash(self) -> bytes:
        """``tagged("pouw/sighash", canonical(tx[0:7]))``."""
        return tagged("pouw/sighash", enc.encode(self.unsigned_list()))

    @property
    def txid(self) -> bytes:
        """``tagged("pouw/txid", canonical(tx))`` (cached)."""
        if self._txid is None:
            object.__setattr__(self, "_txid", tagged("pouw/txid", self.encode()))
        return self._txid  # type: ignore[return-value]

    @property
    def sender_address(self) -> bytes:
        return address_of(self.sender)

    def signature_valid(self) -> bool:
        return verify(self.sender, self.signature, self.sighash)

    def signed(self, key: PrivateKey) -> "Tx":
        unsigned = replace(self, sender=key.pubkey, _txid=None)
        return replace(unsigned, signature=key.sign(unsigned.sighash), _txid=None)


def make_tx(key: PrivateKey, chain_id: int, nonce: int, fee: int, payload: Payload) -> Tx:
    """Build and sign a tx of the kind that matches ``payload``."""
    kind = next(k for k, t in PAYLOAD_TYPES.items() if isinstance(payload, t))
    return Tx(TX_VERSION, chain_id, kind, key.pubkey, nonce, fee, payload).signed(key)
