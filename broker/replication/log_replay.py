"""Reading a partition log from its start to its end, batch by batch, the way the group and
transaction coordinators load their internal topic (``__consumer_offsets``,
``__transaction_state``) when this broker becomes leader of one of its partitions.

The log is read in slices of ``buffer_bytes`` with a yield to the event loop between slices, so
a large partition loads while the broker keeps serving. An unreadable batch is logged and
skipped; a failed read ends the load with :class:`LogReplayError` (already logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from kraft.codec import CodecError
from storage.errors import StorageError
from storage.log import PartitionLog
from storage.record_batch import BatchHeader, iter_batches
from storage.records import Record, decode_batch

logger = logging.getLogger(__name__)

__all__ = ["LogReplayError", "replay_batches"]


class LogReplayError(Exception):
    """Reading the log failed; the reason was logged."""


async def replay_batches(log: PartitionLog, buffer_bytes: int, name: str
                         ) -> AsyncIterator[tuple[BatchHeader, list[Record]]]:
    """Every readable batch of ``log`` with its records, control batches included; ``name``
    (for example ``__consumer_offsets-3``) is for the log lines."""
    offset, end = log.log_start_offset, log.log_end_offset
    while offset < end:
        try:
            sl = log.read(offset, buffer_bytes, max_offset=end)
            if sl is None:
                break
            with sl:
                data = sl.read_bytes()
        except (StorageError, OSError) as e:
            logger.error("Loading %s failed at offset %d: %s", name, offset, e)
            raise LogReplayError(name) from e
        for pos, header in iter_batches(data):
            offset = header.next_offset
            try:
                _, records = decode_batch(data, pos)
            except (CodecError, StorageError, ValueError) as e:
                logger.error("Skipping an unreadable batch in %s: %s", name, e)
                continue
            yield header, records
        # Large partitions load in slices: the loop keeps serving meanwhile.
        await asyncio.sleep(0)
