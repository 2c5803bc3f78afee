"""Every API checked against the authorizer, as Kafka's KafkaApis and ControllerApis do.

``secure_handlers(handlers, checker, kind)`` wraps a listener's route table when an authorizer
is configured; without one the node never calls it, so the table holds the plain handlers and
no request (Produce's hot path included) pays anything. Each rule runs before the handler:

- a request-wide denial answers at once with Kafka's error (``_reject``);
- a per-topic / per-group denial takes the denied entries out of the request, lets the
  handler answer the rest, and adds the denied entries to its answer with their error
  (``_Split``: Kafka's split between authorized and unauthorized resources);
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
DescribeQuorum DESCRIBE cluster; DescribeProducers READ topic; DescribeTransactions and
ListTransactions DESCRIBE transactional id. On the controller listener every request needs
CLUSTER_ACTION (Raft, registration, heartbeats, AlterPartition, forwarded admin requests),
except that a forwarded admin request without it is checked as the broker would check it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode
from broker.security.authorizer import AuthorizerHolder
from kraft.acls import CLUSTER_NAME, AclOperation, ResourceType
from kraft.image import MetadataImage

__all__ = ["AuthzChecker", "secure_handlers"]

Op = AclOperation
TOPIC, GROUP, CLUSTER, TXN = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER,
                              ResourceType.TRANSACTIONAL_ID)
TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


class AuthzChecker:
    """Decisions for a request's principal and address, over the current image's ACLs."""

    def __init__(self, holder: AuthorizerHolder, image: Callable[[], MetadataImage]) -> None:
        self.holder = holder
        self.image = image

    @staticmethod
    def _who(ctx: Any) -> tuple[str, str]:
        peer = ctx.peer
        host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
        return str(ctx.principal), host

    def allowed(self, ctx: Any, op: AclOperation, rtype: ResourceType, name: str) -> bool:
        principal, host = self._who(ctx)
        return self.holder.current().authorize(principal, host, op, rtype, name)

    def allowed_any(self, ctx: Any, op: AclOperation, rtype: ResourceType) -> bool:
        principal, host = self._who(ctx)
        return self.holder.current().authorize_any(principal, host, op, rtype)

    def cluster(self, ctx: Any, op: AclOperation) -> bool:
        return self.allowed(ctx, op, CLUSTER, CLUSTER_NAME)


Rule = Callable[[AuthzChecker, Any, Any, Any], Any]
"""``rule(checker, ctx, header, request)`` -> None (go ahead), ``_Reject`` or ``_Split``."""


@dataclass(slots=True)
class _Reject:
    response: Any


@dataclass(slots=True)
class _Split:
    """Run the handler on the (already trimmed) request, then ``patch`` its answer."""

    patch: Callable[[Any], Any]


def _response(header: Any) -> Any:
    return API_SPECS[header.api_key].response


def _error_response(header: Any, code: int) -> Any:
    """The API's answer with ``code`` at the top (APIs whose answer has an error code)."""
    R = _response(header)
    return R.cls(error_code=code)


def _wrap(inner: Any, rule: Rule, checker: AuthzChecker) -> Any:
    def handle(ctx: Any, header: Any, request: Any) -> Any:
        outcome = rule(checker, ctx, header, request)
        if outcome is None:
            return inner(ctx, header, request)
        if isinstance(outcome, _Reject):
            return outcome.response
        result = inner(ctx, header, request)
        if inspect.isawaitable(result):
            async def finish() -> Any:
                resp = await result
                return None if resp is None else outcome.patch(resp)
            return finish()
        return None if result is None else outcome.patch(result)
    return handle


# --- topic-partition shaped requests --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
    req_topics: str
    req_name: str
    req_parts: str
    req_index: str | None  # None: the partitions are a list of ints
    resp_topics: str
    resp_topic: str
    resp_name: str
    resp_parts: str
    resp_part: str
    resp_index: str
    resp_error: str = "error_code"
    topic_id: str | None = None  # request and answer name topics by id (Fetch v13+)


