"""Kafka API keys, the registry of the APIs we have schemas for, and the header version rules.

``API_SPECS`` is discovered from ``broker.protocol.messages``: every module there that defines
``API_KEY`` is one API (see that package's docstring for the module contract), so adding an API
is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType

from kraft.codec import Message, Versions

__all__ = [
    "API_SPECS",
    "ApiKey",
    "ApiSpec",
    "UnknownApiKeyError",
    "request_header_version",
    "response_header_version",
]


class ApiKey(IntEnum):
    """Every API key Kafka defines (names as in Kafka's ``ApiKeys``), implemented here or not."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    LEADER_AND_ISR = 4
    STOP_REPLICA = 5
    UPDATE_METADATA = 6
    CONTROLLED_SHUTDOWN = 7
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    DELETE_RECORDS = 21
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    WRITE_TXN_MARKERS = 27
    TXN_OFFSET_COMMIT = 28
    DESCRIBE_ACLS = 29
    CREATE_ACLS = 30
    DELETE_ACLS = 31
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    ALTER_REPLICA_LOG_DIRS = 34
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    CREATE_DELEGATION_TOKEN = 38
    RENEW_DELEGATION_TOKEN = 39
    EXPIRE_DELEGATION_TOKEN = 40
    DESCRIBE_DELEGATION_TOKEN = 41
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43
    INCREMENTAL_ALTER_CONFIGS = 44
    ALTER_PARTITION_REASSIGNMENTS = 45
    LIST_PARTITION_REASSIGNMENTS = 46
    OFFSET_DELETE = 47
    DESCRIBE_CLIENT_QUOTAS = 48
    ALTER_CLIENT_QUOTAS = 49
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50
    ALTER_USER_SCRAM_CREDENTIALS = 51
    VOTE = 52
    BEGIN_QUORUM_EPOCH = 53
    END_QUORUM_EPOCH = 54
    DESCRIBE_QUORUM = 55
    ALTER_PARTITION = 56
    UPDATE_FEATURES = 57
    ENVELOPE = 58
    FETCH_SNAPSHOT = 59
    DESCRIBE_CLUSTER = 60
    DESCRIBE_PRODUCERS = 61
    BROKER_REGISTRATION = 62
    BROKER_HEARTBEAT = 63
    UNREGISTER_BROKER = 64
    DESCRIBE_TRANSACTIONS = 65
    LIST_TRANSACTIONS = 66
    ALLOCATE_PRODUCER_IDS = 67
    CONSUMER_GROUP_HEARTBEAT = 68
    CONSUMER_GROUP_DESCRIBE = 69
    CONTROLLER_REGISTRATION = 70
    GET_TELEMETRY_SUBSCRIPTIONS = 71
    PUSH_TELEMETRY = 72
    ASSIGN_REPLICAS_TO_DIRS = 73
    LIST_CLIENT_METRICS_RESOURCES = 74
    DESCRIBE_TOPIC_PARTITIONS = 75
    SHARE_GROUP_HEARTBEAT = 76
    SHARE_GROUP_DESCRIBE = 77
    SHARE_FETCH = 78
    SHARE_ACKNOWLEDGE = 79
    ADD_RAFT_VOTER = 80
    REMOVE_RAFT_VOTER = 81
    UPDATE_RAFT_VOTER = 82
    INITIALIZE_SHARE_GROUP_STATE = 83
    READ_SHARE_GROUP_STATE = 84
    WRITE_SHARE_GROUP_STATE = 85
    DELETE_SHARE_GROUP_STATE = 86
    READ_SHARE_GROUP_STATE_SUMMARY = 87


class UnknownApiKeyError(ValueError):
    """The API key is not one we have a schema for (Kafka closes such a connection)."""


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One API: its key, Kafka's name for it ("Produce"), both schemas and where it is served."""

    key: ApiKey
    name: str
    request: Message
    response: Message
    listeners: frozenset[str]

    @property
    def valid_versions(self) -> Versions:
        return self.request.valid_versions


def _spec_of(module: ModuleType) -> ApiSpec:
    where = module.__name__
    key = ApiKey(module.API_KEY)
    request, response = module.REQUEST, module.RESPONSE
    listeners = frozenset(module.LISTENERS)
    if not (isinstance(request, Message) and isinstance(response, Message)):
        raise TypeError(f"{where}: REQUEST and RESPONSE must be kraft.codec.Message")
    if request.api_key != key or response.api_key != key:
        raise ValueError(f"{where}: REQUEST/RESPONSE api_key differs from API_KEY {key}")
    if request.valid_versions != response.valid_versions \
            or request.flexible_versions != response.flexible_versions:
        raise ValueError(f"{where}: request and response disagree on valid or flexible versions")
    if not listeners or not listeners <= {"broker", "controller"}:
        raise ValueError(f"{where}: LISTENERS must be a non-empty subset of broker, controller")
    name = request.name.removesuffix("Request")
    return ApiSpec(key, name, request, response, listeners)


def _discover() -> dict[int, ApiSpec]:
    from broker.protocol import messages

    specs: dict[int, ApiSpec] = {}
    for info in sorted(pkgutil.iter_modules(messages.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{messages.__name__}.{info.name}")
        if not hasattr(module, "API_KEY"):  # a helper module, not an API
            continue
        spec = _spec_of(module)
        if spec.key in specs:
            raise ValueError(f"{module.__name__}: API key {spec.key} is defined twice")
        specs[spec.key] = spec
    return dict(sorted(specs.items()))


API_SPECS: dict[int, ApiSpec] = _discover()


def _spec(api_key: int) -> ApiSpec:
    try:
        return API_SPECS[api_key]
    except KeyError:
        raise UnknownApiKeyError(f"unknown API key {api_key}") from None


def request_header_version(api_key: int, api_version: int) -> int:
    """RequestHeader version for a request: 2 for flexible versions, else 1.

    ControlledShutdown v0 is the one request with header v0 (no client id). Versions above an
    API's maximum still count as flexible when its flexible range is open ended, so a too-new
    ApiVersions request parses and can be answered with UNSUPPORTED_VERSION, as in Kafka.
    """
    if api_key == ApiKey.CONTROLLED_SHUTDOWN and api_version == 0:
        return 0
    return 2 if api_version in _spec(api_key).request.flexible_versions else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """ResponseHeader version: 1 (with tagged fields) for flexible versions, else 0.

    ApiVersions responses always use v0, because a client that does not yet know our versions
    must be able to parse the reply (KIP-511).
    """
    if api_key == ApiKey.API_VERSIONS:
        return 0
    return 1 if api_version in _spec(api_key).response.flexible_versions else 0
