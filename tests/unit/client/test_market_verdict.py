"""The poster's verdict on a delivered C (PROTOCOL §6, docs/market.md "Checking a result"):
Freivalds first; H_C against the claim only for a C that fails, since only the claimed C
can be proved wrong."""
from __future__ import annotations

import numpy as np

from client.market import verify_result
from consensus.keys import PrivateKey, encode_address
from consensus.params import DEV
from consensus.tx import claim_of
from consensus.work import commit_result

WORKER = PrivateKey(bytes(range(32)))


def job_for(c: np.ndarray) -> dict:
    """A claimed job as getjob shows it, the worker having committed to ``c``."""
    return {"m": c.shape[0], "n": c.shape[1], "worker": encode_address(DEV.hrp, WORKER.address),
            "claim": claim_of(WORKER.address, commit_result(c)).hex()}


def operands(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(-64, 65, (32, 64), dtype=np.int8)
    b = rng.integers(-64, 65, (64, 32), dtype=np.int8)
    return a, b, (a.astype(np.int32) @ b.astype(np.int32)).astype("<i4")


def test_a_right_product_is_accepted() -> None:
    a, b, c = operands()
    assert verify_result(job_for(c), a, b, c, DEV).ok


def test_a_right_product_is_accepted_whatever_the_claim_commits_to() -> None:
    """The product received is A·B: accepting pays for it; the claim is not hashed."""
    a, b, c = operands()
    other = c.copy()
    other[0, 0] += 1
    assert verify_result(job_for(other), a, b, c, DEV).ok


def test_a_wrong_product_that_is_the_claimed_one_names_a_wrong_entry() -> None:
    a, b, c = operands()
    wrong = c.copy()
    wrong[17, 5] -= 3
    verdict = verify_result(job_for(wrong), a, b, wrong, DEV)
    assert not verdict.ok and verdict.wrong == (17, 5) and verdict.reason == "C[17, 5] is wrong"


def test_a_wrong_product_that_is_not_the_claimed_one_cannot_be_proved() -> None:
    a, b, c = operands()
    wrong = c.copy()
    wrong[3, 9] += 1
    verdict = verify_result(job_for(c), a, b, wrong, DEV)
    assert not verdict.ok and verdict.wrong is None and verdict.reason == "C does not match the worker's claim"


def test_a_product_of_the_wrong_shape_or_type_is_refused() -> None:
    a, b, c = operands()
    for bad in (c[:16], c.astype(np.int64)):
        verdict = verify_result(job_for(c), a, b, bad, DEV)
        assert not verdict.ok and verdict.wrong is None and "the job needs int32 (32, 32)" in verdict.reason
