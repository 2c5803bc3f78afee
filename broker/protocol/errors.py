"""Kafka's error codes, and one exception class per code.

Generated from Kafka's ``clients/.../common/protocol/Errors.java`` (codes, names, default
messages) and the exception hierarchy in ``clients/.../common/errors/`` (``retriable`` is true
for ``RetriableException`` subclasses, ``invalid_metadata`` for ``InvalidMetadataException``
ones: a client refreshes its metadata before retrying those). Kafka revision 1eb7644349cb.

Usage at the handler boundary::

    try:
        ...
    except Exception as e:
        code = to_error_code(e)        # KafkaError -> its code; storage errors mapped; else -1

and on the client side ``if code: raise error_for_code(code)(detail)``.
"""

from __future__ import annotations

from typing import ClassVar

# Modules, not names: storage has its own OffsetOutOfRangeError, InvalidRecordError and
# UnsupportedVersionError, which map onto the Kafka classes of the same names below.
import kraft.codec as _codec
import storage.errors as _storage
from storage.error_codes import ErrorCode

__all__ = ["ERRORS_BY_CODE", "ErrorCode", "KafkaError", "error_for_code", "to_error_code"]
# Every ``*Error`` subclass below is public too (``from broker.protocol.errors import X``).


class KafkaError(Exception):
    """An error with a Kafka error code, returned to the client that caused it.

    ``KafkaError("detail")`` keeps the detail as ``.message`` (sent in responses that carry an
    error message); without one, ``.message`` is Kafka's default text for the code.
    """

    code: ClassVar[ErrorCode] = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable: ClassVar[bool] = False
    invalid_metadata: ClassVar[bool] = False
    message: str = ""

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __str__(self) -> str:
        return f"[Error {int(self.code)}] {self.code.name}: {self.message}"


class UnknownServerError(KafkaError):
    """-1 UNKNOWN_SERVER_ERROR (Kafka: UnknownServerException)."""

    code = ErrorCode.UNKNOWN_SERVER_ERROR
    message = "The server experienced an unexpected error when processing the request."


