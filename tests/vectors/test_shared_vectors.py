"""The protocol test vectors from an independent implementation must all pass."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from consensus.errors import InvalidBlock
from consensus.reasons import Reason
from consensus.vectors import main, run, state_case_error

HERE = Path(__file__).parent
SHARED = HERE.parents[2] / "shared" / "vectors" / "v2.json"  # ../shared beside the checkout
VECTOR_FILES = [HERE / "v2.json"] + ([SHARED] if SHARED.exists() else [])


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: str(p))
def test_vectors_pass(path: Path) -> None:
    lines: list[str] = []
    passed, failed = run(json.loads(path.read_text()), lines.append)
    assert failed == 0, "\n".join(x for x in lines if x.startswith("FAIL"))
    assert passed >= 72


# what each invalid state case's "why" names, as the tx codes that fit it
WHY_CODES = {
    "nonce": {Reason.BAD_NONCE},
    "funds": {Reason.INSUFFICIENT_FUNDS},
    "version/chain": {Reason.BAD_VERSION, Reason.BAD_CHAIN_ID},
    "credit overflow": {Reason.BALANCE_OVERFLOW},
    "job post": {Reason.BAD_JOB_DIMS, Reason.BAD_REWARD, Reason.BAD_EXPIRY},
    "job result": {Reason.UNKNOWN_JOB, Reason.JOB_NOT_OPEN, Reason.BOND_TOO_SMALL},
    "accept": {Reason.NOT_POSTER, Reason.JOB_NOT_CLAIMED},
    "not fraud": {Reason.NOT_FRAUD},
    "fraud: claim": {Reason.BAD_FRAUD_CLAIM},
    "fraud proof: job not claimed": {Reason.JOB_NOT_CLAIMED},
}


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda p: str(p))
def test_invalid_state_cases_fail_for_the_reason_they_name(path: Path) -> None:
    """Invalid for the right reason, not just invalid: the block is ``bad-tx`` and its
    ``tx_code`` is a defined reason that fits the case's ``why``."""
    cases = [c for c in json.loads(path.read_text())["state"] if not c["expect"]["valid"]]
    assert cases
    for case in cases:
        why = case["expect"]["why"]
        exc = state_case_error(case)
        assert isinstance(exc, InvalidBlock) and exc.code == Reason.BAD_TX, (why, exc)
        assert exc.tx_code in WHY_CODES[why], (why, exc)


def test_cli_reports_and_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    doc = json.loads((HERE / "v2.json").read_text())
    total = sum(len(v) if isinstance(v, list) else 1 for k, v in doc.items() if k != "protocol")
    doc["asert"][0]["expect"] = "0x1"
    doc["tagged"][0]["expect"] = "00" * 32
    doc["lthash"][1]["state_root"] = "00" * 32
    valid = next(i for i, c in enumerate(doc["state"]) if c["expect"]["valid"])
    invalid = next(i for i, c in enumerate(doc["state"]) if not c["expect"]["valid"])
    doc["state"][valid]["expect"]["post"]["accounts"][0][1] += 1  # one balance off by one unit
    doc["state"][invalid]["expect"] = {"valid": True, "state_root": "00" * 32, "post": {"accounts": [], "jobs": []}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, "-m", "consensus.vectors", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    for case in ("asert[0]", "tagged[0]", "lthash[1]", f"state[{valid}]", f"state[{invalid}]"):
        assert f"FAIL {case}" in out.stdout
    assert out.stdout.strip().endswith(f"{total - 5} passed, 5 failed")


def test_malformed_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2")
    assert main([str(bad)]) == 2
    bad.write_text('{"protocol": 2, "mystery": []}')
    assert main([str(bad)]) == 2
    bad.write_text('{"protocol": 1, "tagged": []}')  # the v1 format is not read
    assert main([str(bad)]) == 2
