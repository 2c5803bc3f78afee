"""The transactional workload through confluent-kafka (librdkafka), checked by txn_checker.py.

- Producers: ``producers`` transactional producers, each with its own transactional.id. Each
  transaction writes 1-5 records to random partitions of the two input topics (values
  ``<slot>/<txn>/<seq>``, unique); about ``abort_rate`` of them are aborted on purpose. The
  commit's outcome is ``ok`` when commit_transaction returned, ``fail`` when the transaction
  certainly did not commit (its abort was acknowledged, or its commit was never asked for),
  ``info`` when unknown (a fatal error or a timeout during the commit). After a fatal error
  (fenced, or a commit of unknown outcome) the producer is replaced by a new one with the same
  transactional.id (InitProducerId fences the old one and finishes its transaction), under a
  new process id.
- Pipeline (consume-transform-produce): ``pipelines`` workers share one consumer group and read
  the input topics read_committed; for each batch, one transaction writes a derived record
  ``<input value>><ctp txn>`` per input to the output topic and the consumer's positions with
  send_offsets_to_transaction, so every input must land in the output exactly once. After a
  transaction that did not commit, the worker starts over with a fresh consumer (from the
  group's committed offsets) and producer.
- At the end: producers stop, the pipeline drains (its group's committed offsets reach the end
  of the input) before it stops, then a final read per isolation level reads every partition
  of the three topics from offset 0 to the high watermark (until two successive answers agree),
  and the group's committed offsets are read with require_stable (read_committed consumer).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from history import History
from workload import WorkloadConfig, create_topic

RC, RU = "read_committed", "read_uncommitted"


@dataclass(slots=True)
class TxnConfig:
    bootstrap: str
    inputs: tuple[str, str] = ("txn-a", "txn-b")
    output: str = "txn-out"
    partitions: int = 3
    replication_factor: int = 3
    min_insync: int = 2
    producers: int = 3
    pipelines: int = 2
    rate: float = 10.0  # transactions per second over all producers
    abort_rate: float = 0.2
    group: str = "jepsen-txn-pipeline"
    transaction_timeout_ms: int = 10000
    op_timeout_s: float = 15.0  # per begin / commit / abort / send_offsets call
    client: dict[str, str] = field(default_factory=dict)  # as WorkloadConfig.client

    @property
    def topics(self) -> list[str]:
        return [*self.inputs, self.output]

    def topic_config(self, topic: str) -> WorkloadConfig:
        """The queue workload's config for ``topic``: create_topic and partition_leaders."""
        return WorkloadConfig(bootstrap=self.bootstrap, topic=topic, partitions=self.partitions,
                              replication_factor=self.replication_factor,
                              min_insync=self.min_insync, client=self.client)


def create_topics(cfg: TxnConfig) -> None:
    for t in cfg.topics:
        create_topic(cfg.topic_config(t))


def _kafka_error(e: BaseException) -> KafkaError | None:
    err = e.args[0] if isinstance(e, KafkaException) and e.args else None
    return err if isinstance(err, KafkaError) else None


