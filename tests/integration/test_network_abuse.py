"""A real node under abusive connections, the smaller versions of ``make bench-limits``
(tools/limits_bench.py): a confluent-kafka producer's p99 latency while a thousand idle and
half-open connections are held and a hundred more keep sending garbage; the node's resident
memory while ten clients each send a 20 MiB request slowly, bounded by
``queued.max.request.bytes``. One node for both, with the network metrics read back over the
HTTP admin API.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.limits_bench import MIB, measure_p99, measure_rss, raise_nofile
from tools.proc_cluster import ProcCluster
from tools.produce_bench import _create_topic

REQUEST_BYTES = 20 * MIB
POOL_BYTES = 20 * MIB
MAX_SLOWDOWN_MS = 2.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    pytest.importorskip("confluent_kafka")
    raise_nofile()
    cluster = ProcCluster(Path(tmp_path_factory.mktemp("abuse")), controllers=1, combined=True,
                          admin=True,
                          extra={"num.partitions": "1",
                                 "socket.request.max.bytes": str(REQUEST_BYTES),
                                 "queued.max.request.bytes": str(POOL_BYTES)})
    cluster.start()
    asyncio.run(_create_topic(cluster, "latency", 1, 1))
    yield cluster
    cluster.shutdown()


def scrape(cluster: ProcCluster, name: str) -> float:
    node = cluster.nodes[cluster.broker_ids[0]]
    with urllib.request.urlopen(f"{node.admin_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(rf'^{name}(?:_total)?{{kind="broker"}} (\S+)$', text, re.MULTILINE) or \
        re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert m is not None, f"{name} not in /metrics"
    return float(m.group(1))


def test_producer_p99_unaffected_by_idle_half_open_and_garbage(node: ProcCluster) -> None:
    """The p99 of a produce round trip may grow by at most 2 ms. A CI machine's other
    processes can stall either phase, so a failure is measured once more; two in a row fail."""
    broker = node.nodes[node.broker_ids[0]]
    assert broker.broker_port is not None
    results = []
    for _ in range(2):
        r = measure_p99(node.bootstrap_servers, broker.broker_port, "latency", idle=500,
                        half_open=500, garbage=100, interval_s=1.0, seconds=3.0)
        results.append(r)
        assert r.held == 1000 and r.garbage_sends >= 100
        if r.slowdown_ms <= MAX_SLOWDOWN_MS:
            break
    print(*(r.line() for r in results), sep="\n")
    assert results[-1].slowdown_ms <= MAX_SLOWDOWN_MS, [r.line() for r in results]
    assert scrape(node, "pykraft_network_protocol_errors") >= 100  # garbage was closed


def test_resident_memory_bounded_by_the_request_pool(node: ProcCluster) -> None:
    broker = node.nodes[node.broker_ids[0]]
    assert broker.proc is not None and broker.broker_port is not None
    r = measure_rss(broker.proc.pid, broker.broker_port, clients=10, size=REQUEST_BYTES - 4,
                    pool_bytes=POOL_BYTES, max_request_bytes=REQUEST_BYTES, chunk=256 << 10,
                    client_bytes_s=20 * MIB)
    print(r.line())
    assert r.answered == 10
    # Without the pool the ten requests would be held at once: 200 MiB (bound: 78 MiB).
    assert r.growth <= r.bound, r.line()
    assert scrape(node, "pykraft_network_request_pool_waits") >= 1
    assert scrape(node, "pykraft_network_request_pool_peak_bytes") <= POOL_BYTES + REQUEST_BYTES
    assert scrape(node, "pykraft_network_request_pool_used_bytes") == 0
