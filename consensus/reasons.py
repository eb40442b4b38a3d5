"""Why a block or transaction is invalid: every reason, defined once (PROTOCOL §2, §3, §5, §6).

A ``Reason`` is the ``code`` of a ``consensus.errors`` error.  Its value is a stable
token that users see: ``submitblock``'s answer, RPC error messages, ban reasons,
logs and metrics labels.  The errors refuse any other code, so a reason cannot be
made up at a raise site.  A rule shared by txs and headers (version, chain id, a
job that must exist) has one token for both.
"""
from __future__ import annotations

from enum import StrEnum, unique


@unique
class Reason(StrEnum):
    """A consensus rule that an object breaks, by section."""

    # §2: not the canonical encoding of the expected object (``DecodeError``)
    DECODE = "decode"

    # §3, decided by the tx alone (``check_tx_stateless``)
    BAD_VERSION = "bad-version"  # tx or header version is not the protocol's
    BAD_CHAIN_ID = "bad-chain-id"  # tx or header of another network
    TX_TOO_LARGE = "tx-too-large"  # encoded tx over 128 KiB
    BAD_AMOUNT = "bad-amount"  # TRANSFER amount < 1
    BAD_JOB_DIMS = "bad-job-dims"  # JOB_POST m, n, k outside §1's shapes
    BAD_REWARD = "bad-reward"  # JOB_POST reward < 1
    BAD_SIGNATURE = "bad-signature"  # Ed25519 over the sighash fails

    # §3, against the account state (``apply_tx``)
    BAD_NONCE = "bad-nonce"  # nonce ≠ account.nonce
    INSUFFICIENT_FUNDS = "insufficient-funds"  # balance < fee + escrow
    BAD_EXPIRY = "bad-expiry"  # JOB_POST expiry not after the block's height
    BALANCE_OVERFLOW = "balance-overflow"  # a credit past 2^64 − 1

    # §6, the job market (``apply_tx``)
    UNKNOWN_JOB = "unknown-job"  # no job with that id (a tx's job, or a header's job_id, §5)
    JOB_NOT_OPEN = "job-not-open"  # JOB_RESULT for a job not OPEN, or past its expiry
    BOND_TOO_SMALL = "bond-too-small"  # JOB_RESULT bond < ceil(reward / 10)
    JOB_NOT_CLAIMED = "job-not-claimed"  # JOB_ACCEPT or FRAUD_PROOF for a job not CLAIMED
    NOT_POSTER = "not-poster"  # JOB_ACCEPT from someone other than the job's poster
    BAD_FRAUD_CLAIM = "bad-fraud-claim"  # tagged("pouw/claim", worker || H_C) ≠ the stored claim
    BAD_FRAUD_INDEX = "bad-fraud-index"  # (i, j) outside the m×n result
    BAD_FRAUD_SIZE = "bad-fraud-size"  # a_row, b_col or c_row of the wrong length
    BAD_FRAUD_A_PATH = "bad-fraud-a-path"  # row i of A does not lead to H_A
    BAD_FRAUD_B_PATH = "bad-fraud-b-path"  # column j of B does not lead to H_B
    BAD_FRAUD_C_PATH = "bad-fraud-c-path"  # row i of C does not lead to H_C
    NOT_FRAUD = "not-fraud"  # dot(a_row, b_col) equals c_row[j]: the entry is right

    # §5, decided by the block alone (``check_header_stateless``, ``check_block``)
    BAD_DIMS = "bad-dims"  # (m, n, k, r) not allowed on the network (§1)
    BAD_TICKET_TILE = "bad-ticket-tile"  # a ≥ m/32 or b ≥ n/32
    TICKET_DOES_NOT_WIN = "ticket-does-not-win"  # digest ≥ target·1024·k
    BLOCK_TOO_LARGE = "block-too-large"  # encoded block over 4 MiB
    BAD_TX_ROOT = "bad-tx-root"  # MTH(txids) ≠ tx_root
    BAD_PROOF_SIZE = "bad-proof-size"  # proof rows or columns not 32·k bytes
    BAD_PROOF_ENTRY_RANGE = "bad-proof-entry-range"  # a proof entry outside [−64, 64]
    BAD_PROOF_A_PATH = "bad-proof-a-path"  # the rows do not lead to H_A
    BAD_PROOF_B_PATH = "bad-proof-b-path"  # the columns do not lead to H_B
    BAD_TICKET_DIGEST = "bad-ticket-digest"  # the recomputed digest ≠ ticket.digest

    # §5, against the parent chain (``check_header_context``)
    BAD_PREV = "bad-prev"  # prev_hash does not name the parent
    BAD_HEIGHT = "bad-height"  # height ≠ parent.height + 1
    TIME_TOO_OLD = "time-too-old"  # timestamp not after the median time past
    TIME_TOO_NEW = "time-too-new"  # beyond the future limit: held and retried (``FutureBlock``)
    BAD_TARGET = "bad-target"  # target ≠ the difficulty rule's
    BAD_PREVBLK = "bad-prevblk"  # an ancestor is invalid, so this block is too
    DUPLICATE_INVALID = "duplicate-invalid"  # already known to be invalid

    # §5, §6, against the parent's state (``apply_block``)
    JOB_NOT_ACTIVE = "job-not-active"  # the header's job is neither OPEN nor CLAIMED
    JOB_MISMATCH = "job-mismatch"  # the header's (m, n, k, H_A, H_B) differ from its job's
    BAD_TX = "bad-tx"  # a tx fails: ``InvalidBlock.tx_code`` says which rule
    JOB_EVENT_OVERFLOW = "job-event-overflow"  # a job event credits a balance past 2^64 − 1
    REWARD_OVERFLOW = "reward-overflow"  # the matured reward does
    BAD_STATE_ROOT = "bad-state-root"  # tagged("pouw/state", lanes) ≠ state_root (§3a)

    @property
    def tx_stateless(self) -> bool:
        """A §3 rule the tx alone decides: a tx breaking it is invalid on every chain, at every height."""
        return self in _TX_STATELESS


_TX_STATELESS = frozenset({Reason.BAD_VERSION, Reason.BAD_CHAIN_ID, Reason.TX_TOO_LARGE, Reason.BAD_AMOUNT,
                           Reason.BAD_JOB_DIMS, Reason.BAD_REWARD, Reason.BAD_SIGNATURE})
