"""scripts/devnet.py takes its nodes, miner and job stream with it however it ends: Ctrl-C (SIGINT),
SIGTERM, SIGHUP, a closed output pipe (``devnet.sh | tee`` and the tee dies) or SIGKILL; its status
shows each node's matrix store."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .framework import REPO, free_port, wait_until

NODES = 2


def free_port_block() -> int:
    """A base port whose devnet ports (base + 10·i and + 1) are all free on loopback."""
    for _ in range(50):
        base = free_port()
        ports = [base + 10 * i + j for i in range(NODES) for j in (0, 1)]
        if max(ports) > 65535:
            continue
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free block of ports")


def children_of(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.mark.parametrize("ending", ["SIGINT", "SIGTERM", "SIGHUP", "broken-pipe", "SIGKILL"])
def test_every_child_stops_with_the_devnet(tmp_path, ending) -> None:
    devnet = subprocess.Popen([sys.executable, "scripts/devnet.py", "--datadir", str(tmp_path / "devnet"),
                               "--nodes", str(NODES), "--rpc-port", str(free_port_block()),
                               "--status-interval", "1"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    children: set[int] = set()
    try:
        assert devnet.stdout is not None
        for line in devnet.stdout:
            if line.startswith(b"devnet up"):
                break
        else:
            raise AssertionError(f"the devnet did not come up (exit {devnet.wait(30)})")
        children = wait_until(lambda: (c := children_of(devnet.pid)) and len(c) == NODES + 2 and c, 60, 0.1,
                              "the nodes, the miner and the job stream")
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
        nodes = [c for c in commands if b"node.daemon" in c]
        assert len(nodes) == NODES and all(c[c.index(b"--matrix-rate") + 1] == b"0" for c in nodes)  # a LAN's pace
        assert all(c[c.index(b"--matrix-store-mb") + 1] == b"8192" for c in nodes)  # room for sixteen fillers
        (stream,) = [c for c in commands if any(arg.endswith(b"jobstream.py") for arg in c)]
        assert stream[stream.index(b"--fillers") + 1] == b"16"
        status = [devnet.stdout.readline().rstrip() for _ in range(40)]  # two status tables or more, one a second
        header = [i for i, line in enumerate(status[:-1]) if line.endswith(b"matrices held")]
        assert header, status
        row = status[header[0] + 1]  # node0: its store's matrices and bytes, of its bound
        miner_rows = [line for line in status if line.startswith(b"miner")]  # from its --status-file
        assert miner_rows and all(re.fullmatch(rb"miner(: starting|  .*MAC/s  blocks found \d+  accepted \d+  "
                                               rb"stale \d+(  (\d+%|\xe2\x80\x94) of its MACs on jobs  jobs taken .*)?)", line)
                                  for line in miner_rows), miner_rows
        assert re.fullmatch(rb"node0 .*  \d+, [\d.]+ [kMG]?B of 8\.59 GB", row), row
        if ending == "broken-pipe":
            devnet.stdout.close()  # the reader is gone: the next status line hits a broken pipe
        else:
            os.kill(devnet.pid, getattr(signal, ending))
        assert devnet.wait(90) is not None
        wait_until(lambda: not any(alive(pid) for pid in children), 60, 0.1, f"every child gone after {ending}")
        if ending != "SIGKILL":
            assert devnet.returncode == 0
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if devnet.poll() is None:
            devnet.kill()
            devnet.wait(10)
        if devnet.stdout is not None and not devnet.stdout.closed:
            devnet.stdout.close()
