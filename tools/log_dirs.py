"""``kafka-log-dirs``: the log directories of brokers, the partitions in each and their sizes
(Kafka's LogDirsCommand), through DescribeLogDirs sent to every broker asked.

    kafka-log-dirs --bootstrap-server B --describe [--broker-list 1,2] [--topic-list a,b]

Prints what Kafka's tool prints: two progress lines, then one JSON line
``{"brokers":[{"broker":1,"logDirs":[{"partitions":[{"partition":"t-0","size":123,
"offsetLag":0,"isFuture":false}],"error":null,"logDir":"/path"}]}],"version":1}``; "error" is
the Java exception class of a directory's error (an offline directory:
``org.apache.kafka.common.errors.KafkaStorageException``). Like Kafka's tool it asks each broker
for every partition and keeps those of ``--topic-list`` itself; a broker id the cluster does not
list is an error before anything is asked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import error_for_code
from broker.protocol.messages import describe_log_dirs
from tools.cli_client import CliError, admin_client, failure, run_tool

PROG = "kafka-log-dirs"
_JAVA_ERRORS = "org.apache.kafka.common.errors."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="This tool helps to query log directory usage on the specified "
        "brokers.")
    p.add_argument("--bootstrap-server", required=True,
                   help="REQUIRED: the server(s) to use for bootstrapping")
    p.add_argument("--describe", action="store_true", required=True,
                   help="Describe the specified log directories on the specified brokers.")
    p.add_argument("--broker-list", default="",
                   help='The list of brokers to be queried in the form "0,1,2". All brokers '
                   "in the cluster will be queried if no broker list is specified")
    p.add_argument("--topic-list", default="",
                   help='The list of topics to be queried in the form "topic1,topic2,topic3". '
                   "All topics will be queried if no topic list is specified")
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    return p


def _split(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_brokers(text: str) -> set[int]:
    try:
        return {int(x) for x in _split(text)}
    except ValueError:
        raise CliError(f"bad --broker-list {text!r}: expected broker ids like 0,1,2") from None


def java_exception_name(code: int) -> str | None:
    """The Java class Kafka's admin client raises for ``code`` (None for no error), as Kafka's
    tool prints it."""
    if not code:
        return None
    cls = error_for_code(code)
    m = re.search(r"Kafka: (\w+)", cls.__doc__ or "")
    return _JAVA_ERRORS + (m.group(1) if m else cls.__name__)


def log_dirs_json(answers: Mapping[int, Sequence[Any]], topics: set[str]) -> str:
    """Kafka's JSON line for the DescribeLogDirs results of each broker; ``topics`` (empty:
    all) filters the partitions."""
    brokers = []
    for broker in sorted(answers):
        dirs = []
        for r in answers[broker]:
            parts = [(t.name, p) for t in r.topics for p in t.partitions
                     if not topics or t.name in topics]
            dirs.append({
                "partitions": [{"partition": f"{name}-{p.partition_index}",
                                "size": p.partition_size, "offsetLag": p.offset_lag,
                                "isFuture": bool(p.is_future_key)}
                               for name, p in sorted(parts, key=lambda x: (
                                   x[0], x[1].partition_index))],
                "error": java_exception_name(r.error_code),
                "logDir": r.log_dir,
            })
        brokers.append({"broker": broker, "logDirs": dirs})
    return json.dumps({"brokers": brokers, "version": 1}, separators=(",", ":"))


async def describe_log_dirs_of(client: KafkaClient, broker: int) -> list[Any]:
    """One broker's log dirs, every partition (topics null, as Kafka's admin client asks)."""
    resp = await client.send_to(broker, ApiKey.DESCRIBE_LOG_DIRS,
                                describe_log_dirs.REQUEST.cls(topics=None))
    if resp.error_code:
        raise failure(f"Describing the log dirs of broker {broker}", resp.error_code)
    return list(resp.results)


async def _main(args: argparse.Namespace) -> int:
    asked = parse_brokers(args.broker_list)
    topics = set(_split(args.topic_list))
    client = await admin_client(args.bootstrap_server, command_config=args.command_config,
                                client_id="log-dirs-tool")
    try:
        cluster = set(client.cluster.brokers)
        missing = asked - cluster
        if missing:
            print("ERROR: The given brokers do not exist from --broker-list: "
                  f"{','.join(map(str, sorted(missing)))}. Current existent brokers: "
                  f"{','.join(map(str, sorted(cluster)))}", file=sys.stderr)
            return 1
        brokers = sorted(asked or cluster)
        print("Querying brokers for log directories information")
        results = await asyncio.gather(*(describe_log_dirs_of(client, b) for b in brokers))
    finally:
        await client.close()
    print("Received log directory information from brokers "
          + ",".join(map(str, brokers)))
    print(log_dirs_json(dict(zip(brokers, results, strict=True)), topics))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
