"""Network namespaces for functional tests: pouwd nodes on their own (virtual) hosts.

``NetnsLab`` makes a private little LAN that lives entirely inside namespaces it
creates: a hub namespace holding a bridge, and one namespace per host whose
``eth0`` is a veth pair with its other end on that bridge. Both ends of every
veth are created directly inside lab namespaces, and the lab's addresses
(10.77.0.0/24 by default) exist only there, so no traffic touches the root
namespace or any real interface. Names are unique per lab (pid + counter).

The test process stays in the root namespace. Nodes run under ``ip netns exec``;
their RPC is reached from a worker thread that has joined the node's namespace
with ``setns(2)`` (a network namespace is per thread), so RPC traffic also stays
inside the lab.

``NetnsLab.available()`` says why a lab cannot be made here (not root, no ``ip``,
``ip netns add`` refused); tests skip with that reason. ``close()`` always kills
the lab's nodes and deletes every namespace it made.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import ipaddress
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from .framework import NodeProcess

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/var/run/netns")
_labs = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _setns(name: str) -> None:
    """Move the calling thread into namespace ``name``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


class NsExecutor:
    """A single worker thread living in one namespace; ``run(fn, ...)`` executes there."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = concurrent.futures.ThreadPoolExecutor(1, f"netns-{name}", initializer=_setns,
                                                           initargs=(name,))

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._pool.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _NsRpc:
    """An ``RpcClient`` whose calls run in a namespace's worker thread."""

    def __init__(self, rpc: Any, executor: NsExecutor) -> None:
        self._rpc, self._executor = rpc, executor

    def call(self, method: str, *params: Any) -> Any:
        return self._executor.run(self._rpc.call, method, *params)


class NsNode(NodeProcess):
    """A pouwd inside a lab namespace, listening (p2p and RPC) on the host's lab address."""

    def __init__(self, index: int, root: Path, host: Host, extra_args: Sequence[str] = ()) -> None:
        super().__init__(index, root, "regtest", extra_args)
        self.host = host
        # Every namespace has its own port space: the network's default ports are free there.
        self.rpc_port, self.p2p_port = 38732, 38733

    @property
    def url(self) -> str:
        return f"http://{self.host.address}:{self.rpc_port}/"

    @property
    def p2p_address(self) -> str:
        return f"{self.host.address}:{self.p2p_port}"

    def args(self, extra: Sequence[str] = ()) -> list[str]:
        cmd = super().args(extra)
        cmd[cmd.index("--bind") + 1] = self.host.address
        return ["ip", "netns", "exec", self.host.ns, *cmd, "--rpc-bind", self.host.address]

    @property
    def rpc(self) -> Any:  # type: ignore[override]
        return _NsRpc(NodeProcess.rpc.fget(self), self.host.executor)  # type: ignore[attr-defined]


class Host:
    """One lab namespace with an ``eth0`` on the lab bridge."""

    def __init__(self, ns: str, address: str) -> None:
        self.ns = ns
        self.address = address
        self.executor = NsExecutor(ns)

    def exec(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside this namespace."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              check=check, timeout=30)


class NetnsLab:
    def __init__(self, root: Path, subnet: str = "10.77.0.0/24") -> None:
        self.root = root
        self.subnet = ipaddress.ip_network(subnet)
        self.prefix = f"pouw{os.getpid()}x{next(_labs)}"
        self.hub = f"{self.prefix}hub"
        self.namespaces: list[str] = []
        self.hosts: list[Host] = []
        self.nodes: list[NsNode] = []
        self._addresses = self.subnet.hosts()
        try:
            self._add_ns(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def available() -> str | None:
        """None when a lab can be made here, else the reason it cannot."""
        if sys.platform != "linux":
            return "network namespaces need Linux"
        if os.geteuid() != 0:
            return "network namespaces need root (ip netns add)"
        if shutil.which("ip") is None:
            return "iproute2's ip is not installed"
        probe = f"pouw{os.getpid()}probe"
        try:
            result = _ip("netns", "add", probe, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"ip netns add failed: {exc}"
        if result.returncode != 0:
            return f"ip netns add failed: {result.stderr.strip()}"
        try:
            veth = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
            bridge = _ip("-n", probe, "link", "add", "b0", "type", "bridge", check=False)
        finally:
            _ip("netns", "del", probe, check=False)
        if veth.returncode != 0:
            return f"cannot create veth pairs in a namespace: {veth.stderr.strip()}"
        if bridge.returncode != 0:
            return f"cannot create a bridge in a namespace: {bridge.stderr.strip()}"
        return None

    def _add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self) -> Host:
        """A new namespace with ``eth0`` (next lab address) bridged to the others."""
        i = len(self.hosts)
        ns = f"{self.prefix}h{i}"
        self._add_ns(ns)
        address = str(next(self._addresses))
        hub_end = f"v{i}"
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", hub_end, "netns", self.hub)
        _ip("-n", self.hub, "link", "set", hub_end, "master", "br0")
        _ip("-n", self.hub, "link", "set", hub_end, "up")
        _ip("-n", ns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        host = Host(ns, address)
        self.hosts.append(host)
        return host

    def start_node(self, extra_args: Sequence[str] = (), wait: bool = True) -> NsNode:
        """A pouwd on a new host of its own."""
        host = self.add_host()
        node = NsNode(len(self.nodes), self.root, host, extra_args)
        self.nodes.append(node)
        node.start(wait=wait)
        return node

    def close(self) -> None:
        """Kill the lab's nodes and delete its namespaces (veths and the bridge go with them)."""
        for node in self.nodes:
            node.cleanup()
        for host in self.hosts:
            host.executor.close()
        for name in reversed(self.namespaces):
            _ip("netns", "del", name, check=False)
        self.namespaces.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
