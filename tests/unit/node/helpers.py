"""Cheap regtest blocks for node tests: every tile wins at pow_limit, so a block
costs one 32×32 tile fold on tiny matrices (m = n = 32, k = 64, r = 16).

Each block carries the state root of its parent's state plus its txs (§3a): the
helpers keep the state of every block they built (``StateTracker``), so blocks on
forks and on chains built in any order get the right root."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from consensus import work
from consensus.block import HEADER_VERSION, Block, Header, Proof, Ticket, WorkSpec, tx_root
from consensus.errors import ConsensusError
from consensus.genesis import dev_faucet_key, genesis_alloc, genesis_block
from consensus.keys import PrivateKey
from consensus.memstate import MemoryState
from consensus.params import REGTEST, Network
from consensus.state import StateDiff, apply_effects, matured_payout
from consensus.tx import JobAccept, JobPost, JobResult, Transfer, Tx, claim_of, make_tx
from consensus.validation import expected_target

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


@dataclass(frozen=True)
class _Built:
    parent: bytes
    height: int
    miner: bytes
    fees: int
    timestamp: int
    diff: StateDiff
    undo: StateDiff


class StateTracker:
    """The post-state of every block built here: one MemoryState moved along the block tree
    by diffs and undos (like a chain reorganising), so any parent's state is at hand."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.state = MemoryState(network, genesis_alloc(network))
        self.genesis = genesis_block(network).hash
        self.at = self.genesis
        self.built: dict[bytes, _Built] = {}

    def _height(self, block_hash: bytes) -> int:
        return 0 if block_hash == self.genesis else self.built[block_hash].height

    def _move_to(self, target: bytes) -> bool:
        if target != self.genesis and target not in self.built:
            return False
        forward = []
        a, b = self.at, target
        while a != b:
            if self._height(a) >= self._height(b):
                node = self.built[a]
                self.state.apply(node.undo)
                del self.state.payouts[node.height]
                a = node.parent
            else:
                forward.append(b)
                b = self.built[b].parent
        for h in reversed(forward):
            node = self.built[h]
            self.state.apply(node.diff)
            self.state.payouts[node.height] = (node.miner, node.fees)
        self.at = target
        return True

    def state_at(self, header: Header) -> MemoryState | None:
        """The state after a block built here (or genesis); None if unknown. Valid until the next call."""
        return self.state if self._move_to(header.hash) else None

    def timestamps(self, parent: Header) -> list[int]:
        """The parent's timestamp, preceded by its parent's when known."""
        node = self.built.get(parent.hash)
        if node is None:
            return [parent.timestamp]
        grand = genesis_block(self.network).header.timestamp if node.parent == self.genesis \
            else self.built[node.parent].timestamp
        return [grand, parent.timestamp]

    def child_state(self, parent: Header, txs: tuple[Tx, ...]) -> tuple[StateDiff, StateDiff] | None:
        """(diff, undo) of a child of ``parent`` holding ``txs``; None if the parent is unknown or
        the txs do not apply (the block is invalid for that anyway)."""
        if not self._move_to(parent.hash):
            return None
        height = parent.height + 1
        try:
            return apply_effects(self.state, txs, height, self.network,
                                 matured_payout(self.state, height, self.network), stateless_checked=True)
        except ConsensusError:
            return None

    def add(self, block: Block, diff: StateDiff, undo: StateDiff) -> None:
        h = block.header
        self.built[block.hash] = _Built(h.prev_hash, h.height, h.miner, sum(t.fee for t in block.txs),
                                        h.timestamp, diff, undo)


_TRACKERS: dict[str, StateTracker] = {}


def tracker(network: Network = REGTEST) -> StateTracker:
    if network.name not in _TRACKERS:
        _TRACKERS[network.name] = StateTracker(network)
    return _TRACKERS[network.name]


def make_block(parent: Header, txs: Sequence[Tx] = (), miner: bytes = b"\x11" * 20,
               timestamp: int | None = None, *, nonce: int = 0, job_id: bytes = bytes(32),
               network: Network = REGTEST, target: int | None = None, state_root: bytes | None = None) -> Block:
    """A valid child of ``parent`` on regtest (``nonce`` varies the hash for sibling blocks).

    ``job_id`` names a job whose dims/commitments must match the helper's fixed
    matrices (see ``job_post``); ``target`` overrides the difficulty rule (for
    building invalid blocks). The state root is computed from the parent's state when
    these helpers built the parent; otherwise pass ``state_root`` (from a node's
    ``getblocktemplate``, say), or the block gets a zero root.
    """
    _, _, h_a, h_b, proof = _matrices()
    ts = parent.timestamp + network.block_time if timestamp is None else timestamp
    track = tracker(network)
    tgt = expected_target(network, parent, track.timestamps(parent)) if target is None else target
    txs = tuple(txs)
    effects = track.child_state(parent, txs) if state_root is None else None
    root = state_root or (effects[0].state_root if effects else bytes(32))
    header = Header(HEADER_VERSION, network.chain_id, parent.height + 1, parent.hash, ts, tgt, tx_root(txs),
                    root, miner, nonce, WorkSpec(M, N, K, R, h_a, h_b, job_id), Ticket(0, 0, bytes(32)))
    block = Block(header.replace(ticket=_ticket(header)), proof, txs)
    if effects:
        track.add(block, *effects)
    return block


def job_matrices() -> tuple[np.ndarray, np.ndarray]:
    """A and B of the helper's JOB_POSTs."""
    a, b, _, _, _ = _matrices()
    return a, b


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
               network: Network = REGTEST, h_c: bytes = b"\x33" * 32) -> Tx:
    return make_tx(key, network.chain_id, nonce, fee, JobResult(job_id, claim_of(key.address, h_c), bond))


def job_accept(key: PrivateKey, nonce: int, job_id: bytes, fee: int = 1, network: Network = REGTEST) -> Tx:
    return make_tx(key, network.chain_id, nonce, fee, JobAccept(job_id))


def bogus_headers(parent: Header, count: int, salt: int = 0) -> list[Header]:
    """A contiguous chain of ``count`` headers on ``parent`` with no work behind them: each
    passes the stateless header rules (a zero ticket digest claims a win at regtest's
    target) but no block, matrix or proof exists; ``salt`` (the nonce) makes distinct chains."""
    out: list[Header] = []
    for _ in range(count):
        parent = Header(HEADER_VERSION, parent.chain_id, parent.height + 1, parent.hash, parent.timestamp + 5,
                        parent.target, bytes(32), bytes(32), bytes(20), salt, parent.work, Ticket(0, 0, bytes(32)))
        out.append(parent)
    return out
