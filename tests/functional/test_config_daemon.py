"""Configuration as the daemon sees it: pouw.toml < flags < POUW_* env for the RPC port,
clear errors with exit 1 for bad files, and JSON log lines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .framework import REPO, NodeProcess, free_port


class ConfNode(NodeProcess):
    """A node whose RPC port comes from wherever the test puts it (not a fixed --rpc-port flag)."""

    def __init__(self, index: int, root: Path, flags: list[str]) -> None:
        super().__init__(index, root)
        self.flags = flags

    def args(self, extra=()) -> list[str]:
        return [sys.executable, "-m", "node.daemon", "--network", "regtest", "--datadir", str(self.datadir),
                "--port", str(self.p2p_port), "--bind", "127.0.0.1", *self.flags, *extra]


def run_daemon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.daemon", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=60)


def test_rpc_port_precedence(tmp_path) -> None:
    file_port, flag_port, env_port = free_port(), free_port(), free_port()
    node = ConfNode(0, tmp_path, [])
    (node.datadir / "pouw.toml").write_text(f'rpc_port = {file_port}\nrpc_user = "u"\nrpc_password = "p"\n')
    try:
        node.rpc_port = file_port
        node.start()
        assert node.getblockcount() == 0
        node.stop()

        node.flags = ["--rpc-port", str(flag_port)]
        node.rpc_port = flag_port
        node.start()
        node.generate(1)
        node.stop()

        node.rpc_port = env_port
        node.start(env={"POUW_RPC_PORT": str(env_port)})
        assert node.getblockcount() == 1
        assert f"127.0.0.1:{env_port}" in node.log_tail(5)
    finally:
        node.cleanup()


def test_bad_config_file_exits_1(tmp_path) -> None:
    datadir = tmp_path / "d"
    datadir.mkdir()
    for text, expected in (("rpc_port = [", "cannot read config file"),
                           ("rpcport = 1\n", "unknown setting 'rpcport'"),
                           ('rpc_port = "x"\n', "bad value 'x' for 'rpc_port'")):
        (datadir / "pouw.toml").write_text(text)
        result = run_daemon("--network", "regtest", "--datadir", str(datadir), "--rpc-port", str(free_port()))
        assert result.returncode == 1, result
        assert result.stderr.startswith("pouwd: ") and expected in result.stderr and "Traceback" not in result.stderr
        assert str(datadir / "pouw.toml") in result.stderr
        assert not (datadir / "regtest").exists()  # nothing created before the config is good
    result = run_daemon("--network", "regtest", "--datadir", str(datadir), "--conf", str(tmp_path / "none.toml"))
    assert result.returncode == 1 and "does not exist" in result.stderr
    (datadir / "pouw.toml").unlink()
    result = run_daemon("--datadir", str(datadir), env={"POUW_NETWORK": "moon"})
    assert result.returncode == 1 and "unknown network 'moon'" in result.stderr


def test_json_log_format(tmp_path) -> None:
    node = NodeProcess(0, tmp_path, extra_args=["--log-format", "json", "--log-level", "debug"])
    try:
        node.start()
        node.generate(2)
        assert node.stop() == 0
    finally:
        node.cleanup()
    lines = [line for line in node.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    msgs = [r["msg"] for r in records]
    assert any(m.startswith("pouwd ready: network regtest") for m in msgs)
    assert sum(m.startswith("new tip ") for m in msgs) == 2
    assert any(m.startswith("shutdown complete") for m in msgs)
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}


def test_log_file(tmp_path) -> None:
    log_file = tmp_path / "pouwd.jsonl"
    node = NodeProcess(0, tmp_path, extra_args=["--log-format", "json", "--log-file", str(log_file)])
    try:
        node.start()
        assert node.stop() == 0
    finally:
        node.cleanup()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert records[0]["msg"].startswith("pouwd ready") and records[-1]["msg"].startswith("shutdown complete")


def test_matrix_rate_setting_is_documented_and_checked(tmp_path) -> None:
    """--matrix-rate is in --help; a bad value stops pouwd at start-up with the reason, before
    anything is created (a flag as argparse does, exit 2; a file or env value with exit 1)."""
    help_text = run_daemon("--help").stdout
    assert "--matrix-rate" in help_text and "0: unlimited" in help_text
    datadir = tmp_path / "d"
    result = run_daemon("--network", "regtest", "--datadir", str(datadir), "--matrix-rate", "-1")
    assert result.returncode == 2 and "'-1' is not a rate in MiB/s" in result.stderr
    result = run_daemon("--network", "regtest", "--datadir", str(datadir), env={"POUW_MATRIX_RATE": "fast"})
    assert result.returncode == 1 and "bad value 'fast' for 'matrix_rate'" in result.stderr
    assert "Traceback" not in result.stderr and not (datadir / "regtest").exists()
