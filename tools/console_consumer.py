"""``kafka-console-consumer``: print records of a topic to stdout (Kafka's ConsoleConsumer).

    kafka-console-consumer --bootstrap-server B --topic T [--from-beginning] \\
        [--max-messages N] [--timeout-ms MS] [--partition P [--offset earliest|latest|N]] \\
        [--group G] [--property print.key=true --property key.separator=:]

Without ``--group`` it assigns itself every partition of the topic (or ``--partition``) and
starts at ``--offset`` (default latest; ``--from-beginning`` = earliest). With ``--group`` it
joins the consumer group (classic protocol, range assignor), starts from the committed offsets
(``auto.offset.reset``: earliest with ``--from-beginning``, else latest, where none is
committed), commits every ``auto.commit.interval.ms`` (5000) and on exit, and leaves the group.

Formatter properties (``--property``): ``print.timestamp``, ``print.key``, ``print.offset``,
``print.partition``, ``print.headers``, ``print.value`` (default true), ``key.separator``
(tab), ``line.separator`` (newline), ``headers.separator`` (,), ``null.literal`` (null).
At exit it prints ``Processed a total of N messages`` to stderr, as Kafka does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from broker.client import KafkaClient, KafkaConnectionError, KafkaTimeoutError
from broker.protocol.errors import ErrorCode, KafkaError
from storage.record_batch import BatchHeader
from storage.records import Record
from tools.cli_client import (
    CliError,
    TopicPartition,
    admin_client,
    error_name,
    parse_properties_args,
    run_tool,
)
from tools.cli_fetch import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    FetchedPartition,
    committed_batches,
    fetch_from,
    list_offsets_of,
)
from tools.console_producer import load_config_file
from tools.group_client import GroupMember

PROG = "kafka-console-consumer"
_REFRESH = {ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE,
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.FENCED_LEADER_EPOCH,
            ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.KAFKA_STORAGE_ERROR,
            ErrorCode.REPLICA_NOT_AVAILABLE, ErrorCode.NOT_LEADER_OR_FOLLOWER}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Read records from a topic and print "
                                "them to stdout.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", help="consumer group id")
    p.add_argument("--partition", type=int, help="consume only this partition")
    p.add_argument("--offset", default=None,
                   help="earliest, latest or an offset (with --partition; default latest)")
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the earliest offset (when there is no committed one)")
    p.add_argument("--max-messages", type=int, help="exit after this many records")
    p.add_argument("--timeout-ms", type=int, help="exit when no record arrives for this long")
    p.add_argument("--property", action="append", help="formatter property key=value")
    p.add_argument("--formatter-property", action="append", dest="property")
    p.add_argument("--consumer-property", action="append", help="consumer property key=value")
    p.add_argument("--consumer.config", dest="consumer_config", help="consumer properties file")
    p.add_argument("--isolation-level", choices=["read_committed", "read_uncommitted"],
                   default=None)
    p.add_argument("--skip-message-on-error", action="store_true")
    p.add_argument("--formatter", help="accepted for compatibility; the default formatter is "
                   "always used")
    return p


@dataclass(frozen=True, slots=True)
class Formatter:
    print_timestamp: bool = False
    print_key: bool = False
    print_offset: bool = False
    print_partition: bool = False
    print_headers: bool = False
    print_value: bool = True
    key_separator: bytes = b"\t"
    line_separator: bytes = b"\n"
    headers_separator: bytes = b","
    null_literal: bytes = b"null"

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> Formatter:
        def flag(key: str, default: bool) -> bool:
            return props.get(key, str(default)).strip().lower() == "true"

        def text(key: str, default: str) -> bytes:
            # Kafka unescapes \t and \n in separators given on the command line.
            raw = props.get(key, default)
            return raw.encode().decode("unicode_escape").encode()

        return cls(flag("print.timestamp", False), flag("print.key", False),
                   flag("print.offset", False), flag("print.partition", False),
                   flag("print.headers", False), flag("print.value", True),
                   text("key.separator", "\t"), text("line.separator", "\n"),
                   text("headers.separator", ","), text("null.literal", "null"))

    def format(self, partition: int, header: BatchHeader, r: Record) -> bytes:
        """Kafka's DefaultMessageFormatter: fields in a fixed order, key.separator between
        them, line.separator after the last."""
        parts: list[bytes] = []
        if self.print_timestamp:
            kind = "LogAppendTime" if header.is_log_append_time else "CreateTime"
            parts.append(f"{kind}:{r.timestamp}".encode() if r.timestamp >= 0
                         else b"NO_TIMESTAMP")
        if self.print_partition:
            parts.append(f"Partition:{partition}".encode())
        if self.print_offset:
            parts.append(f"Offset:{r.offset}".encode())
        if self.print_headers:
            if not r.headers:
                parts.append(b"NO_HEADERS")
            else:
                parts.append(self.headers_separator.join(
                    k.encode() + b":" + (self.null_literal if v is None else v)
                    for k, v in r.headers))
        if self.print_key:
            parts.append(self.null_literal if r.key is None else r.key)
        if self.print_value:
            parts.append(self.null_literal if r.value is None else r.value)
        if not parts:
            return b""
        return self.key_separator.join(parts) + self.line_separator


class ConsoleConsumer:
    def __init__(self, client: KafkaClient, args: argparse.Namespace, fmt: Formatter,
                 props: dict[str, str], out: BinaryIO) -> None:
        self.client = client
        self.args = args
        self.fmt = fmt
        self.out = out
        self.topic: str = args.topic
        self.positions: dict[TopicPartition, int] = {}
        self.count = 0
        self.isolation = 1 if (args.isolation_level or props.get("isolation.level", "")
                               ) == "read_committed" else 0
        reset = props.get("auto.offset.reset")
        if reset is None:
            reset = "earliest" if args.from_beginning else "latest"
        if reset not in ("earliest", "latest", "none"):
            raise CliError(f"Invalid value {reset} for configuration auto.offset.reset")
        self.reset = reset
        self.commit_interval_s = float(props.get("auto.commit.interval.ms", "5000")) / 1000
        self.auto_commit = props.get("enable.auto.commit", "true").lower() == "true"
        self.member: GroupMember | None = None
        self.stopping = asyncio.Event()

    async def _reset_offsets(self, tps: Sequence[TopicPartition]) -> None:
        if self.reset == "none":
            raise CliError(f"no committed offset for {', '.join(map(_tp_name, tps))} and "
                           "auto.offset.reset=none")
        ts = EARLIEST_TIMESTAMP if self.reset == "earliest" else LATEST_TIMESTAMP
        by_topic: dict[str, list[int]] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        for topic, parts in by_topic.items():
            offsets = await list_offsets_of(self.client, topic, parts, ts, self.isolation)
            for p, off in offsets.items():
                self.positions[TopicPartition(topic, p)] = off

    async def _topic_partitions(self) -> list[int]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            answer = await self.client.metadata([self.topic])
            t = answer.topics.get(self.topic)
            if t is not None and not t.error_code and t.partitions:
                return sorted(t.partitions)
            if loop.time() > deadline:
                raise CliError(f"Topic {self.topic} not present in metadata after 15000 ms.")
            await asyncio.sleep(0.2)

    async def assign(self) -> None:
        """Manual assignment: every partition, or --partition, at --offset."""
        parts = await self._topic_partitions()
        if self.args.partition is not None:
            if self.args.partition not in parts:
                raise CliError(f"partition {self.args.partition} of {self.topic} does not "
                               f"exist (it has {len(parts)})")
            parts = [self.args.partition]
        tps = [TopicPartition(self.topic, p) for p in parts]
        offset = self.args.offset
        if offset is None or offset in ("earliest", "latest"):
            if offset is not None:
                self.reset = offset
            await self._reset_offsets(tps)
            return
        try:
            start = int(offset)
        except ValueError:
            raise CliError(f"--offset must be earliest, latest or a number, got "
                           f"{offset!r}") from None
        if start < 0:
            raise CliError("--offset must not be negative")
        for tp in tps:
            self.positions[tp] = start

    async def join(self) -> None:
        assert self.member is not None
        while True:
            assigned = await self.member.join()
            self.positions = {}
            if not assigned:
                return
            committed = await self.member.committed(assigned)
            self.positions.update({tp: off for tp, off in committed.items()})
            missing = [tp for tp in assigned if tp not in committed]
            if missing:
                await self._reset_offsets(missing)
            return

    def _emit(self, fp: FetchedPartition) -> None:
        tp = TopicPartition(fp.topic, fp.partition)
        pos = self.positions.get(tp)
        if pos is None:
            return
        limit = self.args.max_messages
        chunks: list[bytes] = []
        batches = committed_batches(fp) if self.isolation == 1 else fp.records
        for header, records in batches:
            if header.is_control:
                self.positions[tp] = max(self.positions[tp], header.next_offset)
                continue
            for r in records:
                if r.offset < pos:
                    continue
                if limit is not None and self.count >= limit:
                    break
                chunks.append(self.fmt.format(fp.partition, header, r))
                self.count += 1
                pos = r.offset + 1
            else:
                pos = max(pos, header.next_offset)
            self.positions[tp] = pos
            if limit is not None and self.count >= limit:
                break
        if chunks:
            self.out.write(b"".join(chunks))
            self.out.flush()

    async def _fetch_round(self) -> bool:
        """One Fetch per leader; returns whether any record was printed."""
        if not self.positions:
            await asyncio.sleep(0.2)
            return False
        by_node: dict[int, dict[TopicPartition, int]] = {}
        refresh = False
        for tp, off in self.positions.items():
            leader = self.client.leader_for(tp.topic, tp.partition)
            if leader < 0 or leader not in self.client.cluster.brokers:
                refresh = True
                continue
            by_node.setdefault(leader, {})[tp] = off
        before = self.count
        results = await asyncio.gather(*(fetch_from(self.client, node, pos, max_wait_ms=500,
                                                    isolation_level=self.isolation)
                                         for node, pos in by_node.items()),
                                       return_exceptions=True)
        reset: list[TopicPartition] = []
        for res in results:
            if isinstance(res, KafkaConnectionError | KafkaTimeoutError):
                refresh = True
                continue
            if isinstance(res, BaseException):
                raise res
            for fp in res:
                if fp.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    reset.append(TopicPartition(fp.topic, fp.partition))
                elif fp.error_code in _REFRESH:
                    refresh = True
                elif fp.error_code:
                    raise CliError(f"Fetch from {fp.topic}-{fp.partition} failed: "
                                   f"{error_name(fp.error_code)}")
                else:
                    self._emit(fp)
                if self.args.max_messages is not None and self.count >= self.args.max_messages:
                    return True
        if reset:
            await self._reset_offsets(reset)
        if refresh:
            await asyncio.sleep(0.2)
            with contextlib.suppress(KafkaConnectionError, KafkaTimeoutError, KafkaError):
                await self.client.metadata([self.topic])
        if not by_node and not refresh:
            await asyncio.sleep(0.1)
        return self.count > before

    async def commit(self) -> None:
        if self.member is not None and self.member.generation is not None and self.positions:
            await self.member.commit(dict(self.positions))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        if self.args.group:
            self.member = GroupMember(self.client, self.args.group, [self.topic],
                                      client_id=PROG)
            await self.join()
        else:
            await self.assign()
        last_record = loop.time()
        last_commit = loop.time()
        timeout_s = None if self.args.timeout_ms is None else self.args.timeout_ms / 1000
        while not self.stopping.is_set():
            if self.args.max_messages is not None and self.count >= self.args.max_messages:
                return
            if self.member is not None and self.member.rebalance_needed.is_set():
                with contextlib.suppress(CliError):
                    await self.commit()
                await self.join()
            got = await self._fetch_round()
            now = loop.time()
            if got:
                last_record = now
            elif timeout_s is not None and now - last_record >= timeout_s:
                print(f"[{PROG}] Timed out after {self.args.timeout_ms} ms waiting for "
                      "records", file=sys.stderr)
                return
            if self.member is not None and self.auto_commit and \
                    now - last_commit >= self.commit_interval_s:
                last_commit = now
                with contextlib.suppress(CliError):
                    await self.commit()

    async def close(self) -> None:
        if self.member is not None:
            try:
                if self.auto_commit:
                    await self.commit()
            finally:
                await self.member.leave()


def _tp_name(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"


def _check_args(args: argparse.Namespace) -> None:
    if args.group and args.partition is not None:
        raise CliError("Options group and partition cannot be specified together.")
    if args.offset is not None and args.partition is None:
        raise CliError("The partition is required when offset is specified.")
    if args.offset is not None and args.from_beginning:
        raise CliError("Options from-beginning and offset cannot be specified together.")
    if args.max_messages is not None and args.max_messages < 0:
        raise CliError("--max-messages must not be negative")
    if args.timeout_ms is not None and args.timeout_ms < 0:
        raise CliError("--timeout-ms must not be negative")


async def _main(args: argparse.Namespace) -> int:
    _check_args(args)
    props = load_config_file(args.consumer_config)
    props.update(parse_properties_args(args.consumer_property, "--consumer-property"))
    if args.group is None and props.get("group.id"):
        args.group = props["group.id"]
    fmt = Formatter.from_properties(parse_properties_args(args.property, "--property"))
    client = await admin_client(args.bootstrap_server, client_id=PROG, props=props)
    consumer = ConsoleConsumer(client, args, fmt, props, sys.stdout.buffer)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    stop_signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal() -> None:
        consumer.stopping.set()
        if task is not None:
            task.cancel()

    for sig in stop_signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.run()
    finally:
        for sig in stop_signals:
            loop.remove_signal_handler(sig)
        try:
            await asyncio.wait_for(consumer.close(), 10)
        except (CliError, KafkaConnectionError, KafkaTimeoutError, TimeoutError) as e:
            print(f"[{PROG}] Closing the group member failed: {e}", file=sys.stderr)
        await client.close()
        print(f"Processed a total of {consumer.count} messages", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
