"""Where every base unit is (PROTOCOL §3, §5, §6): the supply must balance at every tip.

Issued = the genesis alloc + the subsidy of every block already paid (heights 1 …
tip − maturity). It sits in balances, in jobs (a job holds its reward while OPEN,
reward + bond while CLAIMED), in fees of blocks not yet matured (taken from their
senders, paid to the miner ``maturity`` blocks later), or was burned (the reward of
every LAPSED job):  balances + escrow + pending fees = issued − burned.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .genesis import genesis_alloc
from .params import Network, total_subsidy
from .state import LAPSED, Account, Job


@dataclass(frozen=True)
class Supply:
    balances: int
    escrow: int
    pending_fees: int
    issued: int
    burned: int

    @property
    def balanced(self) -> bool:
        return self.balances + self.escrow + self.pending_fees == self.issued - self.burned


def issued(network: Network, tip_height: int, alloc: int | None = None) -> int:
    """Base units created up to a tip: the initial alloc (the network's genesis alloc unless
    given) and every matured subsidy (§5)."""
    if alloc is None:
        alloc = sum(a.balance for a in genesis_alloc(network).values())
    return alloc + total_subsidy(tip_height - network.coinbase_maturity)


def supply(network: Network, tip_height: int, accounts: Iterable[Account], jobs: Iterable[Job],
           pending_fees: int, alloc: int | None = None) -> Supply:
    """The supply breakdown of a state at ``tip_height`` (one pass over its records)."""
    balances = sum(a.balance for a in accounts)
    escrow = burned = 0
    for job in jobs:
        escrow += job.escrow
        if job.status == LAPSED:
            burned += job.reward
    return Supply(balances, escrow, pending_fees, issued(network, tip_height, alloc), burned)
