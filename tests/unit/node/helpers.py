"""Cheap regtest blocks for node tests: every tile wins at pow_limit, so a block
costs one 32×32 tile fold on tiny matrices (m = n = 32, k = 64, r = 16)."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from consensus import work
from consensus.block import Block, Header, Proof, Ticket, WorkSpec, tx_root
from consensus.difficulty import next_target
from consensus.genesis import dev_faucet_key, genesis_block
from consensus.keys import PrivateKey
from consensus.params import REGTEST, Network
from consensus.tx import JobPost, JobResult, Transfer, Tx, make_tx

M = N = 32
K, R = 64, 16
FAUCET = dev_faucet_key()


@lru_cache(maxsize=None)
def _matrices() -> tuple[np.ndarray, np.ndarray, bytes, bytes, Proof]:
    rng = np.random.default_rng(7)
    a = rng.integers(-64, 65, size=(M, K), dtype=np.int8)
    b = rng.integers(-64, 65, size=(K, N), dtype=np.int8)
    return a, b, work.commit_a(a), work.commit_b(b), work.build_proof(a, b, 0, 0)


def _ticket(header: Header) -> Ticket:
    """Tile (0, 0)'s ticket, computed the way ``consensus.work.proof_error`` checks it."""
    a, b, *_ = _matrices()
    s = work.seeds(header)
    ep, eq = work.er_pairs(s, K, R)
    fp, fq = work.fl_pairs(s, K, R)
    a_noisy = a[:32].astype(np.int16) + work.expand_left(work.el_tile_rows(s.s_a, 0, R), ep, eq)
    b_noisy = b[:, :32].astype(np.int16) + work.expand_right(work.fr_tile_cols(s.s_b, 0, R), fp, fq)
    return Ticket(0, 0, work.ticket_digest(s.s_a, 0, 0, work.tile_fold(a_noisy, b_noisy, R)))


def make_block(parent: Header, txs: Sequence[Tx] = (), miner: bytes = b"\x11" * 20,
               timestamp: int | None = None, *, nonce: int = 0, job_id: bytes = bytes(32),
               network: Network = REGTEST, target: int | None = None) -> Block:
    """A valid child of ``parent`` on regtest (``nonce`` varies the hash for sibling blocks).

    ``job_id`` names a job whose dims/commitments must match the helper's fixed
    matrices (see ``job_post``); ``target`` overrides the difficulty rule (for
    building invalid blocks).
    """
    _, _, h_a, h_b, proof = _matrices()
    ts = parent.timestamp + network.block_time if timestamp is None else timestamp
    tgt = next_target(network, parent.timestamp, parent.height) if target is None else target
    txs = tuple(txs)
    header = Header(1, network.chain_id, parent.height + 1, parent.hash, ts, tgt, tx_root(txs), miner,
                    nonce, WorkSpec(M, N, K, R, h_a, h_b, job_id), Ticket(0, 0, bytes(32)))
    return Block(header.replace(ticket=_ticket(header)), proof, txs)


def job_dims() -> tuple[int, int, int, bytes, bytes]:
    """(m, n, k, H_A, H_B) of the helper's matrices, for a JOB_POST a useful block can name."""
    _, _, h_a, h_b, _ = _matrices()
    return M, N, K, h_a, h_b


def transfer(key: PrivateKey, nonce: int, to: bytes, amount: int, fee: int = 1,
             network: Network = REGTEST) -> Tx:
    return make_tx(key, network.chain_id, nonce, fee, Transfer(to, amount))


def key(i: int) -> PrivateKey:
    """A deterministic test key."""
    return PrivateKey(i.to_bytes(32, "big"))


def build_chain(parent: Header, count: int, *, miner: bytes = b"\x11" * 20, nonce: int = 0,
                network: Network = REGTEST) -> list[Block]:
    """``count`` empty blocks on top of ``parent``."""
    out: list[Block] = []
    for _ in range(count):
        block = make_block(out[-1].header if out else parent, (), miner, nonce=nonce, network=network)
        out.append(block)
    return out


def genesis_header(network: Network = REGTEST) -> Header:
    return genesis_block(network).header


def job_post(key: PrivateKey, nonce: int, reward: int, expiry: int, fee: int = 1,
             network: Network = REGTEST) -> Tx:
    """A JOB_POST over the helper's matrices (so a block may name it as its job)."""
    m, n, k, h_a, h_b = job_dims()
    return make_tx(key, network.chain_id, nonce, fee, JobPost(m, n, k, h_a, h_b, reward, expiry))


def job_result(key: PrivateKey, nonce: int, job_id: bytes, bond: int, fee: int = 1,
               network: Network = REGTEST) -> Tx:
    return make_tx(key, network.chain_id, nonce, fee, JobResult(job_id, b"\x33" * 32, bond))


def bogus_headers(parent: Header, count: int, salt: int = 0) -> list[Header]:
    """A contiguous chain of ``count`` headers on ``parent`` with no work behind them: each
    passes the stateless header rules (a zero ticket digest claims a win at regtest's
    target) but no block, matrix or proof exists; ``salt`` (the nonce) makes distinct chains."""
    out: list[Header] = []
    for _ in range(count):
        parent = Header(1, parent.chain_id, parent.height + 1, parent.hash, parent.timestamp + 5, parent.target,
                        bytes(32), bytes(20), salt, parent.work, Ticket(0, 0, bytes(32)))
        out.append(parent)
    return out
