"""The compose testnet as a fixture: build the images with podman, bring
docker-compose.yml up with podman-compose under a unique project name, always
take it down (containers, network and named volumes).

Skips, with the reason, where it cannot run: POUW_SKIP_CONTAINERS=1, not Linux,
not root, podman/runc/podman-compose missing (scripts/ci_containers_setup.sh
installs them), or podman not working. A failing image build or bring-up is a
failure, not a skip.

Environment:
  CONTAINERS_CONF        podman's config; default docker/containers.conf (runc, cgroupfs)
  POUW_CONTAINERS_BASE   BASE image for the Dockerfile; default: the local
                         debootstrapped localhost/pouw-base:bookworm, built once
                         by scripts/podman_base.sh and kept
  POUW_CONTAINERS_DIR    where scripts/ci_containers_setup.sh put its podman-compose venv
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from client.rpc import RpcClient

REPO = Path(__file__).resolve().parents[2]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_IMAGE = "localhost/pouw-base:bookworm"
IMAGE = "localhost/pouw:containers-test"
RPC_USER = "pouw"
RPC_PASSWORD = "containers-test-" + uuid.uuid4().hex[:8]
SERVICES = ("node1", "node2", "node3", "miner")
NODES = ("node1", "node2", "node3")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "containers: builds images and runs docker-compose.yml with podman "
                                       "(slow; opt out with POUW_SKIP_CONTAINERS=1)")


_config: list[pytest.Config] = []  # pytest's config, once the fixture has run


def _say(text: str) -> None:
    """Progress on the terminal even under pytest's capture (the whole run takes minutes)."""
    if not _config:
        return
    reporter = _config[0].pluginmanager.get_plugin("terminalreporter")
    capture = _config[0].pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(f"[containers] {text}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[containers] {text}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find_podman_compose() -> list[str] | None:
    found = shutil.which("podman-compose")
    if found:
        return [found]
    venv = Path(os.environ.get("POUW_CONTAINERS_DIR", "/var/tmp/pouw-containers")) / "venv/bin/podman-compose"
    if venv.is_file() and os.access(venv, os.X_OK):
        return [str(venv)]
    try:
        import podman_compose  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "podman_compose"]


@dataclass
class Tools:
    env: dict[str, str]
    compose: list[str]


def _tools() -> Tools:
    """What the test needs, or pytest.skip with the reason."""
    if os.environ.get("POUW_SKIP_CONTAINERS") == "1":
        pytest.skip("POUW_SKIP_CONTAINERS=1")
    if sys.platform != "linux":
        pytest.skip("container test runs on Linux only")
    if os.geteuid() != 0:
        pytest.skip("container test needs root (rootful podman)")
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (bash scripts/ci_containers_setup.sh installs it)")
    env = dict(os.environ)
    if env.get("CONTAINERS_CONF"):
        # podman build's helper processes change directory: a relative path breaks them
        env["CONTAINERS_CONF"] = str(Path(env["CONTAINERS_CONF"]).resolve())
    else:
        env["CONTAINERS_CONF"] = str(REPO / "docker/containers.conf")
        if not shutil.which("runc"):
            pytest.skip("runc is not installed, and docker/containers.conf selects it "
                        "(bash scripts/ci_containers_setup.sh installs it)")
    compose = _find_podman_compose()
    if compose is None:
        pytest.skip("podman-compose is not installed (bash scripts/ci_containers_setup.sh installs it)")
    info = subprocess.run(["podman", "info"], check=False, env=env, capture_output=True, text=True, timeout=120)
    if info.returncode != 0:
        pytest.skip(f"podman does not work here: {info.stderr.strip()[-300:]}")
    if "POUW_CONTAINERS_BASE" not in env and not shutil.which("debootstrap"):
        image_exists = subprocess.run(["podman", "image", "exists", BASE_IMAGE], check=False, env=env, timeout=60)
        if image_exists.returncode != 0:
            pytest.skip("debootstrap is not installed, so no local base image (bash scripts/ci_containers_setup.sh "
                        "installs it; or set POUW_CONTAINERS_BASE to an image podman can pull)")
    return Tools(env, compose)


def _run(cmd: list[str], env: dict[str, str], timeout: float, what: str) -> subprocess.CompletedProcess:
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-3000:]
        pytest.fail(f"{what} did not finish in {timeout:g} s: {' '.join(cmd)}\n{out}")
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}): {' '.join(cmd)}\n"
                    f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    _say(f"{what}: {time.monotonic() - start:.0f} s")
    return proc


