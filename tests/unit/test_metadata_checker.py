"""The metadata fault workload's checker (jepsen-style/metadata_checker.py) on small
hand-written histories and logs: each rule finds its anomaly, and a clean history is valid.
Also the image digest of GET /v1/metadata/image (broker/admin/http_metadata.py)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from metadata_checker import check, isolation_intervals, read_node_log

from broker.admin.http_metadata import image_summary
from broker.controller.metadata_log import encode_entries
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage
from kraft.log import LogEntry
from kraft.metadata_records import (
    MetadataRecordType,
    RemoveTopicRecord,
    TopicRecord,
    encode_metadata_record,
    latest_version,
)

T = MetadataRecordType
S = 1_000_000_000  # ns per second
IDS = {name: uuid.UUID(int=i + 1) for i, name in enumerate(("a", "b", "c"))}


def rec(kind: str, topic: str) -> tuple[int, bool, bytes]:
    if kind == "topic":
        t, r = T.TOPIC_RECORD, TopicRecord(name=topic, topic_id=IDS[topic])
    else:
        t, r = T.REMOVE_TOPIC_RECORD, RemoveTopicRecord(topic_id=IDS[topic])
    return (1, False, encode_metadata_record(t, latest_version(t), r))


class H:
    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def add(self, t: float, type_: str, f: str, process: Any = "p", **kw: Any) -> None:
        self.ops.append({"index": len(self.ops), "time": int(t * S), "type": type_, "f": f,
                         "process": process, **kw})

    def op(self, t0: float, t1: float, f: str, topic: str, type_: str = "ok",
           process: str = "p") -> None:
        self.add(t0, "invoke", f, process, value={"topic": topic})
        self.add(t1, type_, f, process, value={"topic": topic})

    def final(self, t: float, topics: list[str], offset: int = 9, digest: str = "d",
              nodes: tuple[int, ...] = (1, 2, 3)) -> None:
        self.add(t, "ok", "final-quorum", "reader", leader_id=1, epoch=3, high_watermark=10)
        for n in nodes:
            self.add(t, "ok", "final-image", "reader", node=n, offset=offset, epoch=3,
                     digest=digest, topics=topics, loader_failed=None)


def logs(entries: dict[int, tuple[int, bool, bytes]]) -> dict[int, dict[int, Any]]:
    return {n: dict(entries) for n in (1, 2, 3)}


def run(h: H, lg: dict[int, dict[int, Any]]) -> dict[str, Any]:
    return check(h.ops, lg, voters=[1, 2, 3], fetch_timeout_ms=2000)


def test_clean_history_is_valid() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.op(3, 4, "create", "b")
    h.op(5, 6, "delete", "a")
    h.final(10, ["b"])
    r = run(h, logs({0: rec("topic", "a"), 1: rec("topic", "b"), 2: rec("remove", "a")}))
    assert r["verdict"] == "valid", r
    assert r["stats"]["committed_topic_records"] == 2


def test_acknowledged_create_without_topic_record_is_lost() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.op(3, 4, "create", "b")
    h.final(10, ["a"])
    r = run(h, logs({0: rec("topic", "a")}))
    assert r["anomalies"]["lost-create"] == 1 and r["verdict"] == "invalid"
    assert r["examples"]["lost-create"][0]["topic"] == "b"


def test_acknowledged_delete_whose_topic_remains_is_lost() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.op(3, 4, "delete", "a")
    h.final(10, ["a"])
    r = run(h, logs({0: rec("topic", "a")}))
    assert r["anomalies"]["lost-delete"] == 1


def test_records_committed_against_real_time_order_are_reordered() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.op(3, 4, "create", "b")  # invoked after a's ack, committed before it
    h.final(10, ["a", "b"])
    r = run(h, logs({0: rec("topic", "b"), 1: rec("topic", "a")}))
    assert r["anomalies"]["reordered"] == 1, r
    # Concurrent operations may commit in either order.
    h = H()
    h.op(1, 4, "create", "a")
    h.op(2, 3, "create", "b")
    h.final(10, ["a", "b"])
    assert run(h, logs({0: rec("topic", "a"), 1: rec("topic", "b")}))["verdict"] == "valid"


def test_logs_differing_below_the_high_watermark_diverge() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.final(10, ["a"])
    lg = logs({0: rec("topic", "a"), 1: rec("topic", "b")})
    lg[3][1] = rec("topic", "c")
    lg[2][12] = rec("topic", "c")  # past the high watermark: not committed, not compared
    r = run(h, lg)
    assert r["anomalies"]["divergent-log"] == 1, r
    assert r["examples"]["divergent-log"][0]["offset"] == 1


def test_images_at_one_offset_with_two_digests_diverge() -> None:
    h = H()
    h.op(1, 2, "create", "a")
    h.add(3, "ok", "image", "reader", node=1, offset=5, epoch=2, digest="x", topics=["a"])
    h.add(3, "ok", "image", "reader", node=2, offset=5, epoch=2, digest="y", topics=["a"])
    h.add(3, "ok", "image", "reader", node=3, offset=6, epoch=2, digest="z", topics=["a"])
    h.final(10, ["a"])
    r = run(h, logs({0: rec("topic", "a")}))
    assert r["anomalies"]["divergent-image"] == 1, r
    assert r["examples"]["divergent-image"][0]["offset"] == 5


def test_a_leader_isolated_past_the_fetch_timeout_serving_reads_is_stale() -> None:
    h = H()
    h.add(1, "info", "start-partition", "nemesis", value={"groups": [[1], [2, 3]]})
    # Within fetch timeout + slack (3 s): allowed; after: stale.
    h.add(3.5, "ok", "quorum-read", "reader", node=1, leader_id=1, epoch=2, high_watermark=5,
          invoke_time=int(3.5 * S))
    h.add(5, "ok", "quorum-read", "reader", node=1, leader_id=1, epoch=2, high_watermark=5,
          invoke_time=int(5 * S))
    h.add(5, "ok", "quorum-read", "reader", node=2, leader_id=2, epoch=3, high_watermark=7,
          invoke_time=int(5 * S))
    h.add(8, "info", "stop-partition", "nemesis", value={})
    h.add(9, "ok", "quorum-read", "reader", node=1, leader_id=1, epoch=4, high_watermark=9,
          invoke_time=int(9 * S))
    h.final(10, [])
    r = run(h, logs({}))
    assert r["anomalies"]["stale-read"] == 1, r
    assert r["examples"]["stale-read"][0]["node"] == 1


def test_a_leader_elected_anew_while_peers_restart_is_not_stale() -> None:
    """Its peers killed, a leader resigns; they come back and elect it again in a new epoch
    before the nemesis records the heal: that claim is genuine."""
    h = H()
    h.add(0.5, "ok", "quorum-read", "reader", node=1, leader_id=1, epoch=2, high_watermark=5,
          invoke_time=int(0.5 * S))
    h.add(1, "info", "start-kill", "nemesis", value={"nodes": [2, 3]})
    h.add(6, "ok", "quorum-read", "reader", node=1, leader_id=1, epoch=4, high_watermark=7,
          invoke_time=int(6 * S))
    h.add(8, "info", "stop-kill", "nemesis", value={"nodes": [2, 3]})
    h.final(10, [])
    assert run(h, logs({}))["anomalies"]["stale-read"] == 0
    h.ops.insert(3, {**h.ops[0], "time": int(5 * S), "invoke_time": int(5 * S)})
    assert run(h, logs({}))["anomalies"]["stale-read"] == 1  # epoch 2 still claimed at 5 s


def test_isolation_from_pauses_and_ring_cuts() -> None:
    h = H()
    h.add(1, "info", "start-pause", "nemesis", value={"nodes": [2, 3]})
    h.add(2, "info", "stop-pause", "nemesis", value={})
    h.add(3, "info", "start-partition", "nemesis", value={"ring": [1, 2, 3], "cut": [[1, 2]]})
    h.add(4, "info", "stop-partition", "nemesis", value={})
    iso = isolation_intervals(h.ops, [1, 2, 3])
    assert iso[1] == [(1 * S, 2 * S)]  # its two peers paused; a ring cut leaves it a peer
    assert 2 not in iso and 3 not in iso


def test_read_node_log_decodes_segments(tmp_path: Path) -> None:
    part = tmp_path / "data" / "__cluster_metadata-0"
    part.mkdir(parents=True)
    data = [rec("topic", "a")[2], rec("topic", "b")[2]]
    raw = encode_entries([LogEntry(i, 1, d) for i, d in enumerate(data)], timestamp_ms=0)
    (part / "00000000000000000000.log").write_bytes(raw + raw[:20])  # a torn tail
    log = read_node_log(tmp_path)
    assert sorted(log) == [0, 1] and log[1] == (1, False, data[1])


def test_image_digest_is_equal_for_equal_images_only() -> None:
    def image(names: list[str]) -> MetadataImage:
        delta = MetadataDelta(MetadataImage())
        for n in names:
            delta.replay(T.TOPIC_RECORD, TopicRecord(name=n, topic_id=IDS[n]))
        delta.set_provenance(len(names) - 1, 1)
        return delta.apply()

    a, b, c = image(["a", "b"]), image(["a", "b"]), image(["a", "c"])
    sa, sb, sc = (image_summary(1, x, None) for x in (a, b, c))
    assert sa["digest"] == sb["digest"] != sc["digest"]
    assert sa["offset"] == 1 and sorted(sa["topics"]) == ["a", "b"]


def test_a_majority_power_loss_and_the_storage_that_did_not_open_are_reported(
        tmp_path: Path) -> None:
    import random
    from types import SimpleNamespace

    from metadata_run import storage_after_faults
    from nemesis import Nemesis, schedule

    faults = schedule(3, ["lose-unsynced-majority"], 40)
    assert faults and {f.target for f in faults} == {"controller-majority"}
    cluster = SimpleNamespace(nodes={i: None for i in range(1, 6)}, controller_ids=[1, 2, 3])
    picked = Nemesis._nodes(SimpleNamespace(cluster=cluster), "controller-majority",
                            random.Random(1))
    assert len(picked) == 2 and set(picked) <= {1, 2, 3}

    logs = {1: "--- start 10:00:00\nKafka Server started\n--- start 10:00:20\n"
               "[t] ERROR [node.id=1] node 1: pysyncobj storage file /d/pysyncobj.journal "
               "could not be opened (empty): moved to pysyncobj.journal.unreadable-0\n"
               "Kafka Server started\n",
            2: "--- start 10:00:00\nKafka Server started\n--- start 10:00:20\n"
               "Traceback (most recent call last):\nValueError: cannot mmap an empty file\n",
            3: "--- start 10:00:00\nKafka Server started\n"}
    nodes = {}
    for i, text in logs.items():
        (tmp_path / f"{i}.log").write_text(text)
        nodes[i] = SimpleNamespace(log_path=tmp_path / f"{i}.log")
    found = storage_after_faults(SimpleNamespace(nodes=nodes))
    assert sorted(found) == [1, 2]
    assert found[1][0].startswith("ERROR [node.id=1]") and "could not be opened" in found[1][0]
    assert found[2] == ["did not start: ValueError: cannot mmap an empty file"]
