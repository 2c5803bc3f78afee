"""The network limits under abuse, measured on a real node: ``python -m tools.limits_bench``.

- ``p99``: a confluent-kafka producer (acks=1, one record at a time, each flushed: its
  latency is a produce round trip) runs alone, then while another process holds ``--idle``
  silent connections and ``--half-open`` connections that sent the first bytes of a request
  and never the rest, and ``--garbage`` connections that each send random bytes, are closed by
  the node, and reconnect every ``--garbage-interval-ms``. Printed: p50/p99 of both phases and
  the p99 slowdown; FAIL when it exceeds ``--max-slowdown-ms`` (2 ms).
- ``rss``: ``--clients`` connections each send one request of ``--request-mb`` MiB slowly
  (``--chunk-kb`` at a time at ``--client-mb-s`` MiB/s each) to a node with
  ``socket.request.max.bytes`` at least that size and ``queued.max.request.bytes`` of
  ``--pool-mb`` MiB. The node's resident memory is sampled throughout; printed: its baseline,
  peak and growth against the bound the pool sets, ``queued.max.request.bytes + 2 *
  socket.request.max.bytes`` (the pool may go one request below zero, and a completed frame
  is copied once while it is parsed) plus 256 KiB per client (the read that finds the pool
  empty is kept) and 16 MiB of allocator slack; FAIL past it. Every request must be answered.

The functions are shared with tests/integration/test_network_abuse.py, which runs smaller
versions of both in the default suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.protocol.framing import encode_request
from broker.protocol.messages import api_versions
from tools.proc_cluster import ProcCluster, env
from tools.produce_bench import _create_topic

MIB = 1 << 20
RSS_SLACK = 16 * MIB
RSS_PER_CLIENT = 256 << 10


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the attacker (a process of its own) ------------------------------------------------------


async def _attack(port: int, idle: int, half_open: int, garbage: int,
                  interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    held: list[socket.socket] = []

    async def open_conn() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        return s

    for i in range(idle + half_open):
        s = await open_conn()
        if i >= idle:  # the size prefix and the start of a request, never the rest
            await loop.sock_sendall(s, struct.pack(">ihhi", 1000, 18, 0, i))
        held.append(s)
    rng = random.Random(7)
    stop = asyncio.Event()
    sent = [0]

    async def garbage_sender(k: int) -> None:
        await asyncio.sleep(interval_s * k / max(1, garbage))
        while not stop.is_set():
            t0 = loop.time()
            try:
                s = await open_conn()
                if k % 2:
                    junk = rng.randbytes(rng.randrange(8, 600))  # a random size prefix
                else:  # a plausible size, then a body that is no request
                    body = rng.randbytes(rng.randrange(8, 600))
                    junk = struct.pack(">i", len(body)) + body
                await loop.sock_sendall(s, junk)
                sent[0] += 1
                try:
                    await asyncio.wait_for(loop.sock_recv(s, 1024), interval_s)
                except (TimeoutError, OSError):
                    pass
                s.close()
            except OSError:
                pass
            await asyncio.sleep(max(0.0, interval_s - (loop.time() - t0)))

    tasks = [asyncio.create_task(garbage_sender(k)) for k in range(garbage)]
    print(f"READY {len(held)}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # until told to stop
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(f"GARBAGE {sent[0]}", flush=True)
    for s in held:
        s.close()


class Attacker:
    """``_attack`` in a child process; ``stop()`` returns how many garbage sends it made."""

    def __init__(self, port: int, idle: int, half_open: int, garbage: int,
                 interval_s: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.limits_bench", "attacker", "--port", str(port),
             "--idle", str(idle), "--half-open", str(half_open), "--garbage", str(garbage),
             "--garbage-interval-ms", str(int(interval_s * 1000))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"attacker did not start: {line!r}")
        self.held = int(line.split()[1])

    def stop(self) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.read()
        self.proc.wait(30)
        for line in out.splitlines():
            if line.startswith("GARBAGE"):
                return int(line.split()[1])
        return 0


# -- the producer -----------------------------------------------------------------------------


def producer_latencies(bootstrap: str, topic: str, seconds: float,
                       interval_s: float = 0.002) -> list[float]:
    """Produce one 100-byte record at a time, flushing each; its round trip in seconds."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0,
                  "enable.idempotence": False})
    value = b"v" * 100
    for _ in range(20):  # connections and metadata in place
        p.produce(topic, value)
        p.flush(10)
    out: list[float] = []
    end = time.perf_counter() + seconds
    while (t0 := time.perf_counter()) < end:
        p.produce(topic, value)
        if p.flush(10) != 0:
            raise RuntimeError("a record was not delivered")
        out.append(time.perf_counter() - t0)
        rest = interval_s - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


