"""Fixtures for node tests: chains on real LevelDB files under tmp_path."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from consensus.params import GENESIS_TIMESTAMP
from node.chain import Chain

NOW = GENESIS_TIMESTAMP + 10**7  # a clock well past every test block's timestamp


@pytest.fixture
def open_chain(tmp_path) -> Iterator[Callable[..., Chain]]:
    """``open_chain(path=tmp_path, **kwargs)`` opens a regtest Chain; all are closed at teardown."""
    opened: list[Chain] = []

    def _open(path=tmp_path, **kwargs) -> Chain:
        kwargs.setdefault("now", lambda: NOW)
        kwargs.setdefault("tx_workers", 0)
        chain = Chain(path, "regtest", **kwargs)
        opened.append(chain)
        return chain

    yield _open
    for chain in opened:
        chain.close()


@pytest.fixture
def chain(open_chain) -> Chain:
    return open_chain()
