"""Bad input to pouw-cli and pouwd ends in one clear line, never a traceback: a wallet
password with no terminal to ask on or Ctrl-D at the prompt, a malformed or unresolvable
--addnode, pouw-cli without a method."""
from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from .framework import REPO, free_port, wait_until
from .rpcutil import FAUCET_ADDRESS

PASSWORD = "devnet"


def cli_args(node, *args: str) -> list[str]:
    return [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir", str(node.datadir),
            "--rpcport", str(node.rpc_port), *args]


def env_without_password() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("POUW_WALLET_PASSWORD", None)
    return env


def test_wallet_send_without_a_terminal_says_to_set_the_password(start_nodes) -> None:
    (node,) = start_nodes(1)
    subprocess.run(cli_args(node, "wallet", "import-dev-faucet"), cwd=REPO, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO), "POUW_WALLET_PASSWORD": PASSWORD}, timeout=60)
    # a session of its own: no controlling terminal, stdin at EOF
    out = subprocess.run(cli_args(node, "wallet", "send", FAUCET_ADDRESS, "1"), cwd=REPO, env=env_without_password(),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, start_new_session=True)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr and "POUW_WALLET_PASSWORD" in out.stderr, out.stderr
    assert node.getrawmempool() == []


def read_until_exit(fd: int, pid: int, timeout: float = 60.0) -> tuple[bytes, int]:
    """Everything the child writes to the pty until it exits, and its exit code."""
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            output += chunk
            if not chunk:
                break
    _, status = os.waitpid(pid, 0)
    return output, os.waitstatus_to_exitcode(status)


def test_ctrl_d_at_the_password_prompt_is_a_clear_error(tmp_path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: pouw-cli with the pty as its terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "client.cli", "--network", "regtest", "--datadir",
                                   str(tmp_path), "wallet", "create"], env_without_password())
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"password:" not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                seen += os.read(fd, 4096)
        assert b"password:" in seen, seen
        os.write(fd, b"\x04")  # Ctrl-D on an empty line
        output, code = read_until_exit(fd, pid)
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert code == 1, (code, seen + output)
    assert b"Traceback" not in output and b"no wallet password" in output, output
    assert not (tmp_path / "regtest" / "wallet.json").exists()


def test_pouw_cli_without_a_method_says_what_to_give() -> None:
    out = subprocess.run([sys.executable, "-m", "client.cli"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "pouw-cli help" in out.stderr and "required" not in out.stderr, out.stderr


def test_malformed_addnode_is_refused_in_one_line(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", str(tmp_path),
                          "--addnode", "127.0.0.1:99999"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == "pouwd: addnode: bad address '127.0.0.1:99999' (expected host, host:port or " \
                                 "[ipv6]:port)", out.stderr


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare(1)")
def test_unresolvable_addnode_is_reported_at_start_up(tmp_path) -> None:
    # A network namespace of its own (loopback only): the name lookup fails without leaving it.
    log = tmp_path / "pouwd.log"
    daemon = f"{sys.executable} -m node.daemon --network regtest --datadir {tmp_path} " \
             f"--rpc-port {free_port()} --port {free_port()} --addnode not-a-host:1"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {daemon}"], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: "cannot resolve host 'not-a-host'" in log.read_text() or proc.poll() is not None, 60,
                   0.1, "the warning")
        assert proc.poll() is None, log.read_text()
        assert "WARNING" in log.read_text() and "--addnode not-a-host:1" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
