"""The protocol test vectors from an independent implementation must all pass."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.vectors import main, run

HERE = Path(__file__).parent
SHARED = HERE.parents[2] / "shared" / "vectors" / "v1.json"  # ../shared beside the checkout
VECTOR_FILES = [HERE / "v1.json"] + ([SHARED] if SHARED.exists() else [])


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: str(p))
def test_vectors_pass(path: Path) -> None:
    lines: list[str] = []
    passed, failed = run(json.loads(path.read_text()), lines.append)
    assert failed == 0, "\n".join(x for x in lines if x.startswith("FAIL"))
    assert passed >= 21


def test_cli_reports_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    doc = json.loads((HERE / "v1.json").read_text())
    doc["asert"][0]["expect"] = "0x1"
    doc["tagged"][0]["expect"] = "00" * 32
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "consensus.vectors", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert "FAIL asert[0]" in out.stdout and "FAIL tagged[0]" in out.stdout
    assert out.stdout.strip().endswith("19 passed, 2 failed")


def test_malformed_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2")
    assert main([str(bad)]) == 2
    bad.write_text('{"mystery": []}')
    assert main([str(bad)]) == 2
