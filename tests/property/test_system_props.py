"""System-level property test: Hypothesis draws sequences of produce / kill / restart /
pause / resume / partition / heal steps against a real 3-node cluster (RF 3,
min.insync.replicas 2, acks=all, idempotent confluent-kafka producer); after each sequence the
cluster is healed, every partition is read from offset 0, and the fault suite's checker
(jepsen-style/checker.py) is the oracle: no acknowledged record may be lost, duplicated or
reordered, and the final read must be complete.

Bounded, on one cluster (each example gets its own topic): the default run tries kill, pause
and partition each in its plainest sequence plus 3 drawn sequences of at most 8 steps, about a
minute; the slow run (``make test-all``) draws 30 sequences. The default run keeps the property
covered by every fault kind in every run; the slow run explores more sequences. A failing
example is shrunk (each shrink step runs on the real cluster again, so a failure costs minutes
more) to the shortest step sequence that still fails.
"""

from __future__ import annotations

import itertools
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

ck = pytest.importorskip("confluent_kafka")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from checker import check
from cluster import Cluster, netns_available
from history import History
from workload import Workload, WorkloadConfig, create_topic, wait_healthy

pytestmark = pytest.mark.skipif(not netns_available(),
                                reason="needs root and `ip netns` for per-node networks")

NODES = (1, 2, 3)
TOPIC_IDS = itertools.count(1)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("produce"), st.integers(5, 30)),
        st.tuples(st.just("kill"), st.sampled_from(NODES)),
        st.tuples(st.just("restart"), st.sampled_from(NODES)),
        st.tuples(st.just("pause"), st.sampled_from(NODES)),  # SIGSTOP
        st.tuples(st.just("resume"), st.sampled_from(NODES)),
        st.tuples(st.just("partition"), st.sampled_from(NODES)),  # isolate that node
        st.tuples(st.just("heal"), st.just(0)),
    ),
    min_size=1, max_size=8)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("jepsen-props"), n=3,
                extra={"min.insync.replicas": "2"}, seed=11)
    with c:
        yield c
        # Nothing after the tests looks at how the nodes stop: no clean stop to wait for.
        for node in c.nodes.values():
            node.kill()


class Run:
    def __init__(self, cluster: Cluster, topic: str) -> None:
        self.cluster = cluster
        self.history = History()
        self.cfg = WorkloadConfig(bootstrap=cluster.bootstrap_servers, topic=topic,
                                  partitions=2, message_timeout_ms=4000)
        self.workload = Workload(self.cfg, self.history, random.Random(0))
        self.value = 0

    def produce(self, count: int) -> None:
        producer = ck.Producer(self.workload._producer_conf())
        process = self.workload._new_process()
        unknown = 0
        for _ in range(count):
            self.value += 1
            v, p = self.value, self.value % self.cfg.partitions
            self.history.add("invoke", "send", process, key=p, partition=p, value=v)
            result: list[tuple[object, int]] = []
            producer.produce(self.cfg.topic, value=str(v).encode(), key=str(p).encode(),
                             partition=p,
                             on_delivery=lambda err, msg, r=result: r.append((err, msg.offset())))
            producer.flush(10)
            if result and result[0][0] is None:
                self.history.add("ok", "send", process, key=p, partition=p, value=v,
                                 offset=result[0][1])
            else:
                self.history.add("info", "send", process, key=p, partition=p, value=v)
                process = self.workload._new_process()
                unknown += 1
                if unknown >= 2:
                    break  # the cluster is not taking writes now: keep the example short
        producer.flush(5)

    def step(self, kind: str, arg: int) -> None:
        c = self.cluster
        self.history.add("info", f"start-{kind}", "nemesis", value={"arg": arg})
        if kind == "produce":
            self.produce(arg)
        elif kind == "kill":
            c.nodes[arg].kill()
        elif kind == "restart" and not c.nodes[arg].alive():
            c.start([arg])
        elif kind == "pause":
            c.nodes[arg].pause()
        elif kind == "resume":
            c.nodes[arg].resume()
        elif kind == "partition":
            c.partition([[arg], [i for i in NODES if i != arg]])
        elif kind == "heal":
            c.heal()

    def finish(self) -> dict[str, object]:
        c = self.cluster
        for node in c.nodes.values():
            node.resume()
        c.heal()
        down = [i for i in NODES if not c.nodes[i].alive()]
        if down:
            c.start(down)
        assert wait_healthy(self.cfg, timeout=60), "cluster did not heal"
        assert self.workload.final_read(timeout=60), "final read incomplete"
        return check(self.history.ops)


# Each example costs a real cluster run: no example database (a fresh machine has none),
# derandomized so every run draws the same sequences; a failure is shrunk, then printed with
# the checker's examples.
def _settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow])


def check_fault_sequence(cluster: Cluster, steps: list[tuple[str, int]]) -> None:
    # Not random.*: Hypothesis reseeds it per example, and topics must differ.
    topic = f"props-{next(TOPIC_IDS)}-{time.time_ns() % 10**6}"
    cfg = WorkloadConfig(bootstrap=cluster.bootstrap_servers, topic=topic, partitions=2)
    for node in cluster.nodes.values():
        node.resume()
    cluster.heal()
    cluster.start([i for i in NODES if not cluster.nodes[i].alive()])
    create_topic(cfg)
    run = Run(cluster, topic)
    run.produce(5)
    for kind, arg in steps:
        run.step(kind, arg)
    run.produce(5)
    result = run.finish()
    assert result["valid"], (steps, result["anomalies"], result["examples"])
    assert result["stats"]["sends_acknowledged"] > 0  # type: ignore[index]


# The default run: the three faults each in their plainest sequence (a write while one node is
# killed, paused, cut off; then it comes back), and a few drawn sequences.
@_settings(3)
@given(steps=steps)
@example(steps=[("kill", 1), ("produce", 20), ("restart", 1), ("produce", 10)])
@example(steps=[("pause", 2), ("produce", 20), ("resume", 2)])
@example(steps=[("partition", 3), ("produce", 20), ("heal", 0)])
def test_acknowledged_records_survive_any_fault_sequence(cluster: Cluster,
                                                         steps: list[tuple[str, int]]) -> None:
    check_fault_sequence(cluster, steps)


@pytest.mark.slow
@_settings(30)
@given(steps=steps)
def test_acknowledged_records_survive_many_fault_sequences(cluster: Cluster,
                                                           steps: list[tuple[str, int]]) -> None:
    check_fault_sequence(cluster, steps)
