"""Transactional produce throughput against idempotent produce, on the same cluster in the same
run, driven by confluent-kafka (librdkafka): ``python -m tools.txn_bench``.

Three combined nodes on loopback, a topic with RF 3 and ``min.insync.replicas=2``, acks=all.
The idempotent producer sends ``--records`` values of ``--size`` bytes and flushes; the
transactional producer sends the same number in transactions of ``--per-txn`` records each
(begin, produce, commit; one transaction at a time, as an exactly-once pipeline does), so every
transaction pays AddPartitionsToTxn, EndTxn and the markers on each partition it touched. The
two alternate ``--rounds`` times; the best round of each is compared (ratio = transactional /
idempotent records per second). Every record is counted back at read_committed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.proc_cluster import ProcCluster
from tools.produce_bench import _create_topic


def _conf(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "batch.size": 1_000_000, "compression.type": "none",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576}


def _produce(p: Any, topic: str, value: bytes, n: int, errors: list[object]) -> None:
    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for _ in range(n):
        while True:
            try:
                p.produce(topic, value, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.005)
        p.poll(0)


def idempotent_rate(bootstrap: str, topic: str, records: int, size: int) -> float:
    from confluent_kafka import Producer

    p = Producer(_conf(bootstrap))
    errors: list[object] = []
    t0 = time.perf_counter()
    _produce(p, topic, b"x" * size, records, errors)
    if p.flush(120):
        raise RuntimeError("idempotent producer: records left unsent")
    dt = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"idempotent producer: {len(errors)} errors, first {errors[0]}")
    return records / dt


def transactional_rate(bootstrap: str, topic: str, records: int, size: int,
                       per_txn: int, tid: str) -> float:
    from confluent_kafka import Producer

    p = Producer({**_conf(bootstrap), "transactional.id": tid})
    p.init_transactions(30)
    errors: list[object] = []
    value = b"x" * size
    in_commit = 0.0
    t0 = time.perf_counter()
    for done in range(0, records, per_txn):
        p.begin_transaction()
        _produce(p, topic, value, min(per_txn, records - done), errors)
        c0 = time.perf_counter()
        p.commit_transaction(30)
        in_commit += time.perf_counter() - c0
    dt = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"transactional producer: {len(errors)} errors, first {errors[0]}")
    txns = -(-records // per_txn)
    COMMIT_MS.append(in_commit / txns * 1000)
    return records / dt


COMMIT_MS: list[float] = []  # mean commit_transaction() time of each transactional round


def committed_count(bootstrap: str, topic: str, partitions: int) -> int:
    """Records visible at read_committed (control records and aborted data excluded)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-bench-count",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800})
    try:
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, idle_until = 0, time.monotonic() + 10
        while time.monotonic() < idle_until:
            msgs = [m for m in c.consume(10000, 0.5) if m.error() is None]
            if msgs:
                got += len(msgs)
                idle_until = time.monotonic() + 3
            elif all(c.position([TopicPartition(topic, p)])[0].offset >= ends[p]
                     for p in range(partitions)):
                break
        return got
    finally:
        c.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="txn_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=30_000, help="records per round and mode")
    ap.add_argument("--per-txn", type=int, default=100, help="records per transaction")
    ap.add_argument("--size", type=int, default=100, help="value bytes")
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="txn-bench-") as tmp:
        extra = {"min.insync.replicas": "2", "num.partitions": "1",
                 "log.flush.interval.messages": str(2**62)}
        cluster = ProcCluster(Path(tmp), controllers=3, combined=True, extra=extra)
        try:
            cluster.start()
            bootstrap = cluster.bootstrap_servers
            asyncio.run(_create_topic(cluster, "bench-idem", args.partitions, 3))
            asyncio.run(_create_topic(cluster, "bench-txn", args.partitions, 3))
            time.sleep(1.0)
            # Warm-up: metadata, producer ids, the __transaction_state topic.
            idempotent_rate(bootstrap, "bench-idem", 1000, args.size)
            transactional_rate(bootstrap, "bench-txn", args.per_txn, args.size, args.per_txn,
                               "txn-bench-warmup")
            idem: list[float] = []
            txn: list[float] = []
            for r in range(args.rounds):
                idem.append(idempotent_rate(bootstrap, "bench-idem", args.records, args.size))
                txn.append(transactional_rate(bootstrap, "bench-txn", args.records, args.size,
                                              args.per_txn, f"txn-bench-{r}"))
                print(f"round {r + 1}: idempotent {idem[-1]:,.0f} records/s, transactional "
                      f"{txn[-1]:,.0f} records/s ({args.per_txn} per transaction, "
                      f"commit_transaction {COMMIT_MS[-1]:.1f} ms on average)", flush=True)
            expected = args.per_txn + (args.rounds * args.records)
            got = committed_count(bootstrap, "bench-txn", args.partitions)
            if got != expected:
                print(f"read_committed counted {got} of {expected} transactional records",
                      file=sys.stderr)
                return 1
            best_i, best_t = max(idem), max(txn)
            print(f"idempotent produce: {best_i:,.0f} records/s (best of {args.rounds})")
            print(f"transactional produce: {best_t:,.0f} records/s (best of {args.rounds}, "
                  f"{args.per_txn} records per transaction, {best_t / args.per_txn:,.0f} "
                  f"transactions/s)")
            print(f"ratio transactional/idempotent: {best_t / best_i:.2f} "
                  f"({args.size} B values, RF 3, acks=all, {args.partitions} partitions; "
                  f"read_committed counted all {got})")
        finally:
            cluster.stop_all()
            cluster.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
