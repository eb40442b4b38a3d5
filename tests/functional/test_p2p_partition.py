"""A network split and healed (PROTOCOL §7): two groups of real pouwd processes mine
apart, the group with more work wins everywhere once they reconnect, the losing branch
stays known as a valid fork, and its txs return to the mempools and get mined again."""
from __future__ import annotations

from tests.unit.node.helpers import build_chain, genesis_header

from .framework import sync_blocks, sync_mempools, wait_until
from .p2putil import submit, wait_connected
from .rpcutil import FAUCET, FAUCET_ADDRESS, address, key, transfer

COMMON = build_chain(genesis_header(), 20)


def test_partition_heals_to_the_most_work(start_nodes) -> None:
    # a line 0 - 1 - 2 - 3 of manual one-shot connections, so a disconnect stays a disconnect
    nodes = start_nodes(4, [["--max-outbound", "0"]] * 4)
    n0, n1, n2, n3 = nodes
    for i in (1, 2, 3):
        nodes[i].addnode(nodes[i - 1].p2p_address, "onetry")
        wait_connected(nodes[i], nodes[i - 1].p2p_address)
    submit(n0, COMMON)
    alice, bob, carol = key(81), key(82), key(83)
    for who in (alice, bob):
        n0.sendrawtransaction(transfer(FAUCET, n0.getaccount(FAUCET_ADDRESS)["pending_nonce"],
                                       who.address, 10 * 10**8).encode().hex())
    sync_mempools(nodes)
    funded = n0.generate(1)[0]
    assert sync_blocks(nodes) == funded
    fork_height = n0.getblockcount()

    # split: {0, 1} | {2, 3}
    n2.disconnectnode(n1.p2p_address)
    wait_connected(n1, n0.p2p_address, inbound=0, outbound=1)  # node2's connection is gone
    wait_connected(n2, inbound=1, outbound=0)

    # group A mines 2 blocks holding txs that group B never sees
    only_a = transfer(alice, 0, carol.address, 10**8)  # nobody else spends alice's nonce 0
    double_a = transfer(FAUCET, n0.getaccount(FAUCET_ADDRESS)["pending_nonce"], carol.address, 2 * 10**8)
    n0.sendrawtransaction(only_a.encode().hex())
    n1.sendrawtransaction(double_a.encode().hex())
    sync_mempools([n0, n1])
    a_blocks = n1.generate(2)
    assert sync_blocks([n0, n1]) == a_blocks[-1]
    assert n0.gettransaction(only_a.txid.hex())["blockhash"] == a_blocks[0]
    # group B mines 4 blocks; its own tx spends the faucet nonce group A used (a double spend)
    double_b = transfer(FAUCET, double_a.nonce, bob.address, 10**8)
    only_b = transfer(bob, 0, carol.address, 10**8)
    n3.sendrawtransaction(double_b.encode().hex())
    n3.sendrawtransaction(only_b.encode().hex())
    sync_mempools([n2, n3])
    b_blocks = n2.generate(4)
    assert sync_blocks([n2, n3]) == b_blocks[-1]
    assert n0.getbestblockhash() == a_blocks[-1]  # still split

    # heal
    n2.addnode(n1.p2p_address, "onetry")
    assert sync_blocks(nodes, timeout=30) == b_blocks[-1]
    for node in nodes:
        assert node.getblockcount() == fork_height + 4
        assert node.gettransaction(double_b.txid.hex())["blockhash"] == b_blocks[0]
        assert node.gettransaction(only_b.txid.hex())["blockhash"] == b_blocks[0]
    for node in (n0, n1):  # the losers keep their branch, fully validated, as a fork
        tips = {t["hash"]: t for t in node.getchaintips()}
        assert tips[b_blocks[-1]]["status"] == "active"
        assert tips[a_blocks[-1]] == {"height": fork_height + 2, "hash": a_blocks[-1], "branchlen": 2,
                                      "status": "valid-fork"}

    # the losing branch's txs: the double spend is gone, the other is pending again everywhere
    for node in (n0, n1):
        wait_until(lambda node=node: only_a.txid.hex() in node.getrawmempool(), 15, 0.1,
                   f"node{node.index} to return the loser's tx to its mempool")
        assert double_a.txid.hex() not in node.getrawmempool()
    sync_mempools(nodes, timeout=30)
    assert n3.getrawmempool() == [only_a.txid.hex()]
    (remined,) = n3.generate(1)  # mined by a node of the winning group
    assert sync_blocks(nodes) == remined
    for node in nodes:
        assert node.gettransaction(only_a.txid.hex())["blockhash"] == remined
        assert node.getrawmempool() == []
        assert node.getaccount(address(carol))["balance"] == 2 * 10**8  # only_a + only_b, not double_a
