"""``getstateinfo``: a summary of the tip state, like Bitcoin's ``gettxoutsetinfo`` (PROTOCOL §3a).

It scans every account and job record of a LevelDB snapshot (O(state), so it runs
off the event loop), reports the supply breakdown, and with ``verify`` recomputes
the LtHash lanes from the records and compares them with the stored lanes and the
tip header's ``state_root``.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from consensus.lthash import LtHash
from consensus.params import Network
from consensus.state import JOB_STATUS_NAMES, state_records
from consensus.supply import supply

from .store import StateReader


@dataclass(frozen=True)
class TipFacts:
    """What the scan needs from the chain, read on the event loop."""

    height: int
    block_hash: bytes
    state_root: bytes
    pending_fees: int  # fees of blocks not yet matured (taken from senders, not yet paid)


def tip_facts(chain: Any) -> TipFacts:
    tip = chain.tip
    maturity = chain.network.coinbase_maturity
    pending = 0
    for height in range(max(1, tip.height - maturity + 1), tip.height + 1):
        pending += chain.entry(chain.hash_at(height)).fees
    return TipFacts(tip.height, tip.hash, tip.header.state_root, pending)


def state_info(network: Network, facts: TipFacts, view: StateReader, verify: bool) -> dict[str, Any]:
    """The summary of the state in ``view`` (a snapshot taken at ``facts``'s tip)."""
    accounts = list(view.accounts())
    jobs = list(view.jobs())
    lanes = view.lanes()
    s = supply(network, facts.height, (a for _, a in accounts), (j for _, j in jobs), facts.pending_fees)
    by_status = Counter(JOB_STATUS_NAMES[j.status] for _, j in jobs)
    out: dict[str, Any] = {
        "height": facts.height,
        "bestblock": facts.block_hash.hex(),
        "state_root": facts.state_root.hex(),
        "accounts": len(accounts),
        "jobs": {name: by_status.get(name, 0) for name in JOB_STATUS_NAMES.values()},
        "total_balance": s.balances,
        "total_escrow": s.escrow,
        "pending_fees": s.pending_fees,
        "total_issued": s.issued,
        "total_burned": s.burned,
        "supply_balanced": s.balanced,
        "lanes_match_header": lanes.root() == facts.state_root,
    }
    if verify:
        recomputed = LtHash.of(state_records(accounts, jobs))
        out["verified"] = recomputed == lanes and recomputed.root() == facts.state_root
    return out