def _split_topics(shape: _Shape, header: Any, request: Any, code_of: Callable[[str], int | None],
                  image: MetadataImage | None = None) -> _Split | None:
    """Take out of ``request`` the topics for which ``code_of(name)`` gives an error code;
    the returned patch answers them with that code, partition by partition."""
    kept, denied = [], []
    for t in getattr(request, shape.req_topics) or ():
        name = getattr(t, shape.req_name)
        if not name and shape.topic_id is not None and image is not None:
            ti = image.topics.by_id.get(getattr(t, shape.topic_id))
            name = ti.name if ti is not None else None
        code = None if name is None else code_of(name)
        if code is None:
            kept.append(t)
        else:
            denied.append((t, code))
    if not denied:
        return None
    setattr(request, shape.req_topics, kept)
    R = _response(header)
    topic_cls = getattr(R, shape.resp_topic)
    part_cls = getattr(R, shape.resp_part)

    def patch(resp: Any) -> Any:
        entries = getattr(resp, shape.resp_topics)
        for t, code in denied:
            parts = getattr(t, shape.req_parts) or ()
            indexes = parts if shape.req_index is None else [
                getattr(p, shape.req_index) for p in parts]
            fields = {shape.resp_name: getattr(t, shape.req_name), shape.resp_parts: [
                part_cls(**{shape.resp_index: i, shape.resp_error: code}) for i in indexes]}
            if shape.topic_id is not None:
                fields[shape.topic_id] = getattr(t, shape.topic_id)
            entries.append(topic_cls(**fields))
        return resp
    return _Split(patch)


def _deny_all_topics(shape: _Shape, header: Any, request: Any, code: int) -> Any:
    split = _split_topics(shape, header, request, lambda _n: code)
    R = _response(header)
    resp = R.cls()
    return split.patch(resp) if split is not None else resp


