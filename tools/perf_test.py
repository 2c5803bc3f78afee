"""``kafka-producer-perf-test`` and ``kafka-consumer-perf-test`` (Kafka's ProducerPerformance
and ConsumerPerformance), with Kafka's flags and output lines.

    kafka-producer-perf-test --topic T --num-records 50000 --record-size 100 --throughput -1 \\
        --producer-props bootstrap.servers=HOST:PORT acks=1 linger.ms=5 batch.size=65536
    kafka-consumer-perf-test --bootstrap-server HOST:PORT --topic T --messages 50000

The producer test prints a line every ``--reporting-interval`` ms (5000) for that window and a
summary with latency percentiles at the end. Latency is measured per record, from ``send`` to
the broker's answer for its batch. The consumer test prints Kafka's CSV header and one line
(``--show-detailed-stats``: one line per interval). Without ``--group`` the consumer test
assigns itself every partition (rebalance.time.ms is then 0); with ``--group`` it joins that
group and commits where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.cli_client import (
    CliError,
    TopicPartition,
    admin_client,
    parse_properties_args,
    run_tool,
)
from tools.cli_fetch import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, fetch_from, list_offsets_of
from tools.cli_produce import Producer
from tools.console_producer import load_config_file, producer_settings
from tools.group_client import GroupMember

MB = 1024 * 1024
MAX_LATENCY_SAMPLES = 500_000


# -- producer -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Stats:
    """Kafka's ProducerPerformance.Stats: totals, a sample of latencies for percentiles, and
    the current reporting window."""

    num_records: int
    start: float = field(default_factory=time.monotonic)
    count: int = 0
    bytes: int = 0
    max_latency: float = 0.0
    total_latency: float = 0.0
    samples: list[int] = field(default_factory=list)
    sampling: int = 1
    window_start: float = field(default_factory=time.monotonic)
    window_count: int = 0
    window_bytes: int = 0
    window_max: float = 0.0
    window_total: float = 0.0
    iteration: int = 0

    def __post_init__(self) -> None:
        self.sampling = max(1, self.num_records // MAX_LATENCY_SAMPLES)

    def record(self, latency_ms: float, size: int) -> None:
        self.count += 1
        self.bytes += size
        self.total_latency += latency_ms
        self.max_latency = max(self.max_latency, latency_ms)
        self.window_count += 1
        self.window_bytes += size
        self.window_total += latency_ms
        self.window_max = max(self.window_max, latency_ms)
        if self.iteration % self.sampling == 0:
            self.samples.append(int(latency_ms))
        self.iteration += 1

    def window_line(self, now: float) -> str:
        elapsed = max(now - self.window_start, 1e-9)
        rate = self.window_count / elapsed
        mb = self.window_bytes / MB / elapsed
        avg = self.window_total / self.window_count if self.window_count else 0.0
        line = (f"{self.window_count} records sent, {rate:.1f} records/sec ({mb:.2f} MB/sec), "
                f"{avg:.1f} ms avg latency, {self.window_max:.1f} ms max latency.")
        self.window_start = now
        self.window_count = self.window_bytes = 0
        self.window_max = self.window_total = 0.0
        return line

    def summary_line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        mb = self.bytes / MB / elapsed
        avg = self.total_latency / self.count if self.count else 0.0
        p = percentiles(self.samples, (0.5, 0.95, 0.99, 0.999))
        return (f"{self.count} records sent, {rate:f} records/sec ({mb:.2f} MB/sec), "
                f"{avg:.2f} ms avg latency, {self.max_latency:.2f} ms max latency, "
                f"{p[0]} ms 50th, {p[1]} ms 95th, {p[2]} ms 99th, {p[3]} ms 99.9th.")


def percentiles(samples: list[int], ps: Sequence[float]) -> list[int]:
    """Kafka's way: sort, take element ``int(p * size)``."""
    if not samples:
        return [0 for _ in ps]
    s = sorted(samples)
    return [s[min(int(p * len(s)), len(s) - 1)] for p in ps]


