#!/usr/bin/env python3
"""Benchmark the p2p layer over loopback TCP with in-process nodes (one event loop).

1. Initial block download: a fresh node syncs ``--blocks`` regtest blocks
   headers-first from one peer (blocks/s; target ≥ 250/s).
2. Block propagation: ``--nodes`` nodes in a line (or a random connected graph),
   ``--rounds`` blocks submitted at one end; latency from ``submit_block`` to the
   block being connected on every node (median and p95; target median < 500 ms).
3. Responsiveness during sync: two ``pouwd`` processes, a fresh one syncing
   ``--blocks`` blocks from a seeded one, while a client polls the fresh node's
   ``getblockcount`` (JSON-RPC) and ``/health`` over keep-alive connections
   (p50/p99 latency of the answers given during the sync; target p99 < 50 ms).

Blocks are built before timing.  Every node has its own regtest Chain on LevelDB
in a temporary directory.  All nodes share one Python thread, so each hop's
validation is serialised with every other node's work: a conservative setup.

    python scripts/bench_p2p.py [--blocks 5000] [--nodes 8] [--rounds 30] [--topology line]
                                [--only download|propagation|responsiveness]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import random
import statistics
import tempfile
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs as python scripts/bench_p2p.py

from client.rpc import cookie_auth  # noqa: E402
from consensus.block import Block  # noqa: E402
from tests.functional.framework import NodeProcess  # noqa: E402
from tests.functional.p2putil import seed_datadir  # noqa: E402
from tests.unit.node.helpers import build_chain, genesis_header, make_block  # noqa: E402
from tests.unit.p2p.helpers import Node, make_node, running, wait_until  # noqa: E402


async def initial_download(blocks: list[Block], root: Path) -> float:
    source = make_node(root / "source", max_outbound=0)
    source.chain.submit_blocks(blocks)
    fresh = make_node(root / "fresh", max_outbound=0)
    async with running(source, fresh):
        start = time.perf_counter()
        await fresh.p2p.add_node(source.addr, "add")
        await wait_until(lambda: fresh.chain.tip.hash == blocks[-1].hash, 600, "initial download")
        return time.perf_counter() - start


def edges(count: int, topology: str, rng: random.Random) -> list[tuple[int, int]]:
    """(dialler, listener) pairs: a line, or a random tree plus a few extra links."""
    if topology == "line":
        return [(i + 1, i) for i in range(count - 1)]
    out = [(i, rng.randrange(i)) for i in range(1, count)]
    for _ in range(count // 2):
        a, b = rng.sample(range(count), 2)
        if (a, b) not in out and (b, a) not in out:
            out.append((a, b))
    return out


async def propagation(count: int, rounds: int, topology: str, root: Path) -> tuple[list[float], int]:
    base = build_chain(genesis_header(), 20)
    nodes: list[Node] = [make_node(root / f"n{i}", max_outbound=0, max_inbound_per_ip=count) for i in range(count)]  # all on 127.0.0.1
    seen: dict[tuple[int, bytes], float] = {}
    for i, node in enumerate(nodes):
        node.chain.submit_blocks(base)
        node.chain.subscribe(lambda ev, i=i: seen.setdefault((i, ev.block.hash), time.perf_counter()))
    links = edges(count, topology, random.Random(1))
    latencies: list[float] = []
    async with running(*nodes):
        for a, b in links:
            await nodes[a].p2p.add_node(nodes[b].addr, "add")
        await wait_until(lambda: all(len(n.p2p.manager.ready_peers()) >= 1 for n in nodes)
                         and sum(len(n.p2p.manager.ready_peers()) for n in nodes) == 2 * len(links),
                         30, "topology connected")
        parent = base[-1].header
        for r in range(rounds):
            block = make_block(parent, nonce=r + 1)
            parent = block.header
            start = time.perf_counter()
            nodes[0].chain.submit_block(block)
            await wait_until(lambda h=block.hash: all(n.chain.tip.hash == h for n in nodes), 30, f"round {r}")
            latencies.append(max(seen[i, block.hash] for i in range(count)) - start)
            await asyncio.sleep(0.05)
    return latencies, len(links)


def responsiveness(blocks: list[Block], root: Path) -> tuple[dict[str, list[float]], float]:
    """Latencies (s) of getblockcount and /health answered while a fresh pouwd syncs ``blocks``
    from a seeded one, and the sync's duration."""
    source = NodeProcess(0, root)
    seed_datadir(source, blocks)
    fresh = NodeProcess(1, root, extra_args=["--connect", source.p2p_address])
    latencies: dict[str, list[float]] = {"getblockcount": [], "/health": []}
    try:
        source.start()
        fresh.start()
        user, password = cookie_auth(fresh.datadir, fresh.network)
        auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        rpc = http.client.HTTPConnection("127.0.0.1", fresh.rpc_port, timeout=60)
        rest = http.client.HTTPConnection("127.0.0.1", fresh.rpc_port, timeout=60)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblockcount", "params": []})
        start = time.perf_counter()
        height = 0
        while height < len(blocks) and time.perf_counter() - start < 600:
            t = time.perf_counter()
            rpc.request("POST", "/", body, {"Authorization": auth, "Content-Type": "application/json"})
            height = json.loads(rpc.getresponse().read())["result"]
            if height < len(blocks):
                latencies["getblockcount"].append(time.perf_counter() - t)
            t = time.perf_counter()
            rest.request("GET", "/health")
            status = json.loads(rest.getresponse().read())["status"]
            if status == "syncing" or height < len(blocks):
                latencies["/health"].append(time.perf_counter() - t)
            time.sleep(0.005)
        return latencies, time.perf_counter() - start
    finally:
        for node in (fresh, source):
            if node.process is not None:
                node.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=5000)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--topology", choices=("line", "random"), default="line")
    p.add_argument("--only", choices=("download", "propagation", "responsiveness"))
    args = p.parse_args()
    run = {args.only} if args.only else {"download", "propagation", "responsiveness"}

    t = time.perf_counter()
    blocks = build_chain(genesis_header(), args.blocks)
    print(f"built {len(blocks)} regtest blocks in {time.perf_counter() - t:.1f} s "
          f"({len(blocks[0].encode())} bytes each)")
    if "download" in run:
        with tempfile.TemporaryDirectory() as tmp:
            elapsed = await initial_download(blocks, Path(tmp))
        rate = len(blocks) / elapsed
        print(f"initial download: {len(blocks)} blocks in {elapsed:.2f} s = {rate:.0f} blocks/s "
              f"(target >= 250: {'ok' if rate >= 250 else 'MISSED'})")

    if "propagation" in run:
        with tempfile.TemporaryDirectory() as tmp:
            lat, links = await propagation(args.nodes, args.rounds, args.topology, Path(tmp))
        lat_ms = sorted(x * 1000 for x in lat)
        median = statistics.median(lat_ms)
        p95 = percentile(lat_ms, 0.95)
        print(f"propagation to all of {args.nodes} nodes ({args.topology}, {links} links, {args.rounds} blocks): "
              f"median {median:.1f} ms, p95 {p95:.1f} ms, max {lat_ms[-1]:.1f} ms "
              f"(target median < 500 ms: {'ok' if median < 500 else 'MISSED'})")

    if "responsiveness" in run:
        with tempfile.TemporaryDirectory() as tmp:
            answers, took = responsiveness(blocks, Path(tmp))
        for name, values in answers.items():
            ms = [x * 1000 for x in values]
            p99 = percentile(ms, 0.99) if ms else float("nan")
            print(f"during a {len(blocks)}-block sync between two pouwd ({took:.1f} s): {name} "
                  f"{len(ms)} answers, p50 {percentile(ms, 0.5) if ms else float('nan'):.1f} ms, "
                  f"p99 {p99:.1f} ms, max {max(ms, default=float('nan')):.1f} ms "
                  f"(target p99 < 50 ms: {'ok' if p99 < 50 else 'MISSED'})")


if __name__ == "__main__":
    asyncio.run(main())
