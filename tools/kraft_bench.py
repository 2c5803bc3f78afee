"""KRaft quorum figures on real processes: ``python -m tools.kraft_bench [--rounds 10]``.

Starts 3 nodes with ``process.roles=broker,controller`` (``kafka-server-start``, formatted
storage, loopback ports) in a temporary directory and measures:

- election time: kill -9 of the leader controller until a surviving controller answers
  DescribeQuorum as leader of a newer epoch (median and max over ``--rounds``; the killed node
  is restarted and caught up between rounds);
- committed metadata records per second: CreateTopics requests (``--partitions`` partitions
  each, so 1 + partitions records per topic) sent ``--concurrency`` at a time to the active
  controller, each answered only once its records are committed on a majority.

The Raft timeouts are Kafka's defaults (election 1000 ms, fetch 2000 ms) unless given. A
follower notices a dead leader after the fetch timeout, so election time >= fetch timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.client import KafkaConnection, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode
from broker.protocol.messages import create_topics, describe_quorum
from tools.proc_cluster import ProcCluster

REPO = Path(__file__).resolve().parents[1]


async def _send(port: int, api_key: int, req: Any, timeout_s: float = 2.0) -> Any:
    conn = await KafkaConnection.connect("127.0.0.1", port, timeout_s=timeout_s)
    try:
        return await conn.send(api_key, req, timeout_s=timeout_s)
    finally:
        await conn.close()


async def leader_state(ctl: ProcCluster, among: Sequence[int]) -> Any | None:
    req = describe_quorum.REQUEST.cls(topics=[describe_quorum.REQUEST.TopicData(
        topic_name="__cluster_metadata",
        partitions=[describe_quorum.REQUEST.PartitionData(partition_index=0)])])
    for i in among:
        with contextlib.suppress(KafkaConnectionError, KafkaTimeoutError, OSError):
            resp = await _send(ctl.nodes[i].controller_port, ApiKey.DESCRIBE_QUORUM, req, 1.0)
            p = resp.topics[0].partitions[0] if resp.topics else None
            if resp.error_code == 0 and p is not None and p.error_code == 0:
                return p
    return None


async def wait_leader(ctl: ProcCluster, among: Sequence[int], newer_than: int = -1,
                      timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = await leader_state(ctl, among)
        if p is not None and p.leader_epoch > newer_than and p.leader_id in among:
            return p
        await asyncio.sleep(0.01)
    raise RuntimeError("no leader elected")


async def elections(ctl: ProcCluster, rounds: int) -> list[float]:
    ids = ctl.controller_ids
    times = []
    for r in range(rounds):
        p = await wait_leader(ctl, ids)
        # Let the followers catch up and the quorum settle before the kill.
        while True:
            p = await wait_leader(ctl, ids)
            if all(v.log_end_offset == p.high_watermark for v in p.current_voters):
                break
            await asyncio.sleep(0.05)
        old, epoch = p.leader_id, p.leader_epoch
        t0 = time.monotonic()
        ctl.nodes[old].kill()
        survivors = [i for i in ids if i != old]
        p2 = await wait_leader(ctl, survivors, newer_than=epoch)
        dt = time.monotonic() - t0
        times.append(dt)
        print(f"  round {r + 1}: leader {old} killed -> leader {p2.leader_id} "
              f"(epoch {p2.leader_epoch}) after {dt * 1000:.0f} ms", flush=True)
        ctl.start([old], wait=False)
        await asyncio.sleep(1.0)
    return times


async def create_rate(ctl: ProcCluster, topics: int, partitions: int,
                      concurrency: int) -> tuple[int, float]:
    p = await wait_leader(ctl, ctl.controller_ids)
    port = ctl.nodes[p.leader_id].controller_port
    conns = [await KafkaConnection.connect("127.0.0.1", port) for _ in range(concurrency)]
    names = iter(range(topics))
    records = 0

    async def worker(conn: KafkaConnection) -> None:
        nonlocal records
        for n in names:
            req = create_topics.REQUEST.cls(topics=[create_topics.REQUEST.CreatableTopic(
                name=f"bench-{n}", num_partitions=partitions, replication_factor=3,
                assignments=[], configs=[])])
            resp = await conn.send(ApiKey.CREATE_TOPICS, req, timeout_s=30)
            code = resp.topics[0].error_code
            if code != ErrorCode.NONE:
                raise RuntimeError(f"CreateTopics failed: {ErrorCode(code).name}")
            records += 1 + partitions

    t0 = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    dt = time.monotonic() - t0
    for c in conns:
        await c.close()
    return records, dt


async def main_async(args: argparse.Namespace) -> int:
    extra = {"controller.quorum.election.timeout.ms": str(args.election_timeout_ms),
             "controller.quorum.fetch.timeout.ms": str(args.fetch_timeout_ms),
             # Kafka's broker defaults, not the test harness's faster ones.
             "broker.heartbeat.interval.ms": "2000", "broker.session.timeout.ms": "9000"}
    with tempfile.TemporaryDirectory(prefix="kraft-bench-") as tmp:
        ctl = ProcCluster(Path(tmp), controllers=3, combined=True, extra=extra)
        try:
            ctl.start(wait=False)
            await wait_leader(ctl, ctl.controller_ids)
            print(f"election after kill -9 of the leader controller "
                  f"(election.timeout.ms={args.election_timeout_ms}, "
                  f"fetch.timeout.ms={args.fetch_timeout_ms}):", flush=True)
            times = await elections(ctl, args.rounds)
            print(f"election time: median {statistics.median(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms over {len(times)} kills "
                  f"(median / fetch.timeout.ms = "
                  f"{statistics.median(times) * 1000 / args.fetch_timeout_ms:.2f})")
            await wait_leader(ctl, ctl.controller_ids)
            await asyncio.sleep(3.0)  # the restarted broker registers and is unfenced
            records, dt = await create_rate(ctl, args.topics, args.partitions,
                                            args.concurrency)
            print(f"committed metadata records: {records} in {dt:.2f} s = "
                  f"{records / dt:,.0f} records/s ({args.topics} CreateTopics x "
                  f"{args.partitions} partitions RF 3, {args.concurrency} in flight)")
        finally:
            ctl.stop_all()
            ctl.kill_all()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="kraft_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--election-timeout-ms", type=int, default=1000)
    ap.add_argument("--fetch-timeout-ms", type=int, default=2000)
    ap.add_argument("--topics", type=int, default=300)
    ap.add_argument("--partitions", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=16)
    return asyncio.run(main_async(ap.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
