#!/usr/bin/env python3
"""The devnet's job stream: real AI inference as jobs on the network (PROTOCOL §6).

A small MLP (64-64-10) is trained on scikit-learn's bundled digits data set, its layers
are quantised to int8 in [−64, 64], and the test split's inference runs as jobs: each
batch's layer-1 and layer-2 products are posted with ``client.market.MarketClient``,
computed by the miners, verified (Freivalds) and accepted before they are used.
Larger synthetic products keep the miners busy between batches. A status file (JSON)
tells the devnet view what happened: jobs by status, batches, and the accuracy of the
int8-over-the-network model against the float model.

    python scripts/jobstream.py --rpc-url http://127.0.0.1:28742/ --datadir .devnet/node1 --status FILE
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.cliutil import dimensions_flag, number_flag, write_status_file  # noqa: E402
from client.market import MarketClient, MarketClientError  # noqa: E402
from client.mlp import Int8MLP, train  # noqa: E402
from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.params import COIN, MAX_MATRIX_DIM, NETWORKS  # noqa: E402
from consensus.work import int8_product  # noqa: E402
from client.rpc import RpcClient, RpcClientError, cookie_auth  # noqa: E402

BATCH = 96  # test rows per inference job (padded to 96 = 3·32)
FILLER_SHAPE = (4096, 8192, 4096)  # m, k, n of a filler product: one job as large as the client's tiles
FILLERS = 16  # filler products under way at once: each waits three blocks (post, claim, accept), so
# with eight the miner was short of jobs a third of the time (docs/market.md, the devnet's job stream)
SPOT_ROWS = 4  # rows of each filler product checked exactly here


@dataclass
class Progress:
    float_accuracy: float = 0.0
    rows: int = 0
    correct: int = 0
    local_correct: int = 0
    batches: int = 0
    filler: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self, market: dict, client: MarketClient) -> dict:
        with self.lock:
            return {"float_accuracy": self.float_accuracy, "rows": self.rows,
                    "int8_accuracy": self.correct / self.rows if self.rows else None,
                    "int8_local_accuracy": self.local_correct / self.rows if self.rows else None,
                    "batches": self.batches, "filler_products": self.filler,
                    "jobs": market.get("jobs", {}), "useful_mac_share": market.get("useful_mac_share"),
                    "posted": client.counts["posted"], "accepted": client.counts["accepted"],
                    "fraud_proven": client.counts["fraud_proven"], "undelivered": client.counts["undelivered"],
                    "reposted": client.counts["reposted"],
                    "last_error": self.errors[-1] if self.errors else None, "time": time.time()}


def inference(client: MarketClient, model: Int8MLP, x: np.ndarray, y: np.ndarray, progress: Progress,
              stop: threading.Event, reward: int, timeout: float) -> None:
    """Every test batch through the network, again and again, counting right answers."""
    network_matmul = lambda a, b: client.matmul(a, b, reward, timeout=timeout)  # noqa: E731
    while not stop.is_set():
        for start in range(0, len(x), BATCH):
            if stop.is_set():
                return
            rows = x[start:start + BATCH]
            try:
                predicted = model.predict(rows, network_matmul)
            except (MarketClientError, RpcClientError) as exc:
                with progress.lock:
                    progress.errors.append(str(exc))
                stop.wait(5)
                continue
            local = model.predict(rows, int8_product)
            with progress.lock:
                progress.rows += len(rows)
                progress.correct += int((predicted == y[start:start + BATCH]).sum())
                progress.local_correct += int((local == y[start:start + BATCH]).sum())
                progress.batches += 1


def random_operand(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A rows×cols int8 matrix uniform over [−64, 63], seven random bits an entry: a sixth of
    the CPU of ``rng.integers(-64, 65, dtype=int8)`` (0.4 CPU-s for a filler's 32 MiB A), which
    the stream would take from the miner on a shared host."""
    words = rng.integers(0, 1 << 63, size=-(-rows * cols // 8), dtype=np.int64)
    entries = (words.view(np.uint8)[:rows * cols] & 0x7F).view(np.int8)
    entries -= 64
    return entries.reshape(rows, cols)


def filler(client: MarketClient, progress: Progress, stop: threading.Event, shape: tuple[int, int, int],
           reward: int, timeout: float) -> None:
    """Larger synthetic products, one at a time, so miners have useful work between batches.
    Each came verified (Freivalds) and accepted; a few of its rows are also checked here exactly,
    as a whole int64 product of this size would take minutes of this process."""
    m, k, n = shape
    rng = np.random.default_rng()
    while not stop.is_set():
        a, b = random_operand(rng, m, k), random_operand(rng, k, n)
        try:
            c = client.matmul(a, b, reward, timeout=timeout)
            rows = rng.choice(m, size=min(m, SPOT_ROWS), replace=False)
            if not (c[rows] == int8_product(a[rows], b)).all():
                raise MarketClientError("an accepted product differs from A·B")
            with progress.lock:
                progress.filler += 1
        except (MarketClientError, RpcClientError) as exc:
            with progress.lock:
                progress.errors.append(str(exc))
            stop.wait(5)


def add_filler_flags(p: argparse.ArgumentParser) -> None:
    """``--fillers`` and ``--filler-shape``: this stream's, and devnet.py's, which passes them on."""
    p.add_argument("--fillers", type=number_flag(0, 16), default=FILLERS, metavar="0..16",
                   help="filler products under way at once (default %(default)s; 0: none)")
    p.add_argument("--filler-shape", type=dimensions_flag("M,K,N", MAX_MATRIX_DIM), default=FILLER_SHAPE,
                   metavar="M,K,N", help="the filler products' shape, A M×K times B K×N (default 4096,8192,4096: "
                                         "one job of 137 G multiply-adds; 1024,2048,1024 for a small machine)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", default="dev", choices=["dev", "regtest"])
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--datadir", required=True, help="the node's datadir (for its cookie)")
    p.add_argument("--status", required=True, help="JSON status file the devnet view reads")
    add_filler_flags(p)
    p.add_argument("--timeout", type=number_flag(1, kind=float), default=600.0,
                   help="seconds to wait for one product")
    args = p.parse_args()
    network = NETWORKS[args.network]
    user, password = cookie_auth(args.datadir, network.name)
    rpc = RpcClient(args.rpc_url, user, password, timeout=120)
    key = dev_faucet_key()
    model, float_accuracy, x, y = train()
    progress = Progress(float_accuracy)
    stop = threading.Event()
    client = MarketClient(rpc, network, key,  # one client: one nonce sequence; what it did goes to the log
                          log=lambda text: print(time.strftime("%H:%M:%S"), text, flush=True))
    workers = [threading.Thread(target=inference, daemon=True,
                                args=(client, model, x, y, progress, stop, COIN // 10, args.timeout))]
    workers += [threading.Thread(target=filler, daemon=True,
                                 args=(client, progress, stop, args.filler_shape, COIN, args.timeout))
                for _ in range(args.fillers)]
    for w in workers:
        w.start()
    status = Path(args.status)
    try:
        while True:
            try:
                market = rpc.call("getmarketinfo")
            except RpcClientError:
                market = {}
            write_status_file(status, progress.snapshot(market, client))
            time.sleep(2)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
