"""Block validity (PROTOCOL §5): each tampering is rejected with its reason."""
from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.block import Block, Ticket, WorkSpec, tx_root
from consensus.errors import FutureBlock, InvalidBlock
from consensus.genesis import genesis_block
from consensus.keys import PrivateKey
from consensus.params import DEV, REGTEST
from consensus.reasons import Reason
from consensus.state import apply_block
from consensus.tx import Transfer, make_tx
from consensus.validation import check_block, check_header_context

from .chainmaker import child_block, funded_state

GENESIS = genesis_block(REGTEST).header
KEY = PrivateKey(b"\x05" * 32)
FUNDS = {KEY.address: (1000, 0)}


@pytest.fixture(scope="module")
def block() -> Block:
    tx = make_tx(KEY, REGTEST.chain_id, 0, 10, Transfer(b"\x09" * 20, 100))
    return child_block(REGTEST, GENESIS, (tx,), dims=(64, 64, 64, 16), state=funded_state(REGTEST, FUNDS))


def flip(data: bytes, pos: int = 0) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 1]) + data[pos + 1:]


def test_valid_block_passes(block: Block) -> None:
    check_block(block, REGTEST)
    check_header_context(block.header, GENESIS, [GENESIS.timestamp], GENESIS.timestamp + 5, REGTEST)


@pytest.mark.parametrize("tamper, reason", [
    (lambda b: replace(b, proof=replace(b.proof, a_rows=flip(b.proof.a_rows, 5))), "bad-proof-a-path"),
    (lambda b: replace(b, proof=replace(b.proof, b_cols=flip(b.proof.b_cols, 7))), "bad-proof-b-path"),
    (lambda b: replace(b, proof=replace(b.proof, a_path=(bytes(32),))), "bad-proof-a-path"),
    (lambda b: replace(b, proof=replace(b.proof, b_path=())), "bad-proof-b-path"),
    (lambda b: replace(b, proof=replace(b.proof, a_rows=b"\x7f" + b.proof.a_rows[1:])), "bad-proof-entry-range"),
    (lambda b: replace(b, proof=replace(b.proof, a_rows=b.proof.a_rows[:-1])), "bad-proof-size"),
    (lambda b: replace(b, header=b.header.replace(ticket=Ticket(b.header.ticket.a, b.header.ticket.b,
                                                                flip(b.header.ticket.digest)))), "bad-ticket-digest"),
    (lambda b: replace(b, header=b.header.replace(work=replace(b.header.work, r=8))), "bad-dims"),
    (lambda b: replace(b, header=b.header.replace(work=replace(b.header.work, m=48))), "bad-dims"),
    (lambda b: replace(b, header=b.header.replace(ticket=Ticket(5, 0, b.header.ticket.digest))), "bad-ticket-tile"),
    (lambda b: replace(b, header=b.header.replace(tx_root=bytes(32))), "bad-tx-root"),
    (lambda b: replace(b, header=b.header.replace(chain_id=3)), "bad-chain-id"),
    (lambda b: replace(b, header=b.header.replace(version=1)), "bad-version"),
    (lambda b: replace(b, header=b.header.replace(nonce=b.header.nonce + 1)), "bad-ticket-digest"),
])
def test_tampered_block_rejected(block: Block, tamper, reason: str) -> None:
    with pytest.raises(InvalidBlock) as exc:
        check_block(tamper(block), REGTEST)
    assert exc.value.code == reason


def test_tampered_signature_rejected_by_state(block: Block) -> None:
    tx = block.txs[0]
    forged = replace(tx, signature=flip(tx.signature), _txid=None)
    bad = Block(block.header.replace(tx_root=tx_root((forged,))), block.proof, (forged,))
    view = funded_state(REGTEST, FUNDS)
    with pytest.raises(InvalidBlock) as exc:
        apply_block(view, bad, REGTEST)
    assert exc.value.code == "bad-tx" and "bad-signature" in exc.value.detail
    assert exc.value.tx_code == Reason.BAD_SIGNATURE
    apply_block(view, block, REGTEST)  # the untampered block applies


def test_state_root_must_match(block: Block) -> None:
    """One unit more in one balance changes the root: a block claiming another state is invalid (§3a)."""
    view = funded_state(REGTEST, {KEY.address: (1001, 0)})
    with pytest.raises(InvalidBlock) as exc:
        apply_block(view, block, REGTEST)
    assert exc.value.code == "bad-state-root"
    diff, _ = apply_block(funded_state(REGTEST, FUNDS), block, REGTEST)
    assert diff.state_root == block.header.state_root


def test_context_rules(block: Block) -> None:
    h, now = block.header, GENESIS.timestamp + 5
    cases = [
        (h.replace(timestamp=GENESIS.timestamp), "time-too-old"),
        (h.replace(height=2), "bad-height"),
        (h.replace(prev_hash=bytes(32)), "bad-prev"),
        (h.replace(target=REGTEST.pow_limit - 1), "bad-target"),
    ]
    for header, reason in cases:
        with pytest.raises(InvalidBlock) as exc:
            check_header_context(header, GENESIS, [GENESIS.timestamp], now, REGTEST)
        assert exc.value.code == reason
    with pytest.raises(FutureBlock):
        check_header_context(h.replace(timestamp=now + 61), GENESIS, [GENESIS.timestamp], now, REGTEST)


def test_median_time_past_uses_eleven_blocks() -> None:
    parent = GENESIS.replace(height=20, timestamp=GENESIS.timestamp + 100)
    stamps = [GENESIS.timestamp + i for i in range(20)] + [parent.timestamp]
    child = parent.replace(height=21, prev_hash=parent.hash, timestamp=GENESIS.timestamp + 15)
    with pytest.raises(InvalidBlock, match="time-too-old"):
        check_header_context(child, parent, stamps, child.timestamp, REGTEST)
    check_header_context(child.replace(timestamp=GENESIS.timestamp + 16), parent, stamps, child.timestamp + 1, REGTEST)


def test_dev_target_follows_asert() -> None:
    g = genesis_block(DEV).header
    header = g.replace(height=1, prev_hash=g.hash, timestamp=g.timestamp + 5,
                       work=WorkSpec(32, 32, 64, 16, bytes(32), bytes(32)), ticket=Ticket(0, 0, bytes(32)))
    check_header_context(header, g, [g.timestamp], g.timestamp + 5, DEV)
    with pytest.raises(InvalidBlock, match="bad-target"):
        check_header_context(header.replace(target=DEV.pow_limit), g, [g.timestamp], g.timestamp + 5, DEV)
