#!/usr/bin/env python3
"""Benchmark pouwd's JSON-RPC: sendrawtransaction throughput and getblock latency.

Starts a real regtest ``pouwd`` in a temporary datadir, funds ``--keys`` accounts
from the dev faucet, pre-signs ``--txs`` transfers (consecutive nonces per key, so
every one is admitted as ready, not future), then sends them as JSON-RPC batches of
``--batch`` over ONE keep-alive HTTP connection and reports accepted tx/s. It then
mines them and measures getblock latency (median / p95) at verbosity 0 and 1, for an
empty block and for the block holding the transfers.

    PYTHONPATH=. .venv/bin/python scripts/bench_rpc.py [--txs 5000] [--batch 100]
    PYTHONPATH=. .venv/bin/python scripts/bench_rpc.py --profile /tmp/pouwd.prof   # cProfile the daemon

With ``--profile`` the daemon runs under cProfile (slower) and the top functions by
cumulative and own time are printed after it stops.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consensus.genesis import dev_faucet_key  # noqa: E402
from consensus.keys import PrivateKey, encode_address  # noqa: E402
from consensus.params import REGTEST  # noqa: E402
from consensus.tx import Transfer, make_tx  # noqa: E402

TARGET_TPS = 2000
FEE = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rpc:
    """JSON-RPC over one persistent HTTP/1.1 connection."""

    def __init__(self, port: int, cookie: Path) -> None:
        token = base64.b64encode(cookie.read_text().strip().encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json",
                        "Connection": "keep-alive"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.ids = 0
        self.connects = 0

    def post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        self.conn.request("POST", "/", body, self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        if response.getheader("Connection", "").lower() == "close":
            self.connects += 1
        return json.loads(data)

    def call(self, method: str, *params: Any) -> Any:
        self.ids += 1
        reply = self.post({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": list(params)})
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]


def start_node(datadir: Path, port: int, profile: str | None) -> subprocess.Popen:
    prefix = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
    args = prefix + ["-m", "node.daemon", "--network", "regtest", "--datadir", str(datadir), "--rpc-port",
                     str(port), "--port", str(free_port()), "--bind", "127.0.0.1", "--log-level", "warning"]
    log = open(datadir / "pouwd.log", "ab")
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log,
                            stderr=subprocess.STDOUT)
    cookie = datadir / "regtest" / ".cookie"
    deadline = time.monotonic() + 60
    while not cookie.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"pouwd did not start:\n{(datadir / 'pouwd.log').read_text()}")
        time.sleep(0.05)
    return proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--keys", type=int, default=50, help="funded senders (the pool holds ≤ 256 txs per sender)")
    ap.add_argument("--getblock-calls", type=int, default=200)
    ap.add_argument("--profile", help="run the daemon under cProfile, writing stats here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary datadir")
    opts = ap.parse_args()
    per_key = -(-opts.txs // opts.keys)
    if per_key > 256:
        raise SystemExit("more than 256 txs per key: raise --keys")

    tmp = Path(tempfile.mkdtemp(prefix="bench_rpc_"))
    port = free_port()
    proc = start_node(tmp, port, opts.profile)
    try:
        rpc = Rpc(port, tmp / "regtest" / ".cookie")
        faucet = dev_faucet_key()
        keys = [PrivateKey((1000 + i).to_bytes(32, "big")) for i in range(opts.keys)]
        funding = per_key * (FEE + 10)
        rpc.post([{"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction",
                   "params": [make_tx(faucet, REGTEST.chain_id, i, FEE, Transfer(k.address, funding)).encode().hex()]}
                  for i, k in enumerate(keys)])
        rpc.call("generatetoaddress", 1, encode_address(REGTEST.hrp, b"\x99" * 20))
        assert rpc.call("getmempoolinfo")["size"] == 0

        t0 = time.perf_counter()
        txs = [make_tx(keys[i % opts.keys], REGTEST.chain_id, i // opts.keys, FEE, Transfer(b"\x77" * 20, 1))
               for i in range(opts.txs)]
        hexes = [t.encode().hex() for t in txs]
        sign_s = time.perf_counter() - t0

        batches = [[{"jsonrpc": "2.0", "id": i + j, "method": "sendrawtransaction", "params": [h]}
                    for j, h in enumerate(hexes[i:i + opts.batch])] for i in range(0, len(hexes), opts.batch)]
        accepted = errors = 0
        first_error = None
        latencies = []
        t0 = time.perf_counter()
        for batch in batches:
            b0 = time.perf_counter()
            for answer in rpc.post(batch):
                if answer.get("error"):
                    errors += 1
                    first_error = first_error or answer["error"]
                else:
                    accepted += 1
            latencies.append(time.perf_counter() - b0)
        send_s = time.perf_counter() - t0
        pool = rpc.call("getmempoolinfo")
        tps = accepted / send_s

        t0 = time.perf_counter()
        (full_block,) = rpc.call("generatetoaddress", 1, encode_address(REGTEST.hrp, b"\x99" * 20))
        mine_s = time.perf_counter() - t0
        (empty_block,) = rpc.call("generatetoaddress", 1, encode_address(REGTEST.hrp, b"\x99" * 20))
        ntx = len(rpc.call("getblock", full_block, 1)["tx"])

        def getblock_latency(block_hash: str, verbosity: int) -> tuple[float, float, int]:
            times = []
            size = 0
            for _ in range(opts.getblock_calls):
                s0 = time.perf_counter()
                result = rpc.call("getblock", block_hash, verbosity)
                times.append(time.perf_counter() - s0)
                size = len(json.dumps(result))
            return statistics.median(times) * 1e3, percentile(times, 0.95) * 1e3, size

        rows = [(f"empty block, v{v}", *getblock_latency(empty_block, v)) for v in (0, 1)]
        rows += [(f"{ntx}-tx block, v{v}", *getblock_latency(full_block, v)) for v in (0, 1)]
        rpc.call("stop")
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nsendrawtransaction: {opts.txs} transfers from {opts.keys} senders, batches of {opts.batch}, "
          f"one keep-alive connection{' (daemon under cProfile)' if opts.profile else ''}")
    print(f"  {'signing (client side)':<34}{sign_s:9.2f} s")
    print(f"  {'accepted / rejected':<34}{accepted:>9} / {errors}" + (f"  first error: {first_error}" if errors else ""))
    print(f"  {'mempool size after':<34}{pool['size']:>9}  ({pool['bytes']} bytes)")
    print(f"  {'wall time':<34}{send_s:9.3f} s")
    print(f"  {'throughput':<34}{tps:9.0f} tx/s   (target ≥ {TARGET_TPS}: {'met' if tps >= TARGET_TPS else 'MISSED'})")
    print(f"  {'batch latency median / p95':<34}{statistics.median(latencies) * 1e3:9.1f} / "
          f"{percentile(latencies, 0.95) * 1e3:.1f} ms")
    print(f"  {'generatetoaddress of that block':<34}{mine_s:9.3f} s")
    print(f"\ngetblock latency over {opts.getblock_calls} calls each:")
    print(f"  {'block':<22}{'median ms':>10}{'p95 ms':>10}{'reply bytes':>13}")
    for name, median, p95, size in rows:
        print(f"  {name:<22}{median:10.2f}{p95:10.2f}{size:13}")
    if opts.profile:
        print(f"\ndaemon profile ({opts.profile}), top 25 by own time:")
        pstats.Stats(opts.profile).sort_stats("tottime").print_stats(25)
    return 0 if tps >= TARGET_TPS and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
