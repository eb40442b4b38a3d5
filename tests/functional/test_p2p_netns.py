"""pouwd nodes on separate (virtual) hosts: each in its own network namespace with its
own address on a private bridge (tests/functional/netns.py), syncing and relaying over
real interfaces instead of loopback. Skipped, with the reason, where namespaces cannot
be made (not root, ``ip netns add`` refused)."""
from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.unit.node.helpers import build_chain, genesis_header

from .framework import sync_blocks, sync_mempools
from .netns import NetnsLab
from .p2putil import submit, wait_connected
from .rpcutil import FAUCET, FAUCET_ADDRESS, key, transfer

CHAIN = build_chain(genesis_header(), 200)


@pytest.fixture
def lab(tmp_path) -> Iterator[NetnsLab]:
    reason = NetnsLab.available()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    with NetnsLab(tmp_path) as made:  # nodes killed and namespaces deleted even when the test fails
        yield made


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_lab_hosts_talk_only_inside_the_lab(tmp_path) -> None:
    reason = NetnsLab.available()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    with NetnsLab(tmp_path) as lab:
        a, b = lab.add_host(), lab.add_host()
        names = set(lab.namespaces)
        assert names <= netns_names() and len(names) == 3  # hub + two hosts
        assert (a.address, b.address) == ("10.77.0.1", "10.77.0.2")
        # the lab's addresses live in its namespaces only
        root_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert "10.77.0." not in root_addrs
        assert f"inet {a.address}/24" in a.exec("ip", "-o", "addr", "show", "dev", "eth0").stdout
        # TCP from b to a across the bridge, both sockets made inside the namespaces
        server = a.executor.run(socket.create_server, (a.address, 0))
        port = server.getsockname()[1]
        accepted: list[bytes] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0].recv(5)))
        thread.start()
        client = b.executor.run(socket.create_connection, (a.address, port), 5)
        client.sendall(b"hello")
        thread.join(10)
        client.close()
        server.close()
        assert accepted == [b"hello"]
    assert not names & netns_names(), "the lab left namespaces behind"


def test_three_hosts_sync_and_relay(lab) -> None:
    a = lab.start_node(["--max-outbound", "0"])
    b = lab.start_node(["--connect", a.p2p_address])
    c = lab.start_node(["--connect", b.p2p_address])
    nodes = [a, b, c]
    submit(a, CHAIN)
    assert sync_blocks(nodes, timeout=60) == CHAIN[-1].hash.hex()
    # every node is on its own address, on the network's default port
    assert (a.p2p_address, b.p2p_address, c.p2p_address) == ("10.77.0.1:38733", "10.77.0.2:38733",
                                                              "10.77.0.3:38733")
    wait_connected(b, a.p2p_address, inbound=1, outbound=1)
    inbound = {p["addr"].rsplit(":", 1)[0] for p in b.getpeerinfo() if p["inbound"]}
    assert inbound == {"10.77.0.3"}  # c's connection arrives from c's own address
    assert {la["address"] for la in a.getnetworkinfo()["localaddresses"]} == {"10.77.0.1"}
    # a tx from one end, mined at the other
    tx = transfer(FAUCET, c.getaccount(FAUCET_ADDRESS)["pending_nonce"], key(91).address, 10**8)
    c.sendrawtransaction(tx.encode().hex())
    sync_mempools(nodes)
    (mined,) = a.generate(1)
    assert sync_blocks(nodes) == mined
    assert all(n.gettransaction(tx.txid.hex())["blockhash"] == mined for n in nodes)
    # a restarted host rejoins and catches up
    c.stop()
    a.generate(3)
    c.start()
    assert sync_blocks(nodes) == a.getbestblockhash()
    assert c.getblockcount() == 204
