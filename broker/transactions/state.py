"""A transactional id's state (Kafka's TransactionMetadata): the producer id and epoch, the
transaction's state and partitions, its timeout and timestamps. Pure data; the transitions are
decided by ``broker.transactions.coordinator``.

``TxnEntry`` is one immutable snapshot, exactly what a ``__transaction_state`` record holds;
``TxnMetadata`` is the live state of one id: the last written entry plus the transition being
written (``pending``), during which other requests get CONCURRENT_TRANSACTIONS.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "TP",
    "TxnEntry",
    "TxnMetadata",
    "TxnState",
    "epoch_exhausted",
]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
SHORT_MAX = 32767

TP = tuple[str, int]


class TxnState(IntEnum):
    """Kafka's TransactionState ids, as written in ``transaction_status``."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display(self) -> str:
        """The name Kafka's tools and DescribeTransactions show (``Ongoing``, ...)."""
        return "".join(w.capitalize() for w in self.name.split("_"))

    @classmethod
    def from_display(cls, name: str) -> TxnState | None:
        for s in cls:
            if s.display.lower() == name.lower():
                return s
        return None


def epoch_exhausted(epoch: int) -> bool:
    """Kafka's ``isEpochExhausted``: the last epoch a producer id may use is Short.MAX - 1."""
    return epoch >= SHORT_MAX - 1


@dataclass(frozen=True, slots=True)
class TxnEntry:
    """One transactional id's state as written to ``__transaction_state``."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TP] = frozenset()
    txn_start_ms: int = -1
    last_update_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH

    def replace(self, **changes: object) -> TxnEntry:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(slots=True)
class TxnMetadata:
    """The live state of one transactional id: ``entry`` is what the log holds; ``pending`` is
    the entry being written (None when idle)."""

    entry: TxnEntry
    pending: TxnEntry | None = None

    @property
    def state(self) -> TxnState:
        return self.entry.state