class Throttler:
    """Keeps the send rate at ``per_second`` (Kafka's ThroughputThrottler); <= 0: unlimited."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.start = time.monotonic()

    async def throttle(self, sent: int) -> None:
        if self.per_second <= 0:
            return
        ahead = sent / self.per_second - (time.monotonic() - self.start)
        if ahead > 0.001:
            await asyncio.sleep(ahead)


def producer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kafka-producer-perf-test",
                                description="Producer throughput and latency test.")
    p.add_argument("--topic", required=True)
    p.add_argument("--num-records", type=int, required=True)
    p.add_argument("--record-size", type=int, help="bytes per record")
    p.add_argument("--payload-file", help="records to send, one per --payload-delimiter")
    p.add_argument("--payload-delimiter", default="\\n")
    p.add_argument("--throughput", type=float, required=True,
                   help="records/sec cap; -1 for none")
    p.add_argument("--producer-props", nargs="+", default=[], help="k=v producer properties")
    p.add_argument("--producer.config", dest="producer_config")
    p.add_argument("--bootstrap-server", help="instead of bootstrap.servers in the props")
    p.add_argument("--reporting-interval", type=int, default=5000, help="ms (default 5000)")
    p.add_argument("--print-metrics", action="store_true", help="accepted; not used")
    return p


async def _producer(args: argparse.Namespace) -> int:
    if args.num_records < 0:
        raise CliError("--num-records must not be negative")
    if (args.record_size is None) == (args.payload_file is None):
        raise CliError("exactly one of --record-size and --payload-file is required")
    props = load_config_file(args.producer_config)
    props.update(parse_properties_args(args.producer_props, "--producer-props"))
    bootstrap = args.bootstrap_server or props.pop("bootstrap.servers", None)
    if not bootstrap:
        raise CliError("bootstrap.servers is required (in --producer-props or "
                       "--bootstrap-server)")
    props.pop("bootstrap.servers", None)
    settings = producer_settings(props)
    if args.payload_file:
        delim = args.payload_delimiter.encode().decode("unicode_escape")
        try:
            text = Path(args.payload_file).read_text()
        except OSError as e:
            raise CliError(f"cannot read {args.payload_file}: {e.strerror}") from None
        payloads = [x.encode() for x in text.split(delim) if x]
        if not payloads:
            raise CliError(f"{args.payload_file} holds no payloads")
    else:
        if args.record_size < 0:
            raise CliError("--record-size must not be negative")
        rng = random.Random()
        payloads = [bytes(rng.randint(65, 90) for _ in range(args.record_size))]

    client = await admin_client(bootstrap, client_id=settings.client_id)
    try:
        producer = Producer(client, acks=settings.acks, linger_ms=settings.linger_ms,
                            batch_size=settings.batch_size, compression=settings.compression,
                            max_in_flight=max(settings.max_in_flight, 64),
                            request_timeout_ms=settings.request_timeout_ms)
        await producer.partition_count(args.topic)
        stats = Stats(args.num_records)
        throttler = Throttler(args.throughput)
        interval = max(args.reporting_interval, 1) / 1000
        errors: list[BaseException] = []

        async def report() -> None:
            while True:
                await asyncio.sleep(interval)
                print(stats.window_line(time.monotonic()), flush=True)

        reporter = asyncio.get_running_loop().create_task(report())
        pick = random.Random()
        try:
            for i in range(args.num_records):
                payload = payloads[0] if len(payloads) == 1 else pick.choice(payloads)
                sent_at = time.monotonic()

                def done(_offset: int, error: BaseException | None, t0: float = sent_at,
                         size: int = len(payload)) -> None:
                    if error is not None:
                        errors.append(error)
                        return
                    stats.record((time.monotonic() - t0) * 1000, size)

                await producer.send(args.topic, payload, callback=done)
                await throttler.throttle(i + 1)
            await producer.flush()
        finally:
            reporter.cancel()
        if stats.window_count:
            print(stats.window_line(time.monotonic()))
        print(stats.summary_line(time.monotonic()), flush=True)
        if errors:
            print(f"Error: {len(errors)} record(s) failed: {errors[0]}", file=sys.stderr)
            return 1
        return 0
    finally:
        await client.close()


def producer_main(argv: Sequence[str] | None = None) -> int:
    args = producer_parser().parse_args(argv)
    return run_tool("kafka-producer-perf-test", lambda: _producer(args))


# -- consumer -----------------------------------------------------------------------------------


HEADER_EXTRA = ", rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"


def consumer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kafka-consumer-perf-test",
                                description="Consumer throughput test.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--messages", type=int, required=True, help="records to consume")
    p.add_argument("--group", help="consumer group (default: no group, assign every partition)")
    p.add_argument("--from-latest", action="store_true")
    p.add_argument("--fetch-size", type=int, default=1048576, help="bytes per partition fetch")
    p.add_argument("--timeout", type=int, default=10000,
                   help="ms without a record before giving up (default 10000)")
    p.add_argument("--reporting-interval", type=int, default=5000)
    p.add_argument("--show-detailed-stats", action="store_true")
    p.add_argument("--hide-header", action="store_true")
    p.add_argument("--date-format", default="yyyy-MM-dd HH:mm:ss:SSS",
                   help="only Kafka's default format is supported")
    p.add_argument("--consumer.config", dest="consumer_config", help="accepted; not used")
    p.add_argument("--print-metrics", action="store_true", help="accepted; not used")
    return p


def kafka_date(epoch_s: float) -> str:
    """Kafka's default ``yyyy-MM-dd HH:mm:ss:SSS`` in local time."""
    ms = int(epoch_s * 1000) % 1000
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch_s)) + f":{ms:03d}"


