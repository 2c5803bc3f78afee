"""Network-server benchmark: ``python -m tools.protocol_bench [--duration S] [--loop uvloop]``.

Starts ``broker.network.server.KafkaServer`` (with ``broker.network.dispatch.ApiDispatcher``: an empty cluster) in a
subprocess and drives it from this process with a small raw-socket load generator: requests
are encoded once, each connection keeps two windows of ``--window`` pipelined requests in
flight and counts response *bytes* (every response to the same request has the same size), so
the generator costs far less per request than the server. For each scenario it prints
requests/s, the server's CPU time per request (``/proc/<pid>/stat`` utime+stime before and
after) and the generator's own CPU use (if that nears 100% of a core, the generator was the
limit, not the server).

Scenarios: ApiVersions v3 (answered by the server layer from a cached body), Metadata v12
(decoded, dispatched to the async handler, which finishes without suspending, encoded) and
Metadata v12 whose handler suspends once (``await asyncio.sleep(0)``: the Task path), each on
1 connection and on 50.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from broker.protocol.framing import encode_request
from broker.protocol.messages import api_versions, metadata

ROOT = Path(__file__).resolve().parents[1]

SERVER_SCRIPT = """
import asyncio, logging, sys
from broker.network.dispatch import ApiDispatcher
from broker.network.eventloop import new_event_loop, run
from broker.network.server import KafkaServer
from broker.network.context import ListenerSpec

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
dispatcher = ApiDispatcher(node_id=1, cluster_id="bench")

async def suspend_once(ctx, header, request):
    await asyncio.sleep(0)
    return dispatcher.handle(ctx, header, request)

def handler(ctx, header, request):
    if header.api_key == 3 and request.topics and request.topics[0].name == "__suspend":
        return suspend_once(ctx, header, request)
    return dispatcher.handle(ctx, header, request)

async def main():
    server = KafkaServer([ListenerSpec("PLAINTEXT", "127.0.0.1", 0)], handler,
                         advertised=dispatcher.advertised)
    await server.start()
    print(server.port("PLAINTEXT"), flush=True)
    await asyncio.Event().wait()

if sys.argv[1] == "asyncio":
    asyncio.run(main())
else:
    run(main())
"""

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Scenario:
    name: str
    frame: bytes  # one request frame, size prefix included


@dataclass
class Result:
    requests: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6


def _recv_frame(sock: socket.socket) -> bytes:
    buf = b""
    while len(buf) < 4:
        buf += sock.recv(4 - len(buf))
    (size,) = struct.unpack(">i", buf)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise ConnectionError("server closed the connection")
        body += chunk
    return body


class _Conn:
    __slots__ = ("completed", "received", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0
        self.completed = 0  # windows fully answered


def run_load(port: int, server_pid: int, frame: bytes, connections: int, window: int,
             duration_s: float, warmup_s: float) -> Result:
    """Pipelined load: two windows in flight per connection; returns what the measured
    interval (after the warm-up) achieved."""
    probe = socket.create_connection(("127.0.0.1", port))
    probe.sendall(frame)
    response_size = 4 + len(_recv_frame(probe))
    probe.close()
    blob = frame * window
    window_bytes = response_size * window

    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock)
        conns.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
        sock.sendall(blob + blob)

    start = time.perf_counter()
    measure_at = start + warmup_s
    stop_at = measure_at + duration_s
    measuring = False
    base_windows = 0
    server_cpu0 = client_cpu0 = t0 = 0.0
    total_windows = 0
    while True:
        now = time.perf_counter()
        if not measuring and now >= measure_at:
            measuring = True
            base_windows = total_windows
            server_cpu0, client_cpu0, t0 = _cpu_s(server_pid), _self_cpu_s(), now
        if now >= stop_at:
            break
        for key, _ in sel.select(timeout=1.0):
            conn = key.data
            data = conn.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed a connection")
            conn.received += len(data)
            while conn.received >= (conn.completed + 1) * window_bytes:
                conn.completed += 1
                total_windows += 1
                conn.sock.sendall(blob)
    t1 = time.perf_counter()
    server_cpu1, client_cpu1 = _cpu_s(server_pid), _self_cpu_s()
    for conn in conns:
        sel.unregister(conn.sock)
        conn.sock.close()
    sel.close()
    return Result((total_windows - base_windows) * window, t1 - t0,
                  server_cpu1 - server_cpu0, client_cpu1 - client_cpu0)


def scenarios() -> list[Scenario]:
    av = api_versions.REQUEST
    md = metadata.REQUEST
    return [
        Scenario("ApiVersions v3", encode_request(
            av, av.cls(client_software_name="bench", client_software_version="1.0"), 3, 1,
            "bench", 2)),
        Scenario("Metadata v12 (all topics)", encode_request(md, md.cls(topics=None), 12, 1,
                                                             "bench", 2)),
        Scenario("Metadata v12, handler suspends", encode_request(
            md, md.cls(topics=[md.MetadataRequestTopic(name="__suspend")]), 12, 1, "bench", 2)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per scenario")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before measuring")
    parser.add_argument("--window", type=int, default=50,
                        help="pipelined requests per window (two windows in flight)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="server event loop (uvloop falls back to asyncio if missing)")
    args = parser.parse_args(argv)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, args.loop], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        print(f"server pid {proc.pid} on 127.0.0.1:{port}, loop={args.loop}, "
              f"window={args.window}x2, {args.duration:.1f}s per scenario, "
              f"{os.cpu_count()} CPUs")
        print(f"{'scenario':34} {'conns':>5} {'req/s':>10} {'server us/req':>14} "
              f"{'server CPU':>10} {'client CPU':>10}")
        for sc in scenarios():
            for n in args.connections:
                r = run_load(port, proc.pid, sc.frame, n, args.window, args.duration,
                             args.warmup)
                print(f"{sc.name:34} {n:5d} {r.rate:10,.0f} {r.server_us_per_request:14.1f} "
                      f"{r.server_cpu_s / r.seconds:10.0%} {r.client_cpu_s / r.seconds:10.0%}",
                      flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
