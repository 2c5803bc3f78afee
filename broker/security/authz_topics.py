"""Authorization rules of the requests that name topics (and their partitions): the denied
topics are taken out of the request and answered with their error next to the handler's
answer, as Kafka's KafkaApis splits authorized from unauthorized topics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.security.authz_base import (
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
from kraft.acls import AclOperation
from kraft.image import MetadataImage

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
                  image: MetadataImage | None = None) -> Split | None:
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
    R = response_of(header)
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
    return Split(patch)


def _deny_all_topics(shape: _Shape, header: Any, request: Any, code: int) -> Any:
    split = _split_topics(shape, header, request, lambda _n: code)
    R = response_of(header)
    resp = R.cls()
    return split.patch(resp) if split is not None else resp


def topic_rule(shape: _Shape, op: AclOperation, *,
                before: Callable[[AuthzChecker, Any, Any, Any], int | None] | None = None,
                cluster_action: Callable[[Any, Any], bool] | None = None) -> Rule:
    """``before``: a request-wide check giving the error every partition gets;
    ``cluster_action(header, request)``: true for a replica's request (needs CLUSTER_ACTION
    instead of the topic operation)."""
    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        if cluster_action is not None and cluster_action(header, request):
            if checker.cluster(ctx, Op.CLUSTER_ACTION):
                return None
            return Reject(_deny_all_topics(shape, header, request, TOPIC_DENIED))
        if before is not None:
            code = before(checker, ctx, header, request)
            if code is not None:
                if getattr(request, "acks", None) == 0:
                    return Reject(None)  # acks=0: the producer reads no answer
                return Reject(_deny_all_topics(shape, header, request, code))
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


def fetch_rule() -> Rule:
    """Fetch: a follower needs CLUSTER_ACTION; a consumer READ on each topic. An incremental
    fetch (KIP-227) is answered from the session too, for partitions the request does not
    name: those are checked in the answer (records withheld, TOPIC_AUTHORIZATION_FAILED), so
    an ACL added while a session lives applies at once, as in Kafka."""
    base = topic_rule(FETCH, Op.READ, cluster_action=fetch_is_follower)

    def rule(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
        outcome = base(checker, ctx, header, request)
        if (isinstance(outcome, Reject) or header.api_version < 7 or request.session_epoch <= 0
                or fetch_is_follower(header, request)):
            return outcome
        image = checker.image()

        def patch(resp: Any) -> Any:
            if isinstance(outcome, Split):
                resp = outcome.patch(resp)
            for t in resp.responses:
                name = t.topic
                if not name:
                    ti = image.topics.by_id.get(t.topic_id)
                    name = ti.name if ti is not None else None
                if name is not None and not checker.allowed(ctx, Op.READ, TOPIC, name):
                    for p in t.partitions:
                        if p.error_code == 0:
                            p.error_code = TOPIC_DENIED
                            p.records = None
            return resp
        return Split(patch)
    return rule


def _txn_write(checker: AuthzChecker, ctx: Any, txn_id: str | None) -> int | None:
    if txn_id and not checker.allowed(ctx, Op.WRITE, TXN, txn_id):
        return TXN_DENIED
    return None


def produce_before(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> int | None:
    return _txn_write(checker, ctx, request.transactional_id)


def fetch_is_follower(header: Any, request: Any) -> bool:
    rid = request.replica_id
    if header.api_version >= 15 and request.replica_state is not None:
        rid = request.replica_state.replica_id
    return rid >= 0


def group_then_txn(group_op: AclOperation, txn: bool) -> Callable[..., int | None]:
    def before(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> int | None:
        if txn:
            code = _txn_write(checker, ctx, request.transactional_id)
            if code is not None:
                return code
        if not checker.allowed(ctx, group_op, GROUP, request.group_id):
            return GROUP_DENIED
        return None
    return before


def offset_delete(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if not checker.allowed(ctx, Op.DELETE, GROUP, request.group_id):
        return Reject(error_response(header, GROUP_DENIED))
    return _split_topics(
        OFFSET_DELETE, header, request,
        lambda n: None if checker.allowed(ctx, Op.READ, TOPIC, n) else TOPIC_DENIED)


def write_txn_markers(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    if checker.cluster(ctx, Op.CLUSTER_ACTION):
        return None
    R = response_of(header)
    return Reject(R.cls(markers=[R.WritableTxnMarkerResult(
        producer_id=m.producer_id, topics=[R.WritableTxnMarkerTopicResult(
            name=t.name, partitions=[R.WritableTxnMarkerPartitionResult(
                partition_index=p, error_code=CLUSTER_DENIED) for p in t.partition_indexes])
            for t in m.topics]) for m in request.markers]))


def named_topics(list_attr: str, name_attr: str, op: AclOperation, resp_attr: str,
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
        R = response_of(header)

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(make(R, getattr(t, name_attr)) for t in denied)
            return resp
        return Split(patch)
    return rule


def delete_topics(checker: AuthzChecker, ctx: Any, header: Any, request: Any) -> Any:
    R = response_of(header)
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
    return Split(patch)


def configs(describe: bool) -> Rule:
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
        R = response_of(header)
        cls = R.DescribeConfigsResult if describe else R.AlterConfigsResourceResponse

        def patch(resp: Any) -> Any:
            getattr(resp, resp_attr).extend(
                cls(error_code=code, resource_type=r.resource_type,
                    resource_name=r.resource_name) for r, code in denied)
            return resp
        return Split(patch)
    return rule
