"""JSON-RPC methods of the job market (PROTOCOL §6): jobs, and matrices by key.

Small matrices travel inside JSON-RPC as base64 .npy; any size goes over HTTP
(``PUT /matrix/{A,B,C}``, ``GET /matrix/<key>.npy``, node/httpapi.py).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import Any, Callable

from consensus.keys import encode_address
from consensus.params import Network
from client.rpccodes import RpcCode
from consensus.state import JOB_STATUS_NAMES, Job

from .jsonview import job_json
from .market import JobMarket, MarketError
from .matrices import KINDS, MatrixError, StoredMatrix, StoreUnwritable
from .rpcserver import Dispatcher, Param, RpcError, parse_address, parse_hash

MAX_INLINE_BYTES = 8 * 1024 * 1024  # larger matrices: the HTTP routes


def matrix_json(entry: StoredMatrix) -> dict[str, Any]:
    return {"key": entry.key.hex(), "kind": entry.kind, "shape": list(entry.shape), "bytes": entry.size,
            "url": f"/matrix/{entry.key.hex()}.npy",
            **({"job_id": entry.job_id.hex()} if entry.job_id else {})}


class MarketMethods:
    def __init__(self, market: JobMarket, network: Network,
                 pooled_claims: Callable[[], dict[bytes, list[bytes]]]) -> None:
        self.market = market
        self.network = network
        self.pooled_claims = pooled_claims  # job id → workers of JOB_RESULTs waiting in the mempool

    def register(self, d: Dispatcher) -> None:
        d.add("listjobs", self.listjobs, Param("status", str, None), Param("worker", str, None))
        d.add("getmarketinfo", self.getmarketinfo, Param("window", int, 1000), Param("height", int, -1))
        d.add("getjob", self.getjob, Param("job_id", str))
        d.add("submitmatrix", self.submitmatrix, Param("kind", str), Param("npy_base64", str),
              Param("worker", str, None), Param("job_id", str, None), Param("expect", str, None))
        d.add("getmatrix", self.getmatrix, Param("key", str), Param("include_data", bool, False))

    def _job(self, job_id: bytes, job: Job, pooled: dict[bytes, list[bytes]]) -> dict[str, Any]:
        """The job's JSON, the matrices this node holds for it, and the workers whose claims of
        it wait in this node's mempool (``mempool_workers``)."""
        out = job_json(self.network, job_id, job)
        out["mempool_workers"] = [encode_address(self.network.hrp, worker) for worker in pooled.get(job_id, ())]
        keys = {"A": job.h_a, "B": job.h_b, "C": job.claim if job.worker != bytes(20) else None}
        matrices = {}
        for kind, key in keys.items():
            held = self.market.held(key) if key else None
            matrices[kind] = None if key is None else {"key": key.hex(), "held": held is not None,
                                                        "url": f"/matrix/{key.hex()}.npy" if held else None}
        out["matrices"] = matrices
        return out

    def listjobs(self, status: str | None, worker: str | None) -> list[dict[str, Any]]:
        """listjobs ( "status" "worker" ): every job, or those with status open/claimed/settled/refunded/lapsed,
        and of those only the ones claimed by ``worker`` (an address) if given."""
        if status is not None and status not in JOB_STATUS_NAMES.values():
            raise RpcError(RpcCode.INVALID_PARAMETER, f"status must be one of {', '.join(JOB_STATUS_NAMES.values())}")
        claimant = parse_address(worker, self.network.hrp) if worker is not None else None
        pooled = self.pooled_claims()
        return [self._job(job_id, job, pooled) for job_id, job in self.market.jobs(status)
                if claimant is None or job.worker == claimant]

    def getmarketinfo(self, window: int, height: int) -> dict[str, Any]:
        """getmarketinfo ( window height ): jobs by status; over the window blocks ending at height
        (-1: the tip) the useful blocks, the MACs of jobs claimed there and settled against the
        chain's MACs (the useful-MAC share); bytes served."""
        if not 1 <= window <= 100_000:
            raise RpcError(RpcCode.INVALID_PARAMETER, "window must be between 1 and 100000 blocks")
        if height < -1 or height > self.market.chain.tip.height:
            raise RpcError(RpcCode.INVALID_PARAMETER, "height must be -1 (the tip) or a height of the best chain")
        return self.market.stats(window, None if height == -1 else height)

    def getjob(self, job_id: str) -> dict[str, Any]:
        """getjob "job_id": a posted job's state and the matrices this node holds for it (PROTOCOL §6)."""
        raw = parse_hash(job_id, "job_id")
        job = self.market.chain.job(raw)
        if job is None:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, "No such job")
        return self._job(raw, job, self.pooled_claims())

    async def submitmatrix(self, kind: str, npy_base64: str, worker: str | None, job_id: str | None,
                           expect: str | None) -> dict[str, Any]:
        """submitmatrix "A|B|C" "npy_base64" ( "worker" "job_id" "expect" ): store a matrix (int8 A
        m×k or B k×n; int32 C with its worker and job, stored by claim) after checking it, and
        that its key is ``expect`` if given; returns its key."""
        if kind not in KINDS:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"kind must be one of {', '.join(KINDS)}")
        try:
            data = base64.b64decode(npy_base64, validate=True)
        except (binascii.Error, ValueError):
            raise RpcError(RpcCode.INVALID_PARAMETER, "npy_base64 is not base64") from None
        upload = self.market.store.new_upload()
        upload.write_bytes(data)
        return matrix_json(await self.store_upload(kind, upload, worker, job_id, expect))

    async def store_upload(self, kind: str, upload: Path, worker: str | None, job_id: str | None,
                           expect: str | None) -> StoredMatrix:
        """Check and store an uploaded .npy (RPC or HTTP); the upload file is consumed."""
        try:
            worker_raw, job_raw = self.c_owner(kind, worker, job_id)
            expected = parse_hash(expect, "expect") if expect is not None else None
            return await asyncio.to_thread(self.market.store.put_file, kind, upload, worker=worker_raw,
                                           job_id=job_raw, vet=lambda key: self.mismatch(key, expected, job_raw))
        except StoreUnwritable as exc:
            raise RpcError(RpcCode.DATABASE_ERROR, f"matrix not stored: {exc}") from None
        except MatrixError as exc:
            raise RpcError(RpcCode.INVALID_PARAMETER, f"matrix refused: {exc}") from None
        finally:
            upload.unlink(missing_ok=True)

    def mismatch(self, key: bytes, expected: bytes | None, job_id: bytes | None) -> str | None:
        """Why an upload whose key is ``key`` contradicts what it should be, or None."""
        if expected is not None and key != expected:
            return f"it does not match its commitment: its key is {key.hex()}, not {expected.hex()}"
        if job_id is not None:
            job = self.market.chain.job(job_id)
            if job is not None and job.worker != bytes(20) and job.claim != key:
                return f"it does not match the claim of job {job_id.hex()} on chain"
        return None

    def c_owner(self, kind: str, worker: str | None, job_id: str | None) -> tuple[bytes | None, bytes | None]:
        """(worker address, job id) a C upload names; A and B name none."""
        if kind != "C":
            return None, None
        if worker is None or job_id is None:
            raise RpcError(RpcCode.INVALID_PARAMETER, "a C upload needs the worker's address and the job id")
        return parse_address(worker, self.network.hrp), parse_hash(job_id, "job_id")

    async def getmatrix(self, key: str, include_data: bool) -> dict[str, Any]:
        """getmatrix "key" ( include_data ): a matrix by H_A, H_B or claim, fetched from peers if this
        node lacks it; the .npy inline (base64) if asked and small, else at its url."""
        raw = parse_hash(key, "key")
        try:
            entry = await self.market.fetch(raw)
        except MarketError as exc:
            raise RpcError(RpcCode.INVALID_ADDRESS_OR_KEY, str(exc)) from None
        except StoreUnwritable as exc:
            raise RpcError(RpcCode.DATABASE_ERROR, f"matrix not stored: {exc}") from None
        out = matrix_json(entry)
        if include_data:
            if entry.size > MAX_INLINE_BYTES:
                raise RpcError(RpcCode.INVALID_PARAMETER, f"{entry.size} bytes is too large inline; GET {out['url']}")
            out["npy_base64"] = base64.b64encode(entry.path.read_bytes()).decode()
        return out

