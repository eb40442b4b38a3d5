"""Crash safety: SIGKILL a child connecting blocks at many points of the commit path, reopen,
and check the datadir holds a consistent tip whose state equals a reference replay."""
from __future__ import annotations

import multiprocessing
import os
import random
import shutil
from pathlib import Path

from node.chain import Chain

from .helpers_crash import KILL_MODES, build_tree, child_main, replay, stored_state

KILLS = 60
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["tests.unit.node.helpers_crash"])  # children start without re-importing


def _run_child(datadir: str, raws: list[bytes], mode: str, kill_at: int, seed: int) -> tuple[bool, int]:
    """(was killed, last index reported as done).

    The child comes from a forkserver, not a fork of this process: a fork taken while another
    thread (the kernel's pool, a tx-check pool) holds a lock leaves the child deadlocked."""
    report = Path(datadir).parent / f"report-{seed}"
    report.unlink(missing_ok=True)
    proc = CTX.Process(target=child_main, args=(datadir, raws, mode, kill_at, seed, str(report)))
    proc.start()
    proc.join()
    assert proc.exitcode in (0, -9), f"child failed with exit code {proc.exitcode}"
    lines = report.read_text().split() if report.exists() else []
    return proc.exitcode == -9, int(lines[-1]) if lines else -1


def test_sigkill_anywhere_leaves_a_consistent_tip(tmp_path):
    blocks = build_tree()
    raws = [b.encode() for b in blocks]
    by_hash = {b.hash: b for b in blocks}

    reference = Chain(tmp_path / "reference", "regtest", now=lambda: 2**40, tx_workers=0)
    ref_tips = []  # tip after each submission
    for raw in raws:
        reference.submit_block(raw)
        ref_tips.append(reference.tip.hash)
    assert reference.tip.height == 16
    reference.close()

    def path_to(tip_hash: bytes) -> list:
        path = []
        while tip_hash in by_hash:
            path.append(by_hash[tip_hash])
            tip_hash = by_hash[tip_hash].header.prev_hash
        return path[::-1]

    expected: dict[bytes, tuple] = {}
    rng = random.Random(1234)
    datadir = str(tmp_path / "node")
    kills = runs = 0
    progress = -1  # highest submission index whose tip is durable
    while kills < KILLS:
        mode = KILL_MODES[runs % len(KILL_MODES)]
        killed, last = _run_child(datadir, raws, mode, rng.randint(1, 4), rng.randrange(1 << 30))
        runs += 1
        if not os.path.exists(os.path.join(datadir, "regtest", "chain", "CURRENT")):
            assert progress == -1 and last == -1  # killed before LevelDB created its files
            kills += killed
            continue
        node = Chain(datadir, "regtest", now=lambda: 2**40, tx_workers=0)  # the lock died with the child
        store = node.store
        try:
            tip = store.tip_hash()  # genesis: nothing past genesis was committed yet
            lo, hi = max(progress, last), min(max(progress, last + 1), len(raws) - 1)
            if tip in by_hash:
                positions = [j for j in range(max(lo, 0), hi + 1) if ref_tips[j] == tip]
                assert positions, f"run {runs} ({mode}): tip is not the tip after submission {lo}..{hi}"
                progress = max(positions)
            else:
                assert lo == -1, f"run {runs} ({mode}): tip fell back to genesis after submission {lo}"
            if tip not in expected:
                expected[tip] = replay(path_to(tip))
            assert stored_state(store) == expected[tip], f"run {runs} ({mode}): state differs from replay"
            assert node.tip.hash == tip
        finally:
            node.close()
        if killed:
            kills += 1
        if not killed or progress == len(raws) - 1:
            shutil.rmtree(datadir)  # chain complete: start over so kills keep landing on new commits
            progress = -1

    killed, last = _run_child(datadir, raws, "none", 0, 0)
    assert not killed and last == len(raws) - 1
    with Chain(datadir, "regtest", now=lambda: 2**40, tx_workers=0) as chain:
        assert chain.tip.hash == ref_tips[-1]
        assert stored_state(chain.store) == replay(path_to(ref_tips[-1]))
