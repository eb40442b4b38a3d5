"""A whole state held in dicts: a ``StateView`` that applies diffs (PROTOCOL §3a, §6).

Used where no store exists: the vector checker's ``state`` section and tests.
Job events are found from the job records themselves (a claim made ``window``
blocks before, an open job expiring now), which is what a store's due index
speeds up.
"""
from __future__ import annotations

from typing import Iterable

from .lthash import LtHash
from .params import Network
from .state import CLAIMED, OPEN, Account, Job, StateDiff, state_records


class MemoryState:
    """Accounts, jobs, their LtHash, and the (miner, fees) of paid blocks by height."""

    def __init__(self, network: Network, accounts: dict[bytes, Account] | None = None,
                 jobs: dict[bytes, Job] | None = None) -> None:
        self.network = network
        self.accounts: dict[bytes, Account] = dict(accounts or {})
        self.jobs: dict[bytes, Job] = dict(jobs or {})
        self.payouts: dict[int, tuple[bytes, int]] = {}
        self._lanes = LtHash.of(state_records(self.accounts.items(), self.jobs.items()))

    def account(self, address: bytes) -> Account | None:
        return self.accounts.get(address)

    def job(self, job_id: bytes) -> Job | None:
        return self.jobs.get(job_id)

    def jobs_due(self, height: int) -> Iterable[bytes]:
        window = self.network.challenge_window
        return [j for j, job in self.jobs.items()
                if (job.status == CLAIMED and job.claim_height + window == height)
                or (job.status == OPEN and job.expiry == height)]

    def block_payout(self, height: int) -> tuple[bytes, int]:
        return self.payouts[height]

    def lanes(self) -> LtHash:
        return self._lanes.copy()

    def apply(self, diff: StateDiff) -> None:
        """Write a diff (forward or undo); its lanes become this state's."""
        for address, account in diff.accounts.items():
            if account is None:
                self.accounts.pop(address, None)
            else:
                self.accounts[address] = account
        for job_id, job in diff.jobs.items():
            if job is None:
                self.jobs.pop(job_id, None)
            else:
                self.jobs[job_id] = job
        if diff.lanes is not None:
            self._lanes = LtHash.from_bytes(diff.lanes)

    def recomputed(self) -> LtHash:
        """The LtHash from every record, from scratch (to check the incremental lanes)."""
        return LtHash.of(state_records(self.accounts.items(), self.jobs.items()))
