"""What controller operations return: ``ControllerResult`` and the reply dataclasses.

Replies carry Kafka error codes (``storage.error_codes.ErrorCode``) and are independent of the
wire version; ``broker.controller.translation`` maps them onto wire responses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kraft.metadata_records import MetadataRecordType
from storage.error_codes import ErrorCode

__all__ = [
    "AllocateProducerIdsReply", "AlterConfigsReply", "AlterConfigsResourceResult",
    "AlterPartitionPartitionResult", "AlterPartitionReassignmentsReply", "AlterPartitionReply",
    "AlterPartitionTopicResult", "ApiError", "BrokerHeartbeatReply", "BrokerRegistrationReply",
    "ControllerResult", "CreatableTopicResult", "CreatePartitionsReply",
    "CreatePartitionsTopicResult", "CreateTopicsReply", "DeletableTopicResult",
    "DeleteTopicsReply", "ElectLeadersPartitionResult", "ElectLeadersReply",
    "ElectLeadersTopicResult", "ListPartitionReassignmentsReply", "NotController",
    "OngoingPartitionReassignment", "OngoingTopicReassignment", "ReassignablePartitionResult",
    "ReassignableTopicResult", "TopicConfigEntry", "UnregisterBrokerReply",
]

Record = tuple[MetadataRecordType, Any]


@dataclass(slots=True)
class ControllerResult:
    """Records to append to the metadata log, and the reply once they are committed."""

    records: list[Record] = field(default_factory=list)
    response: Any = None


class NotController(Exception):
    """This node is not (or no longer) the active controller: the client gets NOT_CONTROLLER."""


class ApiError(Exception):
    """A request-level failure carried as a Kafka error code (raised and caught inside
    managers; never escapes a ``QuorumController`` operation)."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BrokerRegistrationReply:
    error_code: ErrorCode = ErrorCode.NONE
    broker_epoch: int = -1
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerHeartbeatReply:
    error_code: ErrorCode = ErrorCode.NONE
    is_caught_up: bool = False
    is_fenced: bool = True
    in_controlled_shutdown: bool = False
    should_shut_down: bool = False
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class UnregisterBrokerReply:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class TopicConfigEntry:
    name: str
    value: str | None
    read_only: bool = False
    config_source: int = 5  # Kafka's ConfigSource: 1 topic override, 5 default
    is_sensitive: bool = False


@dataclass(frozen=True, slots=True)
class CreatableTopicResult:
    name: str
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    topic_id: uuid.UUID | None = None
    num_partitions: int = -1
    replication_factor: int = -1
    configs: tuple[TopicConfigEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class CreateTopicsReply:
    topics: tuple[CreatableTopicResult, ...]


@dataclass(frozen=True, slots=True)
class DeletableTopicResult:
    name: str | None
    topic_id: uuid.UUID | None
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteTopicsReply:
    results: tuple[DeletableTopicResult, ...]


@dataclass(frozen=True, slots=True)
class CreatePartitionsTopicResult:
    name: str
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class CreatePartitionsReply:
    results: tuple[CreatePartitionsTopicResult, ...]


@dataclass(frozen=True, slots=True)
class AlterPartitionPartitionResult:
    partition_index: int
    error_code: ErrorCode = ErrorCode.NONE
    leader_id: int = -1
    leader_epoch: int = -1
    isr: tuple[int, ...] = ()
    leader_recovery_state: int = 0
    partition_epoch: int = -1


@dataclass(frozen=True, slots=True)
class AlterPartitionTopicResult:
    topic_name: str
    topic_id: uuid.UUID | None
    partitions: tuple[AlterPartitionPartitionResult, ...]


@dataclass(frozen=True, slots=True)
class AlterPartitionReply:
    error_code: ErrorCode = ErrorCode.NONE
    topics: tuple[AlterPartitionTopicResult, ...] = ()


@dataclass(frozen=True, slots=True)
class AllocateProducerIdsReply:
    error_code: ErrorCode = ErrorCode.NONE
    producer_id_start: int = -1
    producer_id_len: int = 0


@dataclass(frozen=True, slots=True)
class AlterConfigsResourceResult:
    resource_type: int
    resource_name: str
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class AlterConfigsReply:
    results: tuple[AlterConfigsResourceResult, ...]


@dataclass(frozen=True, slots=True)
class ElectLeadersPartitionResult:
    partition_id: int
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ElectLeadersTopicResult:
    topic: str
    partitions: tuple[ElectLeadersPartitionResult, ...]


@dataclass(frozen=True, slots=True)
class ElectLeadersReply:
    error_code: ErrorCode = ErrorCode.NONE
    results: tuple[ElectLeadersTopicResult, ...] = ()


@dataclass(frozen=True, slots=True)
class ReassignablePartitionResult:
    partition_index: int
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class ReassignableTopicResult:
    name: str
    partitions: tuple[ReassignablePartitionResult, ...]


@dataclass(frozen=True, slots=True)
class AlterPartitionReassignmentsReply:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    results: tuple[ReassignableTopicResult, ...] = ()


@dataclass(frozen=True, slots=True)
class OngoingPartitionReassignment:
    partition_index: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OngoingTopicReassignment:
    name: str
    partitions: tuple[OngoingPartitionReassignment, ...]


@dataclass(frozen=True, slots=True)
class ListPartitionReassignmentsReply:
    error_code: ErrorCode = ErrorCode.NONE
    error_message: str | None = None
    topics: tuple[OngoingTopicReassignment, ...] = ()
