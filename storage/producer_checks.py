"""The leader's checks of a produce request's batches against the producers' state, before any
offset is assigned: duplicates and sequence, epoch and transaction errors (``CheckResult``).

Rules follow Kafka's ``ProducerAppendInfo`` (client origin):

- A batch whose (epoch, first sequence, last sequence) equals one of the cached batches of the
  producer's current epoch is a duplicate.
- An epoch below the producer's epoch: INVALID_PRODUCER_EPOCH.
- A new (higher) epoch must start at sequence 0: OUT_OF_ORDER_SEQUENCE_NUMBER otherwise.
- The same epoch must continue at ``last_seq + 1`` (``INT32_MAX`` wraps to 0).
- An unknown producer (never seen, or expired, or its data deleted) is accepted at any sequence:
  Kafka stopped answering UNKNOWN_PRODUCER_ID on produce with KIP-360 (2.5), and so do we.
- A non-transactional batch while the producer has an open transaction: INVALID_TXN_STATE.
- A batch with a producer id but no base sequence: INVALID_RECORD (Kafka's ``LogValidator``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from storage.error_codes import ErrorCode
from storage.producer_entry import BatchMetadata, ProducerStateEntry
from storage.record_batch import NO_PRODUCER_EPOCH, NO_SEQUENCE, BatchHeader

INT32_MAX = 2**31 - 1


class CheckResult(NamedTuple):
    """The leader's verdict on a produce request's batches, before any offset is assigned.

    - ``duplicate`` set: the request retries that cached batch; answer NONE with its offsets
      (``first_offset``, ``last_offset``; ``max_timestamp`` is the log append time for
      LogAppendTime topics) and append nothing.
    - ``error`` not NONE: answer with it (``message`` for the error message) and append nothing.
    - otherwise (``ok``): append.
    """

    error: ErrorCode = ErrorCode.NONE
    duplicate: BatchMetadata | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is ErrorCode.NONE and self.duplicate is None


CHECK_OK = CheckResult()


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def _error(code: ErrorCode, message: str) -> CheckResult:
    return CheckResult(code, None, message)


class _Pending:
    """Scratch state of one producer while checking several batches of one request."""

    __slots__ = ("epoch", "last_seq", "txn_open")

    def __init__(self, epoch: int, last_seq: int, txn_open: bool) -> None:
        self.epoch = epoch
        self.last_seq = last_seq
        self.txn_open = txn_open


def _check_one(
    header: BatchHeader, entry: ProducerStateEntry | None, pending: _Pending | None
) -> CheckResult | None:
    """Kafka's ``ProducerAppendInfo`` checks for a client batch. None means valid.

    ``entry`` is the committed state, ``pending`` the effect of earlier batches of the same
    request (None for the first batch of this producer in the request).
    """
    pid = header.producer_id
    epoch = header.producer_epoch
    first_seq = header.base_sequence
    if first_seq < 0 and not header.is_control:
        # Kafka's LogValidator, which runs before any producer state check.
        return _error(
            ErrorCode.INVALID_RECORD,
            f"invalid sequence number {first_seq} in a batch of producer {pid}",
        )
    if pending is not None:
        cur_epoch, cur_last_seq, txn_open = pending.epoch, pending.last_seq, pending.txn_open
    elif entry is not None:
        cur_epoch, cur_last_seq = entry.producer_epoch, entry.last_seq
        txn_open = entry.current_txn_first_offset >= 0
    else:
        cur_epoch, cur_last_seq, txn_open = NO_PRODUCER_EPOCH, NO_SEQUENCE, False
    if epoch < cur_epoch:
        return _error(
            ErrorCode.INVALID_PRODUCER_EPOCH,
            f"epoch {epoch} of producer {pid} is older than its current epoch {cur_epoch}",
        )
    if header.is_control:
        return None  # transaction markers (from the coordinator) only check the epoch
    if epoch != cur_epoch:
        if first_seq != 0 and cur_epoch != NO_PRODUCER_EPOCH:
            return _error(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"new epoch {epoch} of producer {pid} must start at sequence 0, not "
                f"{first_seq} (current epoch {cur_epoch})",
            )
    else:
        known_epoch = NO_PRODUCER_EPOCH if entry is None else entry.producer_epoch
        # Kafka: a producer with no known epoch (data deleted by retention) may go on at any
        # sequence.
        if known_epoch != NO_PRODUCER_EPOCH and not _in_sequence(cur_last_seq, first_seq):
            return _error(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                f"out of order sequence number for producer {pid}: {first_seq} (incoming), "
                f"{cur_last_seq} (current end sequence number)",
            )
    if txn_open and not header.is_transactional:
        return _error(
            ErrorCode.INVALID_TXN_STATE,
            f"expected a transactional write from producer {pid}: it has an open transaction",
        )
    return None


def check(producers: Mapping[int, ProducerStateEntry], header: BatchHeader) -> CheckResult:
    """Check one client batch against ``producers`` (see ``CheckResult``). Batches without a
    producer id pass."""
    pid = header.producer_id
    if pid < 0:
        return CHECK_OK
    entry = producers.get(pid)
    if entry is not None and header.base_sequence >= 0 and not header.is_control:
        duplicate = entry.find_duplicate(
            header.producer_epoch, header.base_sequence, header.last_sequence
        )
        if duplicate is not None:
            return CheckResult(ErrorCode.NONE, duplicate)
    result = _check_one(header, entry, None)
    return CHECK_OK if result is None else result


def check_batches(
    producers: Mapping[int, ProducerStateEntry], headers: Sequence[BatchHeader]
) -> CheckResult:
    """Check all batches of one produce request, in order, each against the state the earlier
    ones would leave. The first error wins; as in Kafka, a duplicate batch makes the whole
    request a duplicate of it (clients send one batch per partition per request)."""
    if len(headers) == 1:
        return check(producers, headers[0])
    pending: dict[int, _Pending] = {}
    for header in headers:
        pid = header.producer_id
        if pid < 0:
            continue
        entry = producers.get(pid)
        if entry is not None and header.base_sequence >= 0 and not header.is_control:
            duplicate = entry.find_duplicate(
                header.producer_epoch, header.base_sequence, header.last_sequence
            )
            if duplicate is not None:
                return CheckResult(ErrorCode.NONE, duplicate)
        state = pending.get(pid)
        result = _check_one(header, entry, state)
        if result is not None:
            return result
        if state is None:
            state = pending[pid] = _Pending(
                NO_PRODUCER_EPOCH if entry is None else entry.producer_epoch,
                NO_SEQUENCE if entry is None else entry.last_seq,
                entry is not None and entry.has_ongoing_txn,
            )
        if header.producer_epoch != state.epoch:
            state.epoch, state.last_seq = header.producer_epoch, NO_SEQUENCE
        if header.is_control:
            state.txn_open = False
        else:
            state.last_seq = header.last_sequence
            state.txn_open = state.txn_open or header.is_transactional
    return CHECK_OK
