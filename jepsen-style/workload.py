"""The queue workload through confluent-kafka (librdkafka), a real Kafka client.

Producers send unique integer values to keys; key k goes to partition k % partitions. Each
producer process sends one record at a time and waits for its delivery report, so the history
shows exactly which send was acknowledged at which offset. A delivery error is ``info`` (with
retries the client cannot tell whether an earlier attempt was written); only a send the client
refused before it left (``produce()`` raised) is ``fail``. After an ``info`` the process retires
and a fresh producer takes a new process id, as in Jepsen.

Consumers poll in sessions: in ``assign`` mode a session assigns a random subset of the
partitions, starting from the beginning or just after the last offset this consumer read there,
and ends after a random number of polls; in ``subscribe`` mode a session is one group
assignment; ``mixed`` makes every third consumer an assigner and the others group members. With ``commit=True`` consumers commit the
offsets they read and record the group's committed offsets (``committed`` ops).

The final read assigns every partition from offset 0 and reads up to the high watermark,
asking for it again until two successive answers agree and everything below them was read.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from history import History

OFFSET_STORED = -1000  # librdkafka: start at the committed offset
# librdkafka's synchronous commit can block for good: when its coordinator is fenced, the
# broker drops out of Metadata responses (as in Kafka), librdkafka decommissions it, and its
# coordinator lookup then logs "no broker available for coordinator query" for good
# (librdkafka issue 5511). Past this the consumer is abandoned and a fresh one (a new process)
# takes over.
COMMIT_STUCK_S = 30.0


class ClientStuck(Exception):
    pass


@dataclass(slots=True)
class WorkloadConfig:
    bootstrap: str
    topic: str = "jepsen"
    partitions: int = 4
    replication_factor: int = 3
    min_insync: int = 2
    acks: str = "all"
    idempotence: bool = True
    producers: int = 4  # producer i sends to partition i % partitions
    consumers: int = 2
    rate: float = 40.0  # sends per second over all producers
    keys: int = 16
    consumer_mode: str = "assign"  # "subscribe" (a group), or "mixed" (alternating)
    commit: bool = False
    group: str = "jepsen-group"
    message_timeout_ms: int = 10000
    extra_topic_config: dict[str, str] = field(default_factory=dict)
    # Security settings added to every client's config (security.py SaslSsl.client_conf).
    client: dict[str, str] = field(default_factory=dict)

    def conf(self) -> dict[str, Any]:
        """A client's bootstrap servers and security settings."""
        return {"bootstrap.servers": self.bootstrap, **self.client}


def create_topic(cfg: WorkloadConfig, timeout: float = 60.0) -> None:
    admin = AdminClient(cfg.conf())
    topic_config = {"min.insync.replicas": str(cfg.min_insync), **cfg.extra_topic_config}
    deadline = time.monotonic() + timeout
    while True:
        futures = admin.create_topics([NewTopic(cfg.topic, cfg.partitions, cfg.replication_factor,
                                                config=topic_config)], request_timeout=15)
        try:
            futures[cfg.topic].result(20)
            break
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e):
                break
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    wait_healthy(cfg, timeout=max(5.0, deadline - time.monotonic()))


def partition_leaders(cfg: WorkloadConfig, timeout: float = 5.0) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, isr) from a Metadata request (leader -1: none)."""
    admin = AdminClient(cfg.conf())
    md = admin.list_topics(cfg.topic, timeout=timeout)
    t = md.topics.get(cfg.topic)
    if t is None or t.error is not None:
        return {}
    return {p: (pm.leader, list(pm.isrs)) for p, pm in t.partitions.items()}


def wait_healthy(cfg: WorkloadConfig, timeout: float = 60.0) -> bool:
    """Wait until every partition has a leader and a full ISR. Returns whether it happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            leaders = partition_leaders(cfg)
        except KafkaException:
            leaders = {}
        if len(leaders) == cfg.partitions and all(
                leader >= 0 and len(isr) >= cfg.replication_factor
                for leader, isr in leaders.values()):
            return True
        time.sleep(0.5)
    return False


def _record(m: Any) -> list[int]:
    """[partition, offset, value] of a consumed message (our values are decimal integers)."""
    p, o, v = m.partition(), m.offset(), m.value()
    assert p is not None and o is not None and v is not None, "message without position"
    return [int(p), int(o), int(v)]


