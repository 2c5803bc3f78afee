"""``kafka-delete-records``: delete the records of partitions below given offsets (Kafka's
DeleteRecordsCommand), through the DeleteRecords API sent to each partition's leader.

    kafka-delete-records --bootstrap-server B --offset-json-file F

The JSON file has Kafka's shape:
``{"partitions": [{"topic": "foo", "partition": 0, "offset": 5}], "version": 1}`` (offset -1:
up to the high watermark). Each partition's answer is printed as Kafka prints it, its new low
watermark or its error; like Kafka's tool, per-partition errors do not change the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError, error_for_code
from broker.protocol.messages import delete_records
from tools.cli_client import (
    DEFAULT_ADMIN_TIMEOUT_MS,
    CliError,
    admin_client,
    error_name,
    run_tool,
)

PROG = "kafka-delete-records"
# Retried after a metadata refresh (the leader moved, or is not known yet).
_RETRY = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE})


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Delete the records of the given partitions down to the given "
        "offsets.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--offset-json-file", required=True,
                   help='{"partitions": [{"topic": "foo", "partition": 1, "offset": 1}], '
                   '"version": 1}')
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    return p


def parse_offsets(text: str, where: str = "offset json") -> list[tuple[str, int, int]]:
    """(topic, partition, offset) from Kafka's offset JSON; duplicates are an error."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{where} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CliError(f"{where}: expected a JSON object")
    version = data.get("version", 1)
    if version != 1:
        raise CliError(f"Not supported version field value {version}")
    items = data.get("partitions")
    if not isinstance(items, list):
        raise CliError("Missing partitions field")
    out: list[tuple[str, int, int]] = []
    for item in items:
        if not (isinstance(item, dict) and isinstance(item.get("topic"), str)
                and type(item.get("partition")) is int and type(item.get("offset")) is int):
            raise CliError(f"{where}: bad partition entry {item!r}")
        out.append((item["topic"], item["partition"], item["offset"]))
    seen: set[tuple[str, int]] = set()
    dups = []
    for t, p, _ in out:
        if (t, p) in seen:
            dups.append(f"{t}-{p}")
        seen.add((t, p))
    if dups:
        raise CliError("Offset json file contains duplicate topic partitions: "
                       + ",".join(dups))
    return out


async def delete_records_of(client: KafkaClient, topic: str, partition: int, offset: int,
                            timeout_ms: int = DEFAULT_ADMIN_TIMEOUT_MS) -> tuple[int, int]:
    """(error code, low watermark) of one partition, from its leader."""
    R = delete_records.REQUEST
    req = R.cls(topics=[R.DeleteRecordsTopic(name=topic, partitions=[
        R.DeleteRecordsPartition(partition_index=partition, offset=offset)])],
        timeout_ms=timeout_ms)

    def check(resp: Any) -> int | None:
        code = resp.topics[0].partitions[0].error_code
        return code if code in _RETRY else None

    try:
        resp = await client.send_to_leader(topic, partition, ApiKey.DELETE_RECORDS, req,
                                           check=check, timeout_s=timeout_ms / 1000 + 5)
    except KafkaError as e:
        return int(e.code), -1
    r = resp.topics[0].partitions[0]
    return r.error_code, r.low_watermark


def describe(topic: str, partition: int, code: int, low_watermark: int) -> str:
    """One line of the tool's report, as Kafka's tool prints it."""
    if code == 0:
        return f"partition: {topic}-{partition}\tlow_watermark: {low_watermark}"
    message = error_for_code(code).message
    return (f"partition: {topic}-{partition}\terror: {error_name(code)}"
            + (f": {message}" if message else ""))


async def _main(args: argparse.Namespace) -> int:
    path = args.offset_json_file
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None
    offsets = parse_offsets(text, path)
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        print("Executing records delete operation")
        # Partitions the metadata does not know are answered without a request (as Kafka's
        # admin client does).
        known = (await client.metadata(sorted({t for t, _, _ in offsets}))).topics

        async def one(t: str, p: int, o: int) -> tuple[int, int]:
            info = known.get(t)
            if info is not None and info.error_code not in (0, ErrorCode.LEADER_NOT_AVAILABLE):
                return info.error_code, -1
            if info is None or p not in info.partitions:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1
            return await delete_records_of(client, t, p, o)

        results = await asyncio.gather(*(one(t, p, o) for t, p, o in offsets))
    finally:
        await client.close()
    print("Records delete operation completed:")
    for (t, p, _), (code, lw) in zip(offsets, results, strict=True):
        print(describe(t, p, code, lw))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
