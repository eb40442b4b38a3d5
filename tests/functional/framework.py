"""A small functional-test framework in the spirit of Bitcoin Core's test/functional:
real ``pouwd`` processes on 127.0.0.1 with free ports and their own datadirs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from client.rpc import RpcClient, RpcClientError, cookie_auth

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class NodeProcess:
    """One pouwd process; RPC methods are callable as attributes (``node.getblockcount()``)."""

    def __init__(self, index: int, root: Path, network: str = "regtest", extra_args: Sequence[str] = (),
                 repo: Path = REPO) -> None:
        self.index = index
        self.repo = repo  # the checkout whose pouwd runs (a benchmark's other build)
        self.network = network
        self.datadir = root / f"node{index}"
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None
        self.log_path = self.datadir / "pouwd.log"
        self._rpc: RpcClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/"

    @property
    def p2p_address(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    def args(self, extra: Sequence[str] = ()) -> list[str]:
        return [sys.executable, "-m", "node.daemon", "--network", self.network, "--datadir", str(self.datadir),
                "--rpc-port", str(self.rpc_port), "--port", str(self.p2p_port), "--bind", "127.0.0.1",
                *self.extra_args, *extra]

    def start(self, extra: Sequence[str] = (), wait: bool = True, env: dict[str, str] | None = None) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        full_env = {**os.environ, "PYTHONPATH": str(self.repo), **(env or {})}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args(extra), cwd=self.repo, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=full_env)
        log.close()
        self._rpc = None
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the node answers RPC and has loaded the mempool kept at its last shutdown (it
        loads while serving), so that a test sees the same pool whenever it looks."""
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"node{self.index} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return bool(self.rpc.call("getmempoolinfo")["loaded"])
            except RpcClientError:
                self._rpc = None
                return False
        wait_until(ready, timeout, 0.1, f"node{self.index} to answer RPC and load its kept mempool")

    @property
    def rpc(self) -> RpcClient:
        if self._rpc is None:
            user, password = cookie_auth(self.datadir, self.network)
            self._rpc = RpcClient(self.url, user, password, timeout=120)
        return self._rpc

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *params: self.rpc.call(method, *params)

    def stop(self, timeout: float = 30.0) -> int:
        """Ask the node to stop over RPC and wait for a clean exit; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            try:
                self.rpc.call("stop")
            except RpcClientError:
                self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def restart(self, extra: Sequence[str] = ()) -> None:
        self.stop()
        self.start(extra)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def sync_blocks(nodes: Sequence[NodeProcess], timeout: float = 60.0) -> str:
    """Wait until every node has the same best block; returns its hash."""
    def same() -> str | None:
        hashes = {n.getbestblockhash() for n in nodes}
        return hashes.pop() if len(hashes) == 1 else None
    return wait_until(same, timeout, 0.1, "nodes to agree on the best block")


def sync_mempools(nodes: Sequence[NodeProcess], timeout: float = 60.0) -> None:
    wait_until(lambda: len({tuple(sorted(n.getrawmempool())) for n in nodes}) == 1, timeout, 0.1,
               "mempools to agree")
