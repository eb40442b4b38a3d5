"""The figures a node reports are right: the network MAC rate against the blocks' own
work and timestamps (RPC and /metrics alike), and getpeerinfo/getnetworkinfo in a mesh
where every node was told to dial every other at once (as scripts/devnet.py does): one
connection per pair, in/out as made, synced_headers/synced_blocks at the common tip."""
from __future__ import annotations

import time

from .framework import NodeProcess, sync_blocks, wait_until
from .rpcutil import FAUCET_ADDRESS, get
from .stamped import SHAPE, submit_stamped

COUNT = 3


def test_a_mesh_of_mutual_addnodes_has_one_connection_per_pair(tmp_path) -> None:
    nodes = [NodeProcess(i, tmp_path) for i in range(COUNT)]
    try:
        for node in nodes:
            node.extra_args = [arg for other in nodes if other is not node
                               for arg in ("--addnode", other.p2p_address)]
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()

        def settled() -> bool:
            return all(n.getnetworkinfo()["connections"] == COUNT - 1 for n in nodes)
        wait_until(settled, 60, 0.2, "one connection per pair of nodes")
        for node in nodes:
            info = node.getnetworkinfo()
            peers = node.getpeerinfo()
            assert info["connections_in"] + info["connections_out"] == len(peers) == COUNT - 1
            assert info["connections_in"] == sum(p["inbound"] for p in peers)
        total_in = sum(n.getnetworkinfo()["connections_in"] for n in nodes)
        total_out = sum(n.getnetworkinfo()["connections_out"] for n in nodes)
        assert total_in == total_out == COUNT * (COUNT - 1) // 2  # each connection: out at one end, in at the other

        nodes[0].generatetoaddress(3, FAUCET_ADDRESS)
        sync_blocks(nodes)

        # Each peer's figures are the highest block it showed it has: never -1 once it answered
        # our getheaders, and on every node some peer shows the tip (the one it came from).
        def figures() -> list[list[tuple[int, int]]]:
            return [[(p["synced_headers"], p["synced_blocks"]) for p in n.getpeerinfo()] for n in nodes]

        def synced() -> bool:
            return all(max(h for h, _ in peers) == 3 and min(b for _, b in peers) >= 0 for peers in figures())
        wait_until(synced, 30, 0.2, "synced_headers/synced_blocks at the tip")
        assert all(0 <= b <= h <= 3 for peers in figures() for h, b in peers), figures()
        assert settled()  # still one connection per pair
    finally:
        for node in nodes:
            node.cleanup()


def test_network_mac_rate_is_the_work_of_the_blocks_over_their_time(start_nodes) -> None:
    (node,) = start_nodes(1)
    assert node.getmininginfo()["networkmacps"] == 0.0
    start = int(time.time()) - 100  # genesis is stamped long before: it must not stretch the window
    for i in range(5):
        submit_stamped(node, b"\x42" * 20, start + 5 * i)
    m, n, k, _ = SHAPE
    # regtest's target is the pow limit: each block is expected to cost exactly its one matmul
    want = 4 * m * n * k / 20
    assert node.getmininginfo()["networkmacps"] == want
    status, body, _ = get(node, "/metrics")
    assert status == 200 and f"pouw_network_macs_per_second {want}" in body.decode()
