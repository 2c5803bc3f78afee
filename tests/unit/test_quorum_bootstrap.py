"""What a node starts its quorum with (broker/controller/quorum_bootstrap.py) without asking
anybody: static voters, the voters a controller was formatted with, its kraft.version; and that
asking unreachable bootstrap servers ends when told to stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from broker.controller.quorum_bootstrap import (
    discover_voters,
    local_kraft_version,
    quorum_voters,
)
from storage.meta_properties import (
    BootstrapMetadata,
    DynamicVoter,
    write_bootstrap,
)

DIR_ID = "f2D9cXJ1T8Wb0lAQmiR3hQ"


def cfg(tmp_path: Path, *, voters: dict[int, tuple[str, int]] | None = None,
        controller: bool = True) -> SimpleNamespace:
    return SimpleNamespace(controller_quorum_voters=voters or {}, is_controller=controller,
                           metadata_log_dir=str(tmp_path), node_id=1,
                           controller_quorum_bootstrap_servers=[("127.0.0.1", 1)])


def test_static_and_formatted_voters(tmp_path: Path) -> None:
    static = cfg(tmp_path, voters={1: ("h", 9093)})
    assert asyncio.run(quorum_voters(static, "c")) == {1: ("h", 9093)}
    assert local_kraft_version(static) == 0
    write_bootstrap(tmp_path, BootstrapMetadata(
        cluster_id="c", metadata_version="3.9-IV0", kraft_version=1,
        initial_controllers=(DynamicVoter(1, "127.0.0.1", 9093, DIR_ID),)))
    dynamic = cfg(tmp_path)
    assert asyncio.run(quorum_voters(dynamic, "c")) == {1: ("127.0.0.1", 9093)}
    assert local_kraft_version(dynamic) == 1
    # The Raft layer's own level wins; a broker with only bootstrap servers does not know.
    assert local_kraft_version(dynamic, SimpleNamespace(kraft_version=0)) == 0
    assert local_kraft_version(cfg(tmp_path, controller=False)) is None


def test_discovery_stops_when_told(tmp_path: Path) -> None:
    calls = 0

    def stopping() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3

    started = time.monotonic()
    broker = cfg(tmp_path, controller=False)
    assert asyncio.run(quorum_voters(broker, "c", stopping=stopping)) is None
    assert time.monotonic() - started < 10
    with pytest.raises(ValueError):
        asyncio.run(discover_voters([], "c"))
