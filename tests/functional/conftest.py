"""Fixtures that start real pouwd processes and always clean them up."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import pytest

from .framework import NodeProcess


@pytest.fixture
def start_nodes(tmp_path: Path) -> Iterator[Callable[..., list[NodeProcess]]]:
    started: list[NodeProcess] = []

    def start(count: int = 1, extra_args: Sequence[Sequence[str]] | None = None, network: str = "regtest",
              wait: bool = True) -> list[NodeProcess]:
        nodes = []
        for i in range(count):
            node = NodeProcess(len(started), tmp_path, network, extra_args[i] if extra_args else ())
            started.append(node)
            nodes.append(node)
        for node in nodes:
            node.start(wait=False)
        if wait:
            for node in nodes:
                node.wait_ready()
        return nodes

    yield start
    for node in started:
        node.cleanup()
