"""Produce/consume throughput and latency on real nodes, driven by confluent-kafka (librdkafka,
so the load generator is not the bottleneck): ``python -m tools.produce_bench``.

Scenarios, each on a fresh cluster of ``kafka-server-start`` processes on loopback:

- ``rf1``: one combined node, a topic with RF 1, producer acks=1;
- ``rf3``: three combined nodes, RF 3, ``min.insync.replicas=2``, producer acks=all.

For each value size (100 B and 1 KiB by default): producer records/s and MB/s
(``linger.ms=5``, large batches), consumer records/s and MB/s reading everything back, and
produce-to-consume latency p50/p99/p99.9 at fixed rates (``--latency-rate`` records/s, a
comma-separated list: 10,000 and 50,000 by default), once per producer ``linger.ms`` in
``--latency-linger-ms`` (0 sends every record in its own request; 1 lets librdkafka batch for
up to a millisecond); a rate above 10,000 is run only with linger.ms 1 (one request per record
at that rate measures the client, not the broker). ``--sizes ''`` skips the throughput runs.
Raw disk append MB/s (1 MiB writes, fsync at the end) is measured in the same run, so the
throughput is also printed as a ratio of it. ``--plot`` (default ``bench-produce.html``) writes
the latency CDFs and, with kcat, the produce throughput over time as one HTML page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics
from tools.bench_plot import BenchReport
from tools.proc_cluster import ProcCluster


def raw_disk_mb_s(directory: Path, total_mb: int = 256) -> float:
    chunk = os.urandom(1 << 20)
    path = directory / "raw-append.bin"
    t0 = time.perf_counter()
    with path.open("wb", buffering=0) as f:
        for _ in range(total_mb):
            f.write(chunk)
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return total_mb * (1 << 20) / dt / 1e6


async def _create_topic(cluster: ProcCluster, topic: str, partitions: int, rf: int) -> None:
    req = create_topics.REQUEST.cls(topics=[create_topics.REQUEST.CreatableTopic(
        name=topic, num_partitions=partitions, replication_factor=rf, assignments=[],
        configs=[])], timeout_ms=30000)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for i in cluster.controller_ids:
            try:
                conn = await KafkaConnection.connect("127.0.0.1",
                                                     cluster.nodes[i].controller_port)
            except (KafkaConnectionError, OSError):
                continue
            try:
                resp = await conn.send(ApiKey.CREATE_TOPICS, req, timeout_s=30)
            except (KafkaConnectionError, KafkaTimeoutError):
                continue
            finally:
                await conn.close()
            code = resp.topics[0].error_code
            if code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError("could not create the benchmark topic")


def _producer(bootstrap: str, acks: str, extra: dict[str, object] | None = None) -> object:
    from confluent_kafka import Producer

    conf: dict[str, object] = {
        "bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
        "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False,
        "compression.type": "none", "message.max.bytes": 10_000_000,
    }
    conf.update(extra or {})
    return Producer(conf)


def produce_throughput(bootstrap: str, topic: str, acks: str, records: int, size: int) -> float:
    p = _producer(bootstrap, acks)
    value = b"x" * size
    errors = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal errors
        if err is not None:
            errors += 1

    t0 = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value, on_delivery=on_delivery)  # type: ignore[attr-defined]
                break
            except BufferError:
                p.poll(0.005)  # type: ignore[attr-defined]
        p.poll(0)  # type: ignore[attr-defined]
    p.flush(120)  # type: ignore[attr-defined]
    dt = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{errors} produce errors")
    return dt


KCAT_PRODUCER = ["-X", "linger.ms=5", "-X", "batch.size=1000000",
                 "-X", "queue.buffering.max.messages=2000000",
                 "-X", "queue.buffering.max.kbytes=1048576", "-X", "message.max.bytes=10000000"]


def _end_offsets(bootstrap: str, topic: str, partitions: int, consumer: object = None) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = consumer or Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        if consumer is None:
            c.close()


def produce_throughput_kcat(bootstrap: str, topic: str, acks: str, records: int, size: int,
                            partitions: int, workdir: Path,
                            progress: list[tuple[float, float]] | None = None) -> float:
    """kcat (librdkafka in C) reads one value per line: no Python loop in the load generator.
    The count of records the topic gained is checked afterwards. With ``progress``, the
    topic's end offsets are sampled every 0.2 s while kcat runs and (seconds since start,
    records/s over the interval) appended: the throughput over time."""
    from confluent_kafka import Consumer

    data = workdir / f"values-{size}.txt"
    if not data.exists():
        data.write_bytes((b"x" * size + b"\n") * records)
    before = _end_offsets(bootstrap, topic, partitions)
    t0 = time.perf_counter()
    proc = subprocess.Popen(["kcat", "-P", "-b", bootstrap, "-t", topic, "-l", "-X",
                             f"acks={acks}", *KCAT_PRODUCER, str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last_t, last_n = t0, before
    if progress is not None:
        sampler = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count"})
        while proc.poll() is None:
            time.sleep(0.2)
            n = _end_offsets(bootstrap, topic, partitions, sampler)
            now = time.perf_counter()
            progress.append((now - t0, (n - last_n) / (now - last_t)))
            last_t, last_n = now, n
        sampler.close()
    _, stderr = proc.communicate()
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"kcat -P failed ({proc.returncode}): {stderr[-500:]}")
    got = _end_offsets(bootstrap, topic, partitions) - before
    if got != records:
        raise RuntimeError(f"kcat produced {got} of {records} records")
    return dt


def consume_throughput_kcat(bootstrap: str, topic: str, records: int) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                        "-c", str(records), "-q", "-f", "\n", "-X", "fetch.max.bytes=52428800",
                        "-X", "max.partition.fetch.bytes=10485760"],
                       check=False, capture_output=True, timeout=300)
    dt = time.perf_counter() - t0
    got = r.stdout.count(b"\n")
    if r.returncode != 0 or got != records:
        raise RuntimeError(f"kcat -C read {got} of {records} records: {r.stderr[-500:]!r}")
    return dt


def consume_throughput(bootstrap: str, topic: str, partitions: int,
                       records: int) -> tuple[float, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit":
                  False, "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    nbytes = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    while got < records and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
    dt = time.perf_counter() - t0
    c.close()
    if got < records:
        raise RuntimeError(f"consumed {got} of {records}")
    return dt, nbytes


def e2e_latency(bootstrap: str, topic: str, acks: str, rate: int,
                seconds: float, linger_ms: float = 0.0) -> list[float]:
    from confluent_kafka import Consumer, TopicPartition

    topic_latencies: list[float] = []
    stop = threading.Event()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-lat",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic, 0, 0)])

    def consume() -> None:
        # poll(), not consume(n, timeout): a batch consume waits out its whole timeout unless
        # n messages arrive, which would add up to that timeout to every latency.
        while not stop.is_set():
            m = c.poll(0.1)
            if m is not None and m.error() is None and len(m.value()) >= 8:
                sent = struct.unpack(">d", m.value()[:8])[0]
                topic_latencies.append(time.time() - sent)

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    time.sleep(2.0)  # the consumer's first fetch is in place
    p = _producer(bootstrap, acks, {"linger.ms": linger_ms})
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        target = t0 + i / rate
        while (now := time.perf_counter()) < target:
            time.sleep(min(0.001, target - now))
        p.produce(topic, struct.pack(">d", time.time()) + b"y" * 92,  # type: ignore[attr-defined]
                  partition=0)
        p.poll(0)  # type: ignore[attr-defined]
    p.flush(30)  # type: ignore[attr-defined]
    time.sleep(1.0)
    stop.set()
    th.join(5)
    c.close()
    return topic_latencies


def _pct(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def latency_runs(rates: Sequence[int], lingers: Sequence[float]) -> list[tuple[int, float]]:
    """(rate, linger.ms) of each latency run: every linger at rates up to 10,000 records/s;
    above that only linger.ms >= 1 (at linger 0 each record is its own request)."""
    return [(r, x) for r in rates for x in lingers if r <= 10_000 or x >= 1]


def run_scenario(name: str, nodes: int, rf: int, acks: str, partitions: int,
                 sizes: Sequence[int], records: int, latency_rates: Sequence[int],
                 raw_mb_s: float,
                 lingers: Sequence[float] = (0.0, 1.0), kcat: bool = False,
                 report: BenchReport | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="produce-bench-") as tmp:
        extra = {"min.insync.replicas": "2" if rf >= 3 else "1", "num.partitions": "1",
                 "log.flush.interval.messages": str(2**62)}
        cluster = ProcCluster(Path(tmp), controllers=nodes, combined=True, extra=extra)
        try:
            cluster.start()
            for size in sizes:
                asyncio.run(_create_topic(cluster, f"bench-{size}", partitions, rf))
            runs = latency_runs(latency_rates, lingers)
            for rate, linger in runs:
                asyncio.run(_create_topic(cluster, f"bench-latency-{rate}-{linger:g}", 1, rf))
            bootstrap = cluster.bootstrap_servers
            produce_series: list[tuple[str, list[tuple[float, float]]]] = []
            cdfs: list[tuple[str, list[float]]] = []
            time.sleep(1.0)
            for size in sizes:
                topic = f"bench-{size}"
                if kcat:
                    progress: list[tuple[float, float]] = []
                    dt = produce_throughput_kcat(bootstrap, topic, "-1" if acks == "all"
                                                 else acks, records, size, partitions,
                                                 Path(tmp), progress)
                    produce_series.append((f"{name} {size} B", progress))
                else:
                    dt = produce_throughput(bootstrap, topic, acks, records, size)
                mb = records * size / dt / 1e6
                print(f"{name} produce {size:>5} B  {records / dt:>12,.0f} records/s "
                      f"{mb:>8.1f} MB/s  ratio {mb / raw_mb_s:.3f} of raw disk", flush=True)
                if kcat:
                    cdt = consume_throughput_kcat(bootstrap, topic, records)
                    nbytes = records * size
                else:
                    cdt, nbytes = consume_throughput(bootstrap, topic, partitions, records)
                print(f"{name} consume {size:>5} B  {records / cdt:>12,.0f} records/s "
                      f"{nbytes / cdt / 1e6:>8.1f} MB/s", flush=True)
            for rate, linger in runs:
                # A fresh topic per run: the consumer reads from offset 0.
                lat = sorted(e2e_latency(bootstrap, f"bench-latency-{rate}-{linger:g}", acks,
                                         rate, 5.0, linger))
                cdfs.append((f"{rate:,}/s linger.ms={linger:g}", [x * 1000 for x in lat]))
                if lat:
                    p50 = statistics.median(lat) * 1000
                    print(f"{name} e2e latency at {rate:,} records/s, linger.ms={linger:g}: "
                          f"p50 {p50:.2f} ms, p99 {_pct(lat, 0.99) * 1000:.2f} ms, p99.9 "
                          f"{_pct(lat, 0.999) * 1000:.2f} ms ({len(lat)} records)", flush=True)
            if report is not None:
                report.series(f"{name}: produce throughput over time (kcat)", produce_series,
                              "seconds since the start", "records/s (0.2 s intervals)")
                report.latency_cdf(f"{name}: produce-to-consume latency", cdfs)
        finally:
            cluster.stop_all()
            cluster.kill_all()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="produce_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--latency-rate", default="10000,50000",
                    help="records/s of the latency runs (comma-separated)")
    ap.add_argument("--scenarios", default="rf1,rf3")
    ap.add_argument("--load-generator", choices=("kcat", "python"),
                    default="kcat" if shutil.which("kcat") else "python",
                    help="throughput runs: kcat (librdkafka in C, reading values from a file) "
                         "or confluent-kafka's Python API (its per-record Python call caps "
                         "100-byte runs near 250K records/s on this machine)")
    ap.add_argument("--latency-linger-ms", default="0,1",
                    help="producer linger.ms values for the latency runs (comma-separated)")
    ap.add_argument("--plot", default="bench-produce.html",
                    help="where to write the plots (latency CDFs, throughput over time) as "
                         "one HTML page; '' for none")
    args = ap.parse_args(argv)
    report = BenchReport("produce_bench") if args.plot else None
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else []
    lingers = [float(x) for x in args.latency_linger_ms.split(",")]
    rates = [int(x) for x in args.latency_rate.split(",") if x]
    with tempfile.TemporaryDirectory(prefix="raw-disk-") as tmp:
        raw = raw_disk_mb_s(Path(tmp))
    print(f"raw disk append: {raw:.1f} MB/s (1 MiB writes, one fsync)", flush=True)
    print(f"load generator: {args.load_generator}", flush=True)
    kcat = args.load_generator == "kcat"
    for name in args.scenarios.split(","):
        if name == "rf1":
            run_scenario("rf1/acks=1", 1, 1, "1", args.partitions, sizes, args.records,
                         rates, raw, lingers, kcat, report)
        elif name == "rf3":
            run_scenario("rf3/acks=all", 3, 3, "all", args.partitions, sizes, args.records,
                         rates, raw, lingers, kcat, report)
        else:
            print(f"unknown scenario {name}", file=sys.stderr)
            return 1
    if report is not None:
        report.write(Path(args.plot))
        print(f"plots: {args.plot}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
