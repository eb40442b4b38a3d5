"""A full disk (a real tiny tmpfs) gives a clear error, keeps the node serving reads and
loses nothing: the datadir reopens at the last committed tip."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from client.rpc import RpcError

from .framework import NodeProcess


@pytest.fixture
def tiny_disk(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_a_clear_error_and_loses_nothing(tiny_disk: Path, tmp_path: Path) -> None:
    node = NodeProcess(0, tiny_disk)
    node.start()
    try:
        error = None
        for _ in range(2000):
            try:
                node.generate(1)
            except RpcError as exc:
                error = exc
                break
        assert error is not None, "the tiny disk never filled up"
        assert error.code == -20 and "free disk space" in error.message
        height = node.getblockcount()
        assert node.getblockhash(height) == node.getbestblockhash()  # reads keep working
        with pytest.raises(urllib.error.HTTPError) as health:
            urllib.request.urlopen(f"{node.url}health", timeout=10)
        assert health.value.code == 503 and json.load(health.value)["status"] == "read-only"
        with pytest.raises(RpcError) as again:
            node.generate(1)
        assert again.value.code == -20
        with pytest.raises(RpcError) as saving:
            node.savemempool()
        assert saving.value.code == -20 and node.getblockcount() == height  # refused; it serves on
        best = node.getbestblockhash()
        assert node.stop() == 0
        assert "mempool: its txs are not kept for the next start" in node.log_tail()  # and it shut down cleanly
    finally:
        node.cleanup()
    moved = tmp_path / "moved"
    shutil.copytree(node.datadir, moved / "node0")
    reopened = NodeProcess(0, moved)
    reopened.start()
    try:
        assert reopened.getblockcount() == height and reopened.getbestblockhash() == best
        reopened.generate(1)  # with space again it writes
        assert reopened.getblockcount() == height + 1
    finally:
        reopened.cleanup()
