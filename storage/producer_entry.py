"""What a partition knows of one idempotent producer: its ``ProducerStateEntry`` (epoch, the
metadata of its last ``NUM_BATCHES_TO_RETAIN`` data batches, the transaction fields), as kept
by ``storage.producer_state.ProducerStateManager`` and written to its snapshots.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from storage.record_batch import NO_PRODUCER_EPOCH, NO_SEQUENCE, NO_TIMESTAMP
from storage.txn_index import AbortedTxn

NUM_BATCHES_TO_RETAIN = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
NO_COORDINATOR_EPOCH = -1
NO_TXN_OFFSET = -1


class BatchMetadata(NamedTuple):
    """One cached data batch of a producer (Kafka's ``BatchMetadata``)."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    max_timestamp: int


class CompletedTxn(NamedTuple):
    """A transaction a marker ended on this partition (Kafka's ``CompletedTxn``): its first
    offset, the marker's offset, and whether it was aborted."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool

    def aborted(self, last_stable_offset: int) -> AbortedTxn:
        return AbortedTxn(self.producer_id, self.first_offset, self.last_offset,
                          last_stable_offset)


@dataclass(slots=True)
class ProducerStateEntry:
    """What we know of one producer id. Mutable, owned by the manager: read it, do not change it.

    ``batches`` holds the producer's last data batches of ``producer_epoch``, oldest first; an
    epoch change empties it (Kafka's ``maybeUpdateProducerEpoch``).
    """

    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    coordinator_epoch: int = NO_COORDINATOR_EPOCH
    last_timestamp: int = NO_TIMESTAMP
    current_txn_first_offset: int = NO_TXN_OFFSET  # -1: no open transaction
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )

    @property
    def is_empty(self) -> bool:
        return not self.batches

    @property
    def first_seq(self) -> int:
        return self.batches[0].first_seq if self.batches else NO_SEQUENCE

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def has_ongoing_txn(self) -> bool:
        return self.current_txn_first_offset >= 0

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        """The cached batch with exactly this epoch and sequence range, if any."""
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def _set_epoch(self, epoch: int) -> None:
        if epoch != self.producer_epoch:
            self.batches.clear()
            self.producer_epoch = epoch
