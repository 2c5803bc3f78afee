"""Transactional offset commits on the group side (broker/groups/txn_offsets.py and the
marker hook and loader of broker/groups/metadata_manager.py): TxnOffsetCommit checks, pending
offsets invisible until their marker, COMMIT/ABORT, the later-written-wins precedence against
plain commits, tombstones, retention, and the loader replaying a real ``__consumer_offsets``
log (storage) with transactional batches and control batches."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from broker.config import KafkaConfig
from broker.groups.consumer_group import ConsumerGroup, ConsumerMember
from broker.groups.coordinator import GroupCoordinator
from broker.groups.group import CommittedOffset, CoordinatorConfig, Group, GroupState, Member
from broker.groups.metadata_manager import GROUP_METADATA_TOPIC, GroupMetadataManager, _Owned
from broker.groups.records import offset_commit_key, offset_commit_value
from broker.protocol.errors import ErrorCode
from kraft.image import MetadataImage
from storage.control_records import ControlRecordType, build_control_batch
from storage.log import PartitionLog
from storage.records import SimpleRecord, build_batch

T0 = 1_700_000_000_000
TP = ("t", 0)
TP1 = ("t", 1)


def co(offset: int, record_offset: int = -1, ts: int = T0) -> CommittedOffset:
    return CommittedOffset(offset, -1, "", ts, record_offset)


def coordinator(retention_ms: int = 60_000) -> GroupCoordinator:
    return GroupCoordinator(CoordinatorConfig(offsets_retention_ms=retention_ms))


def everything(_gid: str) -> bool:
    return True


def stable_group(c: GroupCoordinator, gid: str = "g") -> Group:
    g = Group(gid, state=GroupState.STABLE, generation_id=3, protocol_type="consumer")
    g.members["m1"] = Member("m1", None, "c", "h", 1000, 1000, "consumer", [("range", b"")])
    g.members["m2"] = Member("m2", "i2", "c", "h", 1000, 1000, "consumer", [("range", b"")])
    g.static_members["i2"] = "m2"
    c.groups[gid] = g
    return g


# -- TxnOffsetCommit checks -----------------------------------------------------------------------

def test_a_consumer_outside_any_group_may_commit_in_a_transaction() -> None:
    c = coordinator()
    assert c.validate_txn_offset_commit("", "", None, -1, T0) == ErrorCode.INVALID_GROUP_ID
    assert c.validate_txn_offset_commit("new", "", None, -1, T0) == ErrorCode.NONE
    assert c.groups["new"].is_(GroupState.EMPTY)
    assert c.validate_txn_offset_commit("other", "m", None, 2, T0) == \
        ErrorCode.ILLEGAL_GENERATION


def test_member_fields_of_a_classic_group_are_checked_only_when_given() -> None:
    c = coordinator()
    stable_group(c)
    check = c.validate_txn_offset_commit
    assert check("g", "", None, -1, T0) == ErrorCode.NONE  # v0-2: no member fields
    assert check("g", "m1", None, 3, T0) == ErrorCode.NONE
    assert check("g", "m1", None, 2, T0) == ErrorCode.ILLEGAL_GENERATION
    assert check("g", "zombie", None, 3, T0) == ErrorCode.UNKNOWN_MEMBER_ID
    assert check("g", "m2", "i2", 3, T0) == ErrorCode.NONE
    assert check("g", "old-m2", "i2", 3, T0) == ErrorCode.FENCED_INSTANCE_ID
    assert check("g", "m1", "unknown-instance", 3, T0) == ErrorCode.UNKNOWN_MEMBER_ID
    c.groups["g"].state = GroupState.COMPLETING_REBALANCE  # no REBALANCE_IN_PROGRESS here
    assert check("g", "m1", None, 3, T0) == ErrorCode.NONE


def test_a_consumer_group_checks_the_member_epoch() -> None:
    c = coordinator()
    cg = ConsumerGroup("cg")
    cg.members["m"] = ConsumerMember("m", member_epoch=5)
    c.consumer_groups["cg"] = cg
    check = c.validate_txn_offset_commit
    assert check("cg", "m", None, 5, T0) == ErrorCode.NONE
    assert check("cg", "", None, -1, T0) == ErrorCode.NONE  # no group metadata given
    assert check("cg", "x", None, 5, T0) == ErrorCode.UNKNOWN_MEMBER_ID
    assert check("cg", "m", None, 6, T0) == ErrorCode.FENCED_MEMBER_EPOCH
    # TxnOffsetCommit has no STALE_MEMBER_EPOCH: Kafka answers ILLEGAL_GENERATION.
    assert check("cg", "m", None, 4, T0) == ErrorCode.ILLEGAL_GENERATION


# -- pending, commit, abort, precedence -----------------------------------------------------------

def test_pending_offsets_are_invisible_until_committed() -> None:
    c = coordinator()
    c.validate_txn_offset_commit("g", "", None, -1, T0)
    c.pending_txn.add(7, "g", {TP: co(10, 5)})
    assert c.fetch_offsets("g", [TP]) == {TP: None}
    assert c.pending_txn.has_pending("g", TP) and c.pending_txn.has_group("g")
    assert c.complete_txn(7, True, everything, T0) == 1
    assert c.fetch_offsets("g", [TP]) == {TP: co(10)}
    assert not c.pending_txn.has_group("g") and not c.pending_txn.by_producer


def test_an_aborted_transaction_drops_its_offsets() -> None:
    c = coordinator()
    c.validate_txn_offset_commit("g", "", None, -1, T0)
    c.apply_offsets("g", {TP: co(3, 1)})
    c.pending_txn.add(7, "g", {TP: co(10, 5), TP1: co(11, 6)})
    assert c.complete_txn(7, False, everything, T0) == 0
    assert c.fetch_offsets("g", None) == {TP: co(3)}
    assert not c.pending_txn.has_group("g")


def test_a_marker_completes_only_its_own_producer_and_partition_groups() -> None:
    c = coordinator()
    for gid in ("a", "b"):
        c.validate_txn_offset_commit(gid, "", None, -1, T0)
    c.pending_txn.add(7, "a", {TP: co(1, 1)})
    c.pending_txn.add(7, "b", {TP: co(2, 2)})
    c.pending_txn.add(8, "a", {TP1: co(3, 3)})
    c.complete_txn(7, True, lambda g: g == "a", T0)
    assert c.fetch_offsets("a", None) == {TP: co(1)}
    assert c.fetch_offsets("b", None) == {}  # its partition's marker has not come yet
    assert c.pending_txn.partitions_of("a") == {TP1}
    assert c.pending_txn.partitions_of("b") == {TP}
    c.complete_txn(7, True, everything, T0)
    assert c.fetch_offsets("b", None) == {TP: co(2)}


def test_the_commit_written_later_in_the_log_wins() -> None:
    c = coordinator()
    c.validate_txn_offset_commit("g", "", None, -1, T0)
    # A transactional commit at log offset 10, then a plain commit at 12: the plain one stays
    # when the transaction commits afterwards.
    c.pending_txn.add(7, "g", {TP: co(100, 10)})
    c.apply_offsets("g", {TP: co(200, 12)})
    c.complete_txn(7, True, everything, T0)
    assert c.fetch_offsets("g", [TP])[TP] == co(200)
    # A plain commit at 20, then a transactional one at 21: the transaction's wins.
    c.apply_offsets("g", {TP1: co(300, 20)})
    c.pending_txn.add(8, "g", {TP1: co(400, 21)})
    c.complete_txn(8, True, everything, T0)
    assert c.fetch_offsets("g", [TP1])[TP1] == co(400)
    # A plain commit whose acknowledgement comes after a later record was applied loses.
    c.apply_offsets("g", {TP1: co(5, 19)})
    assert c.fetch_offsets("g", [TP1])[TP1] == co(400)


def test_a_failed_write_forgets_only_its_own_entries() -> None:
    c = coordinator()
    first = {TP: co(1, 1)}
    c.pending_txn.add(7, "g", first)
    second = {TP: co(2, 2)}
    c.pending_txn.add(7, "g", second)
    c.pending_txn.discard(7, "g", first)  # replaced meanwhile: kept
    assert c.pending_txn.has_pending("g", TP)
    c.pending_txn.discard(7, "g", second)
    assert not c.pending_txn.has_group("g") and not c.pending_txn.by_producer


def test_tombstones_drop_pending_offsets_and_retention_spares_them() -> None:
    c = coordinator(retention_ms=1000)
    c.validate_txn_offset_commit("g", "", None, -1, T0)
    c.apply_offsets("g", {TP: co(1, 1), TP1: co(2, 2)})
    c.pending_txn.add(7, "g", {TP: co(5, 5)})
    # Both offsets are old, but TP has a pending transactional offset: it stays.
    assert c.expired_offsets(T0 + 5000) == {"g": [TP1]}
    c.remove_offsets("g", [TP])  # its tombstone (OffsetDelete, topic deleted)
    assert not c.pending_txn.has_group("g")
    assert c.fetch_offsets("g", None) == {TP1: co(2)}
    c.pending_txn.add(8, "g", {TP1: co(6, 6)})
    assert c.expired_offsets(T0 + 5000) == {}
    c.complete_txn(8, False, everything, T0)
    assert c.expired_offsets(T0 + 5000) == {"g": [TP1]}


# -- the loader and the marker hook over a real log -----------------------------------------------

def _config(**extra: str) -> KafkaConfig:
    props = {"node.id": "2", "process.roles": "broker",
             "listeners": "PLAINTEXT://127.0.0.1:9092",
             "controller.listener.names": "CONTROLLER",
             "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
             "controller.quorum.voters": "1@127.0.0.1:9093", "log.dirs": "/tmp/x",
             "offsets.topic.num.partitions": "1"}
    props.update(extra)
    return KafkaConfig(props)


def commits(group: str, offsets: dict[tuple[str, int], int | None], *, pid: int = -1,
            epoch: int = -1, seq: int = -1) -> bytes:
    records = [SimpleRecord(None if o is None else offset_commit_value(o, "", T0, -1),
                            key=offset_commit_key(group, t, p), timestamp=T0)
               for (t, p), o in offsets.items()]
    if pid < 0:
        return build_batch(records, base_timestamp=T0)
    return build_batch(records, base_timestamp=T0, producer_id=pid, producer_epoch=epoch,
                       base_sequence=seq, is_transactional=True)


def marker(pid: int, commit: bool, epoch: int = 0) -> bytes:
    return build_control_batch(ControlRecordType.COMMIT if commit else ControlRecordType.ABORT,
                               producer_id=pid, producer_epoch=epoch, timestamp=T0)


def manager(log: PartitionLog, **config: str) -> GroupMetadataManager:
    rm = SimpleNamespace(partitions={(GROUP_METADATA_TOPIC, 0): SimpleNamespace(log=log)},
                         txn_marker_listeners=[])
    mm = GroupMetadataManager(_config(**config), rm, MetadataImage)  # type: ignore[arg-type]
    assert rm.txn_marker_listeners == [mm.on_txn_marker]
    return mm


def load(mm: GroupMetadataManager) -> _Owned:
    owned = mm.owned[0] = _Owned(1)
    asyncio.run(mm._load(0, owned))
    assert owned.loaded
    return owned


def test_the_loader_replays_transactions_in_log_order(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "__consumer_offsets-0", now_ms=T0)
    try:
        for batch in [
            commits("g", {TP: 1, TP1: 1}),                # 0-1 plain
            commits("g", {TP: 50}, pid=7, epoch=0, seq=0),  # 2 txn of 7
            commits("g", {TP1: 60}, pid=8, epoch=0, seq=0),  # 3 txn of 8
            commits("g", {TP1: 2}),                       # 4 plain, after 8's
            commits("h", {TP: 70}, pid=7, epoch=0, seq=1),  # 5 txn of 7, group h
            marker(7, True),                              # 6 commit 7
            marker(8, True),                              # 7 commit 8: written before 4
            commits("g", {TP: 80}, pid=9, epoch=0, seq=0),  # 8 txn of 9
            marker(9, False),                             # 9 abort 9
            commits("p", {TP: 90}, pid=10, epoch=0, seq=0),  # 10 txn of 10, no marker yet
            commits("q", {TP: 91}, pid=11, epoch=0, seq=0),  # 11 txn of 11, then tombstone
            commits("q", {TP: None}),                     # 12
        ]:
            log.append(batch)
        log.flush()
        mm = manager(log)
        load(mm)
        c = mm.coordinator
        assert c.fetch_offsets("g", None) == {TP: co(50), TP1: co(2)}
        assert c.fetch_offsets("h", None) == {TP: co(70)}
        # Producer 10's offsets stay pending; their group exists (Empty) meanwhile.
        assert c.fetch_offsets("p", None) == {}
        assert c.groups["p"].is_(GroupState.EMPTY)
        assert c.pending_txn.partitions_of("p") == {TP}
        assert not c.pending_txn.has_group("q")
        assert set(c.pending_txn.by_producer) == {10}
        # The marker arrives later through the replica manager's hook.
        mm.on_txn_marker(GROUP_METADATA_TOPIC, 0, 10, True)
        assert c.fetch_offsets("p", None) == {TP: co(90)}
        assert not c.pending_txn.by_producer
    finally:
        log.close()


def test_a_marker_arriving_while_loading_is_applied_after(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path / "__consumer_offsets-0", now_ms=T0)
    try:
        log.append(commits("g", {TP: 5}, pid=7, epoch=0, seq=0))
        log.append(commits("g", {TP1: 6}, pid=8, epoch=0, seq=0))
        mm = manager(log)
        owned = mm.owned[0] = _Owned(1)
        mm.on_txn_marker(GROUP_METADATA_TOPIC, 0, 7, True)    # not loaded yet: queued
        mm.on_txn_marker(GROUP_METADATA_TOPIC, 0, 8, False)
        mm.on_txn_marker("other-topic", 0, 7, False)          # not ours: ignored
        asyncio.run(mm._load(0, owned))
        assert mm.coordinator.fetch_offsets("g", None) == {TP: co(5)}
        assert not mm.coordinator.pending_txn.by_producer
        # A marker for a partition this broker does not coordinate changes nothing.
        mm.coordinator.pending_txn.add(9, "g", {TP: co(7, 9)})
        mm.on_txn_marker(GROUP_METADATA_TOPIC, 3, 9, True)
        assert mm.coordinator.pending_txn.has_group("g")
        # Losing the partition forgets its pending offsets (the next coordinator reloads them).
        mm._unload(0)
        assert not mm.coordinator.pending_txn.by_producer
    finally:
        log.close()


def test_retention_keeps_a_group_with_pending_offsets(tmp_path: Path) -> None:
    """offsets.retention.minutes over a real log: expired offsets get tombstones, but the group
    with a pending transaction stays (Kafka's cleanupExpiredOffsets) until it is complete."""
    log = PartitionLog.open(tmp_path / "__consumer_offsets-0", now_ms=T0)
    try:
        log.append(commits("g", {TP: 1}))
        log.append(commits("g", {TP1: 2}, pid=7, epoch=0, seq=0))
        mm = manager(log, **{"offsets.retention.minutes": "1"})

        async def append_and_wait(topic: str, p: int, batch: bytes, **_: object
                                  ) -> tuple[ErrorCode, int]:
            return ErrorCode.NONE, log.append(batch).first_offset

        mm.rm.append_and_wait = append_and_wait  # type: ignore[attr-defined]
        load(mm)
        c = mm.coordinator
        mm.clock = SimpleNamespace(wall_ms=lambda: T0 + 120_000)  # type: ignore[assignment]
        asyncio.run(mm.expire_offsets())
        assert c.fetch_offsets("g", None) == {} and "g" in c.groups
        assert c.pending_txn.partitions_of("g") == {TP1}
        log.append(marker(7, False))  # written (and replicated) before the hook runs
        mm.on_txn_marker(GROUP_METADATA_TOPIC, 0, 7, False)
        c.validate_txn_offset_commit("g", "", None, -1, T0)
        c.apply_offsets("g", {TP: co(3, log.log_end_offset)})
        asyncio.run(mm.expire_offsets())
        assert "g" not in c.groups  # nothing pending, no offsets: gone (with a tombstone)
        mm2 = manager(log)
        load(mm2)
        assert "g" not in mm2.coordinator.groups and not mm2.coordinator.pending_txn.by_producer
    finally:
        log.close()
