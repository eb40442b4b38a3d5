"""The transaction pool: unconfirmed txs checked against the tip state (PROTOCOL §3, §6).

Consensus fixes what a valid tx is (§3: chain id, signature, ``nonce ==
account.nonce``, balance covers fee + escrow; §6: job rules); everything else
here is relay *policy*, not consensus.

* **Admission.** ``check_tx_stateless``, then the min relay fee, then ``apply_tx``
  on the tip state overlaid with the sender's pooled txs, at the height of the
  next block, so a sender can chain txs with consecutive nonces.  Credits a
  sender expects from other pooled txs are not counted.
* **Min relay fee** is flat per byte: ``fee ≥ min_fee_per_byte · len(encoded tx)``.
  Fee rate (fee per byte) ranks txs for block templates and eviction.
* **Nonce queues.** Per sender, *ready* txs have nonces ``tip_nonce, tip_nonce+1,
  …`` and apply in order; txs further ahead are *future*, held (bounded per
  account and, at admission, globally) until the gap fills and then promoted.
* **Replacement.** Same sender and nonce replaces a pooled tx only if the fee is
  at least ``replace_margin_percent`` higher; later txs of that sender that no
  longer apply are dropped.
* **Size limit.** Over ``max_bytes``, expired txs go first, then the lowest fee
  rate among each sender's *last* tx (so nonce chains stay gapless).  A new tx
  that would itself be evicted is refused as ``mempool-full``.
* **Expiry.** Txs older than ``max_age`` (injected clock) leave on the next block
  or when space is needed.
* **Reorgs.** The chain calls ``on_block_connected`` / ``on_block_disconnected``
  after each tip change, with ``view_provider`` already showing the new tip.

``add`` publishes ``tx-accepted`` for each tx it made ready and ``tx-rejected``
for a refusal; every pooled tx that leaves publishes ``tx-removed`` with why:
mined, replaced, evicted, expired or conflicted (no longer applies after a block,
a replacement or an expiry; ``node.events``).

A tx that breaks a consensus rule raises ``InvalidTx`` (its ``code`` a
``consensus.reasons.Reason``); one this pool declines by policy raises
``MempoolPolicyError`` (its ``code`` a ``PolicyReason``): the sender broke no rule.
"""
from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum, unique
from typing import cast

from consensus.block import Block
from consensus.errors import InvalidTx
from consensus.params import Network
from consensus.state import EMPTY_ACCOUNT, Overlay, StateView, apply_tx, check_tx_stateless
from consensus.tx import TRANSFER, JobResult, Tx
from p2p.interfaces import TxRefused

from .events import (CONFLICTED, EVICTED, EXPIRED, MINED, REPLACED, TX_ACCEPTED, Listener, Listeners, TxAccepted,
                     TxRejected, TxRemoved)

ViewProvider = Callable[[], tuple[StateView, int]]


@unique
class PolicyReason(StrEnum):
    """Why the pool declines a tx that may well be valid (relay policy, not consensus)."""

    DUPLICATE = "duplicate"  # already pooled
    FEE_TOO_LOW = "fee-too-low"  # under the min relay fee
    NONCE_TOO_OLD = "nonce-too-old"  # nonce already used on chain: a double spend or a confirmed tx
    NONCE_GAP_TOO_LARGE = "nonce-gap-too-large"  # too far ahead of the sender's next nonce
    FUTURE_QUEUE_FULL = "future-queue-full"  # no room to hold one more tx ahead of a gap
    ACCOUNT_QUEUE_FULL = "account-queue-full"  # the sender has as many txs pooled as allowed
    REPLACEMENT_FEE_TOO_LOW = "replacement-fee-too-low"  # does not outbid the pooled tx of that nonce
    MEMPOOL_FULL = "mempool-full"  # its fee rate would be the first evicted


