"""Transactions on a partition: ongoing transactions in the producer state, the last stable
offset, the aborted-transaction index (.txnindex), and their recovery, on real files."""

from __future__ import annotations

from pathlib import Path

from storage.cleaner import clean_log
from storage.control_records import ControlRecordType, build_control_batch, control_markers
from storage.log import PartitionLog
from storage.log_config import LogConfig
from storage.producer_state import ProducerStateManager, batch_headers, txn_index_writer
from storage.records import SimpleRecord, build_batch, decode_batch
from storage.txn_index import ENTRY_SIZE, AbortedTxn, TransactionIndex

NOW = 1_000_000


class Part:
    """A leader's append path over a real log: log append, then producer state update (what
    ``broker.replication.partition.Partition.append`` does)."""

    def __init__(self, path: Path, config: LogConfig | None = None) -> None:
        self.path = path
        self.config = config or LogConfig()
        self.log = PartitionLog.open(path, self.config, now_ms=NOW)
        self.producers = ProducerStateManager(path)
        self.log.on_roll = self.producers.take_snapshot
        self.producers.rebuild_from_log(self.log, NOW)
        self.seq: dict[int, int] = {}

    def append(self, buf: bytes) -> int:
        headers = batch_headers(buf)
        info = self.log.append(buf, now_ms=NOW)
        markers = control_markers(buf, headers)
        self.producers.on_append(headers, first_offset=info.first_offset, markers=markers,
                                 on_completed=txn_index_writer(self.log))
        return info.first_offset

    def data(self, pid: int, n: int = 2, *, txn: bool = True, epoch: int = 0) -> int:
        seq = self.seq.get(pid, 0)
        self.seq[pid] = seq + n
        return self.append(build_batch(
            [SimpleRecord(b"v%d" % i) for i in range(n)], producer_id=pid,
            producer_epoch=epoch, base_sequence=seq, is_transactional=txn))

    def marker(self, pid: int, commit: bool, *, epoch: int = 0, coordinator_epoch: int = 3
               ) -> int:
        kind = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
        return self.append(build_control_batch(kind, producer_id=pid, producer_epoch=epoch,
                                               coordinator_epoch=coordinator_epoch))

    def reopen(self) -> None:
        self.log.flush()
        self.log.close()
        self.__init__(self.path, self.config)  # type: ignore[misc]

    def close(self) -> None:
        self.log.close()


def test_lso_is_the_high_watermark_without_transactions(tmp_path: Path) -> None:
    p = Part(tmp_path)
    p.data(7, txn=False)
    assert p.producers.last_stable_offset(2) == 2
    assert p.producers.last_stable_offset(1) == 1
    assert not p.producers.ongoing_txns
    p.close()


def test_open_transaction_holds_the_lso_until_its_marker_is_replicated(tmp_path: Path) -> None:
    p = Part(tmp_path)
    p.data(7, txn=False)                       # 0-1, not transactional
    first = p.data(8)                          # 2-3, transaction of 8
    p.data(9, txn=False)                       # 4-5
    assert first == 2
    assert p.producers.ongoing_txns == {8: 2}
    assert p.producers.last_stable_offset(6) == 2
    assert p.producers.last_stable_offset(1) == 1  # bounded by the high watermark
    marker = p.marker(8, commit=True)          # 6
    entry = p.producers.last_entry(8)
    assert entry is not None and entry.coordinator_epoch == 3 and not entry.has_ongoing_txn
    # The marker is not below the high watermark yet: the transaction is still undecided.
    assert p.producers.last_stable_offset(6) == 2
    assert p.producers.last_stable_offset(marker + 1) == marker + 1
    assert p.producers.last_stable_offset(marker + 1) == marker + 1
    assert not TransactionIndex.for_segment(tmp_path, 0).path.exists()  # commits: no entry
    p.close()


def test_abort_writes_the_txnindex_in_kafkas_format(tmp_path: Path) -> None:
    p = Part(tmp_path)
    p.data(8)                                  # 0-1
    p.data(9)                                  # 2-3
    abort = p.marker(8, commit=False)          # 4
    path = tmp_path / "00000000000000000000.txnindex"
    data = path.read_bytes()
    assert len(data) == ENTRY_SIZE == 34
    # version 0, producer id, first offset, last offset, last stable offset (9's txn at 2)
    assert data == (b"\x00\x00" + (8).to_bytes(8, "big") + (0).to_bytes(8, "big")
                    + (abort).to_bytes(8, "big") + (2).to_bytes(8, "big"))
    p.marker(9, commit=False)                  # 5: no other open txn -> LSO = 6
    assert p.log.collect_aborted_txns(0, 6) == [AbortedTxn(8, 0, 4, 2), AbortedTxn(9, 2, 5, 6)]
    assert p.log.collect_aborted_txns(5, 6) == [AbortedTxn(9, 2, 5, 6)]
    assert p.log.collect_aborted_txns(0, 2) == [AbortedTxn(8, 0, 4, 2)]
    p.close()


