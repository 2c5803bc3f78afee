"""The pytest plugin of the project (registered through the ``pytest11`` entry point, so
installing the package is all a test suite needs): real clusters as fixtures.

- ``kafka_cluster``: one session-wide cluster of ``--kafka-nodes`` nodes (default: the
  ``kafka_cluster_nodes`` ini value, else 1), started on first use, stopped at the end of the
  session (``tools/testing.py`` describes what it offers).
- ``kafka_cluster_factory``: ``kafka_cluster_factory(nodes=3, config=None)`` returns a
  session-wide cluster of that shape (one per distinct shape), for suites that need several.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tools.testing import TestCluster

__all__ = ["kafka_cluster", "kafka_cluster_factory"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kafka-cluster", "real Kafka-compatible clusters (pykraft)")
    group.addoption("--kafka-nodes", type=int, default=None, dest="kafka_nodes",
                    help="nodes of the kafka_cluster fixture (default: ini kafka_cluster_nodes "
                         "or 1)")
    parser.addini("kafka_cluster_nodes", "nodes of the kafka_cluster fixture", default="1")


@pytest.fixture(scope="session")
def kafka_cluster_factory(tmp_path_factory: pytest.TempPathFactory
                          ) -> Iterator[Callable[..., TestCluster]]:
    # Imported here: every pytest run in an environment with this package loads the plugin.
    from tools.testing import cluster
    clusters: dict[tuple[int, tuple[tuple[str, str], ...]], TestCluster] = {}
    with ExitStack() as stack:
        def get(nodes: int = 1, config: Mapping[str, str] | None = None) -> TestCluster:
            shape = (nodes, tuple(sorted((config or {}).items())))
            if shape not in clusters:
                root = tmp_path_factory.mktemp(f"kafka-{nodes}")
                clusters[shape] = stack.enter_context(cluster(nodes, root=root, config=config))
            return clusters[shape]
        yield get


@pytest.fixture(scope="session")
def kafka_cluster(request: pytest.FixtureRequest,
                  kafka_cluster_factory: Callable[..., TestCluster]) -> TestCluster:
    nodes = request.config.getoption("kafka_nodes") or int(
        request.config.getini("kafka_cluster_nodes"))
    return kafka_cluster_factory(nodes)