@dataclass
class P99Result:
    base_p50_ms: float
    base_p99_ms: float
    attack_p50_ms: float
    attack_p99_ms: float
    samples: tuple[int, int]
    held: int
    garbage_sends: int

    @property
    def slowdown_ms(self) -> float:
        return self.attack_p99_ms - self.base_p99_ms

    def line(self) -> str:
        return (f"p99: alone p50 {self.base_p50_ms:.2f} ms p99 {self.base_p99_ms:.2f} ms "
                f"({self.samples[0]} records); under attack ({self.held} connections held, "
                f"{self.garbage_sends} garbage sends) p50 {self.attack_p50_ms:.2f} ms p99 "
                f"{self.attack_p99_ms:.2f} ms ({self.samples[1]} records); p99 slowdown "
                f"{self.slowdown_ms:+.2f} ms")


def measure_p99(bootstrap: str, port: int, topic: str, *, idle: int, half_open: int,
                garbage: int, interval_s: float, seconds: float) -> P99Result:
    base = producer_latencies(bootstrap, topic, seconds)
    attacker = Attacker(port, idle, half_open, garbage, interval_s)
    try:
        time.sleep(1.0)  # the node has accepted everything
        under = producer_latencies(bootstrap, topic, seconds)
    finally:
        sends = attacker.stop()
    ms = 1000.0
    return P99Result(statistics.median(base) * ms, percentile(base, 0.99) * ms,
                     statistics.median(under) * ms, percentile(under, 0.99) * ms,
                     (len(base), len(under)), attacker.held, sends)


# -- slow big requests ------------------------------------------------------------------------


def rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def rss_bound(pool_bytes: int, max_request_bytes: int, clients: int) -> int:
    """Growth of the node's resident memory allowed by the pool (see the module docstring)."""
    return pool_bytes + 2 * max_request_bytes + clients * RSS_PER_CLIENT + RSS_SLACK


def big_request(size: int, correlation_id: int) -> tuple[bytes, int]:
    """The head of an ApiVersions v0 request padded to ``size`` bytes (Kafka ignores trailing
    bytes), and how many zero bytes follow it."""
    frame = encode_request(api_versions.REQUEST, api_versions.REQUEST.cls(), 0, correlation_id,
                           "rss-bench", 1)
    head = struct.pack(">i", size) + frame[4:]
    return head, size - (len(frame) - 4)


def slow_big_requests(port: int, clients: int, size: int, chunk: int,
                      client_bytes_s: float, timeout_s: float = 600.0) -> int:
    """Each client sends one ``size``-byte request ``chunk`` bytes at a time, paced; returns
    how many were answered."""
    answered = [0]
    lock = threading.Lock()
    zeros = bytes(chunk)

    def client(i: int) -> None:
        head, rest = big_request(size, i)
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
            s.sendall(head)
            t0 = time.monotonic()
            sent = 0
            while sent < rest:
                n = min(chunk, rest - sent)
                s.sendall(zeros[:n] if n < chunk else zeros)
                sent += n
                ahead = sent / client_bytes_s - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            got = b""
            while len(got) < 8:
                part = s.recv(65536)
                if not part:
                    return
                got += part
            if struct.unpack_from(">i", got, 4)[0] == i:
                with lock:
                    answered[0] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return answered[0]


@dataclass
class RssResult:
    baseline: int
    peak: int
    bound: int
    answered: int
    clients: int
    seconds: float

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def line(self) -> str:
        return (f"rss: {self.clients} clients, {self.answered} answered in {self.seconds:.1f} s; "
                f"node RSS baseline {self.baseline / MIB:.0f} MiB, peak {self.peak / MIB:.0f} "
                f"MiB, growth {self.growth / MIB:.0f} MiB, bound {self.bound / MIB:.0f} MiB")


