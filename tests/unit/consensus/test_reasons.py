"""Rejection reasons are defined once (consensus.reasons) and the errors accept nothing else."""
from __future__ import annotations

from pathlib import Path

import pytest

from consensus.errors import DecodeError, FutureBlock, InvalidBlock, InvalidTx
from consensus.reasons import Reason


@pytest.mark.parametrize("error", [InvalidTx, InvalidBlock])
@pytest.mark.parametrize("code", ["made-up", "bad-nonce", None])
def test_an_undefined_code_is_a_type_error(error, code) -> None:
    """Even a string equal to a defined token: the raise site must name the member."""
    with pytest.raises(TypeError, match="consensus.reasons.Reason"):
        error(code, "detail")


def test_code_detail_and_message() -> None:
    exc = InvalidTx(Reason.BAD_NONCE, "expected nonce 3, got 4")
    assert (exc.code, exc.detail, str(exc)) == ("bad-nonce", "expected nonce 3, got 4", "bad-nonce: expected nonce 3, got 4")
    assert str(InvalidBlock(Reason.BAD_TX_ROOT)) == "bad-tx-root"
    assert (DecodeError("trailing bytes").code, FutureBlock("later").code) == (Reason.DECODE, Reason.TIME_TOO_NEW)


def test_a_block_with_a_bad_tx_carries_the_txs_code() -> None:
    exc = InvalidBlock.bad_tx(2, bytes(range(32)), Reason.BAD_SIGNATURE)
    assert (exc.code, exc.tx_code) == (Reason.BAD_TX, Reason.BAD_SIGNATURE)
    assert exc.detail == f"tx 2 ({bytes(range(32)).hex()}): bad-signature"
    assert InvalidBlock(Reason.BAD_STATE_ROOT).tx_code is None


def test_tokens_are_unique_lowercase_words() -> None:
    values = [r.value for r in Reason]
    assert len(set(values)) == len(values) == len(Reason.__members__)
    assert all(v == v.lower() and " " not in v for v in values)


def test_docs_name_every_reason() -> None:
    """docs/protocol.md lists the tokens users see; a new reason must be documented there."""
    docs = (Path(__file__).parents[3] / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert [r.value for r in Reason if f"`{r.value}`" not in docs] == []