class Workload:
    def __init__(self, cfg: WorkloadConfig, history: History, rnd: random.Random) -> None:
        self.cfg = cfg
        self.history = history
        self.rnd = rnd
        self.stop = threading.Event()
        self._value = 0
        self._next_process = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._abandoned: list[Consumer] = []  # stuck consumers, kept referenced, never closed

    def _new_process(self) -> int:
        with self._lock:
            self._next_process += 1
            return self._next_process

    def _new_value(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    # -- producers ----------------------------------------------------------------------------

    def _producer_conf(self) -> dict[str, Any]:
        return {
            **self.cfg.conf(),
            "acks": self.cfg.acks,
            "enable.idempotence": self.cfg.idempotence,
            "retries": 1000,
            "retry.backoff.ms": 100,
            "message.timeout.ms": self.cfg.message_timeout_ms,
            "request.timeout.ms": min(5000, self.cfg.message_timeout_ms),
            "linger.ms": 0,
            "socket.timeout.ms": 5000,
            "topic.metadata.refresh.interval.ms": 2000,
            "log_level": 0,
        }

    def _producer_loop(self, seed: int, own: int) -> None:
        rnd = random.Random(seed)
        per_partition = max(1, self.cfg.keys // self.cfg.partitions)
        process = self._new_process()
        producer = Producer(self._producer_conf())
        period = self.cfg.producers / self.cfg.rate
        while not self.stop.is_set():
            # Each producer owns one partition's keys: a process blocked on a paused leader
            # does not stall the others.
            key = own + self.cfg.partitions * rnd.randrange(per_partition)
            partition = key % self.cfg.partitions
            value = self._new_value()
            self.history.add("invoke", "send", process, key=key, partition=partition,
                             value=value)
            result: list[Any] = []
            done = threading.Event()

            def on_delivery(err: Any, msg: Any, result: list[Any] = result,
                            done: threading.Event = done) -> None:
                result.append((err, msg.offset() if err is None else None))
                done.set()

            try:
                producer.produce(self.cfg.topic, value=str(value).encode(),
                                 key=str(key).encode(), partition=partition,
                                 on_delivery=on_delivery)
            except (BufferError, KafkaException) as e:
                self.history.add("fail", "send", process, key=key, partition=partition,
                                 value=value, error=str(e))
                continue
            deadline = time.monotonic() + self.cfg.message_timeout_ms / 1000 + 10
            while not done.is_set() and time.monotonic() < deadline:
                producer.poll(0.1)
            if result and result[0][0] is None:
                self.history.add("ok", "send", process, key=key, partition=partition,
                                 value=value, offset=result[0][1])
            else:
                err = str(result[0][0]) if result else "no delivery report"
                self.history.add("info", "send", process, key=key, partition=partition,
                                 value=value, error=err)
                process = self._new_process()
                old, producer = producer, Producer(self._producer_conf())
                threading.Thread(target=old.flush, args=(1,), daemon=True).start()
            self.stop.wait(rnd.uniform(0.5, 1.5) * period)

    # -- consumers ----------------------------------------------------------------------------

    def _consumer_conf(self) -> dict[str, Any]:
        return {
            **self.cfg.conf(),
            "group.id": self.cfg.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
            "fetch.wait.max.ms": 200,
            "socket.timeout.ms": 5000,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "log_level": 0,
        }

    def _poll(self, consumer: Consumer, process: int, session: Callable[[], int]) -> dict[int, int]:
        """One poll op; returns the last offset read per partition. ``session`` is read again
        after the poll: a group rebalance runs its callback inside ``consume()``, and what
        that call returns belongs to the new assignment."""
        self.history.add("invoke", "poll", process, session=session())
        try:
            msgs = consumer.consume(num_messages=100, timeout=0.5)
        except KafkaException as e:
            self.history.add("info", "poll", process, session=session(), error=str(e))
            return {}
        reads = []
        last: dict[int, int] = {}
        for m in msgs:
            if m.error() is not None:
                continue
            r = _record(m)
            reads.append(r)
            last[r[0]] = r[1]
        watermarks: dict[int, int] = {}
        for p in last:
            try:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(self.cfg.topic, p), cached=True)
                watermarks[p] = int(high)
            except KafkaException:
                pass
        self.history.add("ok", "poll", process, session=session(), reads=reads,
                         watermarks=watermarks)
        return last

    def _commit(self, consumer: Consumer, process: int, offsets: dict[int, int],
                group: str, scope: set[int] | None = None) -> None:
        """Commit the next offsets after ``offsets``, then read the group's committed offsets
        back. ``group`` names the sequence in the history within which committed offsets must
        not go backwards; ``scope`` (if given) collects the partitions this sequence committed,
        and only those are read back (a rewinding session overwrites an earlier one's)."""
        if not offsets:
            return
        self.history.add("invoke", "commit", process, group=group, offsets=offsets)
        tps = [TopicPartition(self.cfg.topic, p, o + 1) for p, o in offsets.items()]
        outcome: list[BaseException | None] = []

        def commit() -> None:
            try:
                consumer.commit(offsets=tps, asynchronous=False)
                outcome.append(None)
            except BaseException as e:  # noqa: BLE001 - handed back to the consumer thread
                outcome.append(e)

        t = threading.Thread(target=commit, daemon=True)
        t.start()
        t.join(COMMIT_STUCK_S)
        if not outcome:
            self.history.add("info", "commit", process, group=group, offsets=offsets,
                             error=f"commit did not return in {COMMIT_STUCK_S:g} s")
            self.history.add("info", "client-stuck", process, group=group, f_stuck="commit")
            self._abandoned.append(consumer)  # never closed: close() would block too
            raise ClientStuck()
        if outcome[0] is None:
            self.history.add("ok", "commit", process, group=group, offsets=offsets)
            if scope is not None:
                scope.update(offsets)
        elif isinstance(outcome[0], KafkaException):
            self.history.add("info", "commit", process, group=group, offsets=offsets,
                             error=str(outcome[0]))
            return
        else:
            raise outcome[0]
        self.history.add("invoke", "committed", process, group=group)
        try:
            parts = sorted(scope) if scope is not None else range(self.cfg.partitions)
            got = consumer.committed([TopicPartition(self.cfg.topic, p) for p in parts],
                                     timeout=5)
            self.history.add("ok", "committed", process, group=group,
                             offsets={tp.partition: tp.offset for tp in got})
        except KafkaException as e:
            self.history.add("info", "committed", process, group=group, error=str(e))

    def _consumer_loop(self, seed: int, index: int) -> None:
        rnd = random.Random(seed)
        while not self.stop.is_set():
            try:
                self._consumer_process(rnd, index)
            except ClientStuck:
                continue  # a fresh consumer, a new process

    def _consumer_process(self, rnd: random.Random, index: int) -> None:
        process = self._new_process()
        conf = self._consumer_conf()
        mode = self.cfg.consumer_mode
        if mode == "mixed":
            mode = "assign" if index % 3 == 0 else "subscribe"  # 2 of 3 share the group
        if mode == "assign":
            # Assigning consumers overlap and rewind: each commits to a group of its own, and
            # its committed offsets must only move forward within one session.
            conf["group.id"] = f"{self.cfg.group}-{process}"
        consumer = Consumer(conf)
        seen: dict[int, int] = {}
        session = 0
        try:
            if mode == "subscribe":
                self._subscribe_loop(consumer, process, rnd)
                return
            while not self.stop.is_set():
                session += 1
                parts = sorted(rnd.sample(range(self.cfg.partitions),
                                          rnd.randint(1, self.cfg.partitions)))
                offsets = {p: (seen[p] + 1 if p in seen and rnd.random() < 0.7
                               else OFFSET_BEGINNING) for p in parts}
                self.history.add("invoke", "assign", process, session=session, offsets=offsets)
                consumer.assign([TopicPartition(self.cfg.topic, p, o)
                                 for p, o in offsets.items()])
                self.history.add("ok", "assign", process, session=session, offsets=offsets)
                committed_here: set[int] = set()
                for _ in range(rnd.randint(5, 40)):
                    if self.stop.is_set():
                        break
                    last = self._poll(consumer, process, functools.partial(int, session))
                    seen.update(last)
                    if self.cfg.commit and last:
                        self._commit(consumer, process, last,
                                     f"{conf['group.id']}/session-{session}", committed_here)
                consumer.unassign()
        finally:
            if consumer not in self._abandoned:
                consumer.close()

    def _subscribe_loop(self, consumer: Consumer, process: int, rnd: random.Random) -> None:
        session = [0]

        def on_assign(c: Consumer, tps: list[TopicPartition]) -> None:
            session[0] += 1
            self.history.add("ok", "assign", process, session=session[0],
                             offsets={tp.partition: OFFSET_STORED for tp in tps})

        consumer.subscribe([self.cfg.topic], on_assign=on_assign)
        while not self.stop.is_set():
            last = self._poll(consumer, process, lambda: session[0])
            if self.cfg.commit and last:
                self._commit(consumer, process, last, self.cfg.group)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.cfg.producers):
            self._spawn(self._producer_loop, self.rnd.randrange(2**32), f"producer-{i}",
                        i % self.cfg.partitions)
        for i in range(self.cfg.consumers):
            self._spawn(self._consumer_loop, self.rnd.randrange(2**32), f"consumer-{i}", i)

    def _spawn(self, fn: Any, seed: int, name: str, *args: Any) -> None:
        def run() -> None:
            try:
                fn(seed, *args)
            except Exception as e:  # noqa: BLE001 - a crashed worker is a harness bug: record it
                self.history.add("info", "worker-crash", name, error=repr(e))

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def finish(self, timeout: float = 30.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))

    def _high_watermarks(self, consumer: Consumer, parts: list[int],
                         deadline: float) -> dict[int, int] | None:
        """Every partition's high watermark, asked of its leader; None when some partition
        gave none before ``deadline``."""
        ends: dict[int, int] = {}
        for p in parts:
            while p not in ends:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                try:
                    got = consumer.get_watermark_offsets(
                        TopicPartition(self.cfg.topic, p), timeout=min(5.0, left))
                except KafkaException:
                    got = None
                if got is not None and got[1] >= 0:  # None: the request timed out
                    ends[p] = int(got[1])
                else:
                    time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        return ends

    def final_read(self, timeout: float = 60.0) -> bool:
        """Read every partition from offset 0 up to its high watermark. Returns whether every
        partition was read to the end.

        The high watermarks are asked again once they were read up to, and reading goes on
        until two successive answers agree: a high watermark that moved during the read (a
        follower catching up, a late retry landing) would otherwise leave records past the
        read's end, and the checker (checker.py) takes a complete final read for the whole
        log. The workload is stopped by now, so this settles; if it does not before
        ``timeout``, the read is recorded with ``complete: false``. ``ends`` are the high
        watermarks it last read up to, ``hw_queries`` how many times they were asked."""
        process = self._new_process()
        consumer = Consumer({**self._consumer_conf(), "group.id": self.cfg.group + "-final"})
        parts = list(range(self.cfg.partitions))
        self.history.add("invoke", "final-read", process, session=0)
        reads: list[list[int]] = []
        deadline = time.monotonic() + timeout
        try:
            ends = self._high_watermarks(consumer, parts, deadline)
            if ends is None:
                self.history.add("info", "final-read", process, session=0,
                                 error="no high watermark for every partition")
                return False
            queries = 1
            consumer.assign([TopicPartition(self.cfg.topic, p, OFFSET_BEGINNING) for p in parts])
            pos = {p: -1 for p in parts}
            complete = False
            while True:
                while (any(pos[p] + 1 < ends[p] for p in parts)
                       and time.monotonic() < deadline):
                    for m in consumer.consume(num_messages=500, timeout=1.0):
                        if m.error() is None:
                            r = _record(m)
                            reads.append(r)
                            pos[r[0]] = max(pos[r[0]], r[1])
                if any(pos[p] + 1 < ends[p] for p in parts) or time.monotonic() >= deadline:
                    break
                again = self._high_watermarks(consumer, parts, deadline)
                if again is None:
                    break
                queries += 1
                if again == ends:
                    complete = True
                    break
                ends = again
            self.history.add("ok", "final-read", process, session=0, reads=reads,
                             ends=ends, complete=complete, hw_queries=queries)
            return complete
        except KafkaException as e:
            self.history.add("info", "final-read", process, session=0, error=str(e))
            return False
        finally:
            consumer.close()
