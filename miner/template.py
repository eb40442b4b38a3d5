"""Block templates: what a miner needs from a node to build a block (PROTOCOL §5).

A template is the JSON object ``getblocktemplate`` returns; ``header_for`` turns
it plus the miner's own choices (address, nonce, work spec) into a header.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.block import HEADER_VERSION, Header, Ticket, WorkSpec
from consensus.params import NETWORKS, Network
from consensus.tx import Tx

REFRESH_SECONDS = 2.0  # a template is fetched again this often, new tip or not, so that txs
# reaching the mempool meanwhile (posts, claims, accepts) go into the next block found, not the
# one after it (getblocktemplate long-polls wake on a new tip only; a fetch costs the node ~1 ms)


@dataclass(frozen=True)
class Template:
    network: Network
    height: int
    prev_hash: bytes
    timestamp: int
    mintime: int
    target: int
    txs: tuple[Tx, ...]
    tx_root: bytes
    state_root: bytes
    longpollid: str

    def clock_wait(self, now: int) -> int:
        """Seconds until a block on this template is within the future limit (§5): a fast
        burst pushes median time past, hence ``mintime``, ahead of the clock; a block
        stamped beyond ``now + future_time_limit`` would be held by the node, not connected."""
        return max(0, self.mintime - (now + self.network.future_time_limit))

    def header_for(self, miner: bytes, nonce: int, spec: WorkSpec, timestamp: int | None = None) -> Header:
        ts = max(self.mintime, self.timestamp if timestamp is None else timestamp)
        return Header(HEADER_VERSION, self.network.chain_id, self.height, self.prev_hash, ts, self.target,
                      self.tx_root, self.state_root, miner, nonce, spec, Ticket(0, 0, bytes(32)))

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network.name,
            "version": HEADER_VERSION,
            "chain_id": self.network.chain_id,
            "height": self.height,
            "previousblockhash": self.prev_hash.hex(),
            "curtime": self.timestamp,
            "mintime": self.mintime,
            "target": f"{self.target:064x}",
            "tx_root": self.tx_root.hex(),
            "state_root": self.state_root.hex(),
            "transactions": [{"txid": t.txid.hex(), "hex": t.encode().hex(), "fee": t.fee} for t in self.txs],
            "longpollid": self.longpollid,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "Template":
        return cls(NETWORKS[obj["network"]], obj["height"], bytes.fromhex(obj["previousblockhash"]),
                   obj["curtime"], obj["mintime"], int(obj["target"], 16),
                   tuple(Tx.decode(bytes.fromhex(t["hex"])) for t in obj["transactions"]),
                   bytes.fromhex(obj["tx_root"]), bytes.fromhex(obj["state_root"]), obj["longpollid"])


def default_shape(network: Network) -> tuple[int, int, int, int]:
    """(m, n, k, r): the smallest allowed rank and k, 256×256 output (the cheapest block, for
    in-process mining on dev/regtest)."""
    r = network.r_min
    return 256, 256, network.k_range(r)[0], r


def mining_shape(network: Network) -> tuple[int, int, int, int]:
    """(m, n, k, r) pouw-miner mines by default: the smallest rank, 512×512 output and k up to 1024,
    large enough for the kernel to run near its speed (small matmuls are overhead-bound)."""
    r = network.r_min
    low, high = network.k_range(r)
    return 512, 512, max(low, min(1024, high)), r
