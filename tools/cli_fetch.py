"""Reading partitions for the CLI tools: ListOffsets (``list_offsets_of``) and Fetch
(``fetch_from``, with the record batches of the answer decoded)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.client import KafkaClient
from broker.protocol.api_keys import ApiKey
from broker.protocol.messages import fetch, list_offsets
from storage.control_records import ControlRecordType, parse_control_record_key
from storage.errors import CorruptRecordError, InvalidRecordError
from storage.record_batch import HEADER_SIZE, BatchHeader, parse_header
from storage.records import Record, decode_batch
from tools.cli_client import (
    DEFAULT_ADMIN_TIMEOUT_MS,
    CliError,
    TopicPartition,
    failure,
    retriable_only,
)

__all__ = [
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "FetchedPartition",
    "decode_fetched",
    "fetch_from",
    "list_offsets_of",
]

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
MAX_FETCH_VERSION = 12  # v13+ names topics by id only


async def list_offsets_of(client: KafkaClient, topic: str, partitions: Iterable[int],
                          timestamp: int, isolation_level: int = 0) -> dict[int, int]:
    """partition -> offset for ``timestamp`` (-2 earliest, -1 latest, else the first offset
    at or after it; -1 when there is none)."""
    R = list_offsets.REQUEST
    out: dict[int, int] = {}

    async def one(p: int) -> None:
        req = R.cls(replica_id=-1, isolation_level=isolation_level, topics=[
            R.ListOffsetsTopic(name=topic, partitions=[R.ListOffsetsPartition(
                partition_index=p, current_leader_epoch=-1, timestamp=timestamp,
                max_num_offsets=1)])], timeout_ms=DEFAULT_ADMIN_TIMEOUT_MS)
        resp = await client.send_to_leader(topic, p, ApiKey.LIST_OFFSETS, req,
                                           check=retriable_only)
        r = resp.topics[0].partitions[0]
        if r.error_code:
            raise failure(f"ListOffsets for {topic}-{p}", r.error_code)
        out[p] = r.offset

    await asyncio.gather(*(one(p) for p in partitions))
    return out


@dataclass(slots=True)
class FetchedPartition:
    topic: str
    partition: int
    error_code: int
    high_watermark: int
    records: list[tuple[BatchHeader, list[Record]]]
    next_offset: int | None  # where to fetch next; None: no complete batch in this answer
    # read_committed: (producer id, first offset) of the aborted transactions of the range.
    aborted: list[tuple[int, int]] = field(default_factory=list)


def committed_batches(fp: FetchedPartition) -> list[tuple[BatchHeader, list[Record]]]:
    """The batches as a read_committed consumer sees them (Kafka's consumer
    ``CompletedFetch``): a transactional batch of a producer with an aborted transaction open
    at that point comes with no records, up to that producer's ABORT marker; control batches
    are returned as they are (the caller steps over them)."""
    if not fp.aborted:
        return fp.records
    pending = sorted(fp.aborted, key=lambda a: a[1])
    i = 0
    aborted_pids: set[int] = set()
    out: list[tuple[BatchHeader, list[Record]]] = []
    for header, records in fp.records:
        if header.producer_id >= 0:
            while i < len(pending) and pending[i][1] <= header.last_offset:
                aborted_pids.add(pending[i][0])
                i += 1
            if header.is_control:
                if records and _is_abort(records[0]):
                    aborted_pids.discard(header.producer_id)
            elif header.is_transactional and header.producer_id in aborted_pids:
                out.append((header, []))  # dropped, but the position moves past it
                continue
        out.append((header, records))
    return out


def _is_abort(record: Record) -> bool:
    try:
        return parse_control_record_key(record.key)[1] == ControlRecordType.ABORT
    except CorruptRecordError:
        return False


def decode_fetched(data: bytes | None) -> tuple[list[tuple[BatchHeader, list[Record]]], int | None]:
    """Decode every complete batch in a fetch answer (a trailing partial batch is normal)."""
    out: list[tuple[BatchHeader, list[Record]]] = []
    nxt: int | None = None
    if not data:
        return out, None
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        try:
            header = parse_header(data, pos)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise CliError(f"corrupt record batch in fetch response: {e}") from None
        if len(data) - pos < header.size:
            break
        try:
            header, records = decode_batch(data, pos)
        except (CorruptRecordError, InvalidRecordError) as e:
            raise CliError(f"record batch at offset {header.base_offset} is invalid: {e}") from None
        out.append((header, records))
        nxt = header.next_offset
        pos += header.size
    return out, nxt


async def fetch_from(client: KafkaClient, node: int, positions: dict[TopicPartition, int], *,
                     max_wait_ms: int = 500, min_bytes: int = 1, max_bytes: int = 52428800,
                     partition_max_bytes: int = 1048576,
                     isolation_level: int = 0) -> list[FetchedPartition]:
    """One Fetch to broker ``node`` for ``positions``."""
    conn = await client.connection(node)
    hi = conn.api_versions.get(ApiKey.FETCH, (0, 0))[1]
    version = min(hi, MAX_FETCH_VERSION)
    R = fetch.REQUEST
    by_topic: dict[str, list[Any]] = {}
    for tp, offset in positions.items():
        by_topic.setdefault(tp.topic, []).append(R.FetchPartition(
            partition=tp.partition, current_leader_epoch=-1, fetch_offset=offset,
            log_start_offset=-1, partition_max_bytes=partition_max_bytes))
    req = R.cls(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                isolation_level=isolation_level, session_id=0, session_epoch=-1,
                topics=[R.FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
                forgotten_topics_data=[], rack_id="")
    resp = await conn.send(ApiKey.FETCH, req, version,
                           timeout_s=client.request_timeout_s + max_wait_ms / 1000)
    if getattr(resp, "error_code", 0):
        raise failure("Fetch", resp.error_code)
    out: list[FetchedPartition] = []
    for t in resp.responses:
        for p in t.partitions:
            batches, nxt = decode_fetched(p.records) if not p.error_code else ([], None)
            aborted = [(a.producer_id, a.first_offset)
                       for a in getattr(p, "aborted_transactions", None) or ()]
            out.append(FetchedPartition(t.topic, p.partition_index, p.error_code,
                                        p.high_watermark, batches, nxt, aborted))
    return out