class OffsetOutOfRangeError(KafkaError):
    """1 OFFSET_OUT_OF_RANGE (Kafka: OffsetOutOfRangeException)."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE
    message = "The requested offset is not within the range of offsets maintained by the server."


class CorruptMessageError(KafkaError):
    """2 CORRUPT_MESSAGE (Kafka: CorruptRecordException, retriable)."""

    code = ErrorCode.CORRUPT_MESSAGE
    retriable = True
    message = (
        "This message has failed its CRC checksum, exceeds the valid size, has a null key for"
        " a compacted topic, or is otherwise corrupt."
    )


class UnknownTopicOrPartitionError(KafkaError):
    """3 UNKNOWN_TOPIC_OR_PARTITION (Kafka: UnknownTopicOrPartitionException, retriable)."""

    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    retriable = True
    invalid_metadata = True
    message = "This server does not host this topic-partition."


class InvalidFetchSizeError(KafkaError):
    """4 INVALID_FETCH_SIZE (Kafka: InvalidFetchSizeException)."""

    code = ErrorCode.INVALID_FETCH_SIZE
    message = "The requested fetch size is invalid."


class LeaderNotAvailableError(KafkaError):
    """5 LEADER_NOT_AVAILABLE (Kafka: LeaderNotAvailableException, retriable)."""

    code = ErrorCode.LEADER_NOT_AVAILABLE
    retriable = True
    invalid_metadata = True
    message = (
        "There is no leader for this topic-partition as we are in the middle of a leadership "
        "election."
    )


class NotLeaderOrFollowerError(KafkaError):
    """6 NOT_LEADER_OR_FOLLOWER (Kafka: NotLeaderOrFollowerException, retriable)."""

    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
    retriable = True
    invalid_metadata = True
    message = (
        "For requests intended only for the leader, this error indicates that the broker is "
        "not the current leader. For requests intended for any replica, this error indicates "
        "that the broker is not a replica of the topic partition."
    )


class RequestTimedOutError(KafkaError):
    """7 REQUEST_TIMED_OUT (Kafka: TimeoutException, retriable)."""

    code = ErrorCode.REQUEST_TIMED_OUT
    retriable = True
    message = "The request timed out."


class BrokerNotAvailableError(KafkaError):
    """8 BROKER_NOT_AVAILABLE (Kafka: BrokerNotAvailableException)."""

    code = ErrorCode.BROKER_NOT_AVAILABLE
    message = "The broker is not available."


class ReplicaNotAvailableError(KafkaError):
    """9 REPLICA_NOT_AVAILABLE (Kafka: ReplicaNotAvailableException, retriable)."""

    code = ErrorCode.REPLICA_NOT_AVAILABLE
    retriable = True
    invalid_metadata = True
    message = (
        "The replica is not available for the requested topic-partition. Produce/Fetch "
        "requests and other requests intended only for the leader or follower return "
        "NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition."
    )


class MessageTooLargeError(KafkaError):
    """10 MESSAGE_TOO_LARGE (Kafka: RecordTooLargeException)."""

    code = ErrorCode.MESSAGE_TOO_LARGE
    message = (
        "The request included a message larger than the max message size the server will "
        "accept."
    )


class StaleControllerEpochError(KafkaError):
    """11 STALE_CONTROLLER_EPOCH (Kafka: ControllerMovedException)."""

    code = ErrorCode.STALE_CONTROLLER_EPOCH
    message = "The controller moved to another broker."


class OffsetMetadataTooLargeError(KafkaError):
    """12 OFFSET_METADATA_TOO_LARGE (Kafka: OffsetMetadataTooLarge)."""

    code = ErrorCode.OFFSET_METADATA_TOO_LARGE
    message = "The metadata field of the offset request was too large."


class NetworkError(KafkaError):
    """13 NETWORK_EXCEPTION (Kafka: NetworkException, retriable)."""

    code = ErrorCode.NETWORK_EXCEPTION
    retriable = True
    invalid_metadata = True
    message = "The server disconnected before a response was received."


class CoordinatorLoadInProgressError(KafkaError):
    """14 COORDINATOR_LOAD_IN_PROGRESS (Kafka: CoordinatorLoadInProgressException, retriable)."""

    code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    retriable = True
    message = "The coordinator is loading and hence can't process requests."


class CoordinatorNotAvailableError(KafkaError):
    """15 COORDINATOR_NOT_AVAILABLE (Kafka: CoordinatorNotAvailableException, retriable)."""

    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    retriable = True
    message = "The coordinator is not available."


class NotCoordinatorError(KafkaError):
    """16 NOT_COORDINATOR (Kafka: NotCoordinatorException, retriable)."""

    code = ErrorCode.NOT_COORDINATOR
    retriable = True
    message = "This is not the correct coordinator."


class InvalidTopicError(KafkaError):
    """17 INVALID_TOPIC_EXCEPTION (Kafka: InvalidTopicException)."""

    code = ErrorCode.INVALID_TOPIC_EXCEPTION
    message = "The request attempted to perform an operation on an invalid topic."


class RecordListTooLargeError(KafkaError):
    """18 RECORD_LIST_TOO_LARGE (Kafka: RecordBatchTooLargeException)."""

    code = ErrorCode.RECORD_LIST_TOO_LARGE
    message = (
        "The request included message batch larger than the configured segment size on the "
        "server."
    )


class NotEnoughReplicasError(KafkaError):
    """19 NOT_ENOUGH_REPLICAS (Kafka: NotEnoughReplicasException, retriable)."""

    code = ErrorCode.NOT_ENOUGH_REPLICAS
    retriable = True
    message = "Messages are rejected since there are fewer in-sync replicas than required."


class NotEnoughReplicasAfterAppendError(KafkaError):
    """20 NOT_ENOUGH_REPLICAS_AFTER_APPEND (Kafka: NotEnoughReplicasAfterAppendException, retriable)."""

    code = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    retriable = True
    message = "Messages are written to the log, but to fewer in-sync replicas than required."


class InvalidRequiredAcksError(KafkaError):
    """21 INVALID_REQUIRED_ACKS (Kafka: InvalidRequiredAcksException)."""

    code = ErrorCode.INVALID_REQUIRED_ACKS
    message = "Produce request specified an invalid value for required acks."


class IllegalGenerationError(KafkaError):
    """22 ILLEGAL_GENERATION (Kafka: IllegalGenerationException)."""

    code = ErrorCode.ILLEGAL_GENERATION
    message = "Specified group generation id is not valid."


class InconsistentGroupProtocolError(KafkaError):
    """23 INCONSISTENT_GROUP_PROTOCOL (Kafka: InconsistentGroupProtocolException)."""

    code = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    message = (
        "The group member's supported protocols are incompatible with those of existing "
        "members or first group member tried to join with empty protocol type or empty "
        "protocol list."
    )


class InvalidGroupIdError(KafkaError):
    """24 INVALID_GROUP_ID (Kafka: InvalidGroupIdException)."""

    code = ErrorCode.INVALID_GROUP_ID
    message = "The configured groupId is invalid."


class UnknownMemberIdError(KafkaError):
    """25 UNKNOWN_MEMBER_ID (Kafka: UnknownMemberIdException)."""

    code = ErrorCode.UNKNOWN_MEMBER_ID
    message = "The coordinator is not aware of this member."


class InvalidSessionTimeoutError(KafkaError):
    """26 INVALID_SESSION_TIMEOUT (Kafka: InvalidSessionTimeoutException)."""

    code = ErrorCode.INVALID_SESSION_TIMEOUT
    message = (
        "The session timeout is not within the range allowed by the broker (as configured by "
        "group.min.session.timeout.ms and group.max.session.timeout.ms)."
    )


class RebalanceInProgressError(KafkaError):
    """27 REBALANCE_IN_PROGRESS (Kafka: RebalanceInProgressException)."""

    code = ErrorCode.REBALANCE_IN_PROGRESS
    message = "The group is rebalancing, so a rejoin is needed."


class InvalidCommitOffsetSizeError(KafkaError):
    """28 INVALID_COMMIT_OFFSET_SIZE (Kafka: InvalidCommitOffsetSizeException)."""

    code = ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    message = "The committing offset data size is not valid."


class TopicAuthorizationFailedError(KafkaError):
    """29 TOPIC_AUTHORIZATION_FAILED (Kafka: TopicAuthorizationException)."""

    code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    message = "Topic authorization failed."


class GroupAuthorizationFailedError(KafkaError):
    """30 GROUP_AUTHORIZATION_FAILED (Kafka: GroupAuthorizationException)."""

    code = ErrorCode.GROUP_AUTHORIZATION_FAILED
    message = "Group authorization failed."


class ClusterAuthorizationFailedError(KafkaError):
    """31 CLUSTER_AUTHORIZATION_FAILED (Kafka: ClusterAuthorizationException)."""

    code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    message = "Cluster authorization failed."


class InvalidTimestampError(KafkaError):
    """32 INVALID_TIMESTAMP (Kafka: InvalidTimestampException)."""

    code = ErrorCode.INVALID_TIMESTAMP
    message = "The timestamp of the message is out of acceptable range."


class UnsupportedSaslMechanismError(KafkaError):
    """33 UNSUPPORTED_SASL_MECHANISM (Kafka: UnsupportedSaslMechanismException)."""

    code = ErrorCode.UNSUPPORTED_SASL_MECHANISM
    message = "The broker does not support the requested SASL mechanism."


class IllegalSaslStateError(KafkaError):
    """34 ILLEGAL_SASL_STATE (Kafka: IllegalSaslStateException)."""

    code = ErrorCode.ILLEGAL_SASL_STATE
    message = "Request is not valid given the current SASL state."


class UnsupportedVersionError(KafkaError):
    """35 UNSUPPORTED_VERSION (Kafka: UnsupportedVersionException)."""

    code = ErrorCode.UNSUPPORTED_VERSION
    message = "The version of API is not supported."


class TopicAlreadyExistsError(KafkaError):
    """36 TOPIC_ALREADY_EXISTS (Kafka: TopicExistsException)."""

    code = ErrorCode.TOPIC_ALREADY_EXISTS
    message = "Topic with this name already exists."


class InvalidPartitionsError(KafkaError):
    """37 INVALID_PARTITIONS (Kafka: InvalidPartitionsException)."""

    code = ErrorCode.INVALID_PARTITIONS
    message = "Number of partitions is below 1."


class InvalidReplicationFactorError(KafkaError):
    """38 INVALID_REPLICATION_FACTOR (Kafka: InvalidReplicationFactorException)."""

    code = ErrorCode.INVALID_REPLICATION_FACTOR
    message = "Replication factor is below 1 or larger than the number of available brokers."


class InvalidReplicaAssignmentError(KafkaError):
    """39 INVALID_REPLICA_ASSIGNMENT (Kafka: InvalidReplicaAssignmentException)."""

    code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
    message = "Replica assignment is invalid."


class InvalidConfigError(KafkaError):
    """40 INVALID_CONFIG (Kafka: InvalidConfigurationException)."""

    code = ErrorCode.INVALID_CONFIG
    message = "Configuration is invalid."


class NotControllerError(KafkaError):
    """41 NOT_CONTROLLER (Kafka: NotControllerException, retriable)."""

    code = ErrorCode.NOT_CONTROLLER
    retriable = True
    message = "This is not the correct controller for this cluster."


class InvalidRequestError(KafkaError):
    """42 INVALID_REQUEST (Kafka: InvalidRequestException)."""

    code = ErrorCode.INVALID_REQUEST
    message = (
        "This most likely occurs because of a request being malformed by the client library "
        "or the message was sent to an incompatible broker. See the broker logs for more "
        "details."
    )


class UnsupportedForMessageFormatError(KafkaError):
    """43 UNSUPPORTED_FOR_MESSAGE_FORMAT (Kafka: UnsupportedForMessageFormatException)."""

    code = ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
    message = "The message format version on the broker does not support the request."


class PolicyViolationError(KafkaError):
    """44 POLICY_VIOLATION (Kafka: PolicyViolationException)."""

    code = ErrorCode.POLICY_VIOLATION
    message = "Request parameters do not satisfy the configured policy."


class OutOfOrderSequenceNumberError(KafkaError):
    """45 OUT_OF_ORDER_SEQUENCE_NUMBER (Kafka: OutOfOrderSequenceException)."""

    code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    message = "The broker received an out of order sequence number."


class DuplicateSequenceNumberError(KafkaError):
    """46 DUPLICATE_SEQUENCE_NUMBER (Kafka: DuplicateSequenceException)."""

    code = ErrorCode.DUPLICATE_SEQUENCE_NUMBER
    message = "The broker received a duplicate sequence number."


class InvalidProducerEpochError(KafkaError):
    """47 INVALID_PRODUCER_EPOCH (Kafka: InvalidProducerEpochException)."""

    code = ErrorCode.INVALID_PRODUCER_EPOCH
    message = "Producer attempted to produce with an old epoch."


class InvalidTxnStateError(KafkaError):
    """48 INVALID_TXN_STATE (Kafka: InvalidTxnStateException)."""

    code = ErrorCode.INVALID_TXN_STATE
    message = "The producer attempted a transactional operation in an invalid state."


class InvalidProducerIdMappingError(KafkaError):
    """49 INVALID_PRODUCER_ID_MAPPING (Kafka: InvalidPidMappingException)."""

    code = ErrorCode.INVALID_PRODUCER_ID_MAPPING
    message = (
        "The producer attempted to use a producer id which is not currently assigned to its "
        "transactional id."
    )


class InvalidTransactionTimeoutError(KafkaError):
    """50 INVALID_TRANSACTION_TIMEOUT (Kafka: InvalidTxnTimeoutException)."""

    code = ErrorCode.INVALID_TRANSACTION_TIMEOUT
    message = (
        "The transaction timeout is larger than the maximum value allowed by the broker (as "
        "configured by transaction.max.timeout.ms)."
    )


class ConcurrentTransactionsError(KafkaError):
    """51 CONCURRENT_TRANSACTIONS (Kafka: ConcurrentTransactionsException, retriable)."""

    code = ErrorCode.CONCURRENT_TRANSACTIONS
    retriable = True
    message = (
        "The producer attempted to update a transaction while another concurrent operation on"
        " the same transaction was ongoing."
    )


class TransactionCoordinatorFencedError(KafkaError):
    """52 TRANSACTION_COORDINATOR_FENCED (Kafka: TransactionCoordinatorFencedException)."""

    code = ErrorCode.TRANSACTION_COORDINATOR_FENCED
    message = (
        "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the"
        " current coordinator for a given producer."
    )


class TransactionalIdAuthorizationFailedError(KafkaError):
    """53 TRANSACTIONAL_ID_AUTHORIZATION_FAILED (Kafka: TransactionalIdAuthorizationException)."""

    code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    message = "Transactional Id authorization failed."


class SecurityDisabledError(KafkaError):
    """54 SECURITY_DISABLED (Kafka: SecurityDisabledException)."""

    code = ErrorCode.SECURITY_DISABLED
    message = "Security features are disabled."


class OperationNotAttemptedError(KafkaError):
    """55 OPERATION_NOT_ATTEMPTED (Kafka: OperationNotAttemptedException)."""

    code = ErrorCode.OPERATION_NOT_ATTEMPTED
    message = (
        "The broker did not attempt to execute this operation. This may happen for batched "
        "RPCs where some operations in the batch failed, causing the broker to respond "
        "without trying the rest."
    )


class KafkaStorageError(KafkaError):
    """56 KAFKA_STORAGE_ERROR (Kafka: KafkaStorageException, retriable)."""

    code = ErrorCode.KAFKA_STORAGE_ERROR
    retriable = True
    invalid_metadata = True
    message = "Disk error when trying to access log file on the disk."


class LogDirNotFoundError(KafkaError):
    """57 LOG_DIR_NOT_FOUND (Kafka: LogDirNotFoundException)."""

    code = ErrorCode.LOG_DIR_NOT_FOUND
    message = "The user-specified log directory is not found in the broker config."


class SaslAuthenticationFailedError(KafkaError):
    """58 SASL_AUTHENTICATION_FAILED (Kafka: SaslAuthenticationException)."""

    code = ErrorCode.SASL_AUTHENTICATION_FAILED
    message = "SASL Authentication failed."


class UnknownProducerIdError(KafkaError):
    """59 UNKNOWN_PRODUCER_ID (Kafka: UnknownProducerIdException)."""

    code = ErrorCode.UNKNOWN_PRODUCER_ID
    message = (
        "This exception is raised by the broker if it could not locate the producer metadata "
        "associated with the producerId in question. This could happen if, for instance, the "
        "producer's records were deleted because their retention time had elapsed. Once the "
        "last records of the producerId are removed, the producer's metadata is removed from "
        "the broker, and future appends by the producer will return this exception."
    )


class ReassignmentInProgressError(KafkaError):
    """60 REASSIGNMENT_IN_PROGRESS (Kafka: ReassignmentInProgressException)."""

    code = ErrorCode.REASSIGNMENT_IN_PROGRESS
    message = "A partition reassignment is in progress."


class DelegationTokenAuthDisabledError(KafkaError):
    """61 DELEGATION_TOKEN_AUTH_DISABLED (Kafka: DelegationTokenDisabledException)."""

    code = ErrorCode.DELEGATION_TOKEN_AUTH_DISABLED
    message = "Delegation Token feature is not enabled."


class DelegationTokenNotFoundError(KafkaError):
    """62 DELEGATION_TOKEN_NOT_FOUND (Kafka: DelegationTokenNotFoundException)."""

    code = ErrorCode.DELEGATION_TOKEN_NOT_FOUND
    message = "Delegation Token is not found on server."


class DelegationTokenOwnerMismatchError(KafkaError):
    """63 DELEGATION_TOKEN_OWNER_MISMATCH (Kafka: DelegationTokenOwnerMismatchException)."""

    code = ErrorCode.DELEGATION_TOKEN_OWNER_MISMATCH
    message = "Specified Principal is not valid Owner/Renewer."


class DelegationTokenRequestNotAllowedError(KafkaError):
    """64 DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (Kafka: UnsupportedByAuthenticationException)."""

    code = ErrorCode.DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
    message = (
        "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on "
        "delegation token authenticated channels."
    )


class DelegationTokenAuthorizationFailedError(KafkaError):
    """65 DELEGATION_TOKEN_AUTHORIZATION_FAILED (Kafka: DelegationTokenAuthorizationException)."""

    code = ErrorCode.DELEGATION_TOKEN_AUTHORIZATION_FAILED
    message = "Delegation Token authorization failed."


class DelegationTokenExpiredError(KafkaError):
    """66 DELEGATION_TOKEN_EXPIRED (Kafka: DelegationTokenExpiredException)."""

    code = ErrorCode.DELEGATION_TOKEN_EXPIRED
    message = "Delegation Token is expired."


class InvalidPrincipalTypeError(KafkaError):
    """67 INVALID_PRINCIPAL_TYPE (Kafka: InvalidPrincipalTypeException)."""

    code = ErrorCode.INVALID_PRINCIPAL_TYPE
    message = "Supplied principalType is not supported."


class NonEmptyGroupError(KafkaError):
    """68 NON_EMPTY_GROUP (Kafka: GroupNotEmptyException)."""

    code = ErrorCode.NON_EMPTY_GROUP
    message = "The group is not empty."


class GroupIdNotFoundError(KafkaError):
    """69 GROUP_ID_NOT_FOUND (Kafka: GroupIdNotFoundException)."""

    code = ErrorCode.GROUP_ID_NOT_FOUND
    message = "The group id does not exist."


class FetchSessionIdNotFoundError(KafkaError):
    """70 FETCH_SESSION_ID_NOT_FOUND (Kafka: FetchSessionIdNotFoundException, retriable)."""

    code = ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    retriable = True
    message = "The fetch session ID was not found."


class InvalidFetchSessionEpochError(KafkaError):
    """71 INVALID_FETCH_SESSION_EPOCH (Kafka: InvalidFetchSessionEpochException, retriable)."""

    code = ErrorCode.INVALID_FETCH_SESSION_EPOCH
    retriable = True
    message = "The fetch session epoch is invalid."


class ListenerNotFoundError(KafkaError):
    """72 LISTENER_NOT_FOUND (Kafka: ListenerNotFoundException, retriable)."""

    code = ErrorCode.LISTENER_NOT_FOUND
    retriable = True
    invalid_metadata = True
    message = (
        "There is no listener on the leader broker that matches the listener on which "
        "metadata request was processed."
    )


class TopicDeletionDisabledError(KafkaError):
    """73 TOPIC_DELETION_DISABLED (Kafka: TopicDeletionDisabledException)."""

    code = ErrorCode.TOPIC_DELETION_DISABLED
    message = "Topic deletion is disabled."


class FencedLeaderEpochError(KafkaError):
    """74 FENCED_LEADER_EPOCH (Kafka: FencedLeaderEpochException, retriable)."""

    code = ErrorCode.FENCED_LEADER_EPOCH
    retriable = True
    invalid_metadata = True
    message = "The leader epoch in the request is older than the epoch on the broker."


class UnknownLeaderEpochError(KafkaError):
    """75 UNKNOWN_LEADER_EPOCH (Kafka: UnknownLeaderEpochException, retriable)."""

    code = ErrorCode.UNKNOWN_LEADER_EPOCH
    retriable = True
    message = "The leader epoch in the request is newer than the epoch on the broker."


class UnsupportedCompressionTypeError(KafkaError):
    """76 UNSUPPORTED_COMPRESSION_TYPE (Kafka: UnsupportedCompressionTypeException)."""

    code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    message = "The requesting client does not support the compression type of given partition."


class StaleBrokerEpochError(KafkaError):
    """77 STALE_BROKER_EPOCH (Kafka: StaleBrokerEpochException)."""

    code = ErrorCode.STALE_BROKER_EPOCH
    message = "Broker epoch has changed."


class OffsetNotAvailableError(KafkaError):
    """78 OFFSET_NOT_AVAILABLE (Kafka: OffsetNotAvailableException, retriable)."""

    code = ErrorCode.OFFSET_NOT_AVAILABLE
    retriable = True
    message = (
        "The leader high watermark has not caught up from a recent leader election so the "
        "offsets cannot be guaranteed to be monotonically increasing."
    )


class MemberIdRequiredError(KafkaError):
    """79 MEMBER_ID_REQUIRED (Kafka: MemberIdRequiredException)."""

    code = ErrorCode.MEMBER_ID_REQUIRED
    message = (
        "The group member needs to have a valid member id before actually entering a consumer"
        " group."
    )


class PreferredLeaderNotAvailableError(KafkaError):
    """80 PREFERRED_LEADER_NOT_AVAILABLE (Kafka: PreferredLeaderNotAvailableException, retriable)."""

    code = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    retriable = True
    invalid_metadata = True
    message = "The preferred leader was not available."


class GroupMaxSizeReachedError(KafkaError):
    """81 GROUP_MAX_SIZE_REACHED (Kafka: GroupMaxSizeReachedException)."""

    code = ErrorCode.GROUP_MAX_SIZE_REACHED
    message = "The consumer group has reached its max size."


class FencedInstanceIdError(KafkaError):
    """82 FENCED_INSTANCE_ID (Kafka: FencedInstanceIdException)."""

    code = ErrorCode.FENCED_INSTANCE_ID
    message = (
        "The broker rejected this static consumer since another consumer with the same "
        "group.instance.id has registered with a different member.id."
    )


class EligibleLeadersNotAvailableError(KafkaError):
    """83 ELIGIBLE_LEADERS_NOT_AVAILABLE (Kafka: EligibleLeadersNotAvailableException, retriable)."""

    code = ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    retriable = True
    invalid_metadata = True
    message = "Eligible topic partition leaders are not available."


class ElectionNotNeededError(KafkaError):
    """84 ELECTION_NOT_NEEDED (Kafka: ElectionNotNeededException, retriable)."""

    code = ErrorCode.ELECTION_NOT_NEEDED
    retriable = True
    invalid_metadata = True
    message = "Leader election not needed for topic partition."


class NoReassignmentInProgressError(KafkaError):
    """85 NO_REASSIGNMENT_IN_PROGRESS (Kafka: NoReassignmentInProgressException)."""

    code = ErrorCode.NO_REASSIGNMENT_IN_PROGRESS
    message = "No partition reassignment is in progress."


class GroupSubscribedToTopicError(KafkaError):
    """86 GROUP_SUBSCRIBED_TO_TOPIC (Kafka: GroupSubscribedToTopicException)."""

    code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
    message = (
        "Deleting offsets of a topic is forbidden while the consumer group is actively "
        "subscribed to it."
    )


class InvalidRecordError(KafkaError):
    """87 INVALID_RECORD (Kafka: InvalidRecordException)."""

    code = ErrorCode.INVALID_RECORD
    message = "This record has failed the validation on broker and hence will be rejected."


class UnstableOffsetCommitError(KafkaError):
    """88 UNSTABLE_OFFSET_COMMIT (Kafka: UnstableOffsetCommitException, retriable)."""

    code = ErrorCode.UNSTABLE_OFFSET_COMMIT
    retriable = True
    message = "There are unstable offsets that need to be cleared."


class ThrottlingQuotaExceededError(KafkaError):
    """89 THROTTLING_QUOTA_EXCEEDED (Kafka: ThrottlingQuotaExceededException, retriable)."""

    code = ErrorCode.THROTTLING_QUOTA_EXCEEDED
    retriable = True
    message = "The throttling quota has been exceeded."


class ProducerFencedError(KafkaError):
    """90 PRODUCER_FENCED (Kafka: ProducerFencedException)."""

    code = ErrorCode.PRODUCER_FENCED
    message = (
        "There is a newer producer with the same transactionalId which fences the current "
        "one."
    )


class ResourceNotFoundError(KafkaError):
    """91 RESOURCE_NOT_FOUND (Kafka: ResourceNotFoundException)."""

    code = ErrorCode.RESOURCE_NOT_FOUND
    message = "A request illegally referred to a resource that does not exist."


class DuplicateResourceError(KafkaError):
    """92 DUPLICATE_RESOURCE (Kafka: DuplicateResourceException)."""

    code = ErrorCode.DUPLICATE_RESOURCE
    message = "A request illegally referred to the same resource twice."


class UnacceptableCredentialError(KafkaError):
    """93 UNACCEPTABLE_CREDENTIAL (Kafka: UnacceptableCredentialException)."""

    code = ErrorCode.UNACCEPTABLE_CREDENTIAL
    message = "Requested credential would not meet criteria for acceptability."


class InconsistentVoterSetError(KafkaError):
    """94 INCONSISTENT_VOTER_SET (Kafka: InconsistentVoterSetException)."""

    code = ErrorCode.INCONSISTENT_VOTER_SET
    message = (
        "Indicates that the either the sender or recipient of a voter-only request is not one"
        " of the expected voters."
    )


class InvalidUpdateVersionError(KafkaError):
    """95 INVALID_UPDATE_VERSION (Kafka: InvalidUpdateVersionException)."""

    code = ErrorCode.INVALID_UPDATE_VERSION
    message = "The given update version was invalid."


class FeatureUpdateFailedError(KafkaError):
    """96 FEATURE_UPDATE_FAILED (Kafka: FeatureUpdateFailedException)."""

    code = ErrorCode.FEATURE_UPDATE_FAILED
    message = "Unable to update finalized features due to an unexpected server error."


class PrincipalDeserializationFailureError(KafkaError):
    """97 PRINCIPAL_DESERIALIZATION_FAILURE (Kafka: PrincipalDeserializationException)."""

    code = ErrorCode.PRINCIPAL_DESERIALIZATION_FAILURE
    message = (
        "Request principal deserialization failed during forwarding. This indicates an "
        "internal error on the broker cluster security setup."
    )


class SnapshotNotFoundError(KafkaError):
    """98 SNAPSHOT_NOT_FOUND (Kafka: SnapshotNotFoundException)."""

    code = ErrorCode.SNAPSHOT_NOT_FOUND
    message = "Requested snapshot was not found."


class PositionOutOfRangeError(KafkaError):
    """99 POSITION_OUT_OF_RANGE (Kafka: PositionOutOfRangeException)."""

    code = ErrorCode.POSITION_OUT_OF_RANGE
    message = (
        "Requested position is not greater than or equal to zero, and less than the size of "
        "the snapshot."
    )


class UnknownTopicIdError(KafkaError):
    """100 UNKNOWN_TOPIC_ID (Kafka: UnknownTopicIdException, retriable)."""

    code = ErrorCode.UNKNOWN_TOPIC_ID
    retriable = True
    invalid_metadata = True
    message = "This server does not host this topic ID."


class DuplicateBrokerRegistrationError(KafkaError):
    """101 DUPLICATE_BROKER_REGISTRATION (Kafka: DuplicateBrokerRegistrationException)."""

    code = ErrorCode.DUPLICATE_BROKER_REGISTRATION
    message = "This broker ID is already in use."


class BrokerIdNotRegisteredError(KafkaError):
    """102 BROKER_ID_NOT_REGISTERED (Kafka: BrokerIdNotRegisteredException)."""

    code = ErrorCode.BROKER_ID_NOT_REGISTERED
    message = "The given broker ID was not registered."


class InconsistentTopicIdError(KafkaError):
    """103 INCONSISTENT_TOPIC_ID (Kafka: InconsistentTopicIdException, retriable)."""

    code = ErrorCode.INCONSISTENT_TOPIC_ID
    retriable = True
    invalid_metadata = True
    message = "The log's topic ID did not match the topic ID in the request."


class InconsistentClusterIdError(KafkaError):
    """104 INCONSISTENT_CLUSTER_ID (Kafka: InconsistentClusterIdException)."""

    code = ErrorCode.INCONSISTENT_CLUSTER_ID
    message = "The clusterId in the request does not match that found on the server."


class TransactionalIdNotFoundError(KafkaError):
    """105 TRANSACTIONAL_ID_NOT_FOUND (Kafka: TransactionalIdNotFoundException)."""

    code = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    message = "The transactionalId could not be found."


class FetchSessionTopicIdError(KafkaError):
    """106 FETCH_SESSION_TOPIC_ID_ERROR (Kafka: FetchSessionTopicIdException, retriable)."""

    code = ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR
    retriable = True
    message = "The fetch session encountered inconsistent topic ID usage."


class IneligibleReplicaError(KafkaError):
    """107 INELIGIBLE_REPLICA (Kafka: IneligibleReplicaException)."""

    code = ErrorCode.INELIGIBLE_REPLICA
    message = "The new ISR contains at least one ineligible replica."


class NewLeaderElectedError(KafkaError):
    """108 NEW_LEADER_ELECTED (Kafka: NewLeaderElectedException)."""

    code = ErrorCode.NEW_LEADER_ELECTED
    message = (
        "The AlterPartition request successfully updated the partition state but the leader "
        "has changed."
    )


class OffsetMovedToTieredStorageError(KafkaError):
    """109 OFFSET_MOVED_TO_TIERED_STORAGE (Kafka: OffsetMovedToTieredStorageException)."""

    code = ErrorCode.OFFSET_MOVED_TO_TIERED_STORAGE
    message = "The requested offset is moved to tiered storage."


class FencedMemberEpochError(KafkaError):
    """110 FENCED_MEMBER_EPOCH (Kafka: FencedMemberEpochException)."""

    code = ErrorCode.FENCED_MEMBER_EPOCH
    message = (
        "The member epoch is fenced by the group coordinator. The member must abandon all its"
        " partitions and rejoin."
    )


class UnreleasedInstanceIdError(KafkaError):
    """111 UNRELEASED_INSTANCE_ID (Kafka: UnreleasedInstanceIdException)."""

    code = ErrorCode.UNRELEASED_INSTANCE_ID
    message = (
        "The instance ID is still used by another member in the consumer group. That member "
        "must leave first."
    )


class UnsupportedAssignorError(KafkaError):
    """112 UNSUPPORTED_ASSIGNOR (Kafka: UnsupportedAssignorException)."""

    code = ErrorCode.UNSUPPORTED_ASSIGNOR
    message = "The assignor or its version range is not supported by the consumer group."


class StaleMemberEpochError(KafkaError):
    """113 STALE_MEMBER_EPOCH (Kafka: StaleMemberEpochException)."""

    code = ErrorCode.STALE_MEMBER_EPOCH
    message = (
        "The member epoch is stale. The member must retry after receiving its updated member "
        "epoch via the ConsumerGroupHeartbeat API."
    )


class MismatchedEndpointTypeError(KafkaError):
    """114 MISMATCHED_ENDPOINT_TYPE (Kafka: MismatchedEndpointTypeException)."""

    code = ErrorCode.MISMATCHED_ENDPOINT_TYPE
    message = "The request was sent to an endpoint of the wrong type."


class UnsupportedEndpointTypeError(KafkaError):
    """115 UNSUPPORTED_ENDPOINT_TYPE (Kafka: UnsupportedEndpointTypeException)."""

    code = ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
    message = "This endpoint type is not supported yet."


class UnknownControllerIdError(KafkaError):
    """116 UNKNOWN_CONTROLLER_ID (Kafka: UnknownControllerIdException)."""

    code = ErrorCode.UNKNOWN_CONTROLLER_ID
    message = "This controller ID is not known."


class UnknownSubscriptionIdError(KafkaError):
    """117 UNKNOWN_SUBSCRIPTION_ID (Kafka: UnknownSubscriptionIdException)."""

    code = ErrorCode.UNKNOWN_SUBSCRIPTION_ID
    message = "Client sent a push telemetry request with an invalid or outdated subscription ID."


class TelemetryTooLargeError(KafkaError):
    """118 TELEMETRY_TOO_LARGE (Kafka: TelemetryTooLargeException)."""

    code = ErrorCode.TELEMETRY_TOO_LARGE
    message = (
        "Client sent a push telemetry request larger than the maximum size the broker will "
        "accept."
    )


class InvalidRegistrationError(KafkaError):
    """119 INVALID_REGISTRATION (Kafka: InvalidRegistrationException)."""

    code = ErrorCode.INVALID_REGISTRATION
    message = "The controller has considered the broker registration to be invalid."


class TransactionAbortableError(KafkaError):
    """120 TRANSACTION_ABORTABLE (Kafka: TransactionAbortableException)."""

    code = ErrorCode.TRANSACTION_ABORTABLE
    message = (
        "The server encountered an error with the transaction. The client can abort the "
        "transaction to continue using this transactional ID."
    )


class InvalidRecordStateError(KafkaError):
    """121 INVALID_RECORD_STATE (Kafka: InvalidRecordStateException)."""

    code = ErrorCode.INVALID_RECORD_STATE
    message = "The record state is invalid. The acknowledgement of delivery could not be completed."


class ShareSessionNotFoundError(KafkaError):
    """122 SHARE_SESSION_NOT_FOUND (Kafka: ShareSessionNotFoundException, retriable)."""

    code = ErrorCode.SHARE_SESSION_NOT_FOUND
    retriable = True
    message = "The share session was not found."


class InvalidShareSessionEpochError(KafkaError):
    """123 INVALID_SHARE_SESSION_EPOCH (Kafka: InvalidShareSessionEpochException, retriable)."""

    code = ErrorCode.INVALID_SHARE_SESSION_EPOCH
    retriable = True
    message = "The share session epoch is invalid."


class FencedStateEpochError(KafkaError):
    """124 FENCED_STATE_EPOCH (Kafka: FencedStateEpochException)."""

    code = ErrorCode.FENCED_STATE_EPOCH
    message = (
        "The share coordinator rejected the request because the share-group state epoch did "
        "not match."
    )


class InvalidVoterKeyError(KafkaError):
    """125 INVALID_VOTER_KEY (Kafka: InvalidVoterKeyException)."""

    code = ErrorCode.INVALID_VOTER_KEY
    message = "The voter key doesn't match the receiving replica's key."


class DuplicateVoterError(KafkaError):
    """126 DUPLICATE_VOTER (Kafka: DuplicateVoterException)."""

    code = ErrorCode.DUPLICATE_VOTER
    message = "The voter is already part of the set of voters."


class VoterNotFoundError(KafkaError):
    """127 VOTER_NOT_FOUND (Kafka: VoterNotFoundException)."""

    code = ErrorCode.VOTER_NOT_FOUND
    message = "The voter is not part of the set of voters."


class InvalidRegularExpressionError(KafkaError):
    """128 INVALID_REGULAR_EXPRESSION (Kafka: InvalidRegularExpression)."""

    code = ErrorCode.INVALID_REGULAR_EXPRESSION
    message = "The regular expression is not valid."


def _collect() -> dict[int, type[KafkaError]]:
    table: dict[int, type[KafkaError]] = {}
    for cls in KafkaError.__subclasses__():
        assert cls.code not in table, f"two classes for {cls.code!r}"
        table[cls.code] = cls
    missing = set(ErrorCode) - set(table) - {ErrorCode.NONE}
    assert not missing, f"no class for {missing}"
    return table


ERRORS_BY_CODE: dict[int, type[KafkaError]] = _collect()
"""Error code -> exception class, for every code except NONE (0)."""

__all__ += [cls.__name__ for cls in ERRORS_BY_CODE.values()]


def error_for_code(code: int) -> type[KafkaError]:
    """The exception class for ``code``. A code this table does not know (from a newer peer)
    gives ``UnknownServerError``, as Kafka's ``Errors.forCode`` does. NONE (0) is not an error:
    ``ValueError``."""
    try:
        return ERRORS_BY_CODE[code]
    except KeyError:
        if code == 0:
            raise ValueError("error code 0 (NONE) is not an error") from None
        return UnknownServerError


# Exceptions from lower layers, by exact class; subclasses are found through the MRO.
_FOREIGN: dict[type[BaseException], ErrorCode] = {
    _storage.CorruptRecordError: ErrorCode.CORRUPT_MESSAGE,
    _storage.InvalidRecordError: ErrorCode.INVALID_RECORD,
    _storage.RecordTooLargeError: ErrorCode.MESSAGE_TOO_LARGE,
    _storage.OffsetOutOfRangeError: ErrorCode.OFFSET_OUT_OF_RANGE,
    _storage.LogDirOfflineError: ErrorCode.KAFKA_STORAGE_ERROR,
    _codec.UnsupportedVersionError: ErrorCode.UNSUPPORTED_VERSION,
    # A request field that our schemas cannot read is the client's fault (Kafka wraps parse
    # failures in InvalidRequestException); a bad config value in a request is INVALID_CONFIG.
    _codec.DecodeError: ErrorCode.INVALID_REQUEST,
    _storage.ConfigError: ErrorCode.INVALID_CONFIG,
}


def to_error_code(exc: BaseException) -> ErrorCode:
    """The error code to return for ``exc``: a ``KafkaError``'s own code; a storage error's
    Kafka equivalent; ``UNKNOWN_SERVER_ERROR`` for anything else (a bug: log it)."""
    if isinstance(exc, KafkaError):
        return exc.code
    for cls in type(exc).__mro__:
        code = _FOREIGN.get(cls)
        if code is not None:
            return code
    return ErrorCode.UNKNOWN_SERVER_ERROR
