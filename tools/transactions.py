"""``kafka-transactions``: list, describe and abort transactions, describe a partition's
producers and find hanging transactions (Kafka's TransactionsCommand), with Kafka's tables
(each cell padded to its column's width and followed by a tab).

    kafka-transactions --bootstrap-server B list
    kafka-transactions --bootstrap-server B describe --transactional-id ID
    kafka-transactions --bootstrap-server B describe-producers --topic T --partition P
                                                                [--broker-id N]
    kafka-transactions --bootstrap-server B abort --topic T --partition P --start-offset O
    kafka-transactions --bootstrap-server B abort --topic T --partition P --producer-id I
                                                   --producer-epoch E --coordinator-epoch C
    kafka-transactions --bootstrap-server B find-hanging (--topic T [--partition P] |
                                                          --broker-id N)
                                                         [--max-transaction-timeout MIN]

``list`` asks every broker (ListTransactions), ``describe`` the id's coordinator
(FindCoordinator key type 1, DescribeTransactions). ``describe-producers``, ``abort`` and
``find-hanging`` read the partition leaders' producer state (DescribeProducers); ``abort``
then writes an abort marker for the open transaction at its leader (WriteTxnMarkers), as
Kafka's admin client does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.errors import ErrorCode, KafkaError
from broker.protocol.messages import (
    describe_producers,
    describe_transactions,
    find_coordinator,
    list_transactions,
    write_txn_markers,
)
from tools.cli_client import CliError, admin_client, failure, run_tool

PROG = "kafka-transactions"
_COORDINATOR_RETRY = frozenset({ErrorCode.NOT_COORDINATOR,
                                ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
                                ErrorCode.COORDINATOR_NOT_AVAILABLE})


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Kafka's ToolsUtils.prettyPrintTable."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return "\n".join("".join(c.ljust(w) + "\t" for c, w in zip(row, widths, strict=True))
                     for row in [list(headers), *rows])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="This tool is used to analyze the "
                                "transactional state of producers in the cluster.")
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--command-config",
                   help="client properties file (security.protocol, ssl.*, sasl.*)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list transactions")
    d = sub.add_parser("describe", help="describe the state of an active transactional-id")
    d.add_argument("--transactional-id", required=True)
    dp = sub.add_parser("describe-producers",
                        help="describe the states of active producers for a topic partition")
    dp.add_argument("--broker-id", type=int)
    dp.add_argument("--topic", required=True)
    dp.add_argument("--partition", type=int, required=True)
    a = sub.add_parser("abort", help="abort a hanging transaction")
    a.add_argument("--topic", required=True)
    a.add_argument("--partition", type=int, required=True)
    a.add_argument("--start-offset", type=int)
    a.add_argument("--producer-id", type=int)
    a.add_argument("--producer-epoch", type=int)
    a.add_argument("--coordinator-epoch", type=int)
    f = sub.add_parser("find-hanging", help="find hanging transactions")
    f.add_argument("--broker-id", type=int)
    f.add_argument("--max-transaction-timeout", type=int, default=15)
    f.add_argument("--topic")
    f.add_argument("--partition", type=int)
    return p


# -- coordinator side ---------------------------------------------------------------------------


async def coordinator_of(client: KafkaClient, tid: str) -> int:
    R = find_coordinator.REQUEST
    deadline = time.monotonic() + 30
    while True:
        resp = await client.send_to_any(ApiKey.FIND_COORDINATOR, R.cls(
            key_type=1, coordinator_keys=[tid]), version=4)
        c = resp.coordinators[0]
        if c.error_code == 0:
            return int(c.node_id)
        if c.error_code not in _COORDINATOR_RETRY or time.monotonic() > deadline:
            raise failure(f"Failed to find the coordinator of transactional-id `{tid}`",
                          c.error_code)
        await asyncio.sleep(0.2)


async def describe_txn(client: KafkaClient, tid: str) -> tuple[int, Any]:
    """(coordinator id, its DescribeTransactions entry for ``tid``)."""
    R = describe_transactions.REQUEST
    deadline = time.monotonic() + 30
    while True:
        node = await coordinator_of(client, tid)
        st = (await client.send_to(node, ApiKey.DESCRIBE_TRANSACTIONS,
                                   R.cls(transactional_ids=[tid]))).transaction_states[0]
        if st.error_code not in _COORDINATOR_RETRY or time.monotonic() > deadline:
            return node, st
        await asyncio.sleep(0.2)


async def list_txns(client: KafkaClient, producer_ids: Sequence[int] = ()
                    ) -> dict[int, list[Any]]:
    R = list_transactions.REQUEST
    await client.metadata([])
    brokers = sorted(client.cluster.brokers)
    answers = await asyncio.gather(*(client.send_to(b, ApiKey.LIST_TRANSACTIONS, R.cls(
        state_filters=[], producer_id_filters=list(producer_ids), duration_filter=-1))
        for b in brokers))
    out = {}
    for b, resp in zip(brokers, answers, strict=True):
        if resp.error_code:
            raise failure("Failed to list transactions", resp.error_code)
        out[b] = list(resp.transaction_states)
    return out


# -- partition side -----------------------------------------------------------------------------


async def producers_of(client: KafkaClient, topic: str, partition: int,
                       broker_id: int | None = None) -> list[Any]:
    R = describe_producers.REQUEST
    req = R.cls(topics=[R.TopicRequest(name=topic, partition_indexes=[partition])])
    if broker_id is None:
        resp = await client.send_to_leader(topic, partition, ApiKey.DESCRIBE_PRODUCERS, req)
    else:
        resp = await client.send_to(broker_id, ApiKey.DESCRIBE_PRODUCERS, req)
    p = resp.topics[0].partitions[0]
    if p.error_code:
        where = "leader" if broker_id is None else f"broker {broker_id}"
        raise failure(f"Failed to describe producers for partition {topic}-{partition} on "
                      f"{where}", p.error_code, p.error_message)
    return list(p.active_producers)


async def abort_marker(client: KafkaClient, topic: str, partition: int, producer_id: int,
                       producer_epoch: int, coordinator_epoch: int) -> None:
    R = write_txn_markers.REQUEST
    req = R.cls(markers=[R.WritableTxnMarker(
        producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=False,
        topics=[R.WritableTxnMarkerTopic(name=topic, partition_indexes=[partition])],
        coordinator_epoch=max(coordinator_epoch, 0))])
    resp = await client.send_to_leader(topic, partition, ApiKey.WRITE_TXN_MARKERS, req)
    code = resp.markers[0].topics[0].partitions[0].error_code
    if code:
        raise failure(f"Failed to abort transaction of producer {producer_id} on "
                      f"{topic}-{partition}", code)


# -- commands -----------------------------------------------------------------------------------


async def cmd_list(client: KafkaClient, args: argparse.Namespace) -> None:
    rows = [[t.transactional_id, str(b), str(t.producer_id), t.transaction_state]
            for b, ts in (await list_txns(client)).items() for t in ts]
    print(table(["TransactionalId", "Coordinator", "ProducerId", "TransactionState"], rows))


async def cmd_describe(client: KafkaClient, args: argparse.Namespace) -> None:
    tid = args.transactional_id
    node, st = await describe_txn(client, tid)
    if st.error_code:
        raise failure(f"Failed to describe transaction state of transactional-id `{tid}`",
                      st.error_code)
    if st.transaction_start_time_ms >= 0:
        start = str(st.transaction_start_time_ms)
        duration = str(int(time.time() * 1000) - st.transaction_start_time_ms)
    else:
        start = duration = "None"
    parts = ",".join(f"{t.topic}-{p}" for t in st.topics for p in t.partitions)
    print(table(["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch",
                 "TransactionState", "TransactionTimeoutMs", "CurrentTransactionStartTimeMs",
                 "TransactionDurationMs", "TopicPartitions"],
                [[str(node), tid, str(st.producer_id), str(st.producer_epoch),
                  st.transaction_state, str(st.transaction_timeout_ms), start, duration,
                  parts]]))


async def cmd_describe_producers(client: KafkaClient, args: argparse.Namespace) -> None:
    rows = [[str(s.producer_id), str(s.producer_epoch), str(s.coordinator_epoch),
             str(s.last_sequence), str(s.last_timestamp),
             str(s.current_txn_start_offset) if s.current_txn_start_offset >= 0 else "None"]
            for s in await producers_of(client, args.topic, args.partition, args.broker_id)]
    print(table(["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence",
                 "LastTimestamp", "CurrentTransactionStartOffset"], rows))


async def cmd_abort(client: KafkaClient, args: argparse.Namespace) -> None:
    topic, partition = args.topic, args.partition
    if args.start_offset is None and args.producer_id is None:
        raise CliError("The transaction to abort must be identified either with "
                       "--start-offset (for brokers on 3.0 or above) or with --producer-id, "
                       "--producer-epoch, and --coordinator-epoch (for older brokers)")
    if args.start_offset is None:
        if args.producer_epoch is None:
            raise CliError("Missing required argument --producer-epoch")
        if args.coordinator_epoch is None:
            raise CliError("Missing required argument --coordinator-epoch")
        spec = (args.producer_id, args.producer_epoch, args.coordinator_epoch)
    else:
        found = [s for s in await producers_of(client, topic, partition)
                 if s.current_txn_start_offset == args.start_offset]
        if not found:
            raise CliError(f"Could not find any open transactions starting at offset "
                           f"{args.start_offset} on partition {topic}-{partition}")
        s = found[0]
        spec = (s.producer_id, s.producer_epoch, max(s.coordinator_epoch, 0))
    await abort_marker(client, topic, partition, *spec)


async def cmd_find_hanging(client: KafkaClient, args: argparse.Namespace) -> None:
    if args.topic is None and args.broker_id is None:
        raise CliError("The `find-hanging` command requires either --topic or --broker-id "
                       "to limit the scope of the search")
    if args.partition is not None and args.topic is None:
        raise CliError("The --partition argument requires --topic to be provided")
    max_ms = args.max_transaction_timeout * 60_000
    if args.topic is not None and args.partition is not None:
        tps = [(args.topic, args.partition)]
    else:
        md = await client.metadata([args.topic] if args.topic else None)
        tps = [(name, p) for name, t in sorted(md.topics.items())
               for p, info in sorted(t.partitions.items())
               if args.broker_id is None or args.broker_id in info.replicas]
    now = int(time.time() * 1000)
    open_txns: list[tuple[str, int, Any]] = []
    for t, p in tps:
        for s in await producers_of(client, t, p, args.broker_id):
            if s.current_txn_start_offset >= 0 and now - s.last_timestamp > max_ms:
                open_txns.append((t, p, s))
    hanging = []
    if open_txns:
        pids = sorted({s.producer_id for _, _, s in open_txns})
        tids = {t.producer_id: t.transactional_id
                for ts in (await list_txns(client, pids)).values() for t in ts}
        for t, p, s in open_txns:
            tid = tids.get(s.producer_id)
            if tid is None:
                hanging.append((t, p, s))
                continue
            _, st = await describe_txn(client, tid)
            inside = {(x.topic, q) for x in st.topics for q in x.partitions}
            if st.error_code or (t, p) not in inside:
                hanging.append((t, p, s))
    rows = [[t, str(p), str(s.producer_id), str(s.producer_epoch), str(s.coordinator_epoch),
             str(s.current_txn_start_offset), str(s.last_timestamp),
             str((now - s.last_timestamp) // 60_000)] for t, p, s in hanging]
    print(table(["Topic", "Partition", "ProducerId", "ProducerEpoch", "CoordinatorEpoch",
                 "StartOffset", "LastTimestamp", "Duration(min)"], rows))


COMMANDS = {"list": cmd_list, "describe": cmd_describe,
            "describe-producers": cmd_describe_producers, "abort": cmd_abort,
            "find-hanging": cmd_find_hanging}


async def _main(args: argparse.Namespace) -> int:
    client = await admin_client(args.bootstrap_server, command_config=args.command_config)
    try:
        await COMMANDS[args.command](client, args)
    except KafkaError as e:
        raise CliError(f"{args.command} failed: {e}") from None
    finally:
        await client.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(PROG, lambda: _main(args))


if __name__ == "__main__":
    sys.exit(main())
