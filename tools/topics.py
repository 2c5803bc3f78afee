"""``kafka-topics``: create, list, describe, alter and delete topics (Kafka's TopicCommand).

    kafka-topics --bootstrap-server HOST:PORT --create --topic T --partitions 3 \\
        --replication-factor 2 --config retention.ms=60000
    kafka-topics --bootstrap-server HOST:PORT --list
    kafka-topics --bootstrap-server HOST:PORT --describe [--topic T]
    kafka-topics --bootstrap-server HOST:PORT --alter --topic T --partitions 6
    kafka-topics --bootstrap-server HOST:PORT --delete --topic T

``--topic`` may be a regular expression for --list/--describe/--alter/--delete, as in Kafka.
--describe reads the partitions with DescribeTopicPartitions, a page at a time, as Kafka's tool
does since 3.8 (Metadata from a cluster that does not serve it).
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import uuid
from collections.abc import Sequence

from broker.client import KafkaClient, PartitionInfo, TopicInfo, UnsupportedVersionError
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import describe_topic_partitions
from tools.cli_client import (
    OP_SET,
    RESOURCE_TYPES,
    CliError,
    admin_client,
    alter_configs,
    create_partitions_to,
    create_topic,
    delete_topic,
    describe_configs_of,
    failure,
    parse_properties_args,
    run_tool,
)

PROG = "kafka-topics"
_REGEX_CHARS = set("*?[]()|+^$\\{}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Create, delete, describe, or change "
                                "a topic.")
    actions = p.add_mutually_exclusive_group(required=True)
    for flag, text in (("--create", "Create a new topic."), ("--list", "List all topics."),
                       ("--describe", "List details for the given topics."),
                       ("--alter", "Alter the number of partitions (and configs)."),
                       ("--delete", "Delete a topic.")):
        actions.add_argument(flag, action="store_true", help=text)
    p.add_argument("--bootstrap-server", required=True, help="REQUIRED: host:port[,host:port]")
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    p.add_argument("--topic", help="the topic (a regular expression except with --create)")
    p.add_argument("--partitions", type=int, help="number of partitions")
    p.add_argument("--replication-factor", type=int, help="replication factor")
    p.add_argument("--replica-assignment",
                   help="partition:broker lists, e.g. 1:2,3:1 (partition 0 on 1 and 2, ...)")
    p.add_argument("--config", action="append", help="a topic config override key=value")
    p.add_argument("--if-not-exists", action="store_true")
    p.add_argument("--if-exists", action="store_true")
    p.add_argument("--exclude-internal", action="store_true")
    p.add_argument("--topics-with-overrides", action="store_true")
    p.add_argument("--under-replicated-partitions", action="store_true")
    p.add_argument("--under-min-isr-partitions", action="store_true")
    p.add_argument("--unavailable-partitions", action="store_true")
    return p


def parse_assignment(text: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, part in enumerate(text.split(",")):
        try:
            out[i] = [int(b) for b in part.split(":")]
        except ValueError:
            raise CliError(f"bad --replica-assignment {text!r}: expected broker ids like "
                           "1:2,2:3") from None
    return out


async def _matching(client: KafkaClient, pattern: str | None, *,
                    exclude_internal: bool) -> dict[str, TopicInfo]:
    topics = await client.list_topics(include_internal=not exclude_internal)
    if pattern is None:
        return topics
    if set(pattern) & _REGEX_CHARS:
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise CliError(f"bad --topic regular expression {pattern!r}: {e}") from None
        return {n: t for n, t in topics.items() if rx.fullmatch(n)}
    # An internal topic named exactly is shown even without listing internals.
    if pattern not in topics:
        answer = await client.metadata([pattern])
        t = answer.topics.get(pattern)
        return {pattern: t} if t is not None and not t.error_code else {}
    return {pattern: topics[pattern]}


def kafka_uuid(u: uuid.UUID | None) -> str:
    """Kafka prints a Uuid as URL-safe base64 without padding."""
    raw = u.bytes if u is not None else bytes(16)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _ids(xs: Sequence[int]) -> str:
    return ",".join(map(str, xs))


# Partitions per DescribeTopicPartitions answer (Kafka's tool: --partition-size-limit-per-response,
# default 2000).
PARTITIONS_PER_RESPONSE = 2000


async def describe_partitions(client: KafkaClient, names: Sequence[str],
                              limit: int = PARTITIONS_PER_RESPONSE
                              ) -> dict[str, list[PartitionInfo]] | None:
    """The partitions of ``names`` from DescribeTopicPartitions, following its cursor until the
    last page; None when the cluster does not serve it. A topic's error is a ``CliError``."""
    if not names:
        return {}
    R = describe_topic_partitions.REQUEST
    out: dict[str, list[PartitionInfo]] = {n: [] for n in names}
    cursor = None
    while True:
        req = R.cls(topics=[R.TopicRequest(name=n) for n in names],
                    response_partition_limit=limit, cursor=cursor)
        try:
            resp = await client.send_to_any(ApiKey.DESCRIBE_TOPIC_PARTITIONS, req)
        except UnsupportedVersionError:
            return None
        for t in resp.topics:
            if t.error_code:
                raise failure(f"Describing topic {t.name}", t.error_code)
            out.setdefault(t.name, []).extend(PartitionInfo(
                t.name, p.partition_index, p.leader_id, p.leader_epoch, tuple(p.replica_nodes),
                tuple(p.isr_nodes), tuple(p.offline_replicas), p.error_code)
                for p in t.partitions)
        nxt = resp.next_cursor
        if nxt is None:
            return out
        cursor = R.Cursor(topic_name=nxt.topic_name, partition_index=nxt.partition_index)


