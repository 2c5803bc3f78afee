"""The KRaft controller logic (KIP-631), pure: managers return records and replies, state
changes only by replaying records. See ``controller.QuorumController``."""

from kraft.controller.config import DEFAULT_METADATA_VERSION, ControllerConfig
from kraft.controller.controller import QuorumController
from kraft.controller.results import (
    AllocateProducerIdsReply,
    AlterConfigsReply,
    AlterConfigsResourceResult,
    AlterPartitionPartitionResult,
    AlterPartitionReply,
    AlterPartitionTopicResult,
    BrokerHeartbeatReply,
    BrokerRegistrationReply,
    ControllerResult,
    CreatableTopicResult,
    CreatePartitionsReply,
    CreatePartitionsTopicResult,
    CreateTopicsReply,
    DeletableTopicResult,
    DeleteTopicsReply,
    ElectLeadersPartitionResult,
    ElectLeadersReply,
    ElectLeadersTopicResult,
    NotController,
    TopicConfigEntry,
    UnregisterBrokerReply,
)

__all__ = [
    "DEFAULT_METADATA_VERSION", "AllocateProducerIdsReply", "AlterConfigsReply",
    "AlterConfigsResourceResult", "AlterPartitionPartitionResult", "AlterPartitionReply",
    "AlterPartitionTopicResult", "BrokerHeartbeatReply", "BrokerRegistrationReply",
    "ControllerConfig", "ControllerResult", "CreatableTopicResult", "CreatePartitionsReply",
    "CreatePartitionsTopicResult", "CreateTopicsReply", "DeletableTopicResult",
    "DeleteTopicsReply", "ElectLeadersPartitionResult", "ElectLeadersReply",
    "ElectLeadersTopicResult", "NotController", "QuorumController", "TopicConfigEntry",
    "UnregisterBrokerReply",
]
