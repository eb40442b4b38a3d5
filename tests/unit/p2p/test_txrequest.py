"""p2p.txrequest: per-peer tx request queues and caps, fallback to other sources."""
from __future__ import annotations

from p2p.txrequest import TxRequests


def tx(i: int) -> bytes:
    return i.to_bytes(32, "big")


def tracker(**kwargs) -> tuple[TxRequests, list[float], set[bytes]]:
    now = [0.0]
    settled: set[bytes] = set()
    kwargs.setdefault("max_in_flight", 3)
    kwargs.setdefault("max_announced", 10)
    req = TxRequests(lambda h: h not in settled, timeout=60.0, clock=lambda: now[0], **kwargs)
    for peer in (1, 2, 3):
        req.add_peer(peer)
    return req, now, settled


def test_a_flooding_peer_fills_only_its_own_queue() -> None:
    req, _, _ = tracker()
    assert req.announced(1, [tx(i) for i in range(100)]) == {1: [tx(0), tx(1), tx(2)]}
    assert req.tracked() == 10  # the rest of the flood is ignored
    assert req.announced(2, [tx(1000)]) == {2: [tx(1000)]}  # an honest peer is asked at once


def test_a_tx_is_asked_from_one_source_and_the_next_on_failure() -> None:
    req, now, _ = tracker()
    assert req.announced(1, [tx(1)]) == {1: [tx(1)]}
    assert req.announced(2, [tx(1)]) == {}  # in flight from peer 1: peer 2 is a fallback
    assert req.not_found(2, [tx(1)]) == {}  # not asked of 2: nothing to fail
    assert req.not_found(1, [tx(1)]) == {2: [tx(1)]}
    now[0] += 61
    assert req.expire() == {}  # no one else announced it
    assert req.tracked() == 0 and req.in_flight(2) == 0


def test_arrival_frees_the_slot_and_asks_for_the_next() -> None:
    req, _, settled = tracker()
    req.announced(1, [tx(i) for i in range(5)])
    assert req.in_flight(1) == 3
    settled.add(tx(0))
    assert req.received(tx(0)) == {1: [tx(3)]}
    settled.add(tx(4))  # arrived from elsewhere before it was asked for: skipped
    assert req.received(tx(4)) == {}
    assert req.received(tx(1)) == {}
    assert req.in_flight(1) == 2


def test_a_departed_peer_hands_its_requests_to_the_other_sources() -> None:
    req, _, _ = tracker()
    req.announced(1, [tx(1), tx(2)])
    req.announced(2, [tx(1)])
    req.announced(3, [tx(2), tx(1)])
    out = req.remove_peer(1)
    assert out[2] == [tx(1)] and out[3] == [tx(2)]  # the least loaded source gets each
    assert req.in_flight(1) == 0 and req.tracked() == 2


def test_timeouts_move_on() -> None:
    req, now, _ = tracker()
    req.announced(1, [tx(1)])
    req.announced(2, [tx(1)])
    now[0] += 30
    assert req.expire() == {}
    now[0] += 31
    assert req.expire() == {2: [tx(1)]}
