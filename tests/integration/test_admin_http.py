"""The HTTP admin API against real node processes.

One module-scoped cluster of 3 combined nodes (broker + controller) serves most tests; every
route is exercised on it, with bad input, and the responses are checked against the served
OpenAPI document by schemathesis (read-only operations plus leader election; bounded
examples). A separate 3-node cluster checks a write while the active controller is killed
(-9): the POST blocks through the election and answers 201 once committed, then a node is
shut down through the API.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode

from broker.admin.openapi import ROUTES
from tools.proc_cluster import ProcCluster

ck = pytest.importorskip("confluent_kafka")

HTTP_TIMEOUT_S = 60.0


def call(method: str, url: str, body: Any = None, *, raw: bytes | None = None,
         params: dict[str, str] | None = None) -> requests.Response:
    kwargs: dict[str, Any] = {"timeout": HTTP_TIMEOUT_S, "params": params}
    if raw is not None:
        kwargs["data"] = raw
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    return requests.request(method, url, **kwargs)


def ok(resp: requests.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def error(resp: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"
    body = resp.json()
    assert set(body) >= {"error_code", "message"} and body["message"], body
    if field is not None:
        assert body.get("field") == field, body
        assert field.split(".")[0] in body["message"], body
    return body  # type: ignore[no-any-return]


def wait_until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (requests.RequestException, AssertionError, KeyError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s (last: {last!r})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    c = ProcCluster(tmp_path_factory.mktemp("admin-http"), controllers=3, brokers=0,
                    combined=True, admin=True,
                    extra={"offsets.topic.replication.factor": "3",
                           "offsets.topic.num.partitions": "3",
                           "transaction.state.log.num.partitions": "3"})
    c.start()
    try:
        for n in c.nodes.values():
            wait_until(lambda n=n: call("GET", n.admin_url + "/v1/status/ready").ok, 30,
                       f"node {n.node_id} ready")
        yield c
    finally:
        c.shutdown()


def url(c: ProcCluster, node: int, path: str) -> str:
    return c.nodes[node].admin_url + path


# -- status, cluster, brokers, quorum -------------------------------------------------------


def test_status_routes_on_every_node(cluster: ProcCluster) -> None:
    for i in cluster.nodes:
        assert ok(call("GET", url(cluster, i, "/v1/status/live"))) == {
            "status": "live", "node_id": i, "reasons": []}
        assert ok(call("GET", url(cluster, i, "/v1/status/ready")))["status"] == "ready"


def test_cluster_brokers_and_quorum_agree_across_nodes(cluster: ProcCluster) -> None:
    quorum = ok(call("GET", url(cluster, 1, "/v1/quorum")))
    leader = quorum["leader_id"]
    assert leader in cluster.nodes and quorum["cluster_id"] == cluster.cluster_id
    assert sorted(v["replica_id"] for v in quorum["voters"]) == [1, 2, 3]
    assert [v["status"] for v in quorum["voters"] if v["replica_id"] == leader] == ["Leader"]
    assert quorum["high_watermark"] > 0 and quorum["leader_epoch"] >= 1
    for i in cluster.nodes:
        q = ok(call("GET", url(cluster, i, "/v1/quorum")))
        assert (q["leader_id"], q["leader_epoch"]) == (leader, quorum["leader_epoch"])
        c = ok(call("GET", url(cluster, i, "/v1/cluster")))
        assert c["cluster_id"] == cluster.cluster_id and c["node_id"] == i
        assert c["controller_id"] == leader
        assert [b["broker_id"] for b in c["brokers"]] == [1, 2, 3]
        assert [ctl["node_id"] for ctl in c["controllers"]] == [1, 2, 3]
        assert c["health"]["is_healthy"], c["health"]
        assert c["health"]["nodes_down"] == [] and c["health"]["unhealthy_reasons"] == []
    brokers = ok(call("GET", url(cluster, 2, "/v1/brokers")))["brokers"]
    assert [b["broker_id"] for b in brokers] == [1, 2, 3]
    for b in brokers:
        assert not b["fenced"] and b["endpoints"][0]["port"] == cluster.nodes[
            b["broker_id"]].broker_port
    one = ok(call("GET", url(cluster, 3, "/v1/brokers/1")))
    assert one["broker_id"] == 1 and one["replica_partitions"] >= 0
    error(call("GET", url(cluster, 3, "/v1/brokers/99")), 404)
    error(call("GET", url(cluster, 3, "/v1/brokers/abc")), 400, "broker_id")
    error(call("GET", url(cluster, 3, "/v1/brokers/-1")), 400, "broker_id")


def test_metadata_image_is_the_same_on_every_node_at_one_offset(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "imaged", "partitions": 2}), 201)

    def images() -> list[Any] | None:
        got = [ok(call("GET", url(cluster, i, "/v1/metadata/image"))) for i in (1, 2, 3)]
        return got if len({g["offset"] for g in got}) == 1 and all(
            "imaged" in g["topics"] for g in got) else None

    got = wait_until(images, 15, "every node's image at one offset")
    assert len({g["digest"] for g in got}) == 1, got
    assert [g["node_id"] for g in got] == [1, 2, 3]
    assert got[0]["topics"]["imaged"]["partitions"] == 2 and got[0]["loader_failed"] is None
    assert got[0]["epoch"] >= 1 and sorted(got[0]["brokers"]) == [1, 2, 3]


def test_broker_log_dirs(cluster: ProcCluster) -> None:
    """Each broker's log directory and the partitions in it, asked of that broker from any
    node; sizes follow the records produced."""
    ok(call("POST", url(cluster, 1, "/v1/topics"), {
        "name": "dirs-demo", "partitions": 2, "replication_factor": 3}), 201)
    p = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for i in range(20):
        p.produce("dirs-demo", value=b"v" * 100, partition=1)
    assert p.flush(30) == 0

    def dirs(asker: int, broker: int) -> Any:
        body = ok(call("GET", url(cluster, asker, f"/v1/brokers/{broker}/log-dirs")))
        (d,) = body["log_dirs"]
        parts = {(x["topic"], x["partition"]): x for x in d["partitions"]}
        if body["broker_id"] == broker and {("dirs-demo", 0), ("dirs-demo", 1)} <= set(parts) \
                and parts[("dirs-demo", 1)]["size"] >= 20 * 100:
            return d, parts
        return None

    for broker in cluster.broker_ids:
        d, parts = wait_until(lambda b=broker: dirs(1 + b % 3, b), 30, f"log dirs of {broker}")
        assert d["log_dir"] == os.path.abspath(cluster.nodes[broker].data_dir)
        assert d["error_code"] is None and d["total_bytes"] >= d["usable_bytes"] > 0
        assert parts[("dirs-demo", 0)]["size"] == 0
        assert all(x["offset_lag"] == 0 and x["is_future"] is False for x in parts.values())
    error(call("GET", url(cluster, 1, "/v1/brokers/99/log-dirs")), 404)
    error(call("GET", url(cluster, 1, "/v1/brokers/x/log-dirs")), 400)


def test_unknown_route_and_method_are_json_errors(cluster: ProcCluster) -> None:
    assert error(call("GET", url(cluster, 1, "/v1/nope")), 404)["error_code"] == "NOT_FOUND"
    resp = call("PUT", url(cluster, 1, "/v1/topics"))
    assert error(resp, 405)["error_code"] == "METHOD_NOT_ALLOWED"
    assert "POST" in resp.headers["Allow"]


# -- topics and partitions ------------------------------------------------------------------


def test_topic_create_read_alter_delete(cluster: ProcCluster) -> None:
    created = ok(call("POST", url(cluster, 1, "/v1/topics"), {
        "name": "orders", "partitions": 3, "replication_factor": 3,
        "configs": {"retention.ms": "3600000"}}), 201)
    assert created["partitions_count"] == 3 and created["replication_factor"] == 3
    assert created["configs"]["retention.ms"] == "3600000"
    assert created["overrides"] == {"retention.ms": "3600000"}
    # Answered once committed: the node that served the write shows it at once; the others
    # catch up from the metadata log.
    assert "orders" in [t["name"] for t in ok(call("GET", url(cluster, 1, "/v1/topics")))[
        "topics"]]
    for i in (2, 3):
        wait_until(lambda i=i: call("GET", url(cluster, i, "/v1/topics/orders")).ok, 10,
                   f"orders on node {i}")
    defaults = ok(call("POST", url(cluster, 2, "/v1/topics"), {"name": "defaults"}), 201)
    assert (defaults["partitions_count"], defaults["replication_factor"]) == (1, 1)
    dup = error(call("POST", url(cluster, 2, "/v1/topics"), {"name": "orders"}), 409)
    assert dup["error_code"] == "TOPIC_ALREADY_EXISTS"

    patched = ok(call("PATCH", url(cluster, 2, "/v1/topics/orders"), {
        "configs": {"retention.ms": None, "cleanup.policy": "compact"},
        "partitions_count": 5}))
    assert patched["partitions_count"] == 5
    assert patched["overrides"] == {"cleanup.policy": "compact"}
    assert patched["configs"]["retention.ms"] == "604800000"  # back to the broker default
    error(call("PATCH", url(cluster, 2, "/v1/topics/orders"), {"partitions_count": 2}), 400,
          "partitions_count")

    parts = ok(call("GET", url(cluster, 3, "/v1/topics/orders/partitions")))
    assert [p["partition"] for p in parts["partitions"]] == [0, 1, 2, 3, 4]
    for p in parts["partitions"]:
        assert sorted(p["replicas"]) == [1, 2, 3] and sorted(p["isr"]) == [1, 2, 3]
        assert p["leader"] in p["isr"] and p["leader_epoch"] >= 0

    deleted = ok(call("DELETE", url(cluster, 3, "/v1/topics/orders")))
    assert deleted == {"name": "orders", "deleted": True}
    error(call("GET", url(cluster, 3, "/v1/topics/orders")), 404)
    error(call("DELETE", url(cluster, 3, "/v1/topics/orders")), 404)
    error(call("PATCH", url(cluster, 3, "/v1/topics/orders"), {"configs": {}}), 404)


def test_partition_offsets_local_and_remote(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {
        "name": "offsets-demo", "partitions": 3, "replication_factor": 3}), 201)
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for p in range(3):
        for k in range(p + 2):
            producer.produce("offsets-demo", value=b"v%d" % k, partition=p)
    assert producer.flush(30) == 0
    for node in cluster.nodes:
        def settled(node: int = node) -> Any:
            rows = ok(call("GET", url(cluster, node, "/v1/topics/offsets-demo/partitions")))[
                "partitions"]
            return rows if all(r["high_watermark"] == r["partition"] + 2 for r in rows) \
                else None
        rows = wait_until(settled, 15, f"high watermarks seen from node {node}")
        for r in rows:
            assert r["log_start_offset"] == 0
            if r["leader"] == node:
                assert r["offsets_source"] == "local"
                assert r["log_end_offset"] == r["partition"] + 2
            else:
                assert r["offsets_source"] == "list_offsets" and r["log_end_offset"] is None


def test_list_topics_hides_internal_unless_asked(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 2, "/v1/topics"), {"name": "__consumer_offsets",
                                                    "partitions": 1, "replication_factor": 1,
                                                    "configs": {"cleanup.policy": "compact"}}),
       201)
    names = [t["name"] for t in ok(call("GET", url(cluster, 2, "/v1/topics")))["topics"]]
    assert "__consumer_offsets" not in names
    every = ok(call("GET", url(cluster, 2, "/v1/topics"),
                    params={"include_internal": "true"}))["topics"]
    assert [t["internal"] for t in every if t["name"] == "__consumer_offsets"] == [True]
    error(call("GET", url(cluster, 2, "/v1/topics"), params={"include_internal": "maybe"}),
          400, "include_internal")


def test_bad_input_is_400_naming_the_field(cluster: ProcCluster) -> None:
    topics = url(cluster, 1, "/v1/topics")
    error(call("POST", topics, raw=b"{not json"), 400, "body")
    error(call("POST", topics, raw=b""), 400, "body")
    error(call("POST", topics, [1, 2]), 400, "body")
    error(call("POST", topics, {"partitions": 1}), 400, "name")
    error(call("POST", topics, {"name": "a/b"}), 400, "name")
    error(call("POST", topics, {"name": "x" * 250}), 400, "name")
    error(call("POST", topics, {"name": ".."}), 400, "name")
    error(call("POST", topics, {"name": "ok", "partitions": "3"}), 400, "partitions")
    error(call("POST", topics, {"name": "ok", "partitions": 0}), 400, "partitions")
    error(call("POST", topics, {"name": "ok", "partitions": True}), 400, "partitions")
    error(call("POST", topics, {"name": "ok", "replication_factor": 0}), 400,
          "replication_factor")
    error(call("POST", topics, {"name": "ok", "colour": "red"}), 400, "colour")
    error(call("POST", topics, {"name": "ok", "configs": {"retention.ms": 5}}), 400,
          "configs.retention.ms")
    error(call("POST", topics, {"name": "ok", "configs": []}), 400, "configs")
    # Rejected by the controller: only 3 brokers; a bad config value.
    error(call("POST", topics, {"name": "ok", "replication_factor": 4}), 400,
          "replication_factor")
    error(call("POST", topics, {"name": "ok", "configs": {"retention.ms": "soon"}}), 400,
          "configs")
    assert call("GET", url(cluster, 1, "/v1/topics/ok")).status_code == 404
    error(call("GET", url(cluster, 1, "/v1/topics/bad*name")), 400, "name")
    error(call("GET", url(cluster, 1, "/v1/topics/bad*name/partitions")), 400, "name")
    ok(call("POST", topics, {"name": "patchme", "partitions": 1, "replication_factor": 1}), 201)
    patch = url(cluster, 1, "/v1/topics/patchme")
    error(call("PATCH", patch, raw=b""), 400, "body")
    error(call("PATCH", patch, {"partitions_count": "2"}), 400, "partitions_count")
    error(call("PATCH", patch, {"configs": {"retention.ms": 7}}), 400, "configs.retention.ms")
    error(call("PATCH", patch, {"configs": {"retention.ms": "-7x"}}), 400, "configs")
    error(call("PATCH", patch, {"replicas": 3}), 400, "replicas")
    elect = url(cluster, 1, "/v1/partitions/patchme/0/elect-leader")
    error(call("POST", elect, {"election_type": "random"}), 400, "election_type")
    error(call("POST", url(cluster, 1, "/v1/partitions/patchme/x/elect-leader")), 400,
          "partition")
    error(call("POST", url(cluster, 1, "/v1/partitions/patchme/7/elect-leader")), 404)
    error(call("POST", url(cluster, 1, "/v1/partitions/nope/0/elect-leader")), 404)


def test_elect_preferred_leader(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 3, "/v1/topics"), {
        "name": "elect-me", "partitions": 3, "replication_factor": 3}), 201)
    parts = ok(call("GET", url(cluster, 3, "/v1/topics/elect-me/partitions")))["partitions"]
    res = ok(call("POST", url(cluster, 3, "/v1/partitions/elect-me/0/elect-leader")))
    assert res["result"] == "not_needed" and res["leader"] == parts[0]["replicas"][0]
    res = ok(call("POST", url(cluster, 2, "/v1/partitions/elect-me/0/elect-leader"),
                  {"election_type": "unclean"}))
    assert res["result"] == "not_needed" and res["leader"] == parts[0]["leader"]

    # Move leadership off a preferred leader (stop it: controlled shutdown), bring it back,
    # and elect it again. A node that is not the active controller, to keep the quorum calm.
    controller = ok(call("GET", url(cluster, 1, "/v1/quorum")))["leader_id"]
    p = next(p for p in parts if p["replicas"][0] != controller)
    preferred, pid = p["replicas"][0], p["partition"]
    asker = controller
    cluster.nodes[preferred].stop()
    try:
        def moved() -> bool:
            rows = ok(call("GET", url(cluster, asker, "/v1/topics/elect-me/partitions")))
            return rows["partitions"][pid]["leader"] not in (preferred, -1)
        wait_until(moved, 20, "leadership moved away")
    finally:
        cluster.start([preferred])
    def back_in_isr() -> bool:
        rows = ok(call("GET", url(cluster, asker, "/v1/topics/elect-me/partitions")))
        return preferred in rows["partitions"][pid]["isr"]
    wait_until(back_in_isr, 30, "the preferred leader back in the ISR")
    wait_until(lambda: call("GET", url(cluster, preferred, "/v1/status/ready")).ok, 30,
               "restarted node ready")
    res = ok(call("POST", url(cluster, asker, f"/v1/partitions/elect-me/{pid}/elect-leader")))
    assert res == {"topic": "elect-me", "partition": pid, "leader": preferred,
                   "result": "elected"}


def test_shutdown_of_another_node_is_misdirected(cluster: ProcCluster) -> None:
    body = error(call("POST", url(cluster, 1, "/v1/brokers/2/shutdown")), 421)
    assert body["error_code"] == "MISDIRECTED_REQUEST"
    error(call("POST", url(cluster, 1, "/v1/brokers/42/shutdown")), 404)
    assert cluster.nodes[2].alive()


# -- metrics --------------------------------------------------------------------------------


def scrape(c: ProcCluster, node: int) -> dict[str, list[Any]]:
    resp = call("GET", url(c, node, "/metrics"))
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out: dict[str, list[Any]] = {}
    for fam in text_string_to_metric_families(resp.text):
        out[fam.name] = fam.samples
    return out


def value(samples: list[Any], name: str, **labels: str) -> float:
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, f"{name} {labels} not in {samples[:5]}"
    return float(sum(found))


def test_metrics(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "metered", "partitions": 2,
                                                    "replication_factor": 3}), 201)
    producer = ck.Producer({"bootstrap.servers": cluster.nodes[1].bootstrap, "acks": "all"})
    for k in range(20):
        producer.produce("metered", value=b"x" * 100, partition=k % 2)
    assert producer.flush(30) == 0
    active = sessions = 0.0
    for node in cluster.nodes:
        m = scrape(cluster, node)
        assert value(m["pykraft_node_info"], "pykraft_node_info", node_id=str(node)) == 1
        # Followers replicate in incremental fetch sessions (KIP-227) with each leader.
        sessions += value(m["pykraft_fetch_sessions"], "pykraft_fetch_sessions")
        active += value(m["pykraft_active_controller"], "pykraft_active_controller")
        assert value(m["pykraft_raft_epoch"], "pykraft_raft_epoch") >= 1
        assert value(m["pykraft_raft_high_watermark"], "pykraft_raft_high_watermark") > 0
        assert value(m["pykraft_cluster_leaderless_partitions"],
                     "pykraft_cluster_leaderless_partitions") == 0
        assert "pykraft_under_replicated_partitions" in m
        assert "pykraft_isr_shrinks" in m and "pykraft_isr_expands" in m
        assert value(m["pykraft_requests"], "pykraft_requests_total",
                     api="ApiVersions") >= 1
        assert value(m["pykraft_network_request_bytes"],
                     "pykraft_network_request_bytes_total") > 0
        if active == 1 and "pykraft_raft_replica_lag" in m:
            roles = {s.labels["role"] for s in m["pykraft_raft_replica_lag"]}
            assert "voter" in roles
        assert value(m["process_cpu_seconds"], "process_cpu_seconds_total") > 0
    assert active == 1
    assert sessions >= 2  # each partition's leader has a session per follower
    # Produce requests went to the partitions' leaders: counted with their latency histogram.
    total = count = 0.0
    for node in cluster.nodes:
        m = scrape(cluster, node)
        lat = m["pykraft_request_latency_seconds"]
        if any(s.labels.get("api") == "Produce" for s in lat):
            count += value(lat, "pykraft_request_latency_seconds_count", api="Produce")
            total += value(m["pykraft_requests"], "pykraft_requests_total", api="Produce")
            inf = value(lat, "pykraft_request_latency_seconds_bucket", api="Produce", le="+Inf")
            assert inf == value(lat, "pykraft_request_latency_seconds_count", api="Produce")
    assert count >= 1 and count == total


# -- consumer groups ------------------------------------------------------------------------


def test_consumer_groups(cluster: ProcCluster) -> None:
    ok(call("GET", url(cluster, 1, "/v1/consumer-groups")))
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "grouped", "partitions": 2,
                                                    "replication_factor": 3}), 201)
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for k in range(10):
        producer.produce("grouped", value=b"%d" % k, partition=k % 2)
    assert producer.flush(30) == 0
    consumer = ck.Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                            "group.id": "admin-http-group", "auto.offset.reset": "earliest",
                            "enable.auto.commit": False, "client.id": "admin-http-test"})
    try:
        consumer.subscribe(["grouped"])
        got = 0
        deadline = time.monotonic() + 45
        while got < 6 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got += 1
        assert got >= 6
        consumer.commit(asynchronous=False)
        groups = ok(call("GET", url(cluster, 2, "/v1/consumer-groups")))["groups"]
        assert "admin-http-group" in [g["group_id"] for g in groups]
        g = ok(call("GET", url(cluster, 3, "/v1/consumer-groups/admin-http-group")))
        assert g["state"] == "Stable" and g["protocol_type"] == "consumer"
        assert len(g["members"]) == 1 and g["members"][0]["client_id"] == "admin-http-test"
        assigned = {(a["topic"], p) for a in g["members"][0]["assignment"]
                    for p in a["partitions"]}
        assert assigned == {("grouped", 0), ("grouped", 1)}
        committed = sum(o["committed_offset"] for o in g["offsets"])
        assert committed == got
        assert g["total_lag"] == 10 - got
        assert sum(o["lag"] for o in g["offsets"]) == 10 - got
        m = scrape(cluster, g["coordinator_id"])
        assert value(m["pykraft_consumer_groups"], "pykraft_consumer_groups",
                     state="Stable") >= 1
        assert value(m["pykraft_group_rebalances"], "pykraft_group_rebalances_total") >= 1
        assert value(m["pykraft_consumer_group_lag"], "pykraft_consumer_group_lag",
                     group="admin-http-group") == 10 - got
    finally:
        consumer.close()
    error(call("GET", url(cluster, 3, "/v1/consumer-groups/no-such-group")), 404)


def test_latest_records_of_a_partition(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "browsed", "partitions": 2,
                                                    "replication_factor": 3}), 201)
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for k in range(30):
        producer.produce("browsed", value=b"v%d" % k, key=None if k % 3 else b"k%d" % k,
                         partition=1, headers=[("h", b"\xff%d" % k), ("empty", None)])
    assert producer.flush(30) == 0
    body = ok(call("GET", url(cluster, 2, "/v1/partitions/browsed/1/records"),
                   params={"limit": "5"}))
    assert (body["start_offset"], body["end_offset"]) == (0, 30)
    assert [r["offset"] for r in body["records"]] == list(range(25, 30))
    dec = lambda v: None if v is None else base64.b64decode(v)
    assert [dec(r["value"]) for r in body["records"]] == [b"v%d" % k for k in range(25, 30)]
    assert [dec(r["key"]) for r in body["records"]] == [
        None if k % 3 else b"k%d" % k for k in range(25, 30)]
    assert body["records"][0]["headers"] == [
        {"key": "h", "value": base64.b64encode(b"\xff25").decode()},
        {"key": "empty", "value": None}]
    default = ok(call("GET", url(cluster, 3, "/v1/partitions/browsed/1/records")))
    assert [r["offset"] for r in default["records"]] == list(range(10, 30))
    assert ok(call("GET", url(cluster, 1, "/v1/partitions/browsed/0/records")))["records"] == []
    error(call("GET", url(cluster, 1, "/v1/partitions/browsed/1/records"),
               params={"limit": "0"}), 400, "limit")
    error(call("GET", url(cluster, 1, "/v1/partitions/browsed/7/records")), 404)


def test_reset_offsets_of_an_inactive_group(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "rewound", "partitions": 2,
                                                    "replication_factor": 3}), 201)
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    for k in range(8):
        producer.produce("rewound", value=b"%d" % k, partition=k % 2)
    assert producer.flush(30) == 0
    conf = {"bootstrap.servers": cluster.bootstrap_servers, "group.id": "rewinders",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    consumer = ck.Consumer(conf)
    reset = url(cluster, 2, "/v1/consumer-groups/rewinders/reset-offsets")
    try:
        consumer.subscribe(["rewound"])
        got, deadline = 0, time.monotonic() + 45
        while got < 8 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got += 1
        assert got == 8
        consumer.commit(asynchronous=False)
        # While the group has a member the reset is refused, as Kafka's tool refuses it.
        body = error(call("POST", reset, {"topic": "rewound", "to": "earliest"}), 409)
        assert body["error_code"] == "GROUP_NOT_EMPTY"
    finally:
        consumer.close()
    wait_until(lambda: ok(call("GET", url(cluster, 1, "/v1/consumer-groups/rewinders")))
               ["state"] == "Empty", 30, "group empty")
    body = ok(call("POST", reset, {"topic": "rewound", "to": "earliest"}))
    assert body["offsets"] == [{"topic": "rewound", "partition": p, "offset": 0} for p in (0, 1)]
    g = ok(call("GET", url(cluster, 3, "/v1/consumer-groups/rewinders")))
    assert {(o["partition"], o["committed_offset"]) for o in g["offsets"]} == {(0, 0), (1, 0)}
    assert g["total_lag"] == 8
    body = ok(call("POST", reset, {"topic": "rewound", "partitions": [1], "to": "offset",
                                   "offset": 99}))
    assert body["offsets"] == [{"topic": "rewound", "partition": 1, "offset": 4}]  # clamped
    # A consumer of the group now starts where the reset put it.
    consumer = ck.Consumer(conf)
    try:
        consumer.subscribe(["rewound"])
        seen, deadline = [], time.monotonic() + 45
        while len(seen) < 4 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.append((msg.partition(), msg.offset()))
        assert sorted(seen) == [(0, 0), (0, 1), (0, 2), (0, 3)]
    finally:
        consumer.close()
    error(call("POST", reset, {"topic": "rewound", "to": "offset"}), 400, "offset")
    error(call("POST", reset, {"topic": "rewound", "to": "sideways"}), 400, "to")
    error(call("POST", reset, {"topic": "rewound", "partitions": [5], "to": "latest"}), 400,
          "partitions")
    error(call("POST", reset, {"topic": "no-such-topic", "to": "latest"}), 404)


# -- transactions ---------------------------------------------------------------------------


def test_transactions_and_partition_producers(cluster: ProcCluster) -> None:
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "txns", "partitions": 2,
                                                    "replication_factor": 3}), 201)
    tid = "admin-http-txn"
    producer = ck.Producer({"bootstrap.servers": cluster.bootstrap_servers,
                            "transactional.id": tid, "transaction.timeout.ms": 60000})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce("txns", value=b"x", partition=1)
    assert producer.flush(30) == 0

    def described(node: int, state: str) -> Any:
        body = ok(call("GET", url(cluster, node, f"/v1/transactions/{tid}")))
        return body if body["state"] == state else None

    t = wait_until(lambda: described(1, "Ongoing"), 30, "the open transaction")
    assert t["transactional_id"] == tid and t["producer_id"] >= 0
    assert t["partitions"] == [{"topic": "txns", "partitions": [1]}]
    assert t["transaction_timeout_ms"] == 60000 and t["transaction_start_time_ms"] > 0
    listed = ok(call("GET", url(cluster, 2, "/v1/transactions")))["transactions"]
    assert t in listed
    ongoing = ok(call("GET", url(cluster, 3, "/v1/transactions"), params={"state": "Ongoing"}))
    assert [x["transactional_id"] for x in ongoing["transactions"]] == [tid]
    done = ok(call("GET", url(cluster, 3, "/v1/transactions"),
                   params={"state": "CompleteCommit"}))["transactions"]
    assert tid not in [x["transactional_id"] for x in done]
    producers = ok(call("GET", url(cluster, 3, "/v1/partitions/txns/1/producers")))
    assert producers["topic"] == "txns" and producers["partition"] == 1
    assert producers["leader_id"] in cluster.nodes
    mine = [p for p in producers["producers"] if p["producer_id"] == t["producer_id"]]
    assert len(mine) == 1 and mine[0]["current_txn_start_offset"] == 0, producers
    assert mine[0]["producer_epoch"] == t["producer_epoch"] and mine[0]["last_sequence"] == 0
    producer.commit_transaction(30)
    t = wait_until(lambda: described(2, "CompleteCommit"), 30, "the committed transaction")
    assert t["partitions"] == []
    after = ok(call("GET", url(cluster, 1, "/v1/partitions/txns/1/producers")))["producers"]
    assert [p["current_txn_start_offset"] for p in after
            if p["producer_id"] == t["producer_id"]] == [None]
    assert ok(call("GET", url(cluster, 1, "/v1/partitions/txns/0/producers")))["producers"] == []
    error(call("GET", url(cluster, 1, "/v1/transactions/no-such-transaction")), 404)
    error(call("GET", url(cluster, 1, "/v1/transactions"), params={"state": "Bogus"}), 400,
          "state")
    error(call("GET", url(cluster, 1, "/v1/partitions/txns/7/producers")), 404)
    error(call("GET", url(cluster, 1, "/v1/partitions/no-such-topic/0/producers")), 404)
    error(call("GET", url(cluster, 1, "/v1/partitions/txns/x/producers")), 400, "partition")


# -- schemathesis: the served document against the server -----------------------------------

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
# Writes would create random topics or stop the node: reads and leader elections only.
# (schemathesis leaves out the document's own URL when loading it from there; the document
# is checked by test_served_document_lists_every_route.)
FUZZED = {("GET", r.path) for r in ROUTES if r.method == "GET"} - {("GET", "/v1/openapi.json")} | {
    ("POST", "/v1/partitions/{topic}/{partition}/elect-leader")}


def test_openapi_conformance(cluster: ProcCluster) -> None:
    """Generated requests (valid and, where there is input, invalid) to every read route and
    to leader election: no 5xx, and every answer's status, content type and body match the
    served document."""
    ok(call("POST", url(cluster, 1, "/v1/topics"), {"name": "fuzzed", "partitions": 1,
                                                    "replication_factor": 3}), 201)
    api = schemathesis.openapi.from_url(url(cluster, 1, "/v1/openapi.json"))
    session = requests.Session()
    ran: list[str] = []
    for result in api.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) not in FUZZED:
            continue
        modes = [GenerationMode.POSITIVE]
        if op.path_parameters or op.query or op.body:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            @settings(max_examples=10, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(session=session, checks=CHECKS)
            try:
                check()
            except Unsatisfiable:
                # No invalid input exists for this operation's parameters (e.g. a lone
                # optional boolean query parameter, which also accepts its absence).
                assert mode is GenerationMode.NEGATIVE, op.path
                continue
            ran.append(f"{op.method.upper()} {op.path} {mode.value}")
    print("schemathesis ran:", ", ".join(ran))
    assert len([r for r in ran if r.endswith("positive")]) == len(FUZZED), ran


def test_served_document_lists_every_route(cluster: ProcCluster) -> None:
    doc = ok(call("GET", url(cluster, 2, "/v1/openapi.json")))
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == {(r.method, r.path) for r in ROUTES}
    assert doc["servers"] == [{"url": cluster.nodes[2].admin_url}]


# -- controller-only nodes; a write while the active controller fails over; shutdown ---------


def test_controller_only_nodes_failover_write_and_shutdown(tmp_path: Path) -> None:
    """3 controller-only nodes + 1 broker. The active controller is killed (-9) and a topic
    is created at once through a surviving controller-only node: the POST waits through the
    election and answers 201 once committed. The controller-only node serves the read routes
    too (partition offsets by ListOffsets to the broker). Then the broker is shut down through
    its own admin API (a controlled shutdown, exit code 0)."""
    c = ProcCluster(tmp_path, controllers=3, brokers=1, admin=True)
    c.start()
    broker = c.broker_ids[0]
    try:
        leader = ok(call("GET", c.nodes[1].admin_url + "/v1/quorum"))["leader_id"]
        other = next(i for i in c.controller_ids if i != leader)
        admin = c.nodes[other].admin_url
        assert ok(call("GET", admin + "/v1/status/ready"))["status"] == "ready"
        c.nodes[leader].kill()
        started = time.monotonic()
        created = ok(call("POST", admin + "/v1/topics", {
            "name": "after-failover", "partitions": 2, "replication_factor": 1}), 201)
        took = time.monotonic() - started
        assert created["partitions_count"] == 2 and took < 30
        q = ok(call("GET", admin + "/v1/quorum"))
        assert q["leader_id"] not in (leader, -1)
        # The broker shows up as an observer once it fetches from the new leader.
        wait_until(lambda: [o["replica_id"] for o in ok(call("GET", admin + "/v1/quorum"))[
            "observers"]] == [broker], 15, "the broker observing the new leader")
        cluster = ok(call("GET", admin + "/v1/cluster"))
        assert cluster["controller_id"] == q["leader_id"]
        assert [b["broker_id"] for b in cluster["brokers"]] == [broker]
        wait_until(lambda: leader in ok(call("GET", admin + "/v1/cluster"))["health"][
            "nodes_down"], 15, "the killed controller reported down")
        assert "nodes_down" in ok(call("GET", admin + "/v1/cluster"))["health"][
            "unhealthy_reasons"]
        wait_until(lambda: call("GET", c.nodes[broker].admin_url
                                + "/v1/topics/after-failover").ok, 10, "topic on the broker")
        producer = ck.Producer({"bootstrap.servers": c.bootstrap_servers})
        for k in range(3):
            producer.produce("after-failover", value=b"%d" % k, partition=0)
        assert producer.flush(30) == 0
        parts = ok(call("GET", admin + "/v1/topics/after-failover/partitions"))["partitions"]
        assert [(p["leader"], p["offsets_source"], p["high_watermark"]) for p in parts] == [
            (broker, "list_offsets", 3), (broker, "list_offsets", 0)]
        m = scrape(c, other)
        assert value(m["pykraft_raft_epoch"], "pykraft_raft_epoch") >= 2
        assert "pykraft_leader_partitions" not in m  # no replica manager on a controller
        assert value(m["pykraft_cluster_partitions"], "pykraft_cluster_partitions") == 2

        body = ok(call("POST", c.nodes[broker].admin_url + f"/v1/brokers/{broker}/shutdown"),
                  202)
        assert body == {"broker_id": broker, "status": "shutting_down"}
        c.nodes[broker].wait_for("controlled shutdown complete", timeout=45)
        c.nodes[broker].wait_for("Kafka Server shut down cleanly", timeout=45)
        assert c.nodes[broker].proc is not None and c.nodes[broker].proc.wait(15) == 0
    finally:
        c.shutdown()


def test_admin_port_in_use_stops_start_up_with_a_clear_error(tmp_path: Path) -> None:
    c = ProcCluster(tmp_path, controllers=1, brokers=0, combined=True, admin=True)
    node = c.nodes[1]
    assert node.admin_port is not None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.admin_port))
        taken.listen()
        node.start()
        try:
            assert node.proc is not None and node.proc.wait(60) == 1
        finally:
            node.kill()
    assert f"cannot listen on admin.listeners entry http://127.0.0.1:{node.admin_port}" \
        in node.output()
