"""Every API checked against the authorizer, as Kafka's KafkaApis and ControllerApis do.
The rules live in ``authz_topics.py`` (requests naming topics) and ``authz_rules.py`` (groups,
transactional ids, the cluster, answers filtered afterwards) over ``authz_base.py``; this module
holds the table of which rule guards which API and the wrapping of a listener's handlers.

``secure_handlers(handlers, checker, kind)`` wraps a listener's route table when an authorizer
is configured; without one the node never calls it, so the table holds the plain handlers and
no request (Produce's hot path included) pays anything. Each rule runs before the handler:

- a request-wide denial answers at once with Kafka's error (``Reject``);
- a per-topic / per-group denial takes the denied entries out of the request, lets the
  handler answer the rest, and adds the denied entries to its answer with their error
  (``Split``: Kafka's split between authorized and unauthorized resources);
- Metadata, OffsetFetch, ListGroups, DescribeTopicPartitions and ListTransactions filter the
  answer (resources the principal may not describe are hidden, or named with an error when the
  request named them).

The table of operations (Kafka's): Produce WRITE topic (and WRITE transactional id); Fetch READ
topic, or CLUSTER_ACTION for a follower; ListOffsets, OffsetForLeaderEpoch DESCRIBE topic (a
follower: CLUSTER_ACTION); Metadata DESCRIBE topic, auto-creation CREATE on the cluster or the
topic; group APIs READ group (OffsetCommit, TxnOffsetCommit also READ topic), DescribeGroups
and FindCoordinator DESCRIBE group, DeleteGroups and OffsetDelete DELETE group; CreateTopics
CREATE cluster or topic, DeleteTopics and DeleteRecords DELETE topic, CreatePartitions ALTER
topic; configs DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic or the cluster; InitProducerId
WRITE transactional id, or IDEMPOTENT_WRITE cluster (or WRITE on some topic); AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn, TxnOffsetCommit WRITE transactional id; WriteTxnMarkers and
AddPartitionsToTxn v4+ (broker to coordinator) CLUSTER_ACTION; ElectLeaders,
AlterPartitionReassignments ALTER cluster; ListPartitionReassignments, DescribeLogDirs,
DescribeQuorum DESCRIBE cluster; DescribeClientQuotas DESCRIBE_CONFIGS and AlterClientQuotas
ALTER_CONFIGS on the cluster; DescribeProducers READ topic; DescribeTransactions and
ListTransactions DESCRIBE transactional id. On the controller listener every request needs
CLUSTER_ACTION (Raft, registration, heartbeats, AlterPartition, forwarded admin requests),
except that a forwarded admin request without it is checked as the broker would check it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from broker.protocol.api_keys import ApiKey
from broker.security import authz_rules as rules
from broker.security import authz_topics as topics
from broker.security.authz_base import (
    CLUSTER_DENIED,
    GROUP,
    GROUP_DENIED,
    TOPIC_DENIED,
    TXN,
    TXN_DENIED,
    AuthzChecker,
    Op,
    Reject,
    Rule,
    error_response,
    response_of,
)

__all__ = ["AuthzChecker", "secure_handlers"]


def _wrap(inner: Any, rule: Rule, checker: AuthzChecker) -> Any:
    def handle(ctx: Any, header: Any, request: Any) -> Any:
        outcome = rule(checker, ctx, header, request)
        if outcome is None:
            return inner(ctx, header, request)
        if isinstance(outcome, Reject):
            return outcome.response
        result = inner(ctx, header, request)
        if inspect.isawaitable(result):
            async def finish() -> Any:
                resp = await result
                return None if resp is None else outcome.patch(resp)
            return finish()
        return None if result is None else outcome.patch(result)
    return handle


BROKER_RULES: dict[int, Rule] = {
    ApiKey.PRODUCE: topics.topic_rule(topics.PRODUCE, Op.WRITE, before=topics.produce_before),
    ApiKey.FETCH: topics.fetch_rule(),
    ApiKey.LIST_OFFSETS: topics.topic_rule(topics.LIST_OFFSETS, Op.DESCRIBE),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: topics.topic_rule(
        topics.EPOCHS, Op.DESCRIBE,
        cluster_action=lambda h, r: h.api_version >= 3 and r.replica_id >= 0),
    ApiKey.DELETE_RECORDS: topics.topic_rule(topics.DELETE_RECORDS, Op.DELETE),
    ApiKey.METADATA: rules.metadata,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: rules.describe_topic_partitions,
    ApiKey.OFFSET_COMMIT: topics.topic_rule(topics.OFFSET_COMMIT, Op.READ,
                                      before=topics.group_then_txn(Op.READ, False)),
    ApiKey.TXN_OFFSET_COMMIT: topics.topic_rule(topics.TXN_OFFSET_COMMIT, Op.READ,
                                          before=topics.group_then_txn(Op.READ, True)),
    ApiKey.OFFSET_FETCH: rules.offset_fetch,
    ApiKey.OFFSET_DELETE: topics.offset_delete,
    ApiKey.FIND_COORDINATOR: rules.find_coordinator,
    ApiKey.JOIN_GROUP: rules.group_rule(Op.READ),
    ApiKey.SYNC_GROUP: rules.group_rule(Op.READ),
    ApiKey.HEARTBEAT: rules.group_rule(Op.READ),
    ApiKey.LEAVE_GROUP: rules.group_rule(Op.READ),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: rules.consumer_group_heartbeat,
    ApiKey.DESCRIBE_GROUPS: rules.group_operations(
        "groups", "include_authorized_operations", 3, rules.per_name(
            "groups", GROUP, Op.DESCRIBE, GROUP_DENIED,
            lambda R, n, c: R.DescribedGroup(error_code=c, group_id=n), "groups")),
    ApiKey.CONSUMER_GROUP_DESCRIBE: rules.group_operations(
        "groups", "include_authorized_operations", 0, rules.per_name(
            "group_ids", GROUP, Op.DESCRIBE, GROUP_DENIED,
            lambda R, n, c: R.DescribedGroup(error_code=c, group_id=n), "groups")),
    ApiKey.DESCRIBE_CLUSTER: rules.describe_cluster,
    ApiKey.DELETE_GROUPS: rules.per_name(
        "groups_names", GROUP, Op.DELETE, GROUP_DENIED,
        lambda R, n, c: R.DeletableGroupResult(group_id=n, error_code=c), "results"),
    ApiKey.LIST_GROUPS: rules.list_groups,
    ApiKey.DESCRIBE_TRANSACTIONS: rules.per_name(
        "transactional_ids", TXN, Op.DESCRIBE, TXN_DENIED,
        lambda R, n, c: R.TransactionState(error_code=c, transactional_id=n),
        "transaction_states"),
    ApiKey.LIST_TRANSACTIONS: rules.list_transactions,
    ApiKey.CREATE_TOPICS: topics.named_topics(
        "topics", "name", Op.CREATE, "topics",
        lambda R, n: R.CreatableTopicResult(name=n, error_code=TOPIC_DENIED), create=True),
    ApiKey.CREATE_PARTITIONS: topics.named_topics(
        "topics", "name", Op.ALTER, "results",
        lambda R, n: R.CreatePartitionsTopicResult(name=n, error_code=TOPIC_DENIED)),
    ApiKey.DELETE_TOPICS: topics.delete_topics,
    ApiKey.DESCRIBE_CONFIGS: topics.configs(describe=True),
    ApiKey.ALTER_CONFIGS: topics.configs(describe=False),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: topics.configs(describe=False),
    ApiKey.INIT_PRODUCER_ID: rules.init_producer_id,
    ApiKey.ADD_PARTITIONS_TO_TXN: rules.add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: rules.txn_rule(group=True),
    ApiKey.END_TXN: rules.txn_rule(group=False),
    ApiKey.WRITE_TXN_MARKERS: topics.write_txn_markers,
    ApiKey.DESCRIBE_PRODUCERS: topics.topic_rule(topics.DESCRIBE_PRODUCERS, Op.READ),
    ApiKey.ELECT_LEADERS: rules.elect_leaders,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: rules.cluster_rule(Op.ALTER),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: rules.cluster_rule(Op.DESCRIBE),
    ApiKey.DESCRIBE_LOG_DIRS: rules.describe_log_dirs,
    ApiKey.DESCRIBE_QUORUM: rules.cluster_rule(Op.DESCRIBE),
    ApiKey.DESCRIBE_CLIENT_QUOTAS: rules.cluster_rule(Op.DESCRIBE_CONFIGS),
    ApiKey.ALTER_CLIENT_QUOTAS: rules.alter_client_quotas,
    # Kafka's handleDescribeUserScramCredentialsRequest / handleAlterUserScramCredentials.
    ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS: rules.cluster_rule(Op.DESCRIBE),
    ApiKey.ALTER_USER_SCRAM_CREDENTIALS: rules.cluster_rule(Op.ALTER),
}
# Checked by their own handlers (broker/security/acl_apis.py), or open to every client.
UNCHECKED = frozenset({ApiKey.CREATE_ACLS, ApiKey.DESCRIBE_ACLS, ApiKey.DELETE_ACLS,
                       ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE,
                       ApiKey.SASL_AUTHENTICATE})


def _acl_change(list_attr: str, resp_attr: str, entry: str) -> Rule:
    """CreateAcls/DeleteAcls reaching a controller: from a broker (CLUSTER_ACTION) or a
    client with ALTER on the cluster."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, Op.CLUSTER_ACTION) or checker.cluster(ctx, Op.ALTER):
            return None
        R = response_of(header)
        return Reject(R.cls(**{resp_attr: [getattr(R, entry)(error_code=CLUSTER_DENIED)
                                            for _ in getattr(request, list_attr)]}))
    return rule


