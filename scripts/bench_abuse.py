#!/usr/bin/env python3
"""Benchmark pouwd under the abuse of issue #15, one attack at a time, on loopback.

Starts a real regtest ``pouwd`` (the target) and an honest ``pouwd`` connected to it,
then runs each attack from its own 127.x source address, bounded in count and time,
while it measures on the target:

* RPC ``getblockcount`` latency p50 / p99 (one client polling throughout; target p99 < 50 ms),
* peak RSS (VmRSS sampled every 20 ms; target < 300 MB),
* whether the attacker was disconnected and banned, and how long after the attack began,
* how long a tx and a block sent through the honest node take to reach the target meanwhile.

Attacks: ``decode`` (8 MiB frames of millions of empty arrays under an unknown and
a known command), ``txflood`` (inv of 50,000 tx hashes, never served), ``slots``
(200 silent connections from one IP, then an honest peer connects), ``headers``
(peers sending forged 2000-header batches, answering the spot check with
``notfound``), ``getdata`` (the tip block asked for 50,000 times per message), and
``rpc`` (a body of 100,000 nested arrays, ``setban`` with a 2^64-1 bantime).

    python scripts/bench_abuse.py [--attacks decode,txflood,...] [--seconds 8] [--block-txs 200]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from consensus.params import NETWORKS  # noqa: E402
from client.rpc import RpcClient, RpcClientError, cookie_auth  # noqa: E402
from p2p import wire  # noqa: E402
from tests.functional.framework import NodeProcess, wait_until  # noqa: E402
from tests.functional.p2putil import RawPeer, banned, headers_message  # noqa: E402
from tests.functional.rpcutil import FAUCET, address, key, post, transfer  # noqa: E402
from tests.unit.node.helpers import bogus_headers, genesis_header  # noqa: E402

ATTACKS = ("decode", "txflood", "slots", "headers", "getdata", "rpc")


@dataclass
class Outcome:
    """What one attack's own code saw of the attackers."""

    sources: list[str] = field(default_factory=list)
    dropped_after: list[float] = field(default_factory=list)  # seconds from the attack's start
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    attack: str
    p50_ms: float
    p99_ms: float
    rss_mb: float
    dropped: str
    banned: str
    tx_s: str
    block_s: str
    notes: str


class Sampler:
    """RPC latency and RSS of the target while an attack runs (own threads, stopped by ``stop``)."""

    def __init__(self, node: NodeProcess) -> None:
        user, password = cookie_auth(node.datadir, node.network)
        self.client = RpcClient(node.url, user, password, timeout=30)
        self.pid = node.process.pid
        self.latencies: list[float] = []
        self.peak_rss = 0.0
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._rpc, daemon=True), threading.Thread(target=self._rss, daemon=True)]

    def __enter__(self) -> Sampler:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)

    def _rpc(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.client.call("getblockcount")
            except RpcClientError:
                self.errors += 1
            self.latencies.append(time.perf_counter() - started)
            self._stop.wait(0.01)

    def _rss(self) -> None:
        while not self._stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            self.peak_rss = max(self.peak_rss, int(line.split()[1]) / 1024)
            except OSError:
                return
            self._stop.wait(0.02)

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(q) - 1] * 1000