def _topic_rule(shape: _Shape, op: AclOperation, *,
                before: Callable[[AuthzChecker, Any, Any, Any], int | None] | None = None,
                cluster_action: Callable[[Any, Any], bool] | None = None) -> Rule:
    """``before``: a request-wide check giving the error every partition gets;
    ``cluster_action(header, request)``: true for a replica's request (needs CLUSTER_ACTION
    instead of the topic operation)."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if cluster_action is not None and cluster_action(header, request):
            if checker.cluster(ctx, Op.CLUSTER_ACTION):
                return None
            return _Reject(_deny_all_topics(shape, header, request, TOPIC_DENIED))
        if before is not None:
            code = before(checker, ctx, header, request)
            if code is not None:
                return _Reject(_deny_all_topics(shape, header, request, code))
        return _split_topics(
            shape, header, request,
            lambda name: None if checker.allowed(ctx, op, TOPIC, name) else TOPIC_DENIED,
            checker.image())
    return rule


PRODUCE = _Shape("topic_data", "name", "partition_data", "index", "responses",
                 "TopicProduceResponse", "name", "partition_responses",
                 "PartitionProduceResponse", "index")
FETCH = _Shape("topics", "topic", "partitions", "partition", "responses",
               "FetchableTopicResponse", "topic", "partitions", "PartitionData",
               "partition_index", topic_id="topic_id")
LIST_OFFSETS = _Shape("topics", "name", "partitions", "partition_index", "topics",
                      "ListOffsetsTopicResponse", "name", "partitions",
                      "ListOffsetsPartitionResponse", "partition_index")
EPOCHS = _Shape("topics", "topic", "partitions", "partition", "topics",
                "OffsetForLeaderTopicResult", "topic", "partitions", "EpochEndOffset",
                "partition")
DELETE_RECORDS = _Shape("topics", "name", "partitions", "partition_index", "topics",
                        "DeleteRecordsTopicResult", "name", "partitions",
                        "DeleteRecordsPartitionResult", "partition_index")
OFFSET_COMMIT = _Shape("topics", "name", "partitions", "partition_index", "topics",
                       "OffsetCommitResponseTopic", "name", "partitions",
                       "OffsetCommitResponsePartition", "partition_index")
TXN_OFFSET_COMMIT = _Shape("topics", "name", "partitions", "partition_index", "topics",
                           "TxnOffsetCommitResponseTopic", "name", "partitions",
                           "TxnOffsetCommitResponsePartition", "partition_index")
OFFSET_DELETE = _Shape("topics", "name", "partitions", "partition_index", "topics",
                       "OffsetDeleteResponseTopic", "name", "partitions",
                       "OffsetDeleteResponsePartition", "partition_index")
DESCRIBE_PRODUCERS = _Shape("topics", "name", "partition_indexes", None, "topics",
                            "TopicResponse", "name", "partitions", "PartitionResponse",
                            "partition_index")


def _txn_write(checker: AuthzChecker, ctx: Any, txn_id: str | None) -> int | None:
    if txn_id and not checker.allowed(ctx, Op.WRITE, TXN, txn_id):
        return TXN_DENIED
    return None


def _produce_before(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> int | None:
    return _txn_write(checker, ctx, request.transactional_id)


def _fetch_is_follower(header: Any, request: Any) -> bool:
    rid = request.replica_id
    if header.api_version >= 15 and request.replica_state is not None:
        rid = request.replica_state.replica_id
    return rid >= 0


def _group_then_txn(group_op: AclOperation, txn: bool) -> Callable[..., int | None]:
    def before(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> int | None:
        if txn:
            code = _txn_write(checker, ctx, request.transactional_id)
            if code is not None:
                return code
        if not checker.allowed(ctx, group_op, GROUP, request.group_id):
            return GROUP_DENIED
        return None
    return before


def _offset_delete(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if not checker.allowed(ctx, Op.DELETE, GROUP, request.group_id):
        return _Reject(_error_response(header, GROUP_DENIED))
    return _split_topics(
        OFFSET_DELETE, header, request,
        lambda n: None if checker.allowed(ctx, Op.READ, TOPIC, n) else TOPIC_DENIED)


def _write_txn_markers(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.CLUSTER_ACTION):
        return None
    R = _response(header)
    return _Reject(R.cls(markers=[R.WritableTxnMarkerResult(
        producer_id=m.producer_id, topics=[R.WritableTxnMarkerTopicResult(
            name=t.name, partitions=[R.WritableTxnMarkerPartitionResult(
                partition_index=p, error_code=CLUSTER_DENIED) for p in t.partition_indexes])
            for t in m.topics]) for m in request.markers]))


# --- whole-request rules --------------------------------------------------------------------


def _group_rule(op: AclOperation) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.allowed(ctx, op, GROUP, request.group_id):
            return None
        return _Reject(_error_response(header, GROUP_DENIED))
    return rule


def _cluster_rule(op: AclOperation) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, op):
            return None
        return _Reject(_error_response(header, CLUSTER_DENIED))
    return rule


def _txn_rule(group: bool) -> Rule:
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if not checker.allowed(ctx, Op.WRITE, TXN, request.transactional_id):
            return _Reject(_error_response(header, TXN_DENIED))
        if group and not checker.allowed(ctx, Op.READ, GROUP, request.group_id):
            return _Reject(_error_response(header, GROUP_DENIED))
        return None
    return rule


def _init_producer_id(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    txn_id = request.transactional_id
    if txn_id:
        return _txn_rule(False)(checker, ctx, header, request)
    if checker.cluster(ctx, Op.IDEMPOTENT_WRITE) or checker.allowed_any(ctx, Op.WRITE, TOPIC):
        return None
    return _Reject(_error_response(header, CLUSTER_DENIED))


def _add_partitions_to_txn(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    R = _response(header)
    if header.api_version >= 4:
        if checker.cluster(ctx, Op.CLUSTER_ACTION):
            return None
        return _Reject(R.cls(error_code=CLUSTER_DENIED))
    topics = request.v3_and_below_topics or ()
    txn_ok = checker.allowed(ctx, Op.WRITE, TXN, request.v3_and_below_transactional_id)
    codes = {t.name: (None if checker.allowed(ctx, Op.WRITE, TOPIC, t.name) else TOPIC_DENIED)
             for t in topics}
    if txn_ok and not any(codes.values()):
        return None
    other = ErrorCode.OPERATION_NOT_ATTEMPTED
    return _Reject(R.cls(results_by_topic_v3_and_below=[R.AddPartitionsToTxnTopicResult(
        name=t.name, results_by_partition=[R.AddPartitionsToTxnPartitionResult(
            partition_index=p,
            partition_error_code=TXN_DENIED if not txn_ok else (codes[t.name] or other))
            for p in t.partitions]) for t in topics]))


def _find_coordinator(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    v = header.api_version
    key_type = request.key_type if v >= 1 else 0
    rtype, code = (TXN, TXN_DENIED) if key_type == 1 else (GROUP, GROUP_DENIED)
    R = _response(header)
    if v < 4:
        if checker.allowed(ctx, Op.DESCRIBE, rtype, request.key):
            return None
        return _Reject(R.cls(error_code=code, node_id=-1, host="", port=-1))
    keys = list(request.coordinator_keys or ())
    denied = [k for k in keys if not checker.allowed(ctx, Op.DESCRIBE, rtype, k)]
    if not denied:
        return None
    request.coordinator_keys = [k for k in keys if k not in denied]

    def patch(resp: Any) -> Any:
        resp.coordinators.extend(R.Coordinator(key=k, node_id=-1, host="", port=-1,
                                               error_code=code) for k in denied)
        return resp
    return _Split(patch)


def _per_name(list_attr: str, rtype: ResourceType, op: AclOperation, code: int,
              make: Callable[[Any, str, int], Any], resp_attr: str) -> Rule:
    """Requests naming groups or transactional ids in a list of strings."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        names = list(getattr(request, list_attr) or ())
        denied = [n for n in names if not checker.allowed(ctx, op, rtype, n)]
        if not denied:
            return None
        setattr(request, list_attr, [n for n in names if n not in denied])
        R = _response(header)

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(make(R, n, code) for n in denied)
            return resp
        return _Split(patch)
    return rule