def test_ongoing_transactions_survive_snapshots_and_restart(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=300)
    p = Part(tmp_path, config)
    p.data(8)
    p.data(9)
    p.marker(9, commit=False)
    for _ in range(4):                         # rolls: snapshots hold 8's open transaction
        p.data(10, txn=False)
    assert len(p.log.segments) > 1
    assert p.producers.snapshot_offsets
    p.reopen()
    assert p.producers.ongoing_txns == {8: 0}
    assert p.producers.last_stable_offset(p.log.log_end_offset) == 0
    assert p.log.collect_aborted_txns(0, p.log.log_end_offset) == [AbortedTxn(9, 2, 4, 0)]
    p.close()


def test_recovery_rebuilds_a_lost_txnindex_and_ongoing_state(tmp_path: Path) -> None:
    p = Part(tmp_path)
    p.data(8)
    p.data(9)
    p.marker(8, commit=False)
    p.log.flush()
    p.log.close()
    # Lose everything derived: producer snapshots and the aborted-transaction index.
    for f in tmp_path.iterdir():
        if f.suffix in (".snapshot", ".txnindex"):
            f.unlink()
    p = Part(tmp_path)
    assert p.producers.ongoing_txns == {9: 2}
    assert p.log.collect_aborted_txns(0, 10) == [AbortedTxn(8, 0, 4, 2)]
    # Replaying again (a restart with the index present) does not duplicate the entry.
    p.reopen()
    assert (tmp_path / "00000000000000000000.txnindex").stat().st_size == ENTRY_SIZE
    p.close()


def test_truncation_and_deletion_follow_the_log(tmp_path: Path) -> None:
    p = Part(tmp_path)
    p.data(8)
    p.marker(8, commit=False)                  # 2
    p.data(9)                                  # 3-4
    p.marker(9, commit=False)                  # 5
    index = tmp_path / "00000000000000000000.txnindex"
    assert index.stat().st_size == 2 * ENTRY_SIZE
    p.log.truncate_to(5)
    p.producers.rebuild_from_log(p.log, NOW)
    assert index.stat().st_size == ENTRY_SIZE
    assert p.producers.ongoing_txns == {9: 3}
    p.log.truncate_fully_and_start_at(100)
    p.producers.truncate_fully_and_start_at(100)
    assert not index.exists()
    assert not p.producers.ongoing_txns
    assert p.producers.last_stable_offset(100) == 100
    p.close()


def test_torn_txnindex_entry_is_dropped(tmp_path: Path) -> None:
    index = TransactionIndex.for_segment(tmp_path, 0)
    assert index.append(AbortedTxn(1, 0, 5, 6))
    assert not index.append(AbortedTxn(1, 0, 5, 6))  # a replay
    with open(index.path, "ab") as f:
        f.write(b"\x00\x00\x01")
    again = TransactionIndex.for_segment(tmp_path, 0)
    assert again.entries == [AbortedTxn(1, 0, 5, 6)]
    assert index.path.stat().st_size == ENTRY_SIZE


def test_compaction_keeps_the_aborted_transactions_of_merged_segments(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=4000,
                       min_cleanable_dirty_ratio=0.0)
    p = Part(tmp_path, config)

    def seg(fn: object) -> None:  # one batch per segment, so cleaning merges them
        fn()  # type: ignore[operator]
        p.log.roll()

    seg(lambda: p.data(8))
    seg(lambda: p.marker(8, commit=False))     # an abort in the second segment
    for i in range(3):
        seg(lambda i=i: p.append(build_batch([SimpleRecord(b"v%d" % i, key=b"k")])))
    seg(lambda: p.data(9))
    seg(lambda: p.marker(9, commit=False))     # and one in a later one
    seg(lambda: p.append(build_batch([SimpleRecord(b"last", key=b"k")])))
    before = p.log.collect_aborted_txns(0, p.log.log_end_offset)
    assert [t.producer_id for t in before] == [8, 9]
    segments_before = len(p.log.segments)
    result = clean_log(p.log, now_ms=NOW)
    assert result.segments_replaced > result.segments_written  # segments were merged
    assert len(p.log.segments) < segments_before
    assert p.log.collect_aborted_txns(0, p.log.log_end_offset) == before
    assert len(list(tmp_path.glob("*.txnindex"))) == 1
    p.reopen()
    assert p.log.collect_aborted_txns(0, p.log.log_end_offset) == before
    p.close()


