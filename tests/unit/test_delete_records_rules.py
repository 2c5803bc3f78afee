"""DeleteRecords' pure pieces: the offset a request moves the log start to, the low watermark,
and the offset JSON / report lines of ``kafka-delete-records``."""

from __future__ import annotations

import pytest

from broker.replication.delete_records import delete_target, low_watermark
from broker.replication.partition import ReplicaState
from storage.error_codes import ErrorCode
from tools.cli_client import CliError
from tools.delete_records import describe, parse_offsets


def test_delete_target() -> None:
    assert delete_target(5, 10, delete_policy=True) == (ErrorCode.NONE, 5)
    assert delete_target(10, 10, delete_policy=True) == (ErrorCode.NONE, 10)
    assert delete_target(-1, 10, delete_policy=True) == (ErrorCode.NONE, 10)  # the HW
    assert delete_target(0, 10, delete_policy=True) == (ErrorCode.NONE, 0)
    assert delete_target(11, 10, delete_policy=True) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert delete_target(-2, 10, delete_policy=True) == (ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert delete_target(5, 10, delete_policy=False) == (ErrorCode.POLICY_VIOLATION, -1)
    assert delete_target(5, 10, delete_policy=True, internal=True) == (
        ErrorCode.INVALID_TOPIC_EXCEPTION, -1)


def test_low_watermark() -> None:
    def followers(*starts: int) -> list[ReplicaState]:
        return [ReplicaState(i + 2, log_start_offset=s) for i, s in enumerate(starts)]

    def alive(_: int) -> bool:
        return True

    assert low_watermark(7, [], alive) == 7
    assert low_watermark(7, followers(7, 7), alive) == 7
    assert low_watermark(7, followers(7, 3), alive) == 3
    # A follower that has not reported its log start yet (-1) holds the answer back...
    assert low_watermark(7, followers(7, -1), alive) == -1
    # ...unless its broker is not alive (fenced, gone): it no longer counts.
    assert low_watermark(7, followers(7, -1), lambda b: b != 3) == 7
    # A follower ahead of the leader (it cannot be) never raises the low watermark.
    assert low_watermark(7, followers(9), alive) == 7


def test_parse_offsets() -> None:
    text = '{"partitions": [{"topic": "t", "partition": 0, "offset": 5},' \
           ' {"topic": "u", "partition": 2, "offset": -1}], "version": 1}'
    assert parse_offsets(text) == [("t", 0, 5), ("u", 2, -1)]
    assert parse_offsets('{"partitions": []}') == []
    with pytest.raises(CliError, match="duplicate topic partitions: t-0"):
        parse_offsets('{"partitions": [{"topic": "t", "partition": 0, "offset": 1},'
                      ' {"topic": "t", "partition": 0, "offset": 2}]}')
    with pytest.raises(CliError, match="Missing partitions field"):
        parse_offsets('{"version": 1}')
    with pytest.raises(CliError, match="Not supported version field value 2"):
        parse_offsets('{"partitions": [], "version": 2}')
    with pytest.raises(CliError, match="bad partition entry"):
        parse_offsets('{"partitions": [{"topic": "t", "partition": "0", "offset": 1}]}')
    with pytest.raises(CliError, match="not valid JSON"):
        parse_offsets("{")


def test_report_lines() -> None:
    assert describe("t", 0, 0, 5) == "partition: t-0\tlow_watermark: 5"
    line = describe("t", 1, ErrorCode.OFFSET_OUT_OF_RANGE, -1)
    assert line.startswith("partition: t-1\terror: OFFSET_OUT_OF_RANGE")
