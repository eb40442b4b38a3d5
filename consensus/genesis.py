"""Genesis blocks and their allocations (PROTOCOL §1)."""
from __future__ import annotations

from functools import lru_cache

from .block import EMPTY_PROOF, HEADER_VERSION, ZERO32, Block, Header, Ticket, WorkSpec
from .keys import PrivateKey
from .lthash import LtHash
from .params import DEV_FAUCET_ALLOC, DEV_FAUCET_SEED, GENESIS_TX_ROOT, Network
from .state import Account, StateDiff, state_records


@lru_cache(maxsize=None)
def genesis_block(network: Network) -> Block:
    """Height 0, zero parent, fixed timestamp, initial target, the alloc's state root, no proof, no txs."""
    r = network.r_min
    header = Header(HEADER_VERSION, network.chain_id, 0, ZERO32, network.genesis_timestamp,
                    network.initial_target, GENESIS_TX_ROOT, genesis_state(network).state_root, bytes(20), 0,
                    WorkSpec(32, 32, 4 * r, r, ZERO32, ZERO32, ZERO32), Ticket(0, 0, ZERO32))
    return Block(header, EMPTY_PROOF, ())


def dev_faucet_key() -> PrivateKey:
    """The public dev/regtest faucet key: seed = SHA-256("pouw dev faucet")."""
    return PrivateKey(DEV_FAUCET_SEED)


def genesis_alloc(network: Network) -> dict[bytes, Account]:
    """The genesis allocation: the dev faucet on dev/regtest, nothing on main/test."""
    return {dev_faucet_key().address: Account(DEV_FAUCET_ALLOC, 0)} if network.faucet else {}


def genesis_state(network: Network) -> StateDiff:
    """The allocation genesis applies as its state, with its LtHash lanes (§3a)."""
    alloc = genesis_alloc(network)
    lanes = LtHash.of(state_records(alloc.items(), ()))
    return StateDiff(accounts=dict(alloc), lanes=lanes.to_bytes())
