"""The membership profile's checker (jepsen-style/membership_checker.py) on hand-built metadata
logs: each rule fires on the log that breaks it and stays quiet on agreeing logs."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jepsen-style"))

from membership_checker import NodeLog, check

from kraft.metadata_records import (
    MetadataRecordType,
    RemoveTopicRecord,
    TopicRecord,
    encode_metadata_record,
)

T1, T2 = uuid.UUID(int=11), uuid.UUID(int=12)


def topic(name: str, tid: uuid.UUID) -> bytes:
    return encode_metadata_record(MetadataRecordType.TOPIC_RECORD, 0,
                                  TopicRecord.cls(name=name, topic_id=tid))


def remove(tid: uuid.UUID) -> bytes:
    return encode_metadata_record(MetadataRecordType.REMOVE_TOPIC_RECORD, 0,
                                  RemoveTopicRecord.cls(topic_id=tid))


def log(node: int, *datas: tuple[int, int | None, bytes]) -> NodeLog:
    return NodeLog(node, [(i, epoch, ctl, d) for i, (epoch, ctl, d) in enumerate(datas)])


def created(*names: str) -> list[dict]:
    return [{"type": "ok", "f": "create-topic", "process": "creator", "value": n}
            for n in names]


GOOD = ((1, 2, b"leader-change"), (1, None, topic("a", T1)), (1, 6, b"voters-1-2"),
        (2, None, topic("b", T2)))


def test_agreeing_logs_are_valid() -> None:
    logs = {1: log(1, *GOOD), 2: log(2, *GOOD), 3: log(3, *GOOD, (2, None, topic("x", T1)))}
    r = check(created("a", "b"), logs, committed=4)
    assert r["verdict"] == "valid", r
    assert r["stats"]["topics"] == 2 and r["stats"]["creates_acknowledged"] == 2


def test_lost_metadata() -> None:
    short = GOOD[:2]
    r = check(created("a", "b"), {1: log(1, *GOOD), 2: log(2, *short)}, committed=4)
    assert r["verdict"] == "invalid"
    assert r["anomalies"]["lost-metadata"] == 1 and r["anomalies"]["short-log"] == 1
    assert r["examples"]["lost-metadata"][0] == {"topic": "b", "missing_on": [2]}
    # An acknowledged creation nobody committed: lost too.
    r = check(created("a", "c"), {1: log(1, *GOOD), 2: log(2, *GOOD)}, committed=4)
    assert r["anomalies"]["lost-metadata"] == 1


def test_divergent_log_image_and_voters() -> None:
    other = (*GOOD[:3], (2, None, remove(T1)))
    r = check(created("a"), {1: log(1, *GOOD), 2: log(2, *other)}, committed=4)
    assert r["anomalies"]["divergent-log"] >= 1 and r["anomalies"]["divergent-image"] == 1
    voters = (*GOOD[:2], (1, 6, b"voters-1"), GOOD[3])
    r = check([], {1: log(1, *GOOD), 2: log(2, *voters)}, committed=4)
    assert r["anomalies"]["divergent-voters"] == 1


def test_unknown_without_a_commit_point() -> None:
    assert check(created("a"), {1: log(1, *GOOD)}, committed=None)["verdict"] == "unknown"


def test_leader_change_bytes_that_differ_are_a_divergence() -> None:
    # Every node encodes a LeaderChange with the voters in force at its offset: equal logs
    # hold equal bytes, so different bytes there are a divergence like any other.
    other = (((1, 2, b"leader-change-other-voters")), *GOOD[1:])
    r = check(created("a", "b"), {1: log(1, *GOOD), 2: log(2, *other)}, committed=4)
    assert r["verdict"] == "invalid" and r["anomalies"]["divergent-log"] == 1
    # Another kind of entry at that offset is a divergence.
    other = ((1, None, topic("z", T2)), *GOOD[1:])
    r = check([], {1: log(1, *GOOD), 2: log(2, *other)}, committed=4)
    assert r["anomalies"]["divergent-log"] == 1
