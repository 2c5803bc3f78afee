"""Authorization rules of the requests about groups, transactional ids and the cluster, and
of the answers filtered afterwards (Metadata, DescribeTopicPartitions, OffsetFetch, ListGroups,
ListTransactions hide what the principal may not describe)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.protocol.errors import ErrorCode
from broker.security.authz_base import (
    CLUSTER,
    CLUSTER_DENIED,
    GROUP,
    GROUP_DENIED,
    TOPIC,
    TOPIC_DENIED,
    TXN,
    TXN_DENIED,
    AuthzChecker,
    Op,
    Reject,
    Rule,
    Split,
    error_response,
    response_of,
)
from kraft.acls import CLUSTER_NAME, AclOperation, ResourceType

# --- whole-request rules --------------------------------------------------------------------


def group_rule(op: AclOperation) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.allowed(ctx, op, GROUP, request.group_id):
            return None
        return Reject(error_response(header, GROUP_DENIED))
    return rule


def consumer_group_heartbeat(checker: AuthzChecker, ctx: Any, header: Any,
                             request: Any) -> Any:
    """READ on the group, and DESCRIBE on every subscribed topic (Kafka's
    GroupCoordinatorService answers TOPIC_AUTHORIZATION_FAILED otherwise)."""
    if not checker.allowed(ctx, Op.READ, GROUP, request.group_id):
        return Reject(error_response(header, GROUP_DENIED))
    denied = [t for t in request.subscribed_topic_names or ()
              if not checker.allowed(ctx, Op.DESCRIBE, TOPIC, t)]
    if not denied:
        return None
    R = response_of(header)
    return Reject(R.cls(error_code=TOPIC_DENIED, error_message="The group may not subscribe "
                        f"to topics it is not authorized to describe: {', '.join(denied)}"))


def cluster_rule(op: AclOperation) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, op):
            return None
        return Reject(error_response(header, CLUSTER_DENIED))
    return rule


def txn_rule(group: bool) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if not checker.allowed(ctx, Op.WRITE, TXN, request.transactional_id):
            return Reject(error_response(header, TXN_DENIED))
        if group and not checker.allowed(ctx, Op.READ, GROUP, request.group_id):
            return Reject(error_response(header, GROUP_DENIED))
        return None
    return rule


def init_producer_id(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    txn_id = request.transactional_id
    if txn_id:
        return txn_rule(False)(checker, ctx, header, request)
    if checker.cluster(ctx, Op.IDEMPOTENT_WRITE) or checker.allowed_any(ctx, Op.WRITE, TOPIC):
        return None
    return Reject(error_response(header, CLUSTER_DENIED))


def add_partitions_to_txn(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    R = response_of(header)
    if header.api_version >= 4:
        if checker.cluster(ctx, Op.CLUSTER_ACTION):
            return None
        return Reject(R.cls(error_code=CLUSTER_DENIED))
    topics = request.v3_and_below_topics or ()
    txn_ok = checker.allowed(ctx, Op.WRITE, TXN, request.v3_and_below_transactional_id)
    codes = {t.name: (None if checker.allowed(ctx, Op.WRITE, TOPIC, t.name) else TOPIC_DENIED)
             for t in topics}
    if txn_ok and not any(codes.values()):
        return None
    other = ErrorCode.OPERATION_NOT_ATTEMPTED
    return Reject(R.cls(results_by_topic_v3_and_below=[R.AddPartitionsToTxnTopicResult(
        name=t.name, results_by_partition=[R.AddPartitionsToTxnPartitionResult(
            partition_index=p,
            partition_error_code=TXN_DENIED if not txn_ok else (codes[t.name] or other))
            for p in t.partitions]) for t in topics]))


def find_coordinator(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    v = header.api_version
    key_type = request.key_type if v >= 1 else 0
    rtype, code = (TXN, TXN_DENIED) if key_type == 1 else (GROUP, GROUP_DENIED)
    R = response_of(header)
    if v < 4:
        if checker.allowed(ctx, Op.DESCRIBE, rtype, request.key):
            return None
        return Reject(R.cls(error_code=code, node_id=-1, host="", port=-1))
    keys = list(request.coordinator_keys or ())
    denied = [k for k in keys if not checker.allowed(ctx, Op.DESCRIBE, rtype, k)]
    if not denied:
        return None
    request.coordinator_keys = [k for k in keys if k not in denied]

    def patch(resp: Any) -> Any:
        resp.coordinators.extend(R.Coordinator(key=k, node_id=-1, host="", port=-1,
                                               error_code=code) for k in denied)
        return resp
    return Split(patch)


def per_name(list_attr: str, rtype: ResourceType, op: AclOperation, code: int,
              make: Callable[[Any, str, int], Any], resp_attr: str) -> Rule:
    """Requests naming groups or transactional ids in a list of strings."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        names = list(getattr(request, list_attr) or ())
        denied = [n for n in names if not checker.allowed(ctx, op, rtype, n)]
        if not denied:
            return None
        setattr(request, list_attr, [n for n in names if n not in denied])
        R = response_of(header)

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(make(R, n, code) for n in denied)
            return resp
        return Split(patch)
    return rule


