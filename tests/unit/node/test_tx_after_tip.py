"""A tx that only the newest tip makes valid is judged against it: the tip becomes visible
to reads as the chain's thread commits, but its events (which bring the mempool up to date)
reach the loop only when the write is done (node.chainworker)."""
from __future__ import annotations

import asyncio
import threading

from consensus.tx import JOB_ACCEPT
from node.chainworker import ChainWorker
from node.events import CONNECTED
from node.mempool import Mempool
from node.rpcmethods import RpcMethods

from .conftest import NOW
from .helpers import FAUCET, build_chain, genesis_header, job_accept, job_post, job_result, key, make_block, transfer

WORKER = key(21)


def test_a_job_accept_sent_right_after_its_claims_block_is_judged_on_that_block(chain):
    worker = ChainWorker(chain)
    pool = Mempool(chain.network, chain.tip_view, clock=lambda: float(NOW))
    worker.subscribe(lambda ev: pool.on_block_connected(ev.block) if ev.kind == CONNECTED else None)
    methods = RpcMethods(worker, pool, peers=None, stats=None, control=None,  # sendrawtransaction uses none
                         kept_mempool=None)
    base = build_chain(genesis_header(), 2)
    post = job_post(FAUCET, 0, reward=1000, expiry=50)
    posted = make_block(base[-1].header, [post, transfer(FAUCET, 1, WORKER.address, 10**6)])
    claimed = make_block(posted.header, [job_result(WORKER, 0, post.txid, bond=100)])
    accept = job_accept(FAUCET, 3, post.txid, fee=1_000)

    async def main() -> None:
        await worker.submit_blocks([*base, posted])
        pool.add(transfer(FAUCET, 2, key(22).address, 5, fee=1_000))  # the poster has a tx waiting: its pooled state
        # the claim's block is written on the chain's thread while the loop is busy elsewhere
        writer = threading.Thread(target=worker._call, args=(asyncio.get_running_loop(), chain.submit_block,
                                                             (claimed,)))
        writer.start()
        writer.join()
        assert chain.tip.hash == claimed.hash  # what getjob reads: claimed already
        assert await methods.sendrawtransaction(accept.encode().hex()) == accept.txid.hex()

    asyncio.run(main())
    assert accept.txid in pool and pool.get(accept.txid).kind == JOB_ACCEPT