@dataclass
class ComposeNet:
    """A running compose project: published RPC ports, RPC clients, podman helpers."""

    project: str
    env: dict[str, str]
    compose: list[str]
    ports: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rpc_user(self) -> str:
        return RPC_USER

    @property
    def rpc_password(self) -> str:
        return RPC_PASSWORD

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}/"

    def rpc(self, node: str, timeout: float = 30.0) -> RpcClient:
        return RpcClient(self.url(node), RPC_USER, RPC_PASSWORD, timeout=timeout)

    def podman(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], check=False, cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def container(self, service: str) -> str:
        """The container's name, found by compose labels rather than podman-compose's naming scheme."""
        out = self.podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                          "--filter", f"label=com.docker.compose.service={service}",
                          "--format", "{{.Names}}").stdout.split()
        assert len(out) == 1, f"expected one {service} container in {self.project}, found {out}"
        return out[0]

    def logs(self, tail: int = 60) -> str:
        parts = []
        for service in SERVICES:
            try:
                name = self.container(service)
                proc = self.podman("logs", "--tail", str(tail), name, check=False, timeout=30)
                parts.append(f"--- {service} ({name}) last {tail} lines\n{proc.stdout}{proc.stderr}")
            except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the real failure
                parts.append(f"--- {service}: no logs ({exc})")
        return "\n".join(parts)


def _down(tools: Tools, project: str, env: dict[str, str]) -> None:
    """podman-compose down -v, then make sure nothing of the project is left behind
    (containers with their anonymous volumes, named volumes, the network)."""
    try:
        subprocess.run([*tools.compose, "-p", project, "-f", "docker-compose.yml", "down", "-v", "-t", "10"],
                       check=False, cwd=REPO, env=env, capture_output=True, timeout=180)
    except subprocess.TimeoutExpired:
        _say(f"podman-compose down timed out; removing {project} by label")
    label = f"label=io.podman.compose.project={project}"
    for kind, ls in (("container", ["ps", "-a", "-q"]), ("volume", ["volume", "ls", "-q"]),
                     ("network", ["network", "ls", "-q"])):
        ids = subprocess.run(["podman", *ls, "--filter", label], check=False, env=env, capture_output=True,
                             text=True, timeout=60).stdout.split()
        if ids:
            _say(f"removing leftover {kind}s of {project}: {ids}")
            volumes = ["-v"] if kind == "container" else []
            subprocess.run(["podman", kind, "rm", "-f", *volumes, *ids], check=False, env=env, capture_output=True,
                           timeout=120)


@pytest.fixture(scope="module")
def testnet(request: pytest.FixtureRequest) -> Iterator[ComposeNet]:
    tools = _tools()
    if not _config:
        _config.append(request.config)
    env = tools.env
    start = time.monotonic()
    timings: dict[str, float] = {}

    base = env.get("POUW_CONTAINERS_BASE")
    if not base:
        t = time.monotonic()
        _run(["bash", "scripts/podman_base.sh", BASE_IMAGE], env, 600, "base image (scripts/podman_base.sh)")
        timings["base image"] = time.monotonic() - t
        base = BASE_IMAGE
    t = time.monotonic()
    build = ["podman", "build", "--format", "docker", "--build-arg", f"BASE={base}", "-t", IMAGE]
    if HOST_CA.is_file():
        build += ["-v", f"{HOST_CA}:/etc/host-ca.crt:ro", "--build-arg", "PIP_CERT=/etc/host-ca.crt"]
    _run([*build, "."], env, 900, "project image (podman build)")
    timings["image build"] = time.monotonic() - t

    project = f"pouwtest{os.getpid()}{uuid.uuid4().hex[:6]}"
    ports = {"node1": _free_port(), "node2": _free_port(), "node3": _free_port(), "node1-p2p": _free_port()}
    compose_env = {**env,
                   "POUW_IMAGE": IMAGE,
                   "POUW_BASE": base,
                   "POUW_RPC_USER": RPC_USER,
                   "POUW_RPC_PASSWORD": RPC_PASSWORD,
                   "POUW_NODE1_RPC_PORT": str(ports["node1"]),
                   "POUW_NODE2_RPC_PORT": str(ports["node2"]),
                   "POUW_NODE3_RPC_PORT": str(ports["node3"]),
                   "POUW_NODE1_P2P_PORT": str(ports["node1-p2p"]),
                   "POUW_MINER_THREADS": "2"}
    net = ComposeNet(project, compose_env, tools.compose, ports, timings)
    try:
        t = time.monotonic()
        _run([*tools.compose, "-p", project, "-f", "docker-compose.yml", "up", "-d"], compose_env, 300,
             f"podman-compose up ({project})")
        timings["compose up"] = time.monotonic() - t
        yield net
    finally:
        t = time.monotonic()
        _down(tools, project, compose_env)
        timings["compose down"] = time.monotonic() - t
        _say("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
             + f"; total {time.monotonic() - start:.0f} s")