CONTROLLER_RULES: dict[int, Rule] = {
    ApiKey.CREATE_ACLS: _acl_change("creations", "results", "AclCreationResult"),
    ApiKey.DELETE_ACLS: _acl_change("filters", "filter_results", "DeleteAclsFilterResult"),
    ApiKey.DESCRIBE_QUORUM: rules.cluster_rule(Op.DESCRIBE),
}


def _controller_rule(api_key: int) -> Rule:
    broker_rule = BROKER_RULES.get(api_key)

    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, Op.CLUSTER_ACTION):
            return None
        if broker_rule is not None:
            return broker_rule(checker, ctx, header, request)
        return Reject(error_response(header, CLUSTER_DENIED))
    return rule


def secure_handlers(handlers: Mapping[int, Any], checker: AuthzChecker,
                    kind: str) -> dict[int, Any]:
    """A listener's route table with every API checked (``kind``: "broker" or
    "controller"). An API with no rule on a broker listener needs ALTER on the cluster, so
    nothing new is ever served unchecked."""
    out: dict[int, Any] = {}
    for key, inner in handlers.items():
        if kind == "controller":
            # Authentication itself is never authorized (the principal is not known yet).
            if key in (ApiKey.DESCRIBE_CLUSTER, ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE,
                       ApiKey.SASL_AUTHENTICATE):
                out[key] = inner
                continue
            rule = CONTROLLER_RULES.get(key) or _controller_rule(key)
        elif key in UNCHECKED:
            out[key] = inner
            continue
        else:
            rule = BROKER_RULES.get(key) or rules.cluster_rule(Op.ALTER)
        out[key] = _wrap(inner, rule, checker)
    return out
