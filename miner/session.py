"""Mining as a side effect of AI code's own integer matrix products (PROTOCOL §4, §5).

    with MiningSession("http://127.0.0.1:38732/", "rpw1…", datadir="~/.pouw") as s:
        c = s.matmul(a, b)          # exactly a @ b, as int64

``matmul`` takes any integer matrices with entries in [−128, 127] (int8's range) and
any shapes that multiply, and returns their exact product. Internally each product
runs through the mining kernel (``kernel.matmul_rows``) on a header built from the node's
current block template, so every tile is a lottery ticket; a winning tile becomes a
block that is submitted at once (never for an old tip, never stamped beyond what the
node accepts), and the rest of the product is mined on the next block's template. To
fit the kernel the operands are reshaped without changing the product:

* m and n are padded with zero rows/columns to multiples of 32;
* k is padded with zeros to a length the network allows (a multiple of the noise
  rank r within ``k_range(r)``; r is the smallest allowed rank that fits), and a k
  beyond the largest allowed is cut into chunks whose products are summed;
* entries outside the kernel's [−64, 64] are split, ``x = clip(x, −64, 64) + rest``,
  and the partial products summed (up to four kernel calls instead of one).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from consensus.block import WorkSpec
from consensus.errors import AddressError
from consensus.keys import decode_address
from consensus.params import MAX_K, MAX_MATRIX_DIM, NETWORKS, Network
from consensus.work import TILE, assemble_block

from . import kernel
from client.rpc import RpcClient, cookie_auth
from .template import REFRESH_SECONDS, Template

INT8_MIN, INT8_MAX = -128, 127


@dataclass
class SessionStats:
    products: int = 0  # matmul calls answered
    kernel_calls: int = 0
    macs: int = 0  # multiply-accumulates done by the kernel, padding included
    found: int = 0
    accepted: int = 0
    rejected: int = 0
    stale: int = 0  # won on a tip that had moved on: not submitted
    held: int = 0  # won while the chain's median time ran ahead of the clock: not submitted
    last_reject: str = ""


def network_of(address: str) -> Network:
    """The network whose addresses start like ``address`` (``pw1``, ``tpw1``, ``dpw1``, ``rpw1``)."""
    hrp = address.lower().rpartition("1")[0]
    for network in NETWORKS.values():
        if network.hrp == hrp:
            return network
    raise ValueError(f"{address!r} is not an address of any pouw network")


def k_plan(k: int, network: Network) -> list[tuple[int, int, int]]:
    """How to run an inner dimension ``k``: ``(start, stop, r)`` chunks whose padded length
    ``padded_k(stop - start, r, network)`` the network allows (§1)."""
    widest = max(r for r in _ranks(network))
    step = min(network.k_range(widest)[1], MAX_K)
    chunks = []
    for start in range(0, k, step):
        stop = min(k, start + step)
        chunks.append((start, stop, next(r for r in _ranks(network) if padded_k(stop - start, r, network)
                                         <= network.k_range(r)[1])))
    return chunks


def padded_k(k: int, r: int, network: Network) -> int:
    """The smallest allowed inner dimension ≥ ``k`` for rank ``r``."""
    low = network.k_range(r)[0]
    return max(low, -(-k // r) * r)


def _ranks(network: Network) -> list[int]:
    return [r for r in (1 << i for i in range(32)) if network.allowed_r(r)]


def _pad(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.int8)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def _split_range(x: np.ndarray) -> list[np.ndarray]:
    """``x`` as one or two int8 matrices with entries in [−64, 64] that sum to it."""
    low = np.clip(x, -kernel.ENTRY_LIMIT, kernel.ENTRY_LIMIT)
    rest = x - low
    return [low.astype(np.int8)] + ([rest.astype(np.int8)] if rest.any() else [])


def _operand(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got {x.ndim} dimension(s)")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{name} must hold integers (int8 values), got {x.dtype}")
    if x.size and (x.min() < INT8_MIN or x.max() > INT8_MAX):
        raise ValueError(f"{name}'s entries must lie in [{INT8_MIN}, {INT8_MAX}]")
    if max(x.shape) > MAX_MATRIX_DIM:
        raise ValueError(f"{name} is {x.shape[0]}x{x.shape[1]}; dimensions are limited to {MAX_MATRIX_DIM}")
    return x.astype(np.int16)


class MiningSession:
    """Exact integer matrix products that mine blocks for ``address`` on the node at ``rpc_url``.

    Authentication: ``rpc_user``/``rpc_password``, else the node's cookie in
    ``<datadir>/<network>/.cookie`` (the network is the address's). ``log`` receives
    one line per block found; ``stats`` counts the work and the blocks.
    """

    def __init__(self, rpc_url: str, address: str, *, datadir: str | Path = "~/.pouw",
                 rpc_user: str | None = None, rpc_password: str | None = None, threads: int | None = None,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.network = network_of(address)
        try:
            self.miner = decode_address(address, self.network.hrp)
        except AddressError as exc:
            raise ValueError(f"bad address {address!r}: {exc}") from None
        if rpc_user is None or rpc_password is None:
            rpc_user, rpc_password = cookie_auth(Path(datadir).expanduser(), self.network.name)
        self.client = RpcClient(rpc_url, rpc_user, rpc_password, timeout=60)
        chain = self.client.call("getblockchaininfo")["chain"]
        if chain != self.network.name:
            raise ValueError(f"the node at {rpc_url} is on {chain}; {address} is a {self.network.name} address")
        self.threads = threads
        self.log = log
        self.stats = SessionStats()
        self._template: Template | None = None
        self._fetched = 0.0
        self._nonce = int.from_bytes(os.urandom(8), "little") >> 1

    def __enter__(self) -> "MiningSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held open between calls; kept so the session reads as a resource."""
        self._template = None

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``a @ b`` exactly (int64), mining on every kernel call it takes."""
        a, b = _operand(a, "A"), _operand(b, "B")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"A is {a.shape[0]}x{a.shape[1]} and B is {b.shape[0]}x{b.shape[1]}: "
                             f"A's columns must equal B's rows")
        (m, k), n = a.shape, b.shape[1]
        out = np.zeros((m, n), np.int64)
        m_pad, n_pad = max(TILE, -(-m // TILE) * TILE), max(TILE, -(-n // TILE) * TILE)
        for start, stop, r in k_plan(k, self.network):
            k_pad = padded_k(stop - start, r, self.network)
            for a_part in _split_range(a[:, start:stop]):
                for b_part in _split_range(b[start:stop]):
                    product = self._mine(_pad(a_part, m_pad, k_pad), _pad(b_part, k_pad, n_pad), r)
                    out += product[:m, :n]
        self.stats.products += 1
        return out

    def _mine(self, a: np.ndarray, b: np.ndarray, r: int) -> np.ndarray:
        """A·B on the current template; a winning tile stops the kernel at its next panel, the
        block is submitted and the rest computed on the next template (one product can win more
        than one block)."""
        (m, k), n = a.shape, b.shape[1]
        roots = kernel.operand_roots(a, b, self.threads)  # H_A, H_B, and the paths of a proof if a tile wins
        spec = WorkSpec(m, n, k, r, roots.h_a, roots.h_b)
        partial, stop = kernel.PartialProduct.of_shape(m, n), np.zeros(1, np.uint8)
        while not partial.done:
            template = self._current_template()
            header = template.header_for(self.miner, self._nonce, spec, int(time.time()))
            self._nonce += 1
            stop[0], before = 0, partial.rows_done
            winners = kernel.matmul_rows(a, b, header, partial, stop, threads=self.threads)
            self.stats.kernel_calls += 1
            self.stats.macs += (partial.rows_done - before) * n * k
            if winners:
                self.stats.found += 1
                self._submit(template, assemble_block(header, a, b, winners[0], template.txs, roots))
        return partial.product

    def _current_template(self) -> Template:
        tip = self.client.call("getbestblockhash")
        if (self._template is None or self._template.prev_hash.hex() != tip
                or time.monotonic() - self._fetched > REFRESH_SECONDS):
            self._template = Template.from_json(self.client.call("getblocktemplate"))
            self._fetched = time.monotonic()
        return self._template

    def _submit(self, template: Template, block) -> None:
        if template.clock_wait(int(time.time())):
            self.stats.held += 1  # the node would hold it (time-too-new): keep computing, submit nothing
            return
        if self.client.call("getbestblockhash") != template.prev_hash.hex():
            self.stats.stale += 1
            self._template = None
            return
        reason = self.client.call("submitblock", block.encode().hex())
        self._template = None  # the tip moves on (or the template was refused): fetch anew
        if reason is None:
            self.stats.accepted += 1
            self.log(f"block {block.hash.hex()} at height {block.header.height} accepted")
        else:
            self.stats.rejected += 1
            self.stats.last_reject = str(reason)
            self.log(f"block {block.hash.hex()} rejected: {reason}")
