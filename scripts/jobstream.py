#!/usr/bin/env python3
"""The devnet's job stream: real AI inference as jobs on the network (PROTOCOL §6).

A small MLP (64-64-10) is trained on scikit-learn's bundled digits data set, its layers
are quantised to int8 in [−64, 64], and the test split's inference runs as jobs: each
batch's layer-1 and layer-2 products are posted with ``client.market.MarketClient``,
computed by the miners, verified (claim + Freivalds) and accepted before they are used.
Larger synthetic products keep the miners busy between batches. A status file (JSON)
tells the devnet view what happened: jobs by status, batches, and the accuracy of the
int8-over-the-network model against the float model.

    python scripts/jobstream.py --rpc-url http://127.0.0.1:28742/ --datadir .devnet/node1 --status FILE
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from client.market import MarketClient, MarketClientError  # noqa: E402
from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.params import COIN, NETWORKS  # noqa: E402
from client.rpc import RpcClient, RpcClientError, cookie_auth  # noqa: E402

BATCH = 96  # test rows per inference job (padded to 96 = 3·32)
ACT_MAX = 64  # int8 activations in [0, 64]


@dataclass
class Int8MLP:
    """A trained 64-64-10 ReLU MLP with both weight matrices and the activations in [−64, 64]."""

    w1: np.ndarray
    s1: float
    b1: np.ndarray
    w2: np.ndarray
    s2: float
    b2: np.ndarray
    h_scale: float  # hidden activations: h ≈ h_q · h_scale

    X_SCALE = 4  # digits pixels 0..16 → 0..64 exactly

    @classmethod
    def from_float(cls, coefs: list[np.ndarray], intercepts: list[np.ndarray], calibration: np.ndarray) -> "Int8MLP":
        w1, w2 = coefs
        s1, s2 = np.abs(w1).max() / 64, np.abs(w2).max() / 64
        hidden = np.maximum(calibration / 16 @ w1 + intercepts[0], 0)
        return cls(np.round(w1 / s1).astype(np.int8), s1, intercepts[0], np.round(w2 / s2).astype(np.int8), s2,
                   intercepts[1], hidden.max() / ACT_MAX)

    def predict(self, x: np.ndarray, matmul) -> np.ndarray:
        """Class predictions for raw digits rows; ``matmul(A, B)`` is the int8 product (the network)."""
        xq = (x * self.X_SCALE).astype(np.int8)
        pre = matmul(xq, self.w1).astype(np.float64) * (self.s1 / (16 * self.X_SCALE)) + self.b1
        hq = np.clip(np.round(np.maximum(pre, 0) / self.h_scale), 0, ACT_MAX).astype(np.int8)
        logits = matmul(hq, self.w2).astype(np.float64) * (self.h_scale * self.s2) + self.b2
        return logits.argmax(axis=1)


def train() -> tuple[Int8MLP, float, np.ndarray, np.ndarray]:
    """(int8 model, float accuracy, test rows, test labels) on the bundled digits data set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it converges well enough for a demo in 300 iterations
        model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=0).fit(x_train / 16, y_train)
    return (Int8MLP.from_float(model.coefs_, model.intercepts_, x_train), model.score(x_test / 16, y_test),
            x_test, y_test)


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
                    "last_error": self.errors[-1] if self.errors else None, "time": time.time()}


def local_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32)


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
            local = model.predict(rows, local_matmul)
            with progress.lock:
                progress.rows += len(rows)
                progress.correct += int((predicted == y[start:start + BATCH]).sum())
                progress.local_correct += int((local == y[start:start + BATCH]).sum())
                progress.batches += 1


def filler(client: MarketClient, progress: Progress, stop: threading.Event, size: int, reward: int,
           timeout: float) -> None:
    """Larger synthetic products, one at a time, so miners always have useful work."""
    rng = np.random.default_rng()
    while not stop.is_set():
        a = rng.integers(-64, 65, size=(size, size), dtype=np.int8)
        b = rng.integers(-64, 65, size=(size, size), dtype=np.int8)
        try:
            c = client.matmul(a, b, reward, timeout=timeout)
            if not (c == local_matmul(a, b)).all():
                raise MarketClientError("an accepted product differs from A·B")
            with progress.lock:
                progress.filler += 1
        except (MarketClientError, RpcClientError) as exc:
            with progress.lock:
                progress.errors.append(str(exc))
            stop.wait(5)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", default="dev", choices=["dev", "regtest"])
    p.add_argument("--rpc-url", required=True)
    p.add_argument("--datadir", required=True, help="the node's datadir (for its cookie)")
    p.add_argument("--status", required=True, help="JSON status file the devnet view reads")
    p.add_argument("--filler-size", type=int, default=512, help="n of the n×n×n filler products (0: none)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one product")
    args = p.parse_args()
    network = NETWORKS[args.network]
    user, password = cookie_auth(args.datadir, network.name)
    rpc = RpcClient(args.rpc_url, user, password, timeout=120)
    key = dev_faucet_key()
    model, float_accuracy, x, y = train()
    progress = Progress(float_accuracy)
    stop = threading.Event()
    client = MarketClient(rpc, network, key, log=lambda text: None)  # one client: one nonce sequence
    workers = [threading.Thread(target=inference, daemon=True,
                                args=(client, model, x, y, progress, stop, COIN // 10, args.timeout))]
    if args.filler_size:
        workers.append(threading.Thread(target=filler, daemon=True,
                                        args=(client, progress, stop, args.filler_size, COIN, args.timeout)))
    for w in workers:
        w.start()
    status = Path(args.status)
    try:
        while True:
            try:
                market = rpc.call("getmarketinfo")
            except RpcClientError:
                market = {}
            tmp = status.with_suffix(".tmp")
            tmp.write_text(json.dumps(progress.snapshot(market, client)))
            tmp.replace(status)
            time.sleep(2)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