class TxnWorkload:
    def __init__(self, cfg: TxnConfig, history: History, rnd: random.Random) -> None:
        self.cfg = cfg
        self.history = history
        self.rnd = rnd
        self.stop_producers = threading.Event()
        self.stop = threading.Event()  # stops the pipeline too
        self._lock = threading.Lock()
        self._next_process = 0
        self._next_txn = 0
        self._producers: list[threading.Thread] = []
        self._pipelines: list[threading.Thread] = []

    def transactional_ids(self) -> list[str]:
        return ([f"jepsen-txn-{i}" for i in range(self.cfg.producers)]
                + [f"jepsen-txn-pipe-{i}" for i in range(self.cfg.pipelines)])

    def _new(self, what: str) -> int:
        with self._lock:
            if what == "process":
                self._next_process += 1
                return self._next_process
            self._next_txn += 1
            return self._next_txn

    # -- clients ------------------------------------------------------------------------------

    def _producer(self, tid: str, stop: threading.Event) -> Producer:
        """A transactional producer, initialised (InitProducerId); retried until it works or
        ``stop`` is set. Raises KafkaException only if stopped meanwhile."""
        while True:
            p = Producer({
                "bootstrap.servers": self.cfg.bootstrap, **self.cfg.client,
                "transactional.id": tid,
                "transaction.timeout.ms": self.cfg.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "message.timeout.ms": self.cfg.transaction_timeout_ms - 1000,
                "socket.timeout.ms": 5000,
                "topic.metadata.refresh.interval.ms": 2000,
                "log_level": 0,
            })
            try:
                p.init_transactions(self.cfg.op_timeout_s)
                return p
            except KafkaException:
                _abandon(p)
                if stop.wait(1.0):
                    raise

    def _consumer_conf(self, group: str, isolation: str) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.cfg.bootstrap, **self.cfg.client,
            "group.id": group,
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 200,
            "socket.timeout.ms": 5000,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "log_level": 0,
        }

    # -- one transaction ----------------------------------------------------------------------

    def _run_txn(self, producer: Producer, kind: str, process: int, tid: str, txn: int,
                 writes: list[list[Any]], abort: bool, consumer: Consumer | None = None,
                 **invoke: Any) -> tuple[str, bool]:
        """Run one transaction and record it; returns its outcome (ok, fail or info) and
        whether the producer can go on (committed, or its abort was acknowledged)."""
        self.history.add("invoke", kind, process, txn=txn, tid=tid, writes=writes,
                         abort=abort, **invoke)
        acked: list[list[Any]] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                acked.append([msg.topic(), msg.partition(), msg.offset(),
                              msg.value().decode()])

        def done(type_: str, **extra: Any) -> tuple[str, bool]:
            try:
                producer.poll(0)  # delivery reports; raises once the producer hit a fatal error
            except KafkaException as e:
                extra.setdefault("error", f"poll: {e}")
            self.history.add(type_, kind, process, txn=txn, tid=tid, acked=list(acked),
                             **extra)
            return type_, type_ == "ok" or extra.get("aborted") is True

        t = self.cfg.op_timeout_s
        try:
            producer.begin_transaction()
        except KafkaException as e:
            return done("fail", aborted=False, error=f"begin: {e}")
        try:
            for topic, partition, value in writes:
                producer.produce(topic, value=value.encode(), key=value.split(">")[0].encode(),
                                 partition=partition, on_delivery=on_delivery)
            if consumer is not None:
                positions = [TopicPartition(tp, p, o) for tp, p, o in invoke["positions"]]
                producer.send_offsets_to_transaction(
                    positions, consumer.consumer_group_metadata(), t)
        except (BufferError, KafkaException) as e:
            # The commit was never asked for: it cannot commit (the coordinator aborts it,
            # at the latest when the transactional.id is fenced or the transaction times out).
            return done("fail", aborted=self._abort(producer), error=f"before commit: {e}")
        if abort:
            return done("fail", aborted=self._abort(producer))
        deadline = time.monotonic() + 2 * t
        while True:
            try:
                producer.commit_transaction(t)
                return done("ok")
            except KafkaException as e:
                err = _kafka_error(e)
                if err is not None and err.txn_requires_abort():
                    # An abort that is acknowledged proves the commit did not happen.
                    if self._abort(producer):
                        return done("fail", aborted=True, error=f"commit: {e}")
                    return done("info", error=f"commit: {e}; the abort failed too")
                if err is not None and err.retriable() and time.monotonic() < deadline:
                    continue
                return done("info", error=f"commit: {e}")

    def _abort(self, producer: Producer) -> bool:
        try:
            producer.abort_transaction(self.cfg.op_timeout_s)
            return True
        except KafkaException:
            return False

    # -- producers ----------------------------------------------------------------------------

    def _producer_loop(self, seed: int, slot: int) -> None:
        rnd = random.Random(seed)
        tid = f"jepsen-txn-{slot}"
        period = self.cfg.producers / self.cfg.rate
        process = self._new("process")
        try:
            producer = self._producer(tid, self.stop_producers)
        except KafkaException:
            return
        while not self.stop_producers.is_set():
            txn = self._new("txn")
            writes = [[rnd.choice(self.cfg.inputs), rnd.randrange(self.cfg.partitions),
                       f"{slot}/{txn}/{seq}"] for seq in range(rnd.randint(1, 5))]
            _outcome, usable = self._run_txn(producer, "txn", process, tid, txn, writes,
                                             rnd.random() < self.cfg.abort_rate)
            if not usable:
                # Fatal, fenced, or unknown: a new producer with the same transactional.id.
                _abandon(producer)
                process = self._new("process")
                try:
                    producer = self._producer(tid, self.stop_producers)
                except KafkaException:
                    return
            self.stop_producers.wait(rnd.uniform(0.5, 1.5) * period)
        _abandon(producer)

    # -- pipeline -----------------------------------------------------------------------------

    def _pipeline_loop(self, seed: int, slot: int) -> None:
        tid = f"jepsen-txn-pipe-{slot}"
        while not self.stop.is_set():
            process = self._new("process")
            consumer = Consumer(self._consumer_conf(self.cfg.group, RC))
            consumer.subscribe(list(self.cfg.inputs))
            try:
                producer = self._producer(tid, self.stop)
            except KafkaException:
                consumer.close()
                return
            try:
                while not self.stop.is_set():
                    msgs = [m for m in consumer.consume(num_messages=50, timeout=0.5)
                            if m.error() is None]
                    if not msgs:
                        continue
                    txn = self._new("txn")
                    inputs = [[m.topic(), m.partition(), m.offset(), m.value().decode()]
                              for m in msgs]
                    writes = [[self.cfg.output, p % self.cfg.partitions, f"{v}>{txn}"]
                              for _t, p, _o, v in inputs]
                    parts = consumer.assignment()
                    positions = [[tp.topic, tp.partition, tp.offset]
                                 for tp in consumer.position(parts) if tp.offset >= 0]
                    outcome, _usable = self._run_txn(producer, "ctp", process, tid, txn, writes, False,
                                            consumer, inputs=inputs, positions=positions)
                    if outcome != "ok":
                        break  # start over from the group's committed offsets
            except KafkaException as e:
                self.history.add("info", "pipeline-restart", process, error=str(e))
            finally:
                _abandon(producer)
                threading.Thread(target=consumer.close, daemon=True).start()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for i in range(self.cfg.producers):
            self._producers.append(self._spawn(self._producer_loop, f"txn-producer-{i}", i))
        for i in range(self.cfg.pipelines):
            self._pipelines.append(self._spawn(self._pipeline_loop, f"txn-pipeline-{i}", i))

    def _spawn(self, fn: Any, name: str, slot: int) -> threading.Thread:
        seed = self.rnd.randrange(2**32)

        def run() -> None:
            try:
                fn(seed, slot)
            except Exception as e:  # noqa: BLE001 - a crashed worker is a harness bug: record it
                self.history.add("info", "worker-crash", name, error=repr(e))

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def finish(self, drain_s: float = 60.0, timeout: float = 60.0) -> bool:
        """Stop the producers, let the pipeline catch up with the input (up to ``drain_s``),
        stop it. Returns whether it caught up."""
        self.stop_producers.set()
        deadline = time.monotonic() + timeout
        for t in self._producers:
            t.join(max(0.1, deadline - time.monotonic()))
        drained = self._wait_drained(drain_s)
        self.stop.set()
        deadline = time.monotonic() + timeout
        for t in self._pipelines:
            t.join(max(0.1, deadline - time.monotonic()))
        return drained

    def _wait_drained(self, timeout: float) -> bool:
        """Until no committed input record lies at or past the group's committed offsets.
        (Comparing the committed offsets with the end offsets would not do: a partition ending
        in a transaction marker ends one past the position after its last record.)"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._unprocessed(deadline) == 0:
                return True
            self.stop.wait(1.0)
        return False

    def _unprocessed(self, deadline: float) -> int | None:
        """Committed input records at or past the group's committed offsets, read with a
        read_committed consumer of another group; None when that could not be read."""
        tps = [TopicPartition(t, p) for t in self.cfg.inputs for p in range(self.cfg.partitions)]
        group = Consumer(self._consumer_conf(self.cfg.group, RC))
        reader = Consumer(self._consumer_conf(f"{self.cfg.group}-drain", RC))
        try:
            committed = group.committed(tps, timeout=5)
            ends = _high_watermarks(reader, [(tp.topic, tp.partition) for tp in tps],
                                    min(deadline, time.monotonic() + 10))
            if ends is None:
                return None
            reader.assign([TopicPartition(tp.topic, tp.partition,
                                          tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                           for tp in committed])
            pos = {(tp.topic, tp.partition): max(0, tp.offset) for tp in committed}
            found = 0
            until = min(deadline, time.monotonic() + 10)
            while any(pos[k] < ends[k] for k in ends) and time.monotonic() < until:
                found += sum(1 for m in reader.consume(num_messages=500, timeout=0.5)
                             if m.error() is None)
                if found:
                    return found
                for tp in reader.position(tps):
                    if tp.offset >= 0:
                        pos[(tp.topic, tp.partition)] = tp.offset
            return None if any(pos[k] < ends[k] for k in ends) else found
        except KafkaException:
            return None
        finally:
            group.close()
            reader.close()

    def group_offsets(self) -> None:
        """Record the pipeline group's committed offsets (require_stable: librdkafka asks with
        it for a read_committed consumer)."""
        process = self._new("process")
        self.history.add("invoke", "group-offsets", process, group=self.cfg.group)
        c = Consumer(self._consumer_conf(self.cfg.group, RC))
        tps = [TopicPartition(t, p) for t in self.cfg.inputs for p in range(self.cfg.partitions)]
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    got = c.committed(tps, timeout=10)
                    break
                except KafkaException as e:
                    if time.monotonic() > deadline:
                        self.history.add("info", "group-offsets", process,
                                         group=self.cfg.group, error=str(e))
                        return
                    time.sleep(1.0)
            self.history.add("ok", "group-offsets", process, group=self.cfg.group,
                             positions=[[tp.topic, tp.partition, tp.offset] for tp in got])
        finally:
            c.close()

    def final_read(self, isolation: str, timeout: float = 60.0) -> bool:
        """Read every partition of every topic from offset 0 to its high watermark at
        ``isolation``; complete when the positions reached the high watermarks (asked of a
        read_uncommitted consumer: read_committed must get past every transaction) and two
        successive answers agreed. Returns whether complete."""
        process = self._new("process")
        tps = [(t, p) for t in self.cfg.topics for p in range(self.cfg.partitions)]
        reader = Consumer(self._consumer_conf(f"{self.cfg.group}-final-{isolation}", isolation))
        hw = Consumer(self._consumer_conf(f"{self.cfg.group}-final-hw", RU))
        self.history.add("invoke", "final-read", process, isolation=isolation)
        reads: list[list[Any]] = []
        pos = {tp: 0 for tp in tps}
        deadline = time.monotonic() + timeout
        complete = False
        ends: dict[tuple[str, int], int] | None = None
        try:
            ends = _high_watermarks(hw, tps, deadline)
            if ends is None:
                self.history.add("info", "final-read", process, isolation=isolation,
                                 error="no high watermark for every partition")
                return False
            reader.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
            while time.monotonic() < deadline:
                while any(pos[tp] < ends[tp] for tp in tps) and time.monotonic() < deadline:
                    for m in reader.consume(num_messages=500, timeout=1.0):
                        if m.error() is None:
                            reads.append([m.topic(), m.partition(), m.offset(),
                                          m.value().decode()])
                    for tp in reader.position([TopicPartition(t, p) for t, p in tps]):
                        if tp.offset >= 0:
                            pos[(tp.topic, tp.partition)] = tp.offset
                if any(pos[tp] < ends[tp] for tp in tps):
                    break
                again = _high_watermarks(hw, tps, deadline)
                if again is None:
                    break
                if again == ends:
                    complete = True
                    break
                ends = again
            self.history.add("ok", "final-read", process, isolation=isolation, reads=reads,
                             ends=[[t, p, e] for (t, p), e in ends.items()],
                             positions=[[t, p, o] for (t, p), o in pos.items()],
                             complete=complete)
            return complete
        except KafkaException as e:
            self.history.add("info", "final-read", process, isolation=isolation, error=str(e))
            return False
        finally:
            reader.close()
            hw.close()


def _high_watermarks(c: Consumer, tps: list[tuple[str, int]],
                     deadline: float) -> dict[tuple[str, int], int] | None:
    ends: dict[tuple[str, int], int] = {}
    for t, p in tps:
        while (t, p) not in ends:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                got = c.get_watermark_offsets(TopicPartition(t, p), timeout=min(5.0, left))
            except KafkaException:
                got = None
            if got is not None and got[1] >= 0:
                ends[(t, p)] = int(got[1])
            else:
                time.sleep(0.5)
    return ends


def _abandon(producer: Producer) -> None:
    """Let a producer go without blocking the worker (flush on a dead cluster can hang)."""
    threading.Thread(target=producer.flush, args=(1,), daemon=True).start()
