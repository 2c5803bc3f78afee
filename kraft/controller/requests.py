"""What controller operations take: one request dataclass per operation.

Requests are independent of the wire (``broker.controller.translation`` builds them from Kafka
requests, tests and simulations build them directly). Absent values are ``None``, never the
wire's zero UUID. The only wire version a request keeps is AlterPartition's, whose error codes
and topic addressing depend on it, as in Kafka's controller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

__all__ = [
    "AllocateProducerIdsRequest", "AlterConfigsRequest", "AlterConfigsResource",
    "AlterPartitionPartition", "AlterPartitionReassignmentsRequest", "AlterPartitionRequest",
    "AlterPartitionTopic", "BrokerHeartbeatRequest", "BrokerRegistrationRequest",
    "ConfigOperation", "ConfigValue", "CreatableTopic", "CreatePartitionsRequest",
    "CreatePartitionsTopic", "CreateTopicsRequest", "DeletableTopic", "DeleteTopicsRequest",
    "ElectLeadersRequest", "FeatureRange", "IncrementalAlterConfigsRequest",
    "IncrementalAlterConfigsResource", "IsrMember", "ListPartitionReassignmentsRequest",
    "Listener", "ReassignablePartition", "ReassignableTopic", "ReplicaAssignment",
    "TopicPartitions", "UnregisterBrokerRequest",
]


# -- brokers ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int
    security_protocol: int


@dataclass(frozen=True, slots=True)
class FeatureRange:
    name: str
    min_supported_version: int
    max_supported_version: int


@dataclass(frozen=True, slots=True)
class BrokerRegistrationRequest:
    broker_id: int
    cluster_id: str | None
    incarnation_id: uuid.UUID
    listeners: tuple[Listener, ...] = ()
    features: tuple[FeatureRange, ...] = ()
    rack: str | None = None
    is_migrating_zk_broker: bool = False
    log_dirs: tuple[uuid.UUID, ...] = ()  # KIP-858: ids of the broker's online log dirs


@dataclass(frozen=True, slots=True)
class BrokerHeartbeatRequest:
    broker_id: int
    broker_epoch: int
    current_metadata_offset: int
    want_fence: bool = False
    want_shut_down: bool = False
    offline_log_dirs: tuple[uuid.UUID, ...] = ()  # KIP-858


@dataclass(frozen=True, slots=True)
class UnregisterBrokerRequest:
    broker_id: int


# -- topics -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigValue:
    """A config key and its value (``None``: no value, which some operations refuse)."""

    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class ReplicaAssignment:
    partition_index: int
    broker_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CreatableTopic:
    """``num_partitions`` and ``replication_factor`` -1: the controller's defaults; with
    ``assignments`` both must be -1."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    assignments: tuple[ReplicaAssignment, ...] = ()
    configs: tuple[ConfigValue, ...] = ()


@dataclass(frozen=True, slots=True)
class CreateTopicsRequest:
    topics: tuple[CreatableTopic, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class DeletableTopic:
    """By id when ``topic_id`` is set, else by ``name``."""

    name: str | None = None
    topic_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class DeleteTopicsRequest:
    topics: tuple[DeletableTopic, ...]


@dataclass(frozen=True, slots=True)
class CreatePartitionsTopic:
    """``assignments``: the replicas of each new partition, or ``None`` to place them."""

    name: str
    count: int
    assignments: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class CreatePartitionsRequest:
    topics: tuple[CreatePartitionsTopic, ...]
    validate_only: bool = False


# -- partitions ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IsrMember:
    """A broker of a proposed ISR; ``broker_epoch`` -1 when the request does not say."""

    broker_id: int
    broker_epoch: int = -1


@dataclass(frozen=True, slots=True)
class AlterPartitionPartition:
    partition_index: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[IsrMember, ...]
    leader_recovery_state: int = 0


@dataclass(frozen=True, slots=True)
class AlterPartitionTopic:
    """Named by ``topic_name`` (version 0-1) or ``topic_id`` (version 2+)."""

    topic_name: str
    topic_id: uuid.UUID | None
    partitions: tuple[AlterPartitionPartition, ...]


@dataclass(frozen=True, slots=True)
class AlterPartitionRequest:
    """``version``: the AlterPartition version the leader spoke. From 2 topics are named by
    id and an ineligible replica or a new leader get their own error codes
    (INELIGIBLE_REPLICA, NEW_LEADER_ELECTED rather than OPERATION_NOT_ATTEMPTED,
    FENCED_LEADER_EPOCH)."""

    broker_id: int
    broker_epoch: int
    topics: tuple[AlterPartitionTopic, ...]
    version: int = 3


@dataclass(frozen=True, slots=True)
class TopicPartitions:
    topic: str
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ElectLeadersRequest:
    """``election_type``: 0 preferred, 1 unclean. ``topic_partitions`` ``None``: every
    partition."""

    election_type: int = 0
    topic_partitions: tuple[TopicPartitions, ...] | None = None


@dataclass(frozen=True, slots=True)
class ReassignablePartition:
    """``replicas``: the target replicas, or ``None`` to cancel the partition's reassignment."""

    partition_index: int
    replicas: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class ReassignableTopic:
    name: str
    partitions: tuple[ReassignablePartition, ...]


@dataclass(frozen=True, slots=True)
class AlterPartitionReassignmentsRequest:
    """``allow_replication_factor_change`` False (KIP-860, version 1): a target with another
    number of replicas than the partition has is refused."""

    topics: tuple[ReassignableTopic, ...]
    allow_replication_factor_change: bool = True


@dataclass(frozen=True, slots=True)
class ListPartitionReassignmentsRequest:
    """``topics`` ``None``: every partition being reassigned."""

    topics: tuple[TopicPartitions, ...] | None = None


@dataclass(frozen=True, slots=True)
class AllocateProducerIdsRequest:
    broker_id: int
    broker_epoch: int


# -- configs ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ConfigOperation:
    """``operation``: Kafka's AlterConfigOp.OpType id (0 SET, 1 DELETE, 2 APPEND,
    3 SUBTRACT)."""

    name: str
    operation: int
    value: str | None = None


@dataclass(frozen=True, slots=True)
class IncrementalAlterConfigsResource:
    resource_type: int
    resource_name: str
    configs: tuple[ConfigOperation, ...] = ()


@dataclass(frozen=True, slots=True)
class IncrementalAlterConfigsRequest:
    resources: tuple[IncrementalAlterConfigsResource, ...]
    validate_only: bool = False


@dataclass(frozen=True, slots=True)
class AlterConfigsResource:
    """The given keys replace the resource's whole config."""

    resource_type: int
    resource_name: str
    configs: tuple[ConfigValue, ...] = ()


@dataclass(frozen=True, slots=True)
class AlterConfigsRequest:
    resources: tuple[AlterConfigsResource, ...]
    validate_only: bool = False