def _named_topics(list_attr: str, name_attr: str, op: AclOperation, resp_attr: str,
                  make: Callable[[Any, str], Any], *, create: bool = False) -> Rule:
    """CreateTopics, CreatePartitions: one answer entry per topic."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if create and checker.cluster(ctx, Op.CREATE):
            return None
        items = list(getattr(request, list_attr) or ())
        denied = [t for t in items if not checker.allowed(ctx, op, TOPIC, getattr(t, name_attr))]
        if not denied:
            return None
        setattr(request, list_attr, [t for t in items if t not in denied])
        R = _response(header)

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(make(R, getattr(t, name_attr)) for t in denied)
            return resp
        return _Split(patch)
    return rule


def _delete_topics(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    R = _response(header)
    image = checker.image()
    denied: list[Any] = []
    if header.api_version < 6:
        names = list(request.topic_names or ())
        denied = [n for n in names if not checker.allowed(ctx, Op.DELETE, TOPIC, n)]
        request.topic_names = [n for n in names if n not in denied]
        entries = [(n, None) for n in denied]
    else:
        kept = []
        entries = []
        for t in request.topics or ():
            name = t.name
            if name is None:
                ti = image.topics.by_id.get(t.topic_id)
                name = ti.name if ti is not None else None
            if name is not None and not checker.allowed(ctx, Op.DELETE, TOPIC, name):
                entries.append((t.name, t.topic_id))
            else:
                kept.append(t)
        request.topics = kept
    if not entries:
        return None

    def patch(resp: Any) -> Any:
        for name, tid in entries:
            fields: dict[str, Any] = {"name": name, "error_code": TOPIC_DENIED}
            if tid is not None:
                fields["topic_id"] = tid
            resp.responses.append(R.DeletableTopicResult(**fields))
        return resp
    return _Split(patch)


def _configs(describe: bool) -> Rule:
    topic_op = Op.DESCRIBE_CONFIGS if describe else Op.ALTER_CONFIGS
    resp_attr = "results" if describe else "responses"

    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        kept, denied = [], []
        for r in request.resources or ():
            if r.resource_type == 2:
                ok = checker.allowed(ctx, topic_op, TOPIC, r.resource_name)
                code = TOPIC_DENIED
            else:
                ok = checker.cluster(ctx, topic_op)
                code = CLUSTER_DENIED
            (kept if ok else denied).append((r, code))
        if not denied:
            return None
        request.resources = [r for r, _ in kept]
        R = _response(header)
        cls = R.DescribeConfigsResult if describe else R.AlterConfigsResourceResponse

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(
                cls(error_code=code, resource_type=r.resource_type,
                    resource_name=r.resource_name) for r, code in denied)
            return resp
        return _Split(patch)
    return rule


def _elect_leaders(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.ALTER):
        return None
    R = _response(header)
    return _Reject(R.cls(error_code=CLUSTER_DENIED, replica_election_results=[
        R.ReplicaElectionResult(topic=t.topic, partition_result=[
            R.PartitionResult(partition_id=p, error_code=CLUSTER_DENIED)
            for p in t.partitions]) for t in request.topic_partitions or ()]))


def _describe_log_dirs(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.DESCRIBE):
        return None
    return _Reject(_response(header).cls(error_code=CLUSTER_DENIED, results=[]))


# --- answers filtered afterwards ------------------------------------------------------------


def _metadata(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    """Topics the principal may not describe: hidden from an all-topics answer, answered
    TOPIC_AUTHORIZATION_FAILED when named; an unknown topic is created only with CREATE on the
    cluster or the topic (else UNKNOWN_TOPIC_OR_PARTITION)."""
    R = _response(header)
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
            return _Reject(R.cls(brokers=_metadata_brokers(checker, ctx, header), topics=pre))
    named = not all_topics

    def patch(resp: Any) -> Any:
        topics = []
        for t in resp.topics:
            if t.error_code == 0 and t.name and not checker.allowed(
                    ctx, Op.DESCRIBE, TOPIC, t.name):
                if named:
                    topics.append(R.MetadataResponseTopic(error_code=TOPIC_DENIED, name=t.name))
                continue
            topics.append(t)
        resp.topics = topics + pre
        return resp
    return _Split(patch)


def _metadata_brokers(checker: AuthzChecker, ctx: Any, header: Any) -> list[Any]:
    R = _response(header)
    out = []
    for b in sorted(checker.image().cluster.brokers.values(), key=lambda b: b.broker_id):
        ep = b.listener(ctx.listener_name)
        if not b.fenced and ep is not None:
            out.append(R.MetadataResponseBroker(node_id=b.broker_id, host=ep.host,
                                                port=ep.port, rack=b.rack))
    return out


def _describe_topic_partitions(checker: AuthzChecker, ctx: Any, header: Any,
                               request: Any) -> Any:
    named = {t.name for t in request.topics or ()}
    R = _response(header)

    def patch(resp: Any) -> Any:
        out = []
        for t in resp.topics:
            if t.error_code == 0 and not checker.allowed(ctx, Op.DESCRIBE, TOPIC, t.name):
                if t.name in named:
                    out.append(R.DescribeTopicPartitionsResponseTopic(
                        error_code=TOPIC_DENIED, name=t.name))
                continue
            out.append(t)
        resp.topics = out
        return resp
    return _Split(patch)


def _offset_fetch(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    v = header.api_version
    R = _response(header)
    if v < 8:
        if not checker.allowed(ctx, Op.DESCRIBE, GROUP, request.group_id):
            return _Reject(R.cls(error_code=GROUP_DENIED, topics=[]))
        named = request.topics is not None

        def patch(resp: Any) -> Any:
            resp.topics = _filter_offset_topics(checker, ctx, resp.topics, named)
            return resp
        return _Split(patch)
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
    return _Split(patch8)


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


def _list_groups(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.DESCRIBE):
        return None

    def patch(resp: Any) -> Any:
        resp.groups = [g for g in resp.groups
                       if checker.allowed(ctx, Op.DESCRIBE, GROUP, g.group_id)]
        return resp
    return _Split(patch)


def _list_transactions(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    def patch(resp: Any) -> Any:
        resp.transaction_states = [
            s for s in resp.transaction_states
            if checker.allowed(ctx, Op.DESCRIBE, TXN, s.transactional_id)]
        return resp
    return _Split(patch)


BROKER_RULES: dict[int, Rule] = {
    ApiKey.PRODUCE: _topic_rule(PRODUCE, Op.WRITE, before=_produce_before),
    ApiKey.FETCH: _topic_rule(FETCH, Op.READ, cluster_action=_fetch_is_follower),
    ApiKey.LIST_OFFSETS: _topic_rule(LIST_OFFSETS, Op.DESCRIBE),
    ApiKey.OFFSET_FOR_LEADER_EPOCH: _topic_rule(
        EPOCHS, Op.DESCRIBE,
        cluster_action=lambda h, r: h.api_version >= 3 and r.replica_id >= 0),
    ApiKey.DELETE_RECORDS: _topic_rule(DELETE_RECORDS, Op.DELETE),
    ApiKey.METADATA: _metadata,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: _describe_topic_partitions,
    ApiKey.OFFSET_COMMIT: _topic_rule(OFFSET_COMMIT, Op.READ,
                                      before=_group_then_txn(Op.READ, False)),
    ApiKey.TXN_OFFSET_COMMIT: _topic_rule(TXN_OFFSET_COMMIT, Op.READ,
                                          before=_group_then_txn(Op.READ, True)),
    ApiKey.OFFSET_FETCH: _offset_fetch,
    ApiKey.OFFSET_DELETE: _offset_delete,
    ApiKey.FIND_COORDINATOR: _find_coordinator,
    ApiKey.JOIN_GROUP: _group_rule(Op.READ),
    ApiKey.SYNC_GROUP: _group_rule(Op.READ),
    ApiKey.HEARTBEAT: _group_rule(Op.READ),
    ApiKey.LEAVE_GROUP: _group_rule(Op.READ),
    ApiKey.CONSUMER_GROUP_HEARTBEAT: _group_rule(Op.READ),
    ApiKey.DESCRIBE_GROUPS: _per_name(
        "groups", GROUP, Op.DESCRIBE, GROUP_DENIED,
        lambda R, n, c: R.DescribedGroup(error_code=c, group_id=n), "groups"),
    ApiKey.CONSUMER_GROUP_DESCRIBE: _per_name(
        "group_ids", GROUP, Op.DESCRIBE, GROUP_DENIED,
        lambda R, n, c: R.DescribedGroup(error_code=c, group_id=n), "groups"),
    ApiKey.DELETE_GROUPS: _per_name(
        "groups_names", GROUP, Op.DELETE, GROUP_DENIED,
        lambda R, n, c: R.DeletableGroupResult(group_id=n, error_code=c), "results"),
    ApiKey.LIST_GROUPS: _list_groups,
    ApiKey.DESCRIBE_TRANSACTIONS: _per_name(
        "transactional_ids", TXN, Op.DESCRIBE, TXN_DENIED,
        lambda R, n, c: R.TransactionState(error_code=c, transactional_id=n),
        "transaction_states"),
    ApiKey.LIST_TRANSACTIONS: _list_transactions,
    ApiKey.CREATE_TOPICS: _named_topics(
        "topics", "name", Op.CREATE, "topics",
        lambda R, n: R.CreatableTopicResult(name=n, error_code=TOPIC_DENIED), create=True),
    ApiKey.CREATE_PARTITIONS: _named_topics(
        "topics", "name", Op.ALTER, "results",
        lambda R, n: R.CreatePartitionsTopicResult(name=n, error_code=TOPIC_DENIED)),
    ApiKey.DELETE_TOPICS: _delete_topics,
    ApiKey.DESCRIBE_CONFIGS: _configs(describe=True),
    ApiKey.ALTER_CONFIGS: _configs(describe=False),
    ApiKey.INCREMENTAL_ALTER_CONFIGS: _configs(describe=False),
    ApiKey.INIT_PRODUCER_ID: _init_producer_id,
    ApiKey.ADD_PARTITIONS_TO_TXN: _add_partitions_to_txn,
    ApiKey.ADD_OFFSETS_TO_TXN: _txn_rule(group=True),
    ApiKey.END_TXN: _txn_rule(group=False),
    ApiKey.WRITE_TXN_MARKERS: _write_txn_markers,
    ApiKey.DESCRIBE_PRODUCERS: _topic_rule(DESCRIBE_PRODUCERS, Op.READ),
    ApiKey.ELECT_LEADERS: _elect_leaders,
    ApiKey.ALTER_PARTITION_REASSIGNMENTS: _cluster_rule(Op.ALTER),
    ApiKey.LIST_PARTITION_REASSIGNMENTS: _cluster_rule(Op.DESCRIBE),
    ApiKey.DESCRIBE_LOG_DIRS: _describe_log_dirs,
    ApiKey.DESCRIBE_QUORUM: _cluster_rule(Op.DESCRIBE),
}
# Checked by their own handlers (broker/security/acl_apis.py), or open to every client.
UNCHECKED = frozenset({ApiKey.CREATE_ACLS, ApiKey.DESCRIBE_ACLS, ApiKey.DELETE_ACLS,
                       ApiKey.DESCRIBE_CLUSTER, ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE,
                       ApiKey.SASL_AUTHENTICATE})


def _acl_change(list_attr: str, resp_attr: str, entry: str) -> Rule:
    """CreateAcls/DeleteAcls reaching a controller: from a broker (CLUSTER_ACTION) or a
    client with ALTER on the cluster."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, Op.CLUSTER_ACTION) or checker.cluster(ctx, Op.ALTER):
            return None
        R = _response(header)
        return _Reject(R.cls(**{resp_attr: [getattr(R, entry)(error_code=CLUSTER_DENIED)
                                            for _ in getattr(request, list_attr)]}))
    return rule