async def describe(client: KafkaClient, args: argparse.Namespace) -> int:
    topics = await _matching(client, args.topic, exclude_internal=args.exclude_internal)
    if args.topic and not topics and not args.if_exists:
        raise CliError(f"Topic '{args.topic}' does not exist as expected")
    described = await describe_partitions(client, sorted(topics))
    live = set(client.cluster.brokers)
    partition_filter = (args.under_replicated_partitions or args.unavailable_partitions
                        or args.under_min_isr_partitions)
    for name, t in sorted(topics.items()):
        configs = [c for c in await describe_configs_of(client, RESOURCE_TYPES["topics"], name)
                   if c.source == "DYNAMIC_TOPIC_CONFIG"]
        if args.topics_with_overrides and not configs:
            continue
        parts = (sorted(described[name], key=lambda p: p.partition) if described is not None
                 else [t.partitions[i] for i in sorted(t.partitions)])
        rf = len(parts[0].replicas) if parts else 0
        if not partition_filter:
            conf = ",".join(f"{c.name}={'SENSITIVE' if c.is_sensitive else c.value}"
                            for c in configs)
            tid = kafka_uuid(t.topic_id)
            print(f"Topic: {name}\tTopicId: {tid}\tPartitionCount: {len(parts)}\t"
                  f"ReplicationFactor: {rf}\tConfigs: {conf}")
        if args.topics_with_overrides:
            continue
        for p in parts:
            if args.under_replicated_partitions and len(p.isr) >= len(p.replicas):
                continue
            if args.unavailable_partitions and p.leader_id in live:
                continue
            if args.under_min_isr_partitions:
                continue  # min.insync.replicas per topic would need a config round trip each
            leader = p.leader_id if p.leader_id >= 0 else "none"
            print(f"\tTopic: {name}\tPartition: {p.partition}\tLeader: {leader}\t"
                  f"Replicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}"
                  + (f"\tOffline: {_ids(p.offline_replicas)}" if p.offline_replicas else ""))
    return 0


async def _main(args: argparse.Namespace) -> int:
    configs = parse_properties_args(args.config, "--config")
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        if args.create:
            if not args.topic:
                raise CliError("--topic is required with --create")
            assignment = parse_assignment(args.replica_assignment) \
                if args.replica_assignment else None
            if args.partitions is not None and args.partitions < 1:
                raise CliError("--partitions must be at least 1")
            if args.replication_factor is not None and args.replication_factor < 1:
                raise CliError("--replication-factor must be at least 1")
            await create_topic(client, args.topic, args.partitions, args.replication_factor,
                               configs, assignment, args.if_not_exists)
            print(f"Created topic {args.topic}.")
            return 0
        if args.list:
            for name in sorted(await _matching(client, args.topic,
                                               exclude_internal=args.exclude_internal)):
                print(name)
            return 0
        if args.describe:
            return await describe(client, args)
        if not args.topic:
            raise CliError(f"--topic is required with {'--alter' if args.alter else '--delete'}")
        topics = await _matching(client, args.topic, exclude_internal=False)
        if not topics:
            if args.if_exists:
                return 0
            raise CliError(f"Topic '{args.topic}' does not exist as expected")
        if args.delete:
            internal = [n for n, t in topics.items() if t.is_internal]
            if internal:
                raise CliError(f"Topic {internal[0]} is a kafka internal topic and is not "
                               "allowed to be marked for deletion.")
            await delete_topic(client, sorted(topics))
            return 0
        # --alter
        if args.partitions is None and not configs:
            raise CliError("--alter needs --partitions and/or --config")
        for name, t in sorted(topics.items()):
            if args.partitions is not None:
                if args.partitions <= len(t.partitions):
                    raise CliError(f"Topic {name} already has {len(t.partitions)} partitions; "
                                   "the count can only be increased")
                await create_partitions_to(client, name, args.partitions)
            if configs:
                await alter_configs(client, RESOURCE_TYPES["topics"], name,
                                    [(k, OP_SET, v) for k, v in configs.items()])
        return 0
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