def test_compaction_removes_aborted_data_and_keeps_markers(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=4000,
                       min_cleanable_dirty_ratio=0.0)
    p = Part(tmp_path, config)
    p.data(8, 3)                               # 0-2 aborted later
    p.data(9, 2)                               # 3-4 committed later
    p.data(8, 1)                               # 5 aborted later
    p.marker(9, commit=True)                   # 6
    p.marker(8, commit=False)                  # 7
    p.log.roll()
    p.data(10, 1)                              # 8: an open transaction, not cleaned
    p.log.roll()
    p.append(build_batch([SimpleRecord(b"tail", key=b"k")]))
    lso = p.producers.last_stable_offset(p.log.log_end_offset)
    assert lso == 8
    clean_log(p.log, now_ms=NOW, last_stable_offset=lso)
    kept: list[tuple[int, int, bool, list[bytes]]] = []
    for segment in p.log.segments:
        for pos, header in segment.iter_headers(0):
            _, records = decode_batch(segment.read_bytes(pos, header.size))
            kept.append((header.producer_id, header.base_offset, header.is_control,
                         [r.value or b"" for r in records if not header.is_control]))
    data = {(pid, base): values for pid, base, control, values in kept if not control}
    assert all(not v for (pid, _), v in data.items() if pid == 8)   # aborted: gone
    assert data[(9, 3)] == [b"v0", b"v1"]                            # committed: kept
    assert data[(10, 8)] == [b"v0"]                                  # undecided: kept
    assert [(pid, base) for pid, base, control, _ in kept if control] == [(9, 6), (8, 7)]
    p.reopen()                                 # the producer state still replays
    assert p.producers.ongoing_txns == {10: 8}
    p.close()


def test_compaction_removes_markers_of_transactions_without_data_after_the_horizon(
        tmp_path: Path) -> None:
    retention = 1000
    config = LogConfig(cleanup_policy="compact", segment_bytes=1 << 20,
                       min_cleanable_dirty_ratio=0.0, delete_retention_ms=retention)
    p = Part(tmp_path, config)
    p.data(8, 2)                               # 0-1 aborted
    p.marker(8, commit=False)                  # 2: ABORT, its data goes at the first cleaning
    p.data(8, 1)                               # 3 committed
    p.marker(8, commit=True)                   # 4: COMMIT with data: stays
    p.marker(9, commit=True)                   # 5: COMMIT of a transaction without data here
    p.data(9, 1, txn=False)                    # 6: producer 9's last batch
    p.log.roll()
    p.append(build_batch([SimpleRecord(b"tail", key=b"k")]))

    def control() -> list[tuple[int, int, bool]]:
        return [(h.producer_id, h.base_offset, h.has_delete_horizon)
                for s in p.log.segments for _, h in s.iter_headers(0) if h.is_control]

    r1 = clean_log(p.log, now_ms=NOW)
    # Data gone; the markers of transactions without data get a delete horizon.
    assert control() == [(8, 2, True), (8, 4, False), (9, 5, True)]
    assert r1.earliest_delete_horizon_ms == NOW + retention
    assert [t.last_offset for t in p.log.collect_aborted_txns(0, p.log.log_end_offset)] == [2]
    r2 = clean_log(p.log, now_ms=NOW + retention - 1, first_dirty_offset=r1.next_dirty_offset)
    assert r2.stats.markers_removed == 0 and len(control()) == 3
    r3 = clean_log(p.log, now_ms=NOW + retention, first_dirty_offset=r2.next_dirty_offset)
    assert r3.stats.markers_removed == 2
    assert control() == [(8, 4, False)]
    # The ABORT marker's aborted-transaction index entry went with it.
    assert p.log.collect_aborted_txns(0, p.log.log_end_offset) == []
    assert r3.earliest_delete_horizon_ms is None
    offsets = [h.base_offset for s in p.log.segments for _, h in s.iter_headers(0)]
    assert offsets == [3, 4, 6, 7]
    p.reopen()                                 # recovery agrees: nothing open, nothing aborted
    assert p.producers.ongoing_txns == {}
    assert p.log.collect_aborted_txns(0, p.log.log_end_offset) == []
    assert p.producers.last_stable_offset(p.log.log_end_offset) == p.log.log_end_offset
    p.close()


def test_a_marker_that_is_its_producers_last_batch_stays(tmp_path: Path) -> None:
    config = LogConfig(cleanup_policy="compact", segment_bytes=1 << 20,
                       min_cleanable_dirty_ratio=0.0, delete_retention_ms=0)
    p = Part(tmp_path, config)
    p.data(8, 2)
    p.marker(8, commit=False)                  # producer 8's last batch: kept for its state
    p.log.roll()
    p.append(build_batch([SimpleRecord(b"tail", key=b"k")]))
    r1 = clean_log(p.log, now_ms=NOW)
    clean_log(p.log, now_ms=NOW + 10, first_dirty_offset=r1.next_dirty_offset)
    kept = [(h.producer_id, h.base_offset) for s in p.log.segments
            for _, h in s.iter_headers(0) if h.is_control]
    assert kept == [(8, 2)]
    assert [t.producer_id for t in p.log.collect_aborted_txns(0, p.log.log_end_offset)] == [8]
    p.close()