CONTROLLER_RULES: dict[int, Rule] = {
    ApiKey.CREATE_ACLS: _acl_change("creations", "results", "AclCreationResult"),
    ApiKey.DELETE_ACLS: _acl_change("filters", "filter_results", "DeleteAclsFilterResult"),
    ApiKey.DESCRIBE_QUORUM: _cluster_rule(Op.DESCRIBE),
}


def _controller_rule(api_key: int) -> Rule:
    broker_rule = BROKER_RULES.get(api_key)

    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if checker.cluster(ctx, Op.CLUSTER_ACTION):
            return None
        if broker_rule is not None:
            return broker_rule(checker, ctx, header, request)
        return _Reject(_error_response(header, CLUSTER_DENIED))
    return rule


def secure_handlers(handlers: Mapping[int, Any], checker: AuthzChecker,
                    kind: str) -> dict[int, Any]:
    """A listener's route table with every API checked (``kind``: "broker" or
    "controller"). An API with no rule on a broker listener needs ALTER on the cluster, so
    nothing new is ever served unchecked."""
    out: dict[int, Any] = {}
    for key, inner in handlers.items():
        if kind == "controller":
            if key in (ApiKey.DESCRIBE_CLUSTER, ApiKey.API_VERSIONS):
                out[key] = inner
                continue
            rule = CONTROLLER_RULES.get(key) or _controller_rule(key)
        elif key in UNCHECKED:
            out[key] = inner
            continue
        else:
            rule = BROKER_RULES.get(key) or _cluster_rule(Op.ALTER)
        out[key] = _wrap(inner, rule, checker)
    return out
