"""Errors raised by the storage layer.

Three tiers (docs/architecture.md, "Errors"): a bug is an ``assert``; a bad input from a client or a file is one of
these exceptions, turned into a Kafka error code or a truncation at the boundary; an environment
failure (disk full, I/O error) is ``LogDirOfflineError`` and takes the log directory offline.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by ``storage``."""


class ConfigError(StorageError):
    """A configuration key has a bad value (or a required key is missing)."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"Invalid value {value!r} for configuration {key}: {reason}")


class CorruptRecordError(StorageError):
    """A record batch failed validation: bad length, bad CRC, or undecodable contents.

    Maps to Kafka's CORRUPT_MESSAGE (2) on the wire.
    """


class InvalidRecordError(StorageError):
    """A well-formed batch that breaks a rule (for example magic 0/1, or a bad offset delta).

    Maps to Kafka's INVALID_RECORD (87) on the wire.
    """


class UnsupportedCompressionError(InvalidRecordError):
    """The batch names a compression codec we do not know."""


class RecordTooLargeError(StorageError):
    """A batch is larger than the configured maximum. Maps to MESSAGE_TOO_LARGE (10)."""


class OffsetOutOfRangeError(StorageError):
    """A read asked for an offset below the log start or above the log end offset."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset
        super().__init__(
            f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]"
        )


class LogDirOfflineError(StorageError):
    """An environment failure (I/O error, disk full) made a log directory unusable."""


class MetaPropertiesError(StorageError):
    """A log directory is not formatted, or is formatted for another cluster or node."""
