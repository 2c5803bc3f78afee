"""The Kafka error table: codes, names, retriability, messages, and the boundary mapping."""

from __future__ import annotations

import pytest

import storage.errors as storage_errors
from broker.protocol import errors
from broker.protocol.errors import (
    ERRORS_BY_CODE,
    ErrorCode,
    KafkaError,
    error_for_code,
    to_error_code,
)
from kraft import codec

# (code, name, retriable) checked by hand against Errors.java and the exception classes.
SAMPLE = [
    (-1, "UNKNOWN_SERVER_ERROR", False),
    (0, "NONE", False),
    (1, "OFFSET_OUT_OF_RANGE", False),
    (2, "CORRUPT_MESSAGE", True),
    (3, "UNKNOWN_TOPIC_OR_PARTITION", True),
    (5, "LEADER_NOT_AVAILABLE", True),
    (6, "NOT_LEADER_OR_FOLLOWER", True),
    (7, "REQUEST_TIMED_OUT", True),
    (10, "MESSAGE_TOO_LARGE", False),
    (14, "COORDINATOR_LOAD_IN_PROGRESS", True),
    (15, "COORDINATOR_NOT_AVAILABLE", True),
    (16, "NOT_COORDINATOR", True),
    (19, "NOT_ENOUGH_REPLICAS", True),
    (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", True),
    (22, "ILLEGAL_GENERATION", False),
    (25, "UNKNOWN_MEMBER_ID", False),
    (27, "REBALANCE_IN_PROGRESS", False),
    (35, "UNSUPPORTED_VERSION", False),
    (36, "TOPIC_ALREADY_EXISTS", False),
    (41, "NOT_CONTROLLER", True),
    (42, "INVALID_REQUEST", False),
    (45, "OUT_OF_ORDER_SEQUENCE_NUMBER", False),
    (47, "INVALID_PRODUCER_EPOCH", False),
    (51, "CONCURRENT_TRANSACTIONS", True),
    (56, "KAFKA_STORAGE_ERROR", True),
    (59, "UNKNOWN_PRODUCER_ID", False),
    (74, "FENCED_LEADER_EPOCH", True),
    (75, "UNKNOWN_LEADER_EPOCH", True),
    (77, "STALE_BROKER_EPOCH", False),
    (79, "MEMBER_ID_REQUIRED", False),
    (87, "INVALID_RECORD", False),
    (89, "THROTTLING_QUOTA_EXCEEDED", True),
    (90, "PRODUCER_FENCED", False),
    (100, "UNKNOWN_TOPIC_ID", True),
    (101, "DUPLICATE_BROKER_REGISTRATION", False),
    (108, "NEW_LEADER_ELECTED", False),
    (128, "INVALID_REGULAR_EXPRESSION", False),
]


@pytest.mark.parametrize(("code", "name", "retriable"), SAMPLE)
def test_sample_against_kafka(code: int, name: str, retriable: bool) -> None:
    assert ErrorCode(code).name == name
    assert ErrorCode[name] == code
    if code == 0:
        return
    cls = error_for_code(code)
    assert cls.code == code
    assert cls.retriable is retriable
    err = cls()
    assert err.code == code and err.retriable is retriable
    assert err.message  # Kafka's default message


def test_table_is_complete_and_codes_unique() -> None:
    codes = [int(c) for c in ErrorCode]
    assert len(codes) == len(set(codes))
    assert codes == list(range(-1, 129))  # Kafka 4.0's table has no gaps
    assert set(ERRORS_BY_CODE) == set(codes) - {0}
    names = [cls.__name__ for cls in ERRORS_BY_CODE.values()]
    assert len(names) == len(set(names))
    for cls in ERRORS_BY_CODE.values():
        assert issubclass(cls, KafkaError)
        assert cls.__name__.endswith("Error")
        assert getattr(errors, cls.__name__) is cls
        assert cls.__name__ in errors.__all__


@pytest.mark.parametrize("code", [c for c in ErrorCode if c != 0])
def test_error_for_code_round_trip(code: ErrorCode) -> None:
    cls = error_for_code(code)
    assert cls.code is code
    assert to_error_code(cls("detail")) is code
    assert error_for_code(int(code)) is cls


def test_names_and_messages() -> None:
    assert errors.NotLeaderOrFollowerError.code == 6
    assert errors.UnsupportedVersionError.code == 35
    assert errors.InvalidRecordError.code == 87
    assert errors.InvalidTopicError.code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert errors.UnknownServerError.code == -1
    assert errors.KafkaStorageError.code == 56
    assert errors.UnsupportedVersionError().message == "The version of API is not supported."
    e = errors.NotControllerError("node 3 is the controller")
    assert e.message == "node 3 is the controller"
    assert str(e) == "[Error 41] NOT_CONTROLLER: node 3 is the controller"
    assert errors.NotLeaderOrFollowerError.invalid_metadata
    assert not errors.UnsupportedVersionError.invalid_metadata


def test_unknown_and_none_codes() -> None:
    assert error_for_code(9999) is errors.UnknownServerError  # as Kafka's Errors.forCode
    with pytest.raises(ValueError):
        error_for_code(0)


@pytest.mark.parametrize(("exc", "code"), [
    (storage_errors.CorruptRecordError("crc"), ErrorCode.CORRUPT_MESSAGE),
    (storage_errors.InvalidRecordError("magic 1"), ErrorCode.INVALID_RECORD),
    (storage_errors.UnsupportedCompressionError("codec 7"), ErrorCode.INVALID_RECORD),
    (storage_errors.RecordTooLargeError("big"), ErrorCode.MESSAGE_TOO_LARGE),
    (storage_errors.OffsetOutOfRangeError(5, 0, 3), ErrorCode.OFFSET_OUT_OF_RANGE),
    (storage_errors.LogDirOfflineError("EIO"), ErrorCode.KAFKA_STORAGE_ERROR),
    (storage_errors.ConfigError("k", "v", "bad"), ErrorCode.INVALID_CONFIG),
    (codec.UnsupportedVersionError("v99"), ErrorCode.UNSUPPORTED_VERSION),
    (codec.DecodeError("short"), ErrorCode.INVALID_REQUEST),
    (errors.NotLeaderOrFollowerError(), ErrorCode.NOT_LEADER_OR_FOLLOWER),
    (KeyError("bug"), ErrorCode.UNKNOWN_SERVER_ERROR),
    (storage_errors.StorageError("other"), ErrorCode.UNKNOWN_SERVER_ERROR),
])
def test_to_error_code(exc: BaseException, code: ErrorCode) -> None:
    assert to_error_code(exc) is code