class MempoolPolicyError(TxRefused):
    """The pool declined a tx by policy: ``code`` says why, ``detail`` says how."""

    def __init__(self, code: PolicyReason, detail: str = "") -> None:
        if not isinstance(code, PolicyReason):
            raise TypeError(f"MempoolPolicyError code must be a PolicyReason, not {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else str(code))


@dataclass(frozen=True)
class MempoolPolicy:
    """Relay policy knobs (none of them is consensus)."""

    max_bytes: int = 64 * 1024 * 1024
    min_fee_per_byte: int = 1
    replace_margin_percent: int = 10
    max_age: float = 14 * 24 * 3600.0
    max_account_txs: int = 256
    max_future_per_account: int = 64
    max_future: int = 8192
    max_nonce_gap: int = 64


@dataclass(eq=False, slots=True)
class _Entry:
    tx: Tx
    txid: bytes
    sender: bytes
    size: int
    rate: float
    time: float
    seq: int


@dataclass(eq=False, slots=True)
class _Account:
    """One sender's queue: ``ready[i].nonce == base + i``; ``state`` = tip + ready, None once stale."""

    base: int
    state: Overlay | None
    ready: list[_Entry] = field(default_factory=list)
    future: dict[int, _Entry] = field(default_factory=dict)

    def tail(self) -> _Entry:
        return self.future[max(self.future)] if self.future else self.ready[-1]


def _apply_on(state: Overlay, tx: Tx, height: int, network: Network) -> None:
    """``apply_tx`` on a scratch layer over ``state``, merged only if it succeeds."""
    scratch = Overlay(cast(StateView, state))
    apply_tx(scratch, tx, height, network)
    accounts, jobs = scratch.changes()
    for address, account in accounts.items():
        state.set_account(address, account or EMPTY_ACCOUNT)
    for job_id, job in jobs.items():
        if job is not None:
            state.set_job(job_id, job)


class Mempool:
    """Pending txs per sender, validated against the tip given by ``view_provider()``.

    ``view_provider()`` returns ``(state_view, next_height)``: the tip state and
    the height of the block that would include the pool's txs.
    """

    def __init__(self, network: Network, view_provider: ViewProvider,
                 policy: MempoolPolicy = MempoolPolicy(), clock: Callable[[], float] = time.time) -> None:
        self.network = network
        self.policy = policy
        self._view_provider = view_provider
        self._clock = clock
        self._by_txid: dict[bytes, _Entry] = {}  # in arrival order once _in_arrival_order() has run
        self._unordered = False  # an entry arrived before the last one (a kept tx loaded late)
        self._by_kind: dict[type, dict[bytes, _Entry]] = {}  # the same entries by payload type
        self._accounts: dict[bytes, _Account] = {}
        self._job_senders: set[bytes] = set()  # senders with txs whose validity depends on height/jobs
        self._tails: list[tuple[float, int, bytes]] = []  # eviction heap (rate, -seq, txid), lazy
        self._bytes = 0
        self._future_count = 0
        self._seq = itertools.count()
        self._events = Listeners()

    def subscribe(self, callback: Listener, kinds: Iterable[str] = (TX_ACCEPTED,)) -> Callable[[], None]:
        """Call ``callback(event)`` for the ``node.events`` of ``kinds`` (by default each tx made
        ready by ``add``); returns an unsubscribe."""
        return self._events.subscribe(callback, tuple(kinds))

    # --- admission -----------------------------------------------------------------

    def add(self, tx: Tx, arrived: float | None = None) -> list[Tx]:
        """Admit ``tx``, or raise ``InvalidTx`` (it breaks a rule) or ``MempoolPolicyError``;
        returns the txs that became ready (to relay). ``arrived``: when it first reached this
        node (a tx kept over a restart; its age counts towards expiry), by default now.

        An empty list means ``tx`` is held as future until the nonce gap fills.
        """
        try:
            ready = self._admit(tx, self._clock() if arrived is None else arrived)
        except (InvalidTx, MempoolPolicyError) as exc:
            self._events.publish(TxRejected(tx.txid, exc.code))
            raise
        for t in ready:
            self._events.publish(TxAccepted(t))
        return ready

    def _admit(self, tx: Tx, arrived: float) -> list[Tx]:
        txid = tx.txid
        if txid in self._by_txid:
            raise MempoolPolicyError(PolicyReason.DUPLICATE, txid.hex())
        check_tx_stateless(tx, self.network)
        size = len(tx.encode())
        if tx.fee < self.policy.min_fee_per_byte * size:
            raise MempoolPolicyError(PolicyReason.FEE_TOO_LOW,
                                     f"fee {tx.fee} < {self.policy.min_fee_per_byte}/byte × {size} bytes")
        view, height = self._view_provider()
        address = tx.sender_address
        acct = self._account(address, view, height)
        entry = _Entry(tx, txid, address, size, tx.fee / size, arrived, next(self._seq))
        expected = acct.base + len(acct.ready)
        if tx.nonce < acct.base:
            raise MempoolPolicyError(PolicyReason.NONCE_TOO_OLD, f"account nonce is {acct.base}, got {tx.nonce}")
        if tx.nonce < expected:
            self._replace_ready(acct, entry, view, height)
            made_ready = [tx]
        elif tx.nonce in acct.future:
            self._replace(acct.future[tx.nonce], entry)
            acct.future[tx.nonce] = entry
            made_ready = []
        else:
            made_ready = self._append(acct, entry, expected, height)
        if tx.kind != TRANSFER:
            self._job_senders.add(address)
        self._push_tail(acct)
        self._trim(entry)
        return [t for t in made_ready if t.txid in self._by_txid]

    def _append(self, acct: _Account, entry: _Entry, expected: int, height: int) -> list[Tx]:
        p = self.policy
        nonce = entry.tx.nonce
        full = len(acct.ready) + len(acct.future) >= p.max_account_txs
        if full and (nonce != expected or not acct.future):
            raise MempoolPolicyError(PolicyReason.ACCOUNT_QUEUE_FULL, f"{p.max_account_txs} txs pooled for this sender")
        if nonce > expected:
            if nonce - expected > p.max_nonce_gap:
                raise MempoolPolicyError(PolicyReason.NONCE_GAP_TOO_LARGE, f"next nonce is {expected}, got {nonce}")
            if len(acct.future) >= p.max_future_per_account or self._future_count >= p.max_future:
                raise MempoolPolicyError(PolicyReason.FUTURE_QUEUE_FULL, f"next nonce is {expected}, got {nonce}")
            acct.future[nonce] = entry
            self._future_count += 1
            self._register(entry)
            self._accounts[entry.sender] = acct
            return []
        assert acct.state is not None  # _account() refreshed it
        _apply_on(acct.state, entry.tx, height, self.network)
        if full:  # the next nonce outranks the furthest future tx
            self._unregister(acct.future.pop(max(acct.future)), EVICTED)
            self._future_count -= 1
        acct.ready.append(entry)
        self._register(entry)
        self._accounts[entry.sender] = acct
        return [entry.tx] + self._promote(acct, height)

    def _promote(self, acct: _Account, height: int) -> list[Tx]:
        """Move future txs that now follow the ready queue into it; drop the first that fails."""
        promoted: list[Tx] = []
        assert acct.state is not None
        while (nonce := acct.base + len(acct.ready)) in acct.future:
            entry = acct.future.pop(nonce)
            self._future_count -= 1
            try:
                _apply_on(acct.state, entry.tx, height, self.network)
            except InvalidTx:
                self._unregister(entry, CONFLICTED)
                break
            acct.ready.append(entry)
            promoted.append(entry.tx)
        return promoted

    def _check_bump(self, old: _Entry, new: _Entry) -> None:
        margin = self.policy.replace_margin_percent
        if new.tx.fee <= old.tx.fee or new.tx.fee * 100 < old.tx.fee * (100 + margin):
            raise MempoolPolicyError(PolicyReason.REPLACEMENT_FEE_TOO_LOW,
                                     f"fee {new.tx.fee} must beat {old.tx.fee} by {margin}%")

    def _replace(self, old: _Entry, new: _Entry) -> None:
        self._check_bump(old, new)
        self._unregister(old, REPLACED)
        self._register(new)

    def _replace_ready(self, acct: _Account, entry: _Entry, view: StateView, height: int) -> None:
        index = entry.tx.nonce - acct.base
        self._check_bump(acct.ready[index], entry)
        state = Overlay(view)
        for earlier in acct.ready[:index]:
            apply_tx(state, earlier.tx, height, self.network)
        apply_tx(state, entry.tx, height, self.network)
        self._replace(acct.ready[index], entry)
        acct.ready[index] = entry
        self._rebuild(entry.sender, acct, view, height)

    # --- per-sender bookkeeping ------------------------------------------------------

    def _account(self, address: bytes, view: StateView, height: int) -> _Account:
        """The sender's queue with a current ``state`` (a new, unlisted one if it has none)."""
        acct = self._accounts.get(address)
        if acct is not None and acct.state is None:
            self._rebuild(address, acct, view, height)
        if acct is None or address not in self._accounts:
            tip = view.account(address) or EMPTY_ACCOUNT
            acct = _Account(tip.nonce, Overlay(view))
        return acct

    def _rebuild(self, address: bytes, acct: _Account, view: StateView, height: int,
                 extra: Iterable[_Entry] = (), mined: Collection[bytes] = ()) -> None:
        """Re-check a sender's txs (plus ``extra``) in nonce order against the tip (§3).

        Used nonces and txs that no longer apply leave (``mined`` if in ``mined``, else
        conflicted); after a gap the rest is future (up to the per-account bound).
        """
        entries = sorted([*acct.ready, *acct.future.values(), *extra], key=lambda e: e.tx.nonce)
        self._reset_queues(address, acct, view)
        for entry in entries:
            if self._requeue(acct, entry, height):
                self._register(entry)
            else:
                self._unregister(entry, MINED if entry.txid in mined else CONFLICTED)
        self._reindex(address, acct)

    def _reset_queues(self, address: bytes, acct: _Account, view: StateView) -> None:
        """Empty the sender's queues, based at its tip nonce on a fresh layer over the tip state."""
        self._future_count -= len(acct.future)
        acct.base, acct.ready, acct.future = (view.account(address) or EMPTY_ACCOUNT).nonce, [], {}
        acct.state = Overlay(view)

    def _requeue(self, acct: _Account, entry: _Entry, height: int) -> bool:
        """Queue one re-checked tx: ready if it has the next nonce and applies, future if it is
        further ahead and the sender has room for it; False if it leaves the pool."""
        nonce, expected = entry.tx.nonce, acct.base + len(acct.ready)
        if nonce == expected:
            assert acct.state is not None  # _reset_queues made it
            try:
                _apply_on(acct.state, entry.tx, height, self.network)
            except InvalidTx:
                return False
            acct.ready.append(entry)
            return True
        if nonce > expected and nonce not in acct.future and len(acct.future) < self.policy.max_future_per_account:
            acct.future[nonce] = entry
            self._future_count += 1
            return True
        return False

    def _reindex(self, address: bytes, acct: _Account) -> None:
        """Index a sender that still has txs (eviction heap, job senders), or forget it."""
        if not (acct.ready or acct.future):
            self._accounts.pop(address, None)
            self._job_senders.discard(address)
            return
        self._accounts[address] = acct
        self._push_tail(acct)
        if any(e.tx.kind != TRANSFER for e in [*acct.ready, *acct.future.values()]):
            self._job_senders.add(address)
        else:
            self._job_senders.discard(address)

    def _forget_states(self) -> None:
        """The tip moved: every cached sender state is stale (and must not pin an old view)."""
        for acct in self._accounts.values():
            acct.state = None

    def _register(self, entry: _Entry) -> None:
        if entry.txid not in self._by_txid:
            last = next(reversed(self._by_txid.values()), None)
            self._unordered |= last is not None and entry.time < last.time
            self._by_txid[entry.txid] = entry
            self._by_kind.setdefault(type(entry.tx.payload), {})[entry.txid] = entry
            self._bytes += entry.size

    def _unregister(self, entry: _Entry, reason: str | None) -> None:
        """Drop a pooled tx; publish ``tx-removed`` with ``reason`` (None: a tx refused on entry)."""
        if self._by_txid.get(entry.txid) is entry:
            del self._by_txid[entry.txid]
            del self._by_kind[type(entry.tx.payload)][entry.txid]
            self._bytes -= entry.size
            if reason is not None:
                self._events.publish(TxRemoved(entry.txid, reason))

    def _take(self, entry: _Entry, reason: str | None) -> _Account:
        """Remove one pooled tx from its sender's queue (the caller re-checks the rest)."""
        acct = self._accounts[entry.sender]
        if acct.future.get(entry.tx.nonce) is entry:
            del acct.future[entry.tx.nonce]
            self._future_count -= 1
        else:
            acct.ready.remove(entry)
            acct.state = None  # it includes the removed tx
        self._unregister(entry, reason)
        return acct

    # --- size limit, eviction, expiry --------------------------------------------

    def _push_tail(self, acct: _Account) -> None:
        tail = acct.tail()
        heapq.heappush(self._tails, (tail.rate, -tail.seq, tail.txid))
        if len(self._tails) > 2 * len(self._by_txid) + 1024:  # drop stale entries
            tails = [a.tail() for a in self._accounts.values() if a.ready or a.future]
            self._tails = [(t.rate, -t.seq, t.txid) for t in tails]
            heapq.heapify(self._tails)

    def _lowest_tail(self) -> _Entry | None:
        """The eviction candidate: the lowest fee rate among senders' last txs (newest on ties)."""
        while self._tails:
            txid = self._tails[0][2]
            entry = self._by_txid.get(txid)
            if entry is not None and self._accounts[entry.sender].tail() is entry:
                return entry
            heapq.heappop(self._tails)
        return None

    def _trim(self, protect: _Entry | None) -> None:
        """Expire, then evict the lowest tails until under ``max_bytes``; refuse ``protect`` if it goes."""
        if self._bytes <= self.policy.max_bytes:
            return
        self.expire()
        while self._bytes > self.policy.max_bytes:
            entry = self._lowest_tail()
            assert entry is not None  # bytes > 0 implies a pooled tx
            acct = self._take(entry, None if entry is protect else EVICTED)
            if acct.ready or acct.future:
                self._push_tail(acct)
            else:
                del self._accounts[entry.sender]
                self._job_senders.discard(entry.sender)
            if entry is protect:
                raise MempoolPolicyError(PolicyReason.MEMPOOL_FULL,
                                         f"fee rate {entry.rate:.3f}/byte too low to enter a full pool")

    def expire(self) -> int:
        """Drop txs older than ``policy.max_age``; returns how many left."""
        cutoff = self._clock() - self.policy.max_age
        old = list(itertools.takewhile(lambda e: e.time < cutoff, self._in_arrival_order()))
        if not old:
            return 0
        view, height = self._view_provider()
        for entry in old:
            self._take(entry, EXPIRED)
        for address in {entry.sender for entry in old}:
            self._rebuild(address, self._accounts[address], view, height)
        return len(old)

    # --- tip changes ---------------------------------------------------------------

    def on_block_connected(self, block: Block) -> None:
        """Confirmed txs leave, and so do txs the block made invalid; then expiry runs.

        Only senders in the block and senders with job txs are re-checked: other
        accounts can only have been credited, which keeps their queues valid.
        """
        view, height = self._view_provider()
        self._forget_states()
        touched = {tx.sender_address for tx in block.txs} | self._job_senders
        mined = {tx.txid for tx in block.txs}
        for address in touched:
            acct = self._accounts.get(address)
            if acct is not None:
                self._rebuild(address, acct, view, height, mined=mined)
        self.expire()

    def on_block_disconnected(self, block: Block) -> None:
        """The block's txs return to the pool when still valid, then every queue is re-checked.

        Undone credits may have invalidated any queue.  Returned txs skip the min
        relay fee (they were mined once) but count toward the size limit.
        """
        view, height = self._view_provider()
        now = self._clock()
        returned: dict[bytes, list[_Entry]] = {}
        for tx in block.txs:
            if tx.txid not in self._by_txid:
                size = len(tx.encode())
                entry = _Entry(tx, tx.txid, tx.sender_address, size, tx.fee / size, now, next(self._seq))
                returned.setdefault(entry.sender, []).append(entry)
        for address in set(self._accounts) | set(returned):
            acct = self._accounts.get(address) or _Account(0, None)
            self._rebuild(address, acct, view, height, returned.get(address, ()))
        self._trim(None)

    def revalidate(self) -> None:
        """Re-check every queue against the current tip (after an unannounced tip change)."""
        view, height = self._view_provider()
        for address, acct in list(self._accounts.items()):
            self._rebuild(address, acct, view, height)

    # --- block templates -------------------------------------------------------------

    def select_for_block(self, max_bytes: int, max_count: int | None = None) -> list[Tx]:
        """Ready txs for the next block, best fee rate first, each sender in nonce order.

        Greedy over each sender's next tx; every returned tx applies in sequence
        on the tip state (txs that conflict with ones already taken, e.g. two
        results for one job, are skipped with the rest of their sender's queue).
        ``max_bytes`` bounds the sum of encoded tx sizes.
        """
        view, height = self._view_provider()
        state = Overlay(view)
        heads = [(-a.ready[0].rate, a.ready[0].seq, 0, a) for a in self._accounts.values() if a.ready]
        heapq.heapify(heads)
        selected: list[Tx] = []
        used = 0
        while heads and (max_count is None or len(selected) < max_count):
            _, _, index, acct = heapq.heappop(heads)
            entry = acct.ready[index]
            if used + entry.size > max_bytes:
                continue
            try:
                apply_tx(state, entry.tx, height, self.network)
            except InvalidTx:
                state = Overlay(view)  # apply_tx may have written before failing: replay
                for tx in selected:
                    apply_tx(state, tx, height, self.network)
                continue
            selected.append(entry.tx)
            used += entry.size
            if index + 1 < len(acct.ready):
                following = acct.ready[index + 1]
                heapq.heappush(heads, (-following.rate, following.seq, index + 1, acct))
        return selected

    # --- queries -----------------------------------------------------------------------

    def get(self, txid: bytes) -> Tx | None:
        entry = self._by_txid.get(txid)
        return entry.tx if entry else None

    def __contains__(self, txid: object) -> bool:
        return txid in self._by_txid

    def __len__(self) -> int:
        return len(self._by_txid)

    @property
    def bytes_used(self) -> int:
        """Encoded bytes of the pooled txs."""
        return self._bytes

    def txids(self, limit: int | None = None) -> list[bytes]:
        """The pooled txids, at most ``limit`` of them."""
        return list(itertools.islice(self._by_txid, limit))

    def txs(self, *kinds: type) -> list[Tx]:
        """The pooled txs whose payloads are of ``kinds`` (e.g. ``JobPost``), in no particular
        order; read from an index of each kind, so a few job txs cost no walk of a full pool."""
        return [entry.tx for kind in kinds for entry in list(self._by_kind.get(kind, {}).values())]

    def pooled_claims(self) -> dict[bytes, list[bytes]]:
        """Job id → the workers of the JOB_RESULTs for it in the pool (several workers may claim
        a job; the first mined takes it), in arrival order."""
        claims: dict[bytes, list[bytes]] = {}
        for entry in self._by_kind.get(JobResult, {}).values():
            claims.setdefault(entry.tx.payload.job_id, []).append(entry.sender)
        return claims

    def arrivals(self) -> list[tuple[float, Tx]]:
        """Every pooled tx, ready or future, with the time it arrived, oldest first."""
        return [(entry.time, entry.tx) for entry in self._in_arrival_order()]

    def _in_arrival_order(self) -> Iterable[_Entry]:
        """The pooled entries oldest first; txs mostly arrive in order, so the pool is sorted
        again only after one came in earlier than the last (kept txs loaded while others came)."""
        if self._unordered:
            entries = sorted(self._by_txid.values(), key=lambda e: (e.time, e.seq))
            self._by_txid = {e.txid: e for e in entries}
            self._unordered = False
        return self._by_txid.values()

    def txs_by_sender(self, address: bytes) -> list[Tx]:
        """The sender's pooled txs in nonce order (ready, then future)."""
        acct = self._accounts.get(address)
        if acct is None:
            return []
        return [e.tx for e in acct.ready] + [acct.future[n].tx for n in sorted(acct.future)]

    def pending_nonce(self, address: bytes) -> int:
        """The nonce a wallet should use next: the tip nonce plus the sender's ready txs."""
        acct = self._accounts.get(address)
        if acct is not None:
            return acct.base + len(acct.ready)
        view, _ = self._view_provider()
        return (view.account(address) or EMPTY_ACCOUNT).nonce

    def info(self) -> dict[str, int | float]:
        """Counts, bytes, ``usage`` (bytes / max_bytes), policy min fee and the fee rate to beat when full."""
        lowest = self._lowest_tail()
        return {
            "size": len(self._by_txid),
            "future": self._future_count,
            "bytes": self.bytes_used,
            "max_bytes": self.policy.max_bytes,
            "usage": self._bytes / self.policy.max_bytes,
            "min_fee_per_byte": self.policy.min_fee_per_byte,
            "lowest_fee_rate": lowest.rate if lowest else 0.0,
        }
