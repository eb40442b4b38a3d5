"""JSON shapes of headers, blocks, transactions and jobs for RPC and REST."""
from __future__ import annotations

from typing import Any

from consensus.block import Block, Header
from consensus.keys import encode_address
from consensus.params import Network
from consensus.state import JOB_STATUS_NAMES, Job
from consensus.tx import KIND_NAMES, FraudProof, JobAccept, JobPost, JobResult, Transfer, Tx


def difficulty(network: Network, target: int) -> float:
    """How many times harder than the network's easiest target (1.0 on regtest)."""
    return network.pow_limit / target if target else 0.0


def header_json(network: Network, header: Header, chain_work: int | None = None,
                confirmations: int | None = None, next_hash: bytes | None = None) -> dict[str, Any]:
    w, t = header.work, header.ticket
    out: dict[str, Any] = {
        "hash": header.hash.hex(),
        "height": header.height,
        "version": header.version,
        "chain_id": header.chain_id,
        "previousblockhash": header.prev_hash.hex(),
        "time": header.timestamp,
        "target": f"{header.target:064x}",
        "difficulty": difficulty(network, header.target),
        "tx_root": header.tx_root.hex(),
        "state_root": header.state_root.hex(),
        "miner": encode_address(network.hrp, header.miner),
        "nonce": header.nonce,
        "work": {"m": w.m, "n": w.n, "k": w.k, "r": w.r, "H_A": w.h_a.hex(), "H_B": w.h_b.hex(),
                 "job_id": w.job_id.hex()},
        "ticket": {"a": t.a, "b": t.b, "digest": t.digest.hex()},
        "useful": w.job_id != bytes(32),
        "macs": w.m * w.n * w.k,
    }
    if chain_work is not None:
        out["chainwork"] = f"{chain_work:064x}"
    if confirmations is not None:
        out["confirmations"] = confirmations
    if next_hash is not None:
        out["nextblockhash"] = next_hash.hex()
    return out


def payload_json(network: Network, tx: Tx) -> dict[str, Any]:
    p = tx.payload
    if isinstance(p, Transfer):
        return {"to": encode_address(network.hrp, p.to), "amount": p.amount}
    if isinstance(p, JobPost):
        return {"m": p.m, "n": p.n, "k": p.k, "H_A": p.h_a.hex(), "H_B": p.h_b.hex(), "reward": p.reward,
                "expiry": p.expiry}
    if isinstance(p, JobResult):
        return {"job_id": p.job_id.hex(), "claim": p.claim.hex(), "bond": p.bond}
    if isinstance(p, JobAccept):
        return {"job_id": p.job_id.hex()}
    assert isinstance(p, FraudProof)
    return {"job_id": p.job_id.hex(), "H_C": p.h_c.hex(), "i": p.i, "j": p.j}


def tx_json(network: Network, tx: Tx) -> dict[str, Any]:
    raw = tx.encode()
    return {
        "txid": tx.txid.hex(),
        "version": tx.version,
        "chain_id": tx.chain_id,
        "kind": KIND_NAMES.get(tx.kind, str(tx.kind)),
        "sender": encode_address(network.hrp, tx.sender_address),
        "nonce": tx.nonce,
        "fee": tx.fee,
        "payload": payload_json(network, tx),
        "size": len(raw),
    }


def block_json(network: Network, block: Block, verbosity: int, chain_work: int | None,
               confirmations: int | None, next_hash: bytes | None, size: int | None = None) -> dict[str, Any]:
    """``size``: the encoded length when the caller has the raw bytes (saves re-encoding the block)."""
    out = header_json(network, block.header, chain_work, confirmations, next_hash)
    out["size"] = len(block.encode()) if size is None else size
    out["ntx"] = len(block.txs)
    out["fees"] = sum(t.fee for t in block.txs)
    out["tx"] = [tx_json(network, t) if verbosity >= 2 else t.txid.hex() for t in block.txs]
    return out


def job_json(network: Network, job_id: bytes, job: Job) -> dict[str, Any]:
    return {
        "job_id": job_id.hex(),
        "poster": encode_address(network.hrp, job.poster),
        "m": job.m, "n": job.n, "k": job.k,
        "H_A": job.h_a.hex(), "H_B": job.h_b.hex(),
        "reward": job.reward, "expiry": job.expiry,
        "status": JOB_STATUS_NAMES[job.status],
        "worker": encode_address(network.hrp, job.worker) if job.worker != bytes(20) else None,
        "claim": job.claim.hex() if job.worker != bytes(20) else None,
        "bond": job.bond,
        "claim_height": job.claim_height if job.worker != bytes(20) else None,
    }
