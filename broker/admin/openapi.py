"""The HTTP admin API's route table and the OpenAPI 3.0 document built from it.

``ROUTES`` is the single source: ``broker.admin.http`` registers exactly these routes (each
``operation_id`` names its handler method), and ``openapi_document()`` describes exactly these,
so the served ``/v1/openapi.json`` and the server cannot drift apart (a unit test checks both
directions against the live aiohttp router).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["API_VERSION", "ROUTES", "SCHEMAS", "TOPIC_NAME_PATTERN", "Route", "openapi_document"]

API_VERSION = "1.0.0"
# Kafka's Topic.validate: at most 249 characters of [a-zA-Z0-9._-]; "." and ".." are refused.
TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _obj(props: Mapping[str, dict[str, Any]], required: Sequence[str] | None = None,
         *, extra: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": dict(props),
                           "required": list(props if required is None else required)}
    if not out["required"]:
        del out["required"]
    if not extra:
        out["additionalProperties"] = False
    return out


INT = {"type": "integer"}
LONG = {"type": "integer", "format": "int64"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NULL_LONG = {"type": "integer", "format": "int64", "nullable": True}
NULL_STR = {"type": "string", "nullable": True}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({
        "error_code": {"type": "string", "description": "Kafka error name (e.g. "
                       "TOPIC_ALREADY_EXISTS) or an HTTP-level code (INVALID_REQUEST, "
                       "NOT_FOUND, ...)"},
        "message": STR,
        "field": {"type": "string", "description": "The request field at fault (400 only)"},
    }, ["error_code", "message"]),
    "Endpoint": _obj({"name": STR, "host": STR, "port": INT, "security_protocol": STR}),
    "Broker": _obj({
        "broker_id": INT, "epoch": LONG, "incarnation_id": STR, "rack": NULL_STR,
        "fenced": BOOL, "in_controlled_shutdown": BOOL, "endpoints": _arr(_ref("Endpoint")),
        "log_dir_ids": _arr({"type": "string", "description":
                             "Directory ids of the broker's online log dirs (KIP-858)"}),
    }),
    "BrokerDetail": _obj({
        "broker_id": INT, "epoch": LONG, "incarnation_id": STR, "rack": NULL_STR,
        "fenced": BOOL, "in_controlled_shutdown": BOOL, "endpoints": _arr(_ref("Endpoint")),
        "log_dir_ids": _arr({"type": "string", "description":
                             "Directory ids of the broker's online log dirs (KIP-858)"}),
        "leader_partitions": INT, "replica_partitions": INT,
    }),
    "BrokerList": _obj({"brokers": _arr(_ref("Broker"))}),
    "LogDirPartition": _obj({
        "topic": STR, "partition": INT,
        "size": {"type": "integer", "format": "int64",
                 "description": "Bytes of the partition's log segments on disk"},
        "offset_lag": {"type": "integer", "format": "int64",
                       "description": "0 for a current replica; -1 for a log not hosted "
                       "as a partition (yet)"},
        "is_future": BOOL,
    }),
    "LogDir": _obj({
        "log_dir": {"type": "string", "description": "Absolute path"},
        "error_code": {"type": "string", "nullable": True,
                       "description": "KAFKA_STORAGE_ERROR for an offline directory"},
        "offline": {"type": "boolean",
                    "description": "An I/O error took the directory offline"},
        "total_bytes": {"type": "integer", "format": "int64", "nullable": True,
                        "description": "Size of the directory's volume"},
        "usable_bytes": {"type": "integer", "format": "int64", "nullable": True,
                         "description": "Space left on the volume for the broker"},
        "partitions": _arr(_ref("LogDirPartition")),
    }),
    "BrokerLogDirs": _obj({"broker_id": INT, "log_dirs": _arr(_ref("LogDir"))}),
    "Controller": _obj({"node_id": INT, "host": STR, "port": INT}),
    "TopicPartitionRef": _obj({"topic": STR, "partition": INT}),
    "Health": _obj({
        "is_healthy": BOOL,
        "unhealthy_reasons": _arr({"type": "string", "enum": [
            "no_active_controller", "nodes_down", "leaderless_partitions",
            "under_replicated_partitions", "offline_log_dirs"]}),
        "nodes_down": _arr(INT),
        "leaderless_partitions": _arr(_ref("TopicPartitionRef")),
        "leaderless_count": INT,
        "under_replicated_partitions": _arr(_ref("TopicPartitionRef")),
        "under_replicated_count": INT,
        "offline_log_dirs": {"type": "object", "additionalProperties": _arr(STR),
                             "description": "This node's offline log dirs, by node id"},
    }),
    "Cluster": _obj({
        "cluster_id": STR, "controller_id": INT, "node_id": INT, "metadata_offset": LONG,
        "metadata_version": INT, "brokers": _arr(_ref("Broker")),
        "controllers": _arr(_ref("Controller")), "health": _ref("Health"),
    }),
    "TopicSummary": _obj({
        "name": STR, "topic_id": STR, "partitions_count": INT, "replication_factor": INT,
        "internal": BOOL,
    }),
    "TopicList": _obj({"topics": _arr(_ref("TopicSummary"))}),
    "Topic": _obj({
        "name": STR, "topic_id": STR, "partitions_count": INT, "replication_factor": INT,
        "internal": BOOL,
        "configs": {"type": "object", "additionalProperties": NULL_STR,
                    "description": "Effective topic configs (explicit ones over the broker "
                    "defaults)"},
        "overrides": {"type": "object", "additionalProperties": STR,
                      "description": "Configs set explicitly on the topic"},
    }),
    "NewTopic": _obj({
        "name": {"type": "string", "pattern": TOPIC_NAME_PATTERN},
        "partitions": {"type": "integer", "minimum": 1, "maximum": 10000,
                       "description": "default: num.partitions"},
        "replication_factor": {"type": "integer", "minimum": 1, "maximum": 32767,
                               "description": "default: default.replication.factor"},
        "configs": {"type": "object", "additionalProperties": STR},
    }, ["name"]),
    "TopicPatch": _obj({
        "configs": {"type": "object", "additionalProperties": NULL_STR,
                    "description": "key: value sets it, key: null removes the override"},
        "partitions_count": {"type": "integer", "minimum": 1, "maximum": 10000,
                             "description": "grow the topic to this many partitions"},
    }, []),
    "Deleted": _obj({"name": STR, "deleted": BOOL}),
    "Partition": _obj({
        "partition": INT, "leader": INT, "leader_epoch": INT, "partition_epoch": INT,
        "replicas": _arr(INT), "isr": _arr(INT),
        "log_start_offset": NULL_LONG, "log_end_offset": NULL_LONG, "high_watermark": NULL_LONG,
        "offsets_source": {"type": "string", "enum": ["local", "list_offsets", "unavailable"],
                           "description": "local: read from the leader's log on this node "
                           "(all three offsets); list_offsets: asked the leader with "
                           "ListOffsets (log_end_offset is then null); unavailable: no "
                           "leader or it did not answer"},
    }),
    "PartitionList": _obj({"topic": STR, "partitions": _arr(_ref("Partition"))}),
    "ElectLeader": _obj({
        "election_type": {"type": "string", "enum": ["preferred", "unclean"],
                          "default": "preferred"},
    }, []),
    "ElectLeaderResult": _obj({
        "topic": STR, "partition": INT, "leader": INT,
        "result": {"type": "string", "enum": ["elected", "not_needed"]},
    }),
    "GroupSummary": _obj({"group_id": STR, "protocol_type": STR, "state": NULL_STR,
                          "coordinator_id": INT}),
    "GroupList": _obj({"groups": _arr(_ref("GroupSummary"))}),
    "TopicPartitions": _obj({"topic": STR, "partitions": _arr(INT)}),
    "GroupMember": _obj({
        "member_id": STR, "group_instance_id": NULL_STR, "client_id": STR, "client_host": STR,
        "subscription": {"type": "array", "items": STR, "nullable": True},
        "assignment": _arr(_ref("TopicPartitions")),
    }),
    "GroupOffset": _obj({
        "topic": STR, "partition": INT, "committed_offset": LONG, "metadata": NULL_STR,
        "high_watermark": NULL_LONG, "lag": NULL_LONG,
    }),
    "Group": _obj({
        "group_id": STR, "state": STR, "protocol_type": STR, "protocol": STR,
        "coordinator_id": INT, "members": _arr(_ref("GroupMember")),
        "offsets": _arr(_ref("GroupOffset")), "total_lag": LONG,
    }),
    "RecordHeader": _obj({"key": STR, "value": {"type": "string", "format": "byte",
                                                "nullable": True}}),
    "Record": _obj({
        "offset": LONG, "timestamp": LONG,
        "key": {"type": "string", "format": "byte", "nullable": True,
                "description": "base64"},
        "value": {"type": "string", "format": "byte", "nullable": True,
                  "description": "base64"},
        "headers": _arr(_ref("RecordHeader")),
    }),
    "PartitionRecords": _obj({"topic": STR, "partition": INT, "start_offset": LONG,
                              "end_offset": LONG, "records": _arr(_ref("Record"))}),
    "OffsetReset": _obj({
        "topic": {"type": "string", "pattern": TOPIC_NAME_PATTERN},
        "partitions": {"type": "array", "items": {"type": "integer", "minimum": 0},
                       "minItems": 1, "description": "Default: every partition"},
        "to": {"type": "string", "enum": ["earliest", "latest", "offset"]},
        "offset": {"type": "integer", "format": "int64", "minimum": 0,
                   "description": "With to=offset; clamped to the partition's range"},
    }, ["topic", "to"]),
    "OffsetResetResult": _obj({"group_id": STR, "offsets": _arr(_obj({
        "topic": STR, "partition": INT, "offset": LONG}))}),
    "Transaction": _obj({
        "transactional_id": STR, "coordinator_id": INT,
        "state": {"type": "string", "description": "Kafka's transaction state (Empty, "
                  "Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, ...)"},
        "producer_id": LONG, "producer_epoch": INT, "transaction_timeout_ms": INT,
        "transaction_start_time_ms": {"type": "integer", "format": "int64", "nullable": True,
                                      "description": "Start of the open (or last) "
                                      "transaction; null before the first one"},
        "partitions": _arr(_ref("TopicPartitions")),
    }),
    "TransactionList": _obj({"transactions": _arr(_ref("Transaction"))}),
    "Producer": _obj({
        "producer_id": LONG, "producer_epoch": INT, "last_sequence": INT,
        "last_timestamp": LONG, "coordinator_epoch": INT,
        "current_txn_start_offset": {"type": "integer", "format": "int64", "nullable": True,
                                     "description": "First offset of the producer's open "
                                     "transaction on the partition; null when none is open"},
    }),
    "PartitionProducers": _obj({"topic": STR, "partition": INT, "leader_id": INT,
                                "producers": _arr(_ref("Producer"))}),
    "MetadataImageSummary": _obj({
        "node_id": INT, "offset": LONG, "epoch": INT, "digest": STR,
        "topics": {"type": "object", "additionalProperties": _obj({
            "topic_id": STR, "partitions": INT})},
        "brokers": _arr(INT),
        "loader_failed": {"type": "string", "nullable": True},
    }),
    "QuorumReplica": _obj({
        "replica_id": INT, "log_end_offset": LONG, "lag": LONG,
        "last_fetch_timestamp": LONG, "last_caught_up_timestamp": LONG,
        "status": {"type": "string", "enum": ["Leader", "Follower", "Observer"]},
    }),
    "Quorum": _obj({
        "cluster_id": STR, "leader_id": INT, "leader_epoch": INT, "high_watermark": LONG,
        "max_follower_lag": LONG, "max_follower_lag_time_ms": LONG,
        "voters": _arr(_ref("QuorumReplica")), "observers": _arr(_ref("QuorumReplica")),
    }),
    "ShutdownAccepted": _obj({"broker_id": INT, "status": {"type": "string",
                                                           "enum": ["shutting_down"]}}),
    "Status": _obj({"status": {"type": "string", "enum": ["live", "ready", "not_ready"]},
                    "node_id": INT, "reasons": _arr(STR)}),
}


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    # status -> (description, component schema name | None); a 2xx without a schema is
    # answered in ``content_type`` (e.g. the Prometheus text).
    responses: Mapping[int, tuple[str, str | None]]
    params: tuple[dict[str, Any], ...] = ()
    body: str | None = None  # component schema of the JSON request body
    body_required: bool = True
    content_type: str = JSON
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


TOPIC = _path_param("name", {"type": "string", "pattern": TOPIC_NAME_PATTERN}, "Topic name")
TOPIC_P = _path_param("topic", {"type": "string", "pattern": TOPIC_NAME_PATTERN}, "Topic name")
PARTITION = _path_param("partition", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                        "Partition index")
BROKER_ID = _path_param("broker_id", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                        "Broker (node) id")
GROUP_ID = _path_param("group_id", {"type": "string", "minLength": 1, "maxLength": 249,
                                    "pattern": r"^[^/]+$"}, "Consumer group id")
TRANSACTIONAL_ID = _path_param("transactional_id", {"type": "string", "minLength": 1,
                                                    "maxLength": 32767,
                                                    "pattern": r"^[^/]+$"}, "Transactional id")
TXN_STATE = {"name": "state", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["Empty", "Ongoing", "PrepareCommit",
                                                   "PrepareAbort", "CompleteCommit",
                                                   "CompleteAbort", "Dead",
                                                   "PrepareEpochFence"]},
             "description": "Only transactions in this state"}
INCLUDE_INTERNAL = {"name": "include_internal", "in": "query", "required": False,
                    "schema": {"type": "boolean", "default": False},
                    "description": "Also list internal topics (__consumer_offsets, ...)"}

RECORD_LIMIT = {"name": "limit", "in": "query", "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20},
                "description": "How many of the latest records"}

_BAD = (400, ("Bad input; the error names the field", "Error"))
_NOT_FOUND = (404, ("No such resource", "Error"))
_UNAVAILABLE = (503, ("No active controller, or a broker did not answer", "Error"))
_TIMEOUT = (504, ("The controller did not answer in time", "Error"))


def _r(*items: tuple[int, tuple[str, str | None]]) -> dict[int, tuple[str, str | None]]:
    return dict(items)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/cluster", "get_cluster", "Cluster id, controller, brokers and health",
          "cluster", _r((200, ("The cluster", "Cluster")))),
    Route("GET", "/v1/brokers", "list_brokers", "Registered brokers", "brokers",
          _r((200, ("Brokers", "BrokerList")))),
    Route("GET", "/v1/brokers/{broker_id}", "get_broker", "One registered broker", "brokers",
          _r((200, ("The broker", "BrokerDetail")), _BAD, _NOT_FOUND), params=(BROKER_ID,)),
    Route("GET", "/v1/brokers/{broker_id}/log-dirs", "get_broker_log_dirs",
          "A broker's log directories and the partitions in each (kafka-log-dirs)", "brokers",
          _r((200, ("The log directories", "BrokerLogDirs")), _BAD, _NOT_FOUND,
             (503, ("The broker is fenced or did not answer", "Error"))),
          params=(BROKER_ID,),
          description="Asked of the broker itself with DescribeLogDirs (every partition it "
                      "hosts), from whichever node serves the request."),
    Route("POST", "/v1/brokers/{broker_id}/shutdown", "shutdown_broker",
          "Controlled shutdown of this node", "brokers",
          _r((202, ("Shutdown started", "ShutdownAccepted")), _BAD, _NOT_FOUND,
             (421, ("broker_id is another node: send the request to that node's admin API",
                    "Error"))),
          params=(BROKER_ID,),
          description="Only the node serving the request can be shut down (a broker first "
                      "moves its partition leadership away); for another node id the answer "
                      "is 421 Misdirected Request."),
    Route("GET", "/v1/topics", "list_topics", "Topics", "topics",
          _r((200, ("Topics", "TopicList")), _BAD), params=(INCLUDE_INTERNAL,)),
    Route("POST", "/v1/topics", "create_topic", "Create a topic", "topics",
          _r((201, ("Created (committed, and visible on this node)", "Topic")), _BAD,
             (409, ("The topic exists", "Error")), _UNAVAILABLE, _TIMEOUT),
          body="NewTopic"),
    Route("GET", "/v1/topics/{name}", "get_topic", "A topic with its configs", "topics",
          _r((200, ("The topic", "Topic")), _BAD, _NOT_FOUND), params=(TOPIC,)),
    Route("PATCH", "/v1/topics/{name}", "update_topic",
          "Change a topic's configs and/or grow its partitions", "topics",
          _r((200, ("The topic after the change", "Topic")), _BAD, _NOT_FOUND,
             _UNAVAILABLE, _TIMEOUT),
          params=(TOPIC,), body="TopicPatch"),
    Route("DELETE", "/v1/topics/{name}", "delete_topic", "Delete a topic", "topics",
          _r((200, ("Deleted", "Deleted")), _BAD, _NOT_FOUND, _UNAVAILABLE, _TIMEOUT),
          params=(TOPIC,)),
    Route("GET", "/v1/topics/{name}/partitions", "list_partitions",
          "Partitions: leader, epochs, replicas, ISR, offsets", "topics",
          _r((200, ("Partitions", "PartitionList")), _BAD, _NOT_FOUND), params=(TOPIC,)),
    Route("POST", "/v1/partitions/{topic}/{partition}/elect-leader", "elect_leader",
          "Elect a partition leader (preferred or unclean)", "topics",
          _r((200, ("Elected, or already the preferred leader", "ElectLeaderResult")), _BAD,
             _NOT_FOUND, (409, ("No eligible leader", "Error")), _UNAVAILABLE, _TIMEOUT),
          params=(TOPIC_P, PARTITION), body="ElectLeader", body_required=False),
    Route("GET", "/v1/consumer-groups", "list_groups", "Consumer groups", "consumer-groups",
          _r((200, ("Groups", "GroupList")), _UNAVAILABLE)),
    Route("GET", "/v1/consumer-groups/{group_id}", "get_group",
          "A consumer group: members, assignment, committed offsets, lag", "consumer-groups",
          _r((200, ("The group", "Group")), _BAD, _NOT_FOUND, _UNAVAILABLE),
          params=(GROUP_ID,)),
    Route("POST", "/v1/consumer-groups/{group_id}/reset-offsets", "reset_group_offsets",
          "Reset an inactive group's committed offsets (kafka-consumer-groups "
          "--reset-offsets --execute)", "consumer-groups",
          _r((200, ("The committed offsets", "OffsetResetResult")), _BAD, _NOT_FOUND,
             (409, ("The group has members", "Error")), _UNAVAILABLE),
          params=(GROUP_ID,), body="OffsetReset"),
    Route("GET", "/v1/partitions/{topic}/{partition}/records", "get_partition_records",
          "The latest records of a partition (keys, values, headers in base64)", "topics",
          _r((200, ("The records", "PartitionRecords")), _BAD, _NOT_FOUND, _UNAVAILABLE),
          params=(TOPIC_P, PARTITION, RECORD_LIMIT),
          description="Read from the partition's leader up to its high watermark "
                      "(read_uncommitted); control records are left out."),
    Route("GET", "/v1/transactions", "list_transactions",
          "Transactions: state, producer, partitions (kafka-transactions list)",
          "transactions", _r((200, ("Transactions", "TransactionList")), _BAD, _UNAVAILABLE),
          params=(TXN_STATE,),
          description="ListTransactions on every broker, then DescribeTransactions at each "
                      "coordinator."),
    Route("GET", "/v1/transactions/{transactional_id}", "get_transaction",
          "One transactional id (kafka-transactions describe)", "transactions",
          _r((200, ("The transaction", "Transaction")), _BAD, _NOT_FOUND, _UNAVAILABLE),
          params=(TRANSACTIONAL_ID,)),
    Route("GET", "/v1/partitions/{topic}/{partition}/producers", "get_partition_producers",
          "A partition's producers and their open transactions "
          "(kafka-transactions describe-producers)", "transactions",
          _r((200, ("The producers", "PartitionProducers")), _BAD, _NOT_FOUND, _UNAVAILABLE),
          params=(TOPIC_P, PARTITION),
          description="DescribeProducers at the partition's leader; an open transaction "
                      "the coordinator does not know of is a hanging one."),
    Route("GET", "/v1/quorum", "get_quorum",
          "The metadata quorum (kafka-metadata-quorum describe)", "quorum",
          _r((200, ("The quorum", "Quorum")), _UNAVAILABLE)),
    Route("GET", "/v1/metadata/image", "get_metadata_image",
          "This node's metadata image: offset, epoch, digest, topics", "quorum",
          _r((200, ("The image", "MetadataImageSummary"))),
          description="Read locally, never forwarded: the offset and epoch of the last "
                      "metadata record this node replayed and a SHA-256 digest of its image "
                      "(equal images, equal digests)."),
    Route("GET", "/v1/status/ready", "status_ready", "Readiness", "status",
          _r((200, ("Ready", "Status")), (503, ("Not ready", "Status")))),
    Route("GET", "/v1/status/live", "status_live", "Liveness", "status",
          _r((200, ("Live", "Status")))),
    Route("GET", "/metrics", "get_metrics", "Prometheus metrics", "metrics",
          _r((200, ("Prometheus text exposition", None))), content_type=PROMETHEUS_TEXT),
    Route("GET", "/v1/openapi.json", "get_openapi", "This document", "meta",
          _r((200, ("OpenAPI 3.0 document", "OpenApiDocument")))),
)

SCHEMAS["OpenApiDocument"] = {"type": "object", "required": ["openapi", "paths"],
                              "additionalProperties": True}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary,
                          "tags": [route.tag], "responses": {}}
    if route.description:
        op["description"] = route.description
    if route.params:
        op["parameters"] = [dict(p) for p in route.params]
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required,
                             "content": {JSON: {"schema": _ref(route.body)}}}
    for status, (description, schema) in sorted(route.responses.items()):
        resp: dict[str, Any] = {"description": description}
        if schema is not None:
            resp["content"] = {JSON: {"schema": _ref(schema)}}
        elif 200 <= status < 300:
            resp["content"] = {route.content_type.split(";")[0]: {"schema": {"type": "string"}}}
        op["responses"][str(status)] = resp
    # Unknown fields, malformed JSON and the like: any route with a body or parameters can
    # answer 400; an unexpected failure answers 500 with the same error shape.
    op["responses"].setdefault("500", {"description": "Unexpected error",
                                       "content": {JSON: {"schema": _ref("Error")}}})
    return op


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "pykraft admin API", "version": API_VERSION,
                 "description": "Per-node HTTP admin API (shapes after Redpanda's admin API "
                                "and Confluent's REST v3). Errors are JSON "
                                "{error_code, message[, field]}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
