"""MiningSession's reshaping: every inner dimension gets an allowed (k, r) (PROTOCOL §1)."""
from __future__ import annotations

import pytest

from consensus.params import MAX_K, NETWORKS
from miner.session import k_plan, network_of, padded_k


@pytest.mark.parametrize("network", sorted(NETWORKS))
@pytest.mark.parametrize("k", [1, 7, 63, 64, 65, 1000, 1024, 1025, 4097, MAX_K, MAX_K + 1, 3 * MAX_K + 5])
def test_every_chunk_is_allowed_and_the_chunks_cover_k(network, k) -> None:
    net = NETWORKS[network]
    chunks = k_plan(k, net)
    assert chunks[0][0] == 0 and chunks[-1][1] == k
    assert all(stop == start for (_, stop, _), (start, _, _) in zip(chunks, chunks[1:]))
    for start, stop, r in chunks:
        padded = padded_k(stop - start, r, net)
        assert stop - start <= padded and net.allowed_dims(32, 32, padded, r)
        smaller = [x for x in range(1, 11) if net.allowed_r(1 << x) and (1 << x) < r]
        assert all(padded_k(stop - start, 1 << x, net) > net.k_range(1 << x)[1] for x in smaller)


def test_network_from_the_address_prefix() -> None:
    assert network_of("rpw1qqqq").name == "regtest" and network_of("pw1qqqq").name == "main"
    with pytest.raises(ValueError, match="not an address"):
        network_of("bc1qqqq")
