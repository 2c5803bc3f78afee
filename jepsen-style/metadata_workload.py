"""The metadata workload: topic creation and deletion, leader elections and reads of every
node's metadata, under faults, written to the history for ``metadata_checker.py``.

Clients:
- ``admin-<i>`` threads create topics (unique names ``md-<seq>``, 1-3 partitions, RF 1-3)
  through confluent-kafka's AdminClient or the HTTP admin API (``POST /v1/topics`` on a random
  node), and delete topics they created (AdminClient).
- ``aimed`` creates topics through an AdminClient bootstrapped from the node that last
  answered DescribeQuorum as the leader (a short timeout, then the next), so that writes
  reach a leader just cut off. Each operation is an ``invoke`` and an
  ``ok`` / ``fail`` (a definite Kafka error) / ``info`` (timeout, no answer: unknown).
- ``elector``: preferred leader elections of random partitions (AdminClient.elect_leaders, what
  ``kafka-leader-election`` sends); the nemesis' kills and pauses make the ISR shrink and grow.
- ``reader``: every ``read_interval_s`` each node's own image (``GET /v1/metadata/image``:
  offset, epoch, digest, topics) and each controller's answer to DescribeQuorum (leader id,
  epoch, high watermark) sent straight to its controller listener: a controller that answers
  as leader is a read served by a leader, stale if it was cut off from a majority for longer
  than the fetch timeout (the checker decides).

After healing, ``final_read`` waits until the quorum's voters all stand at the high watermark
and every node's image at the same offset, twice in a row, and records each node's last image
and the quorum state (``final-image``, ``final-quorum``). The checker then also reads every
node's ``__cluster_metadata`` log from disk (``metadata_checker.read_node_log``).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from history import History

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.controller.raft_wire import describe_quorum_from_wire, describe_quorum_request
from broker.protocol.api_keys import ApiKey

try:  # confluent-kafka >= 2.5
    from confluent_kafka import ElectionType
except ImportError:  # pragma: no cover - older clients: no elections
    ElectionType = None

OP_TIMEOUT_S = 15.0
AIMED_TIMEOUT_S = 3.0  # the aimed client gives up early (outcome unknown) and sends the next
HTTP_TIMEOUT_S = 2.0


@dataclass(slots=True)
class MetadataConfig:
    bootstrap: str
    # node id -> admin URL (http://ip:port) of every node; node id -> controller (host, port).
    admin_urls: dict[int, str]
    controllers: dict[int, tuple[str, int]]
    brokers_by_node: dict[int, str] = field(default_factory=dict)  # node id -> host:port
    brokers: int = 3
    admins: int = 2
    rate: float = 4.0  # admin operations per second, all admin threads
    aimed_rate: float = 3.0  # creates per second sent to the last known leader's HTTP API
    delete_fraction: float = 0.25
    http_fraction: float = 0.2
    elect_interval_s: float = 2.0
    read_interval_s: float = 0.3
    client: dict[str, str] = field(default_factory=dict)

    def conf(self) -> dict[str, Any]:
        # log_level 2: librdkafka's connection errors under faults are expected, not shown.
        return {"bootstrap.servers": self.bootstrap, "log_level": 2, **self.client}


def _error_name(e: BaseException) -> str:
    if isinstance(e, KafkaException) and e.args:
        err = e.args[0]
        name = getattr(err, "name", None)
        if callable(name):
            return str(name())
    return type(e).__name__


def _definite(name: str) -> bool:
    """A Kafka error that says the operation did not happen (not a timeout or lost answer)."""
    return name not in ("REQUEST_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT", "NOT_CONTROLLER",
                        "_MSG_TIMED_OUT", "KafkaException", "TimeoutError", "TOPIC_ALREADY_EXISTS",
                        "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "UNKNOWN_TOPIC_OR_PARTITION",
                        "COORDINATOR_NOT_AVAILABLE", "_DESTROY", "_ALL_BROKERS_DOWN")


def http_json(url: str, method: str = "GET", body: Any = None,
              timeout: float = HTTP_TIMEOUT_S) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None


async def _describe_quorum(host: str, port: int) -> Any:
    conn = await KafkaConnection.connect(host, port, timeout_s=1.0)
    try:
        resp = await conn.send(ApiKey.DESCRIBE_QUORUM, describe_quorum_request(), timeout_s=1.0)
    finally:
        await conn.close()
    desc, err = describe_quorum_from_wire(resp)
    return desc, err


def describe_quorum(host: str, port: int) -> dict[str, Any] | None:
    """Leader id, epoch and high watermark as ``host:port`` answers DescribeQuorum (it answers
    only as the leader), or None (no answer, or not the leader)."""
    try:
        desc, err = asyncio.run(_describe_quorum(host, port))
    except (KafkaConnectionError, KafkaTimeoutError, OSError, TimeoutError):
        return None
    if desc is None or err:
        return None
    return {"leader_id": desc.leader_id, "epoch": desc.leader_epoch,
            "high_watermark": desc.high_watermark,
            "voters": {v.replica_id: v.log_end_offset for v in desc.voters}}


class MetadataWorkload:
    def __init__(self, cfg: MetadataConfig, history: History, rnd: random.Random) -> None:
        self.cfg = cfg
        self.history = history
        self.rnd = rnd
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.created: list[str] = []  # acknowledged creates, candidates for deletion
        # The node that last answered DescribeQuorum as the leader: admin-0 sends its creates
        # to that node's HTTP API, so writes reach a leader that may just have been cut off.
        self.leader_hint: int | None = None
        self._aimed_clients: dict[int, AdminClient] = {}

    def _next_topic(self) -> str:
        with self._lock:
            self._seq += 1
            return f"md-{self._seq}"

    # -- admin operations -----------------------------------------------------------------

    def _create(self, admin: AdminClient | None, process: str, rnd: random.Random) -> None:
        topic = self._next_topic()
        parts, rf = rnd.randint(1, 3), rnd.randint(1, min(3, self.cfg.brokers))
        aimed = process == "aimed"
        via = "http" if not aimed and rnd.random() < self.cfg.http_fraction else "admin"
        value = {"topic": topic, "partitions": parts, "replication_factor": rf, "via": via}
        self.history.add("invoke", "create", process, value=value)
        if via == "http":
            url = self.cfg.admin_urls[rnd.choice(sorted(self.cfg.admin_urls))]
            value["url"] = url
            try:
                status, body = http_json(f"{url}/v1/topics", "POST",
                                         {"name": topic, "partitions": parts,
                                          "replication_factor": rf}, timeout=OP_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                # Refused: the request never reached a server; else its outcome is unknown.
                refused = isinstance(getattr(e, "reason", e), ConnectionRefusedError)
                self.history.add("fail" if refused else "info", "create", process,
                                 value=value, error=repr(e))
                return
            if status == 201:
                self.history.add("ok", "create", process, value=value)
                with self._lock:
                    self.created.append(topic)
                return
            code = (body or {}).get("error_code", str(status)) if isinstance(body, dict) \
                else str(status)
            # 503/504 (no controller, no answer in time): the write may still commit.
            kind = "fail" if status in (400, 409) and code != "TOPIC_ALREADY_EXISTS" else "info"
            self.history.add(kind, "create", process, value=value, error=code)
            return
        timeout = OP_TIMEOUT_S
        if aimed:
            admin, timeout = self._aimed_admin(value), AIMED_TIMEOUT_S
        assert admin is not None
        futures = admin.create_topics([NewTopic(topic, parts, rf)],
                                      operation_timeout=timeout, request_timeout=timeout)
        try:
            futures[topic].result(timeout + 5)
        except Exception as e:  # noqa: BLE001 - any client error is recorded
            name = _error_name(e)
            self.history.add("fail" if _definite(name) else "info", "create", process,
                             value=value, error=name)
            return
        self.history.add("ok", "create", process, value=value)
        with self._lock:
            self.created.append(topic)

    def _delete(self, admin: AdminClient, process: str, rnd: random.Random) -> None:
        with self._lock:
            if not self.created:
                return
            topic = self.created.pop(rnd.randrange(len(self.created)))
        value = {"topic": topic, "via": "admin"}
        self.history.add("invoke", "delete", process, value=value)
        futures = admin.delete_topics([topic], operation_timeout=OP_TIMEOUT_S,
                                      request_timeout=OP_TIMEOUT_S)
        try:
            futures[topic].result(OP_TIMEOUT_S + 5)
        except Exception as e:  # noqa: BLE001 - any client error is recorded
            name = _error_name(e)
            self.history.add("fail" if _definite(name) else "info", "delete", process,
                             value=value, error=name)
            return
        self.history.add("ok", "delete", process, value=value)

    def _admin_loop(self, index: int, seed: int) -> None:
        rnd = random.Random(seed)
        process = f"admin-{index}"
        admin = AdminClient(self.cfg.conf())
        period = self.cfg.admins / self.cfg.rate
        while not self.stop.is_set():
            t0 = time.monotonic()
            if rnd.random() < self.cfg.delete_fraction:
                self._delete(admin, process, rnd)
            else:
                self._create(admin, process, rnd)
            self.stop.wait(max(0.0, period - (time.monotonic() - t0)))

    def _aimed_admin(self, value: dict[str, Any]) -> AdminClient:
        """An AdminClient bootstrapped from the last known leader alone: a node names itself
        the controller in its Metadata answers (broker/node.py), so the client sends its
        CreateTopics there."""
        node = self.leader_hint
        assert node is not None
        value["node"] = node
        if node not in self._aimed_clients:
            self._aimed_clients[node] = AdminClient(
                {**self.cfg.conf(), "bootstrap.servers": self.cfg.brokers_by_node[node]})
        return self._aimed_clients[node]

    def _aimed_loop(self, seed: int) -> None:
        rnd = random.Random(seed)
        while not self.stop.wait(1.0 / self.cfg.aimed_rate):
            if self.leader_hint in self.cfg.brokers_by_node:
                self._create(None, "aimed", rnd)

    def _elect_loop(self, seed: int) -> None:
        rnd = random.Random(seed)
        admin = AdminClient(self.cfg.conf())
        while not self.stop.wait(self.cfg.elect_interval_s):
            with self._lock:
                topics = list(self.created)
            if not topics or ElectionType is None:
                continue
            tp = TopicPartition(rnd.choice(topics), 0)
            value = {"topic": tp.topic, "partition": 0, "type": "preferred"}
            self.history.add("invoke", "elect", "elector", value=value)
            try:
                admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(OP_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - outcome recorded, never checked as data
                self.history.add("info", "elect", "elector", value=value, error=_error_name(e))
                continue
            self.history.add("ok", "elect", "elector", value=value)

    # -- reads ------------------------------------------------------------------------------

    def read_image(self, node: int, f: str = "image") -> dict[str, Any] | None:
        try:
            status, body = http_json(f"{self.cfg.admin_urls[node]}/v1/metadata/image")
        except (OSError, TimeoutError, ValueError):
            return None
        if status != 200 or not isinstance(body, dict):
            return None
        self.history.add("ok", f, "reader", node=node, offset=body["offset"],
                         epoch=body["epoch"], digest=body["digest"],
                         topics=sorted(body["topics"]), loader_failed=body.get("loader_failed"))
        return body

    def read_quorum(self, node: int) -> dict[str, Any] | None:
        host, port = self.cfg.controllers[node]
        op = self.history.add("invoke", "quorum-read", "reader", node=node)
        q = describe_quorum(host, port)
        if q is None:
            self.history.add("fail", "quorum-read", "reader", node=node, invoked=op["index"])
            return None
        self.leader_hint = q["leader_id"] if q["leader_id"] == node else self.leader_hint
        self.history.add("ok", "quorum-read", "reader", node=node, invoked=op["index"],
                         invoke_time=op["time"], leader_id=q["leader_id"], epoch=q["epoch"],
                         high_watermark=q["high_watermark"])
        return q

    def _read_loop(self) -> None:
        while not self.stop.wait(self.cfg.read_interval_s):
            for node in sorted(self.cfg.admin_urls):
                self.read_image(node)
            for node in sorted(self.cfg.controllers):
                self.read_quorum(node)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.cfg.admins):
            self._spawn(self._admin_loop, f"admin-{i}", i, self.rnd.randrange(2**31))
        self._spawn(self._aimed_loop, "aimed", self.rnd.randrange(2**31))
        self._spawn(self._elect_loop, "elector", self.rnd.randrange(2**31))
        self._spawn(self._read_loop, "reader")

    def _spawn(self, fn: Any, name: str, *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - a crashed worker is recorded
                self.history.add("info", "worker-crash", name, error=repr(e))
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def finish(self, timeout: float = 40.0) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)

    def final_read(self, timeout: float = 90.0) -> bool:
        """Wait for a settled quorum (every voter's log end at the high watermark) and every
        node's image at one offset, seen twice in a row; record them. True if it happened."""
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] | None = None
        while time.monotonic() < deadline:
            q = None
            for node in sorted(self.cfg.controllers):
                q = describe_quorum(*self.cfg.controllers[node])
                if q is not None:
                    break
            images = {}
            for node in sorted(self.cfg.admin_urls):
                try:
                    status, body = http_json(f"{self.cfg.admin_urls[node]}/v1/metadata/image")
                except (OSError, TimeoutError, ValueError):
                    continue
                if status == 200:
                    images[node] = body
            settled = (q is not None and len(set(q["voters"].values())) == 1
                       and next(iter(q["voters"].values())) == q["high_watermark"]
                       and len(images) == len(self.cfg.admin_urls)
                       and len({b["offset"] for b in images.values()}) == 1
                       and next(iter(images.values()))["offset"] < q["high_watermark"])
            key = ((q["high_watermark"], next(iter(images.values()))["offset"])
                   if settled and q is not None else None)
            if settled and key == last:
                assert q is not None
                self.history.add("ok", "final-quorum", "reader", leader_id=q["leader_id"],
                                 epoch=q["epoch"], high_watermark=q["high_watermark"])
                for node, body in sorted(images.items()):
                    self.history.add("ok", "final-image", "reader", node=node,
                                     offset=body["offset"], epoch=body["epoch"],
                                     digest=body["digest"], topics=sorted(body["topics"]),
                                     loader_failed=body.get("loader_failed"))
                return True
            last = key
            time.sleep(1.0)
        # Not settled: record what each node shows, for the report.
        for node in sorted(self.cfg.admin_urls):
            self.read_image(node, f="final-image")
        return False
