"""The transaction coordinator as a pure state machine (Kafka's TransactionCoordinator over
TransactionMetadata): InitProducerId, AddPartitionsToTxn (and its verify-only form),
AddOffsetsToTxn, EndTxn, the end of the markers, timed-out transactions and expired ids.
Time comes in as ``now_ms``; nothing here does I/O.

Every request returns a ``Step``: either an answer at once (``write`` None), or an entry to
write to ``__transaction_state`` first. While a write is in flight the id's ``pending`` is
set and other requests get CONCURRENT_TRANSACTIONS; the I/O layer reports the write's outcome
with ``complete``, and after a PrepareCommit/PrepareAbort was written it sends the markers
(``markers_of``) and then writes ``markers_done``'s CompleteCommit/CompleteAbort.

States move Empty/CompleteX -> Ongoing (partitions added) -> PrepareX (EndTxn, or an abort
the coordinator starts: a new producer fencing the old one, or the transaction timing out;
those bump the epoch, Kafka's PrepareEpochFence) -> CompleteX (markers written) ->
Empty/Ongoing again; Dead only while an expired id's tombstone is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.protocol.errors import ErrorCode
from broker.transactions.state import (
    NO_PRODUCER_EPOCH,
    TP,
    TxnEntry,
    TxnMetadata,
    TxnState,
    epoch_exhausted,
)

__all__ = ["Step", "TransactionCoordinator", "TxnConfig"]

S = TxnState
_PREPARE = (S.PREPARE_COMMIT, S.PREPARE_ABORT)
_IDLE = (S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT)


@dataclass(frozen=True, slots=True)
class TxnConfig:
    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms


@dataclass(frozen=True, slots=True)
class Step:
    """What to do with a request: answer ``error`` now (``write`` None), or write ``write``
    and then answer ``error`` (or the write's failure). ``need_producer_id``: call again with
    a fresh producer id. ``markers``: after the write, send this transaction's markers."""

    error: ErrorCode = ErrorCode.NONE
    write: TxnEntry | None = None
    need_producer_id: bool = False

    @property
    def markers(self) -> bool:
        return self.write is not None and self.write.state in _PREPARE


def _answer(e: ErrorCode) -> Step:
    return Step(error=e)


class TransactionCoordinator:
    """The transactional ids of the ``__transaction_state`` partitions this broker leads."""

    def __init__(self, config: TxnConfig = TxnConfig()) -> None:
        self.config = config
        self.txns: dict[str, TxnMetadata] = {}

    # -- loading ------------------------------------------------------------------------------

    def load(self, entries: Iterable[TxnEntry]) -> list[str]:
        """Adopt entries replayed from the log; the ids whose markers must be sent again."""
        resume = []
        for e in entries:
            self.txns[e.transactional_id] = TxnMetadata(e)
            if e.state in _PREPARE:
                resume.append(e.transactional_id)
        return resume

    def unload(self, tids: Iterable[str]) -> None:
        for tid in list(tids):
            self.txns.pop(tid, None)

    def _begin(self, meta: TxnMetadata, entry: TxnEntry, error: ErrorCode = ErrorCode.NONE
               ) -> Step:
        assert meta.pending is None
        meta.pending = entry
        return Step(error=error, write=entry)

    def complete(self, entry: TxnEntry, error: ErrorCode) -> None:
        """The write of ``entry`` (from a ``Step``) ended with ``error``."""
        meta = self.txns.get(entry.transactional_id)
        if meta is None or meta.pending is not entry:
            return
        meta.pending = None
        if error:
            return
        if entry.state == S.DEAD:
            del self.txns[entry.transactional_id]
            return
        meta.entry = entry

    # -- InitProducerId ----------------------------------------------------------------------

    def init_producer_id(self, tid: str, timeout_ms: int, expected: tuple[int, int] | None,
                         now_ms: int, new_producer_id: int | None = None) -> Step:
        """``expected``: the (producer id, epoch) a KIP-360 client sends, None if it sent -1.
        The answer's id and epoch are ``write``'s on success."""
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            return _answer(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        meta = self.txns.get(tid)
        if meta is None:
            if new_producer_id is None:
                return Step(need_producer_id=True)
            meta = self.txns[tid] = TxnMetadata(TxnEntry(
                tid, new_producer_id, NO_PRODUCER_EPOCH, timeout_ms, S.EMPTY,
                last_update_ms=now_ms))
        if meta.pending is not None:
            return _answer(ErrorCode.CONCURRENT_TRANSACTIONS)
        e = meta.entry
        if expected is not None and not (
                e.producer_epoch == NO_PRODUCER_EPOCH or expected[0] == e.producer_id
                or (expected[0] == e.previous_producer_id and epoch_exhausted(expected[1]))):
            return _answer(ErrorCode.PRODUCER_FENCED)
        if e.state in _PREPARE or e.state in (S.DEAD, S.PREPARE_EPOCH_FENCE):
            return _answer(ErrorCode.CONCURRENT_TRANSACTIONS)
        if e.state == S.ONGOING:
            # A new producer with this id: abort the open transaction with a bumped epoch
            # (fencing the old producer at every partition); the new one retries meanwhile.
            return self._fence_and_abort(meta, now_ms, ErrorCode.CONCURRENT_TRANSACTIONS)
        if epoch_exhausted(e.producer_epoch) and (expected is None
                                                  or expected[1] == e.producer_epoch):
            if new_producer_id is None:
                return Step(need_producer_id=True)
            return self._begin(meta, e.replace(
                producer_id=new_producer_id, producer_epoch=0, previous_producer_id=e.producer_id,
                last_producer_epoch=e.producer_epoch if expected is not None
                else NO_PRODUCER_EPOCH, timeout_ms=timeout_ms, state=S.EMPTY,
                partitions=frozenset(), txn_start_ms=-1, last_update_ms=now_ms))
        bumped = e.producer_epoch + 1
        if expected is None:
            epoch, last = bumped, NO_PRODUCER_EPOCH
        elif expected[1] in (NO_PRODUCER_EPOCH, e.producer_epoch):
            epoch, last = bumped, e.producer_epoch
        elif expected[1] == e.last_producer_epoch:
            # A retry of a bump whose answer the producer did not get.
            epoch, last = e.producer_epoch, e.last_producer_epoch
        else:
            return _answer(ErrorCode.PRODUCER_FENCED)
        return self._begin(meta, e.replace(
            producer_epoch=epoch, last_producer_epoch=last, timeout_ms=timeout_ms,
            state=S.EMPTY, partitions=frozenset(), txn_start_ms=-1, last_update_ms=now_ms))

    def _fence_and_abort(self, meta: TxnMetadata, now_ms: int, error: ErrorCode) -> Step:
        e = meta.entry
        epoch = e.producer_epoch if epoch_exhausted(e.producer_epoch) else e.producer_epoch + 1
        return self._begin(meta, e.replace(
            producer_epoch=epoch, last_producer_epoch=NO_PRODUCER_EPOCH,
            state=S.PREPARE_ABORT, last_update_ms=now_ms), error)

    # -- AddPartitionsToTxn / AddOffsetsToTxn ------------------------------------------------

    def _check_producer(self, tid: str, producer_id: int, epoch: int
                        ) -> tuple[TxnMetadata | None, ErrorCode]:
        meta = self.txns.get(tid)
        if meta is None or meta.entry.producer_id != producer_id:
            return None, ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if meta.entry.producer_epoch != epoch:
            return None, ErrorCode.PRODUCER_FENCED
        if meta.pending is not None or meta.entry.state in _PREPARE:
            return None, ErrorCode.CONCURRENT_TRANSACTIONS
        return meta, ErrorCode.NONE

    def add_partitions(self, tid: str, producer_id: int, epoch: int, partitions: Iterable[TP],
                       now_ms: int) -> Step:
        meta, err = self._check_producer(tid, producer_id, epoch)
        if meta is None:
            return _answer(err)
        e = meta.entry
        parts = frozenset(partitions)
        if e.state == S.ONGOING:
            if parts <= e.partitions:
                return _answer(ErrorCode.NONE)
            return self._begin(meta, e.replace(partitions=e.partitions | parts,
                                               last_update_ms=now_ms))
        if e.state in _IDLE:
            return self._begin(meta, e.replace(state=S.ONGOING, partitions=parts,
                                               txn_start_ms=now_ms, last_update_ms=now_ms))
        return _answer(ErrorCode.INVALID_TXN_STATE)

    def verify_partitions(self, tid: str, producer_id: int, epoch: int,
                          partitions: Iterable[TP]) -> dict[TP, ErrorCode]:
        """AddPartitionsToTxn v4+ ``verify_only``: is each partition in the open transaction?"""
        parts = list(partitions)
        meta, err = self._check_producer(tid, producer_id, epoch)
        if meta is None:
            return {tp: err for tp in parts}
        inside = meta.entry.partitions if meta.entry.state == S.ONGOING else frozenset()
        return {tp: ErrorCode.NONE if tp in inside else ErrorCode.INVALID_TXN_STATE
                for tp in parts}

    # -- EndTxn ----------------------------------------------------------------------------

    def end_txn(self, tid: str, producer_id: int, epoch: int, commit: bool, now_ms: int
                ) -> Step:
        meta = self.txns.get(tid)
        if meta is None or meta.entry.producer_id != producer_id:
            return _answer(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        e = meta.entry
        if epoch != e.producer_epoch:
            return _answer(ErrorCode.PRODUCER_FENCED)
        if meta.pending is not None:
            return _answer(ErrorCode.CONCURRENT_TRANSACTIONS)
        st = e.state
        if st == S.ONGOING:
            return self._begin(meta, e.replace(
                state=S.PREPARE_COMMIT if commit else S.PREPARE_ABORT, last_update_ms=now_ms))
        if st == S.COMPLETE_COMMIT:
            return _answer(ErrorCode.NONE if commit else ErrorCode.INVALID_TXN_STATE)
        if st == S.COMPLETE_ABORT:
            return _answer(ErrorCode.INVALID_TXN_STATE if commit else ErrorCode.NONE)
        if st == S.PREPARE_COMMIT:
            return _answer(ErrorCode.CONCURRENT_TRANSACTIONS if commit
                           else ErrorCode.INVALID_TXN_STATE)
        if st == S.PREPARE_ABORT:
            return _answer(ErrorCode.INVALID_TXN_STATE if commit
                           else ErrorCode.CONCURRENT_TRANSACTIONS)
        return _answer(ErrorCode.INVALID_TXN_STATE)

    # -- markers ---------------------------------------------------------------------------

    def markers_of(self, tid: str) -> TxnEntry | None:
        """The PrepareCommit/PrepareAbort entry whose markers are to be sent (None: none)."""
        meta = self.txns.get(tid)
        if meta is None or meta.entry.state not in _PREPARE:
            return None
        return meta.entry

    def markers_done(self, tid: str, prepared: TxnEntry, now_ms: int) -> Step:
        """Every partition has its marker: write CompleteCommit/CompleteAbort."""
        meta = self.txns.get(tid)
        if meta is None or meta.entry is not prepared or meta.pending is not None:
            return _answer(ErrorCode.NOT_COORDINATOR)
        done = S.COMPLETE_COMMIT if prepared.state == S.PREPARE_COMMIT else S.COMPLETE_ABORT
        return self._begin(meta, prepared.replace(state=done, partitions=frozenset(),
                                                  last_update_ms=now_ms))

    # -- timers ----------------------------------------------------------------------------

    def timed_out(self, now_ms: int) -> list[str]:
        """Ongoing transactions older than their timeout (Kafka's abortTimedOutTransactions)."""
        return [tid for tid, m in self.txns.items()
                if m.pending is None and m.entry.state == S.ONGOING
                and m.entry.txn_start_ms + m.entry.timeout_ms < now_ms]

    def abort_timed_out(self, tid: str, now_ms: int) -> Step:
        meta = self.txns.get(tid)
        if meta is None or meta.pending is not None or meta.entry.state != S.ONGOING:
            return _answer(ErrorCode.INVALID_TXN_STATE)
        return self._fence_and_abort(meta, now_ms, ErrorCode.NONE)

    def expire_ids(self, now_ms: int) -> list[Step]:
        """transactional.id.expiration.ms: tombstone ids idle that long (the write's entry is
        Dead; ``complete`` forgets the id)."""
        steps = []
        for m in list(self.txns.values()):
            e = m.entry
            if m.pending is None and e.state in _IDLE and \
                    e.last_update_ms + self.config.id_expiration_ms <= now_ms:
                steps.append(self._begin(m, e.replace(state=S.DEAD, last_update_ms=now_ms)))
        return steps

    # -- reading -------------------------------------------------------------------------

    def describe(self, tid: str) -> TxnEntry | None:
        m = self.txns.get(tid)
        return None if m is None else m.entry

    def entries(self) -> list[TxnEntry]:
        return [m.entry for m in self.txns.values()]