def consumer_line(start_s: float, end_s: float, nbytes: int, nmsgs: int, join_ms: int) -> str:
    elapsed = max(end_s - start_s, 1e-9)
    mb = nbytes / MB
    fetch_ms = max(int((end_s - start_s) * 1000) - join_ms, 1)
    return (f"{kafka_date(start_s)}, {kafka_date(end_s)}, {mb:.4f}, {mb / elapsed:.4f}, "
            f"{nmsgs}, {nmsgs / elapsed:.4f}, {join_ms}, {fetch_ms}, "
            f"{mb / (fetch_ms / 1000):.4f}, {nmsgs / (fetch_ms / 1000):.4f}")


async def _consumer(args: argparse.Namespace) -> int:
    if args.messages < 0:
        raise CliError("--messages must not be negative")
    if args.date_format != "yyyy-MM-dd HH:mm:ss:SSS":
        raise CliError("only the default --date-format is supported")
    client = await admin_client(args.bootstrap_server, client_id="kafka-consumer-perf-test")
    member: GroupMember | None = None
    try:
        if not args.hide_header:
            if args.show_detailed_stats:
                print("time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                      f"nMsg.sec{HEADER_EXTRA}")
            else:
                print("start.time, end.time, data.consumed.in.MB, MB.sec, "
                      f"data.consumed.in.nMsg, nMsg.sec{HEADER_EXTRA}")
        start = time.time()
        answer = await client.metadata([args.topic])
        t = answer.topics.get(args.topic)
        if t is None or t.error_code or not t.partitions:
            raise CliError(f"Topic {args.topic} does not exist")
        reset_ts = LATEST_TIMESTAMP if args.from_latest else EARLIEST_TIMESTAMP
        positions: dict[TopicPartition, int] = {}
        join_ms = 0
        if args.group:
            member = GroupMember(client, args.group, [args.topic],
                                 client_id="kafka-consumer-perf-test")
            j0 = time.monotonic()
            assigned = await member.join()
            join_ms = int((time.monotonic() - j0) * 1000)
            positions.update(await member.committed(assigned))
            missing = [tp.partition for tp in assigned if tp not in positions]
        else:
            missing = sorted(t.partitions)
        if missing:
            for p, off in (await list_offsets_of(client, args.topic, missing,
                                                 reset_ts)).items():
                positions[TopicPartition(args.topic, p)] = off
        count = nbytes = 0
        last_record = time.monotonic()
        last_report = time.time()
        report_count = report_bytes = 0
        timed_out = False
        while count < args.messages:
            by_node: dict[int, dict[TopicPartition, int]] = {}
            for tp, off in positions.items():
                by_node.setdefault(client.leader_for(tp.topic, tp.partition), {})[tp] = off
            if -1 in by_node:
                await client.metadata([args.topic])
                await asyncio.sleep(0.1)
                continue
            results = await asyncio.gather(*(
                fetch_from(client, node, pos, max_wait_ms=100,
                           partition_max_bytes=args.fetch_size)
                for node, pos in by_node.items()))
            got = 0
            for res in results:
                for fp in res:
                    tp = TopicPartition(fp.topic, fp.partition)
                    if fp.error_code:
                        continue
                    pos = positions[tp]
                    for header, records in fp.records:
                        for r in records:
                            if r.offset < pos or count >= args.messages or header.is_control:
                                continue
                            size = (len(r.value) if r.value else 0) + (len(r.key) if r.key
                                                                       else 0)
                            count += 1
                            got += 1
                            nbytes += size
                            pos = r.offset + 1
                        if count < args.messages:
                            pos = max(pos, header.next_offset)
                    positions[tp] = pos
            now = time.monotonic()
            if got:
                last_record = now
            elif (now - last_record) * 1000 >= args.timeout:
                timed_out = True
                break
            if args.show_detailed_stats and time.time() - last_report >= \
                    args.reporting_interval / 1000:
                wall = time.time()
                elapsed = wall - last_report
                mb = (nbytes - report_bytes) / MB
                n = count - report_count
                print(f"{kafka_date(wall)}, 0, {nbytes / MB:.4f}, {mb / elapsed:.4f}, {count}, "
                      f"{n / elapsed:.4f}, {join_ms}, {int(elapsed * 1000)}, "
                      f"{mb / elapsed:.4f}, {n / elapsed:.4f}", flush=True)
                last_report, report_count, report_bytes = wall, count, nbytes
        end = time.time()
        if timed_out:
            print(f"WARNING: Exiting before consuming the expected number of messages: "
                  f"timeout ({args.timeout} ms) exceeded. You can use the --timeout option "
                  "to increase the timeout.")
        if member is not None:
            await member.commit(positions)
        if not args.show_detailed_stats:
            print(consumer_line(start, end, nbytes, count, join_ms))
        return 0
    finally:
        if member is not None:
            await member.leave()
        await client.close()


def consumer_main(argv: Sequence[str] | None = None) -> int:
    args = consumer_parser().parse_args(argv)
    return run_tool("kafka-consumer-perf-test", lambda: _consumer(args))


if __name__ == "__main__":
    sys.exit(producer_main() if "--num-records" in sys.argv else consumer_main())
