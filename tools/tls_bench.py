"""What TLS costs: produce and consume throughput over a PLAINTEXT and an SSL listener of the
same one-node cluster, in one run: ``python -m tools.tls_bench`` (``make bench-tls``).

One combined node (``kafka-server-start`` on loopback) gets a second client listener ``SSL``
whose key and certificate are made with the ``openssl`` CLI (self-signed for 127.0.0.1, also the
client's trust store; no client certificate). confluent-kafka (librdkafka) is the load
generator, with the same settings and the same records on both listeners: ``--records`` values
of ``--size`` bytes produced with acks=1 (``linger.ms=5``, large batches) to a fresh topic of
``--partitions`` partitions, then read back from offset 0 by an assigned consumer through the
same listener. ``--rounds`` alternates the listeners (PLAINTEXT, SSL, PLAINTEXT, ...) and keeps
each one's best round, so a noisy moment hurts neither side alone. Prints records/s and MB/s
per listener and the SSL/PLAINTEXT ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.proc_cluster import ProcCluster
from tools.produce_bench import _create_topic

__all__ = ["main", "self_signed"]


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(key + certificate PEM for ``ssl.keystore.location``, certificate) for 127.0.0.1."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   cwd=directory, check=True, capture_output=True, timeout=60)
    keystore = directory / "server.pem"
    keystore.write_text((directory / "key.pem").read_text()
                        + (directory / "cert.pem").read_text())
    return keystore, directory / "cert.pem"


def produce(conf: dict[str, Any], topic: str, records: int, size: int) -> float:
    """Seconds to produce and acknowledge ``records`` values of ``size`` bytes."""
    from confluent_kafka import Producer

    p = Producer({**conf, "acks": "1", "linger.ms": 5, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 2_000_000,
                  "queue.buffering.max.kbytes": 1_048_576, "enable.idempotence": False,
                  "compression.type": "none", "message.max.bytes": 10_000_000})
    value = b"x" * size
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    t0 = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.005)
        p.poll(0)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    if errors or left:
        raise RuntimeError(f"{len(errors)} produce errors, {left} not delivered: {errors[:3]}")
    return dt


def consume(conf: dict[str, Any], topic: str, partitions: int, records: int) -> float:
    """Seconds to read ``records`` records from offset 0 of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**conf, "group.id": "tls-bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 300
    try:
        while got < records and time.monotonic() < deadline:
            for m in c.consume(10000, 1.0):
                if m.error() is None:
                    got += 1
    finally:
        c.close()
    dt = time.perf_counter() - t0
    if got < records:
        raise RuntimeError(f"consumed {got} of {records} records from {topic}")
    return dt


def run(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    keystore, cert = self_signed(workdir)
    cluster = ProcCluster(workdir / "cluster", controllers=1, brokers=0, combined=True,
                          secure={"SSL": "SSL"},
                          extra={"ssl.keystore.type": "PEM",
                                 "ssl.keystore.location": str(keystore)})
    confs = {
        "PLAINTEXT": {"bootstrap.servers": cluster.bootstrap_servers},
        "SSL": {"bootstrap.servers": cluster.secure_bootstrap("SSL"),
                "security.protocol": "SSL", "ssl.ca.location": str(cert)},
    }
    best: dict[str, dict[str, float]] = {name: {} for name in confs}
    cluster.start()
    try:
        for r in range(args.rounds):
            for name, conf in confs.items():
                topic = f"tls-bench-{name.lower()}-{r}"
                asyncio.run(_create_topic(cluster, topic, args.partitions, 1))
                produce(conf, topic, min(1000, args.records), args.size)  # warm-up
                topic = f"{topic}-m"
                asyncio.run(_create_topic(cluster, topic, args.partitions, 1))
                p_s = produce(conf, topic, args.records, args.size)
                c_s = consume(conf, topic, args.partitions, args.records)
                print(f"  round {r + 1} {name:<9} produce {args.records / p_s:>9,.0f} rec/s  "
                      f"consume {args.records / c_s:>9,.0f} rec/s", flush=True)
                b = best[name]
                b["produce"] = max(b.get("produce", 0.0), args.records / p_s)
                b["consume"] = max(b.get("consume", 0.0), args.records / c_s)
    finally:
        cluster.shutdown()
    return best


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tls_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--size", type=int, default=1024, help="value bytes (default 1024)")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if shutil.which("openssl") is None:
        print("tls_bench needs the openssl CLI", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as tmp:
        best = run(args, Path(tmp))
    mb = args.size / 1e6
    print(f"\n{args.records:,} records of {args.size} B, {args.partitions} partitions, acks=1, "
          f"one node; best of {args.rounds} round(s)")
    print(f"{'listener':<10} {'produce rec/s':>14} {'MB/s':>7} {'consume rec/s':>14} {'MB/s':>7}")
    for name, b in best.items():
        print(f"{name:<10} {b['produce']:>14,.0f} {b['produce'] * mb:>7.1f} "
              f"{b['consume']:>14,.0f} {b['consume'] * mb:>7.1f}")
    plain, tls = best["PLAINTEXT"], best["SSL"]
    print(f"{'SSL/PLAIN':<10} {tls['produce'] / plain['produce']:>14.2f} {'':>7} "
          f"{tls['consume'] / plain['consume']:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