def elect_leaders(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.ALTER):
        return None
    R = response_of(header)
    return Reject(R.cls(
        error_code=CLUSTER_DENIED if header.api_version >= 1 else 0,  # v0: per partition
        replica_election_results=[R.ReplicaElectionResult(topic=t.topic, partition_result=[
            R.PartitionResult(partition_id=p, error_code=CLUSTER_DENIED)
            for p in t.partitions]) for t in request.topic_partitions or ()]))


def describe_log_dirs(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.DESCRIBE):
        return None
    return Reject(response_of(header).cls(error_code=CLUSTER_DENIED, results=[]))


# --- answers filtered afterwards ------------------------------------------------------------


def metadata(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    """Topics the principal may not describe: hidden from an all-topics answer, answered
    TOPIC_AUTHORIZATION_FAILED when named; an unknown topic is created only with CREATE on the
    cluster or the topic (else UNKNOWN_TOPIC_OR_PARTITION)."""
    R = response_of(header)
    image = checker.image()
    v = header.api_version
    wanted = request.topics
    all_topics = wanted is None or (v == 0 and not wanted)
    pre: list[Any] = []
    if not all_topics:
        kept = []
        may_create: bool | None = None
        for t in wanted:
            name = t.name
            if name is None:
                kept.append(t)
                continue
            if not checker.allowed(ctx, Op.DESCRIBE, TOPIC, name):
                pre.append(R.MetadataResponseTopic(error_code=TOPIC_DENIED, name=name))
                continue
            if name not in image.topics.by_name:
                if may_create is None:
                    may_create = checker.cluster(ctx, Op.CREATE)
                if not (may_create or checker.allowed(ctx, Op.CREATE, TOPIC, name)):
                    pre.append(R.MetadataResponseTopic(
                        error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name))
                    continue
            kept.append(t)
        request.topics = kept
        if not kept and wanted and v == 0:
            # Every named topic is answered here; an empty list would mean "all" at v0.
            return Reject(R.cls(brokers=_metadata_brokers(checker, ctx, header), topics=pre))
    named = not all_topics

    topic_ops = v >= 8 and request.include_topic_authorized_operations
    cluster_ops = 8 <= v <= 10 and request.include_cluster_authorized_operations

    def patch(resp: Any) -> Any:
        topics = []
        for t in resp.topics:
            if t.error_code == 0 and t.name and not checker.allowed(
                    ctx, Op.DESCRIBE, TOPIC, t.name):
                if named:
                    topics.append(R.MetadataResponseTopic(error_code=TOPIC_DENIED, name=t.name))
                continue
            if topic_ops and t.error_code == 0 and t.name:
                t.topic_authorized_operations = checker.operations(ctx, TOPIC, t.name)
            topics.append(t)
        resp.topics = topics + pre
        if cluster_ops:
            resp.cluster_authorized_operations = checker.operations(ctx, CLUSTER, CLUSTER_NAME)
        return resp
    return Split(patch)


def describe_cluster(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    """Open to every client (as in Kafka); fills in the cluster's authorized operations when
    asked."""
    if not request.include_cluster_authorized_operations:
        return None

    def patch(resp: Any) -> Any:
        resp.cluster_authorized_operations = checker.operations(ctx, CLUSTER, CLUSTER_NAME)
        return resp
    return Split(patch)


def group_operations(list_attr: str, flag: str, min_version: int, inner: Rule) -> Rule:
    """DescribeGroups / ConsumerGroupDescribe: ``inner`` (the per-group check), then each
    described group's authorized operations when the request asks for them."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        outcome = inner(checker, ctx, header, request)
        if header.api_version < min_version or not getattr(request, flag):
            return outcome

        def patch(resp: Any) -> Any:
            if isinstance(outcome, Split):
                resp = outcome.patch(resp)
            for g in getattr(resp, list_attr):
                if g.error_code == 0:
                    g.authorized_operations = checker.operations(ctx, GROUP, g.group_id)
            return resp
        return outcome if isinstance(outcome, Reject) else Split(patch)
    return rule


def _metadata_brokers(checker: AuthzChecker, ctx: Any, header: Any) -> list[Any]:
    R = response_of(header)
    out = []
    for b in sorted(checker.image().cluster.brokers.values(), key=lambda b: b.broker_id):
        ep = b.listener(ctx.listener_name)
        if not b.fenced and ep is not None:
            out.append(R.MetadataResponseBroker(node_id=b.broker_id, host=ep.host,
                                                port=ep.port, rack=b.rack))
    return out


def describe_topic_partitions(checker: AuthzChecker, ctx: Any, header: Any,
                               request: Any) -> Any:
    named = {t.name for t in request.topics or ()}
    R = response_of(header)

    def patch(resp: Any) -> Any:
        out = []
        for t in resp.topics:
            if t.error_code == 0 and not checker.allowed(ctx, Op.DESCRIBE, TOPIC, t.name):
                if t.name in named:
                    out.append(R.DescribeTopicPartitionsResponseTopic(
                        error_code=TOPIC_DENIED, name=t.name))
                continue
            if t.error_code == 0:
                t.topic_authorized_operations = checker.operations(ctx, TOPIC, t.name)
            out.append(t)
        resp.topics = out
        return resp
    return Split(patch)


def offset_fetch(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    v = header.api_version
    R = response_of(header)
    if v < 8:
        if not checker.allowed(ctx, Op.DESCRIBE, GROUP, request.group_id):
            # v0-1 have no top-level error: the requested partitions carry it.
            return Reject(R.cls(error_code=GROUP_DENIED, topics=[
                R.OffsetFetchResponseTopic(name=t.name, partitions=[
                    R.OffsetFetchResponsePartition(partition_index=p, committed_offset=-1,
                                                   error_code=GROUP_DENIED)
                    for p in t.partition_indexes]) for t in request.topics or ()]))
        named = request.topics is not None

        def patch(resp: Any) -> Any:
            resp.topics = _filter_offset_topics(checker, ctx, resp.topics, named)
            return resp
        return Split(patch)
    denied = {g.group_id for g in request.groups
              if not checker.allowed(ctx, Op.DESCRIBE, GROUP, g.group_id)}
    named_groups = {g.group_id: g.topics is not None for g in request.groups}
    request.groups = [g for g in request.groups if g.group_id not in denied]

    def patch8(resp: Any) -> Any:
        for g in resp.groups:
            g.topics = _filter_offset_topics(checker, ctx, g.topics,
                                             named_groups.get(g.group_id, False))
        resp.groups.extend(R.OffsetFetchResponseGroup(group_id=g, error_code=GROUP_DENIED)
                           for g in sorted(denied))
        return resp
    return Split(patch8)


def _filter_offset_topics(checker: AuthzChecker, ctx: Any, topics: list[Any],
                          named: bool) -> list[Any]:
    out = []
    for t in topics:
        if checker.allowed(ctx, Op.DESCRIBE, TOPIC, t.name):
            out.append(t)
        elif named:
            for p in t.partitions:
                p.error_code = TOPIC_DENIED
                p.committed_offset = -1
            out.append(t)
    return out


def list_groups(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.DESCRIBE):
        return None

    def patch(resp: Any) -> Any:
        resp.groups = [g for g in resp.groups
                       if checker.allowed(ctx, Op.DESCRIBE, GROUP, g.group_id)]
        return resp
    return Split(patch)


def list_transactions(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    def patch(resp: Any) -> Any:
        resp.transaction_states = [
            s for s in resp.transaction_states
            if checker.allowed(ctx, Op.DESCRIBE, TXN, s.transactional_id)]
        return resp
    return Split(patch)


def alter_client_quotas(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    """ALTER_CONFIGS on the cluster (Kafka's AlterClientQuotas); every entry answers."""
    if checker.cluster(ctx, Op.ALTER_CONFIGS):
        return None
    R = response_of(header)
    return Reject(R.cls(entries=[R.EntryData(
        error_code=CLUSTER_DENIED, entity=[R.EntityData(entity_type=e.entity_type,
                                                        entity_name=e.entity_name)
                                           for e in entry.entity])
        for entry in request.entries]))
