"""Network parameters and genesis definitions (PROTOCOL §1)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .hashing import tagged

COIN = 10**8
MAX_TARGET = (1 << 256) - 1
GENESIS_TIMESTAMP = 1_790_000_000  # 2026-09-21T14:13:20Z, shared by all networks (docs/protocol.md)
GENESIS_TX_ROOT = tagged("pouw/genesis", "KI-Infrastruktur: Effizienz durch Proof-of-Work".encode())
DEV_FAUCET_SEED = hashlib.sha256(b"pouw dev faucet").digest()
DEV_FAUCET_ALLOC = 10**7 * COIN
MAX_BLOCK_SIZE = 4 * 1024 * 1024
MAX_TX_SIZE = 128 * 1024
MAX_MATRIX_DIM = 65536
MAX_K = 8192
MAX_JOB_N = 16384
MEDIAN_TIME_SPAN = 11


@dataclass(frozen=True)
class Network:
    name: str
    chain_id: int
    magic: bytes
    p2p_port: int
    rpc_port: int
    hrp: str
    block_time: int
    halflife: int | None  # None: fixed target (regtest)
    r_min: int
    r_max: int
    k_floor: int  # main/test: k ≥ max(k_floor, 16r); dev/regtest: k ≥ 4r
    initial_target: int
    pow_limit: int
    coinbase_maturity: int
    challenge_window: int
    future_time_limit: int
    faucet: bool
    genesis_timestamp: int = GENESIS_TIMESTAMP

    def allowed_r(self, r: int) -> bool:
        return self.r_min <= r <= self.r_max and r & (r - 1) == 0

    def k_range(self, r: int) -> tuple[int, int]:
        low = max(self.k_floor, 16 * r) if self.k_floor else 4 * r
        return low, min(4 * r * r, MAX_K)

    def allowed_dims(self, m: int, n: int, k: int, r: int) -> bool:
        """§1 dims; k must also be a multiple of r so the fold has whole chunks."""
        if not self.allowed_r(r):
            return False
        low, high = self.k_range(r)
        return (
            low <= k <= high
            and k % r == 0
            and all(d % 32 == 0 and 32 <= d <= MAX_MATRIX_DIM for d in (m, n))
        )


MAIN = Network("main", 1, bytes.fromhex("504f5557"), 8733, 8732, "pw", 60, 14400, 64, 1024,
               1024, 1 << (256 - 46), 1 << (256 - 36), 100, 100, 600, False)
TEST = Network("test", 2, bytes.fromhex("54504f57"), 18733, 18732, "tpw", 60, 3600, 64, 1024,
               1024, 1 << (256 - 40), 1 << (256 - 30), 100, 100, 600, False)
DEV = Network("dev", 3, bytes.fromhex("44504f57"), 28733, 28732, "dpw", 5, 120, 16, 1024,
              0, 1 << (256 - 38), MAX_TARGET, 10, 10, 60, True)
REGTEST = Network("regtest", 4, bytes.fromhex("52504f57"), 38733, 38732, "rpw", 5, None, 16, 1024,
                  0, MAX_TARGET, MAX_TARGET, 10, 10, 60, True)

NETWORKS: dict[str, Network] = {n.name: n for n in (MAIN, TEST, DEV, REGTEST)}
BY_CHAIN_ID: dict[int, Network] = {n.chain_id: n for n in NETWORKS.values()}


def subsidy(height: int) -> int:
    """``50·10^8 >> (h // 2_100_000)``, zero once the shift reaches 64."""
    shift = height // 2_100_000
    return 0 if shift >= 64 else (50 * COIN) >> shift


def total_subsidy(last_height: int) -> int:
    """``Σ subsidy(h)`` for h = 1 … last_height (0 when last_height < 1), era by era."""
    total, era_start = 0, 1
    while era_start <= last_height:
        era_end = min(last_height, (era_start // 2_100_000 + 1) * 2_100_000 - 1)
        total += subsidy(era_start) * (era_end - era_start + 1)
        if subsidy(era_start) == 0:
            break
        era_start = era_end + 1
    return total
