"""Genesis blocks and their allocations (PROTOCOL §1)."""
from __future__ import annotations

from functools import lru_cache

from .block import EMPTY_PROOF, ZERO32, Block, Header, Ticket, WorkSpec
from .keys import PrivateKey
from .params import DEV_FAUCET_ALLOC, DEV_FAUCET_SEED, GENESIS_TX_ROOT, Network
from .state import Account, StateDiff


@lru_cache(maxsize=None)
def genesis_block(network: Network) -> Block:
    """Height 0, zero parent, fixed timestamp, initial target, no proof, no txs."""
    r = network.r_min
    header = Header(1, network.chain_id, 0, ZERO32, network.genesis_timestamp, network.initial_target,
                    GENESIS_TX_ROOT, bytes(20), 0, WorkSpec(32, 32, 4 * r, r, ZERO32, ZERO32, ZERO32),
                    Ticket(0, 0, ZERO32))
    return Block(header, EMPTY_PROOF, ())


def dev_faucet_key() -> PrivateKey:
    """The public dev/regtest faucet key: seed = SHA-256("pouw dev faucet")."""
    return PrivateKey(DEV_FAUCET_SEED)


def genesis_state(network: Network) -> StateDiff:
    """The allocation genesis applies as its state (the faucet on dev/regtest only)."""
    if not network.faucet:
        return StateDiff()
    return StateDiff(accounts={dev_faucet_key().address: Account(DEV_FAUCET_ALLOC, 0)})
