"""How long the first record of a new idempotent producer takes, per client:
``python -m tools.first_send_bench`` (``make bench-first-send``).

One 3-node cluster (RF 3, acks=all). For each client, ``--rounds`` fresh producers each send
one record and wait for its acknowledgement; printed: the time from creating the producer to
the first acknowledgement, and the second record's round trip for comparison. With
``--trace``, librdkafka's own ``eos,protocol`` debug lines of one confluent-kafka producer are
printed too, which show where its time goes (the idempotent producer's PID state machine).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tools.testing import cluster

__all__ = ["main"]


def _confluent(bootstrap: str, debug: bool = False) -> tuple[float, float]:
    import confluent_kafka as ck

    done: dict[str, float] = {}
    conf: dict[str, object] = {"bootstrap.servers": bootstrap, "enable.idempotence": True,
                               "linger.ms": 1}
    if debug:
        conf["debug"] = "eos,protocol"
    t0 = time.perf_counter()
    p = ck.Producer(conf)
    p.produce("first-send", b"x", key=b"k", on_delivery=lambda e, m: done.__setitem__("t",
                                                                                     time.perf_counter()))
    p.flush(30)
    first = done["t"] - t0
    t1 = time.perf_counter()
    p.produce("first-send", b"y", key=b"k", on_delivery=lambda e, m: done.__setitem__("t",
                                                                                     time.perf_counter()))
    p.flush(30)
    return first, done["t"] - t1


def _aiokafka(bootstrap: str) -> tuple[float, float]:
    from aiokafka import AIOKafkaProducer

    async def go() -> tuple[float, float]:
        t0 = time.perf_counter()
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await p.start()
        try:
            await p.send_and_wait("first-send", b"x", key=b"k")
            first = time.perf_counter() - t0
            t1 = time.perf_counter()
            await p.send_and_wait("first-send", b"y", key=b"k")
            return first, time.perf_counter() - t1
        finally:
            await p.stop()
    return asyncio.run(go())


def _kafka_python(bootstrap: str) -> tuple[float, float]:
    from kafka import KafkaProducer

    t0 = time.perf_counter()
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    try:
        p.send("first-send", b"x", key=b"k").get(30)
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        p.send("first-send", b"y", key=b"k").get(30)
        return first, time.perf_counter() - t1
    finally:
        p.close()


CLIENTS: dict[str, Callable[[str], tuple[float, float]]] = {
    "confluent-kafka": _confluent, "aiokafka": _aiokafka, "kafka-python": _kafka_python}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="first_send_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trace", action="store_true",
                    help="also print librdkafka's eos/protocol debug lines of one producer")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="first-send-") as tmp, \
            cluster(3, root=Path(tmp)) as c:
        c.create_topic("first-send", partitions=3)
        for name, fn in CLIENTS.items():
            fn(c.bootstrap_servers)  # warm-up: imports, the topic's metadata on the brokers
            runs = [fn(c.bootstrap_servers) for _ in range(args.rounds)]
            firsts = sorted(r[0] * 1000 for r in runs)
            seconds = sorted(r[1] * 1000 for r in runs)
            print(f"{name:<16} first record {statistics.median(firsts):7.1f} ms median "
                  f"({firsts[0]:.1f}-{firsts[-1]:.1f}), next record "
                  f"{statistics.median(seconds):5.1f} ms", flush=True)
        if args.trace:
            _confluent(c.bootstrap_servers, debug=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
