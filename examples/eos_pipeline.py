"""Exactly-once consume-transform-produce with confluent-kafka.

    python examples/eos_pipeline.py --bootstrap-server localhost:9092 \\
        --input orders --output orders-upper --group upper --transactional-id upper-1

Reads every partition of ``--input`` with isolation.level=read_committed, writes each record's
value upper-cased (same key) to ``--output`` and commits the input offsets in the same
transaction (send_offsets_to_transaction), one transaction per batch. Killed at any moment and
restarted with the same transactional id, it neither loses nor duplicates an output record as
seen by read_committed consumers: init_transactions fences the previous instance and aborts its
open transaction, and the input resumes from the offsets committed by the last committed
transaction.

One instance per transactional id. It assigns itself every input partition (no group
rebalance), so a restarted instance starts at once instead of waiting for the old member's
session to expire; the group only stores the committed offsets.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)


def transform(value: bytes) -> bytes:
    return value.upper()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap-server", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--group", required=True, help="the group that stores the input offsets")
    ap.add_argument("--transactional-id", required=True)
    ap.add_argument("--batch", type=int, default=50, help="records per transaction")
    ap.add_argument("--work-ms", type=int, default=0,
                    help="pause inside each transaction before its commit (a slow transform)")
    ap.add_argument("--idle-exit-s", type=float, default=0,
                    help="exit after this long without input (0: run until killed)")
    return ap.parse_args(argv)


def input_partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
    md = consumer.list_topics(topic, timeout=30).topics[topic]
    if md.error is not None:
        raise KafkaException(md.error)
    return [TopicPartition(topic, p) for p in sorted(md.partitions)]


def rewind(consumer: Consumer, parts: list[TopicPartition]) -> None:
    """Back to the last committed offsets (after an abort)."""
    for tp in consumer.committed(parts, timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition,
                                     tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    consumer = Consumer({"bootstrap.servers": args.bootstrap_server, "group.id": args.group,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": args.bootstrap_server,
                         "transactional.id": args.transactional_id})
    producer.init_transactions(60)  # fences an older instance, aborting its open transaction
    parts = input_partitions(consumer, args.input)
    consumer.assign(parts)  # starts at the committed offsets (waits while any is pending)
    idle_since = time.monotonic()
    batches = 0
    try:
        while True:
            records = [m for m in consumer.consume(args.batch, timeout=1.0)
                       if m.error() is None or _raise(m.error())]
            if not records:
                if args.idle_exit_s and time.monotonic() - idle_since > args.idle_exit_s:
                    return 0
                continue
            idle_since = time.monotonic()
            producer.begin_transaction()
            try:
                for m in records:
                    producer.produce(args.output, key=m.key(), value=transform(m.value()))
                producer.send_offsets_to_transaction(consumer.position(parts),
                                                     consumer.consumer_group_metadata(), 60)
                if args.work_ms:
                    time.sleep(args.work_ms / 1000)
                producer.commit_transaction(60)
            except KafkaException as e:
                if not e.args[0].txn_requires_abort():
                    raise  # fatal (fenced) or retriable beyond our timeouts: stop
                producer.abort_transaction(60)
                rewind(consumer, parts)
                continue
            batches += 1
            print(f"committed batch {batches}: {len(records)} records", flush=True)
    finally:
        consumer.close()


def _raise(error: KafkaError) -> bool:
    raise KafkaException(error)


if __name__ == "__main__":
    sys.exit(main())
