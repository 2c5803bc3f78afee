"""Log lines of a node (``tools.server_start.setup_logging``): every line carries the level and
the node id, as text (the default, which tests wait on) or as JSON lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from tools import server_start


@pytest.fixture
def stdout(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The captured stdout the node's handler writes to; the root logger restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield capsys
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_text_lines_carry_level_and_node_id(stdout: pytest.CaptureFixture[str]) -> None:
    node_filter = server_start.setup_logging("INFO")
    node_filter.node_id = "3"
    logging.getLogger("broker.node").info("Kafka Server started")
    logging.getLogger("broker.node").debug("not shown at INFO")
    lines = stdout.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("INFO [node.id=3] Kafka Server started (broker.node)")


def test_json_lines(stdout: pytest.CaptureFixture[str]) -> None:
    node_filter = server_start.setup_logging("INFO", "json")
    node_filter.node_id = "7"
    log = logging.getLogger("broker.replication.replica_manager")
    log.warning("ISR of %s-%d is now %s", "t", 0, [1, 2])
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stdout.readouterr().out.splitlines())
    assert first["level"] == "WARNING" and first["node_id"] == "7"
    assert first["logger"] == "broker.replication.replica_manager"
    assert first["message"] == "ISR of t-0 is now [1, 2]"
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: bad" in second["exception"]