def measure_rss(pid: int, port: int, *, clients: int, size: int, pool_bytes: int,
                max_request_bytes: int, chunk: int, client_bytes_s: float) -> RssResult:
    baseline = rss_of(pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_of(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    try:
        answered = slow_big_requests(port, clients, size, chunk, client_bytes_s)
    finally:
        done.set()
        sampler.join(5)
    return RssResult(baseline, peak[0], rss_bound(pool_bytes, max_request_bytes, clients),
                     answered, clients, time.monotonic() - t0)


# -- the command ------------------------------------------------------------------------------


def start_node(tmp: Path, extra: dict[str, str]) -> ProcCluster:
    cluster = ProcCluster(tmp, controllers=1, combined=True,
                          extra={"num.partitions": "1", **extra})
    cluster.start()
    return cluster


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="limits_bench", description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="p99,rss",
                    help="p99, rss or both (comma-separated); 'attacker' is internal")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--half-open", type=int, default=2000)
    ap.add_argument("--garbage", type=int, default=500)
    ap.add_argument("--garbage-interval-ms", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0, help="each p99 phase")
    ap.add_argument("--max-slowdown-ms", type=float, default=2.0)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--request-mb", type=int, default=100)
    ap.add_argument("--pool-mb", type=int, default=200)
    ap.add_argument("--chunk-kb", type=int, default=1024)
    ap.add_argument("--client-mb-s", type=float, default=5.0)
    ap.add_argument("--no-pool", action="store_true",
                    help="run the node without queued.max.request.bytes (the bound printed is "
                         "still the one --pool-mb would set: shows that the check can fail)")
    args = ap.parse_args(argv)
    nofile = raise_nofile()
    if args.what == "attacker":
        from broker.network.eventloop import run

        run(_attack(args.port, args.idle, args.half_open, args.garbage,
                    args.garbage_interval_ms / 1000))
        return 0
    failed = False
    whats = args.what.split(",")
    if "p99" in whats:
        with tempfile.TemporaryDirectory(prefix="limits-bench-") as tmp:
            cluster = start_node(Path(tmp), {})
            try:
                asyncio.run(_create_topic(cluster, "latency", 1, 1))
                node = cluster.nodes[cluster.broker_ids[0]]
                print(f"p99: open files limit {nofile}; {args.idle} idle, {args.half_open} "
                      f"half-open, {args.garbage} garbage senders every "
                      f"{args.garbage_interval_ms} ms; {args.seconds:g} s per phase", flush=True)
                r = measure_p99(cluster.bootstrap_servers, node.broker_port, "latency",
                                idle=args.idle, half_open=args.half_open, garbage=args.garbage,
                                interval_s=args.garbage_interval_ms / 1000, seconds=args.seconds)
                ok = r.slowdown_ms <= args.max_slowdown_ms
                failed |= not ok
                print(f"{r.line()} -> {'OK' if ok else 'FAIL'} (limit "
                      f"{args.max_slowdown_ms:g} ms)", flush=True)
            finally:
                cluster.stop_all()
                cluster.kill_all()
    if "rss" in whats:
        size = args.request_mb * MIB
        max_request = size
        pool = args.pool_mb * MIB
        with tempfile.TemporaryDirectory(prefix="limits-bench-") as tmp:
            cluster = start_node(Path(tmp), {
                "socket.request.max.bytes": str(max_request),
                "queued.max.request.bytes": "-1" if args.no_pool else str(pool)})
            try:
                node = cluster.nodes[cluster.broker_ids[0]]
                assert node.proc is not None
                print(f"rss: {args.clients} clients x {args.request_mb} MiB requests at "
                      f"{args.client_mb_s:g} MiB/s each; queued.max.request.bytes="
                      f"{-1 if args.no_pool else pool}, "
                      f"socket.request.max.bytes={max_request}", flush=True)
                rr = measure_rss(node.proc.pid, node.broker_port, clients=args.clients,
                                 size=size - 4, pool_bytes=pool, max_request_bytes=max_request,
                                 chunk=args.chunk_kb << 10,
                                 client_bytes_s=args.client_mb_s * MIB)
                ok = rr.growth <= rr.bound and rr.answered == args.clients
                failed |= not ok
                print(f"{rr.line()} -> {'OK' if ok else 'FAIL'}", flush=True)
            finally:
                cluster.stop_all()
                cluster.kill_all()
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
