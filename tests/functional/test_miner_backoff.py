"""pouw-miner never spins against a real regtest pouwd: it waits for the clock when the chain's
median time past runs ahead (PROTOCOL §5), and backs off after a rejected block, saying why."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

from consensus.keys import encode_address
from consensus.params import REGTEST
from consensus.work import commit_a
from miner import worker
from client.rpc import RpcClient, cookie_auth
from miner.template import Template

from .framework import REPO, wait_until
from .stamped import SHAPE, submit_stamped

MINER = b"\x42" * 20
ADDRESS = encode_address("rpw", MINER)


def test_miner_waits_for_the_clock_instead_of_building_held_blocks(start_nodes) -> None:
    (node,) = start_nodes(1)
    # Blocks stamped at the future limit push median time past (and so the template's
    # mintime) past what the node accepts now: the next block must wait for the clock.
    pushed = 0
    template = Template.from_json(node.getblocktemplate())
    while template.clock_wait(int(time.time())) == 0 and pushed < 20:
        submit_stamped(node, MINER, int(time.time()) + REGTEST.future_time_limit, template)
        pushed += 1
        template = Template.from_json(node.getblocktemplate())
    assert template.clock_wait(int(time.time())) > 0
    out = subprocess.run([sys.executable, "-m", "miner.cli", "--network", "regtest", "--datadir", str(node.datadir),
                          "--rpc", node.url, "--address", ADDRESS, "--blocks", "4", "--shape", "64,64,64",
                          "--threads", "1", "--quiet"],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    # The wait is about a second (median time past can lead the clock by at most the future
    # limit plus a second): a miner that took longer to start finds the clock caught up. Either
    # way it never builds a block the node would hold.
    waited = "waiting" in out.stderr and "for the clock" in out.stderr
    assert waited or time.time() >= template.mintime - REGTEST.future_time_limit, out.stderr
    assert "accepted 4" in out.stderr and "rejected 0" in out.stderr, out.stderr
    assert "time-too-new" not in out.stderr
    assert node.getblockcount() == pushed + 4
    assert len(node.getchaintips()) == 1


def test_miner_backs_off_after_rejections_and_says_why(start_nodes) -> None:
    (node,) = start_nodes(1)
    user, password = cookie_auth(node.datadir, "regtest")
    lines: list[str] = []
    miner = worker.Miner(RpcClient(node.url, user, password, timeout=30),
                         RpcClient(node.url, user, password, timeout=120), MINER, SHAPE, threads=1,
                         log=lines.append, backoff=worker.Backoff(first=0.05, cap=0.2))
    # A header committing to other matrices than those mined: every block it finds is invalid.
    miner.synthetic_spec = replace(miner.synthetic_spec, h_a=commit_a(miner.synthetic[0][::-1].copy()))
    thread = threading.Thread(target=miner.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: miner.stats.rejected >= 4, 60, 0.05, "four rejected blocks")
    finally:
        miner.stop_event.set()
        thread.join(30)
    rejections = [line for line in lines if "rejected:" in line]
    assert len(rejections) >= 4
    delays = [line.rsplit("backing off ", 1)[1] for line in rejections[:4]]
    assert delays == ["0.05s", "0.1s", "0.2s", "0.2s"], rejections
    assert miner.stats.last_reject and all(miner.stats.last_reject in line for line in rejections), rejections
    assert miner.stats.accepted == 0 and node.getblockcount() == 0