class Bench:
    def __init__(self, root: Path, seconds: float, block_txs: int) -> None:
        self.seconds = seconds
        self.target = NodeProcess(0, root, extra_args=["--max-outbound", "0"])
        self.honest = NodeProcess(1, root, extra_args=["--connect", self.target.p2p_address, "--max-outbound", "0"])
        self.block_txs = block_txs
        self.target_magic = NETWORKS[self.target.network].magic
        self.nonce = 0
        self.payee = address(key(77))

    # --- setup ------------------------------------------------------------------------
    def start(self) -> None:
        self.target.start()
        self.honest.start()
        wait_until(lambda: self.target.getconnectioncount() == 1, 30, what="the honest node to connect")
        self.honest.generatetoaddress(2, self.payee)
        for _ in range(self.block_txs):  # a fat block for the getdata attack
            self._send_tx(self.target)
        (self.fat_block,) = self.target.generatetoaddress(1, self.payee)
        wait_until(lambda: self.honest.getbestblockhash() == self.target.getbestblockhash(), 60,
                   what="the nodes to agree")

    def stop(self) -> None:
        for node in (self.honest, self.target):
            node.cleanup()

    def _send_tx(self, node: NodeProcess) -> str:
        tx = transfer(FAUCET, self.nonce, key(78).address, 1 + self.nonce)
        self.nonce += 1
        return node.sendrawtransaction(tx.encode().hex())

    # --- honest traffic during an attack -----------------------------------------------
    def honest_tx_seconds(self) -> float | None:
        txid = self._send_tx(self.honest)
        started = time.monotonic()
        try:
            wait_until(lambda: txid in self.target.getrawmempool(), 30, 0.01, "the honest tx")
        except AssertionError:
            return None
        return time.monotonic() - started

    def honest_block_seconds(self) -> float | None:
        (block,) = self.honest.generatetoaddress(1, self.payee)
        started = time.monotonic()
        try:
            wait_until(lambda: self.target.getbestblockhash() == block, 30, 0.01, "the honest block")
        except AssertionError:
            return None
        return time.monotonic() - started

    # --- one attack --------------------------------------------------------------------
    def run(self, name: str) -> Row:
        attack: Callable[[Outcome, float], None] = getattr(self, f"attack_{name}")
        prepare = getattr(self, f"prepare_{name}", None)
        if prepare is not None:  # the attacker's own CPU work, done before anything is measured
            prepare()
        outcome = Outcome()
        with Sampler(self.target) as sampler:
            started = time.monotonic()
            thread = threading.Thread(target=attack, args=(outcome, started), daemon=True)
            thread.start()
            time.sleep(0.5)  # let the attack get going
            tx_s = self.honest_tx_seconds()
            block_s = self.honest_block_seconds()
            thread.join(self.seconds + 60)
        bans = banned(self.target)
        banned_count = sum(f"{s}/32" in bans for s in outcome.sources)
        drops = outcome.dropped_after
        self.target.clearbanned()
        return Row(
            name, sampler.percentile(50), sampler.percentile(99), sampler.peak_rss,
            f"{len(drops)}/{len(outcome.sources)}" + (f" in {max(drops):.2f}s" if drops else ""),
            f"{banned_count}/{len(outcome.sources)}",
            "lost" if tx_s is None else f"{tx_s:.2f}", "lost" if block_s is None else f"{block_s:.2f}",
            "; ".join(outcome.notes + ([f"{sampler.errors} RPC errors"] if sampler.errors else [])))

    def _peer(self, outcome: Outcome) -> RawPeer:
        peer = RawPeer.to(self.target, timeout=30)
        outcome.sources.append(peer.source_ip)
        return peer

    def _until_closed(self, peer: RawPeer, outcome: Outcome, started: float, timeout: float) -> None:
        if peer.closed(timeout):
            outcome.dropped_after.append(time.monotonic() - started)
        peer.close()

    def prepare_decode(self) -> None:
        count = wire.MAX_PAYLOAD - 16
        self.floods = [wire.frame(self.target_magic, b"\x92\xa3zzz\xdd" + count.to_bytes(4, "big") + b"\x90" * count),
                       wire.frame(self.target_magic, b"\x92\xa3inv\xdd" + count.to_bytes(4, "big") + b"\x90" * count)]

    def attack_decode(self, outcome: Outcome, started: float) -> None:
        """Four connections, each sending three 8 MiB frames of empty arrays (unknown / known command)."""
        for i in range(4):
            peer = self._peer(outcome)
            peer.handshake()
            try:
                for _ in range(3):
                    peer.send_raw(self.floods[i % 2])
            except OSError:
                pass
            self._until_closed(peer, outcome, started, self.seconds)

    def attack_txflood(self, outcome: Outcome, started: float) -> None:
        peer = self._peer(outcome)
        peer.handshake()
        rng = random.Random(15)
        deadline = started + self.seconds
        rounds = 0
        while time.monotonic() < deadline and rounds < 5:
            peer.send("inv", [[wire.INV_TX, rng.randbytes(32)] for _ in range(wire.MAX_INV)])
            rounds += 1
            time.sleep(1.0)
        outcome.notes.append(f"{rounds} inv of {wire.MAX_INV}; node asked it for at most "
                             f"{self._asked(peer)} txs")
        self._until_closed(peer, outcome, started, 0.1)

    @staticmethod
    def _asked(peer: RawPeer) -> int:
        asked = 0
        try:
            while True:
                msg = peer.recv(0.5)
                if msg.command == "getdata":
                    asked += len(msg.args[0])
        except (TimeoutError, ConnectionError, OSError):
            return asked

    def attack_slots(self, outcome: Outcome, started: float) -> None:
        source = RawPeer.to(self.target).source_ip  # one IP for all of them
        outcome.sources.append(source)
        hogs = []
        for _ in range(200):
            try:
                hogs.append(RawPeer("127.0.0.1", self.target.p2p_port, source, timeout=5))
            except OSError:
                break
        refused = sum(hog.closed(0.05) for hog in hogs)
        honest = RawPeer.to(self.target)
        t0 = time.monotonic()
        try:
            honest.handshake()
            outcome.notes.append(f"{refused}/{len(hogs)} silent connections refused at once; "
                                 f"an honest newcomer handshook in {time.monotonic() - t0:.2f}s")
        except (TimeoutError, ConnectionError, AssertionError, OSError) as exc:
            outcome.notes.append(f"{refused}/{len(hogs)} refused; the honest newcomer failed: {exc}")
        honest.close()
        time.sleep(min(2.0, self.seconds))
        for hog in hogs:
            hog.close()

    def prepare_headers(self) -> None:
        self.forged = []
        for i in range(10):  # 10 forgers, 4 full batches each, every chain forking off genesis
            chain = bogus_headers(genesis_header(), 4 * wire.MAX_HEADERS, salt=1000 + i)
            self.forged.append([wire.frame(self.target_magic, headers_message(chain[k:k + wire.MAX_HEADERS]))
                                for k in range(0, len(chain), wire.MAX_HEADERS)])

    def attack_headers(self, outcome: Outcome, started: float) -> None:
        ibd = [False]

        def watch() -> None:
            while time.monotonic() < started + self.seconds:
                ibd[0] = ibd[0] or self.target.getblockchaininfo()["initialblockdownload"]
                time.sleep(0.1)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        peers = []
        for frames in self.forged:
            peer = self._peer(outcome)
            peer.handshake(height=10_000)
            try:
                for data in frames:
                    peer.send_raw(data)
            except OSError:
                pass
            peers.append(peer)
        for peer in peers:  # a forger cannot serve the block the node picks: it says notfound
            try:
                while (msg := peer.recv(5)).command != "getdata":
                    pass
                peer.send("notfound", msg.args[0])
            except (TimeoutError, ConnectionError, OSError):
                pass
            self._until_closed(peer, outcome, started, self.seconds)
        watcher.join()
        outcome.notes.append(f"initialblockdownload {'went true' if ibd[0] else 'stayed false'}")

    def attack_getdata(self, outcome: Outcome, started: float) -> None:
        tip = bytes.fromhex(self.fat_block)
        size = len(bytes.fromhex(self.target.getblock(self.fat_block, 0)))
        peer = self._peer(outcome)
        peer.handshake()
        received = 0
        deadline = started + self.seconds
        for _ in range(3):
            peer.send("getdata", [[wire.INV_BLOCK, tip]] * wire.MAX_INV)
        try:
            while time.monotonic() < deadline:
                if peer.recv(max(0.01, deadline - time.monotonic())).command == "block":
                    received += 1
        except (TimeoutError, ConnectionError, OSError):
            pass
        outcome.notes.append(f"asked 3 x {wire.MAX_INV} times for a {size / 1024:.0f} KiB block, "
                             f"got it {received} times ({received * size / 2**20:.1f} MiB)")
        self._until_closed(peer, outcome, started, 0.1)

    def attack_rpc(self, outcome: Outcome, started: float) -> None:
        status, reply = post(self.target, b"[" * 100_000 + b"]" * 100_000)
        code = reply["error"]["code"] if isinstance(reply, dict) else reply[:40]
        outcome.notes.append(f"100k nested arrays: HTTP {status}, code {code}")
        status, reply = post(self.target, {"jsonrpc": "2.0", "id": 1, "method": "setban",
                                           "params": ["10.9.9.9", "add", 2**64 - 1]})
        outcome.notes.append(f"setban 2^64-1: code {reply['error']['code'] if reply.get('error') else 'ok'}, "
                             f"listbanned {len(self.target.listbanned())}")


def table(rows: list[Row]) -> str:
    head = ("attack", "rpc p50 ms", "rpc p99 ms", "peak RSS MB", "attacker dropped", "banned",
            "honest tx s", "honest block s")
    body = [(r.attack, f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.rss_mb:.0f}", r.dropped, r.banned, r.tx_s, r.block_s)
            for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [""] + [f"{r.attack}: {r.notes}" for r in rows if r.notes]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attacks", default=",".join(ATTACKS), help=f"comma-separated subset of {','.join(ATTACKS)}")
    parser.add_argument("--seconds", type=float, default=8.0, help="time bound of each attack")
    parser.add_argument("--block-txs", type=int, default=200, help="txs in the tip block the getdata attack asks for (at most 256: one sender)")
    args = parser.parse_args()
    chosen = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = set(chosen) - set(ATTACKS)
    if unknown:
        parser.error(f"unknown attacks: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="bench_abuse_") as tmp:
        bench = Bench(Path(tmp), args.seconds, args.block_txs)
        try:
            bench.start()
            rows = []
            for name in chosen:
                rows.append(bench.run(name))
                print(f"  {name} done", file=sys.stderr)
        finally:
            bench.stop()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
