"""Byte-exact cross-checks of our API schemas against real Kafka clients' own encoders.

Three independent encoders, each given the same values as ours:

- kafka-python 3.x ``ApiMessage`` classes (``kafka.protocol.*``), generated from a newer Kafka's
  JSON specs by kafka-python's own engine: every API and version both of us have.
- kafka-python's hand-written legacy classes (``kafka.protocol.old.*``, up to Produce v8,
  Fetch v11, Metadata v8, ...), the encoders older clients shipped with.
- aiokafka's hand-written classes (``aiokafka.protocol.*``).

Values are drawn from our schema with a seeded ``random.Random`` (strings with multi-byte UTF-8,
nulls where nullable, zero and random UUIDs, random bytes as records). For every case the bodies
must be identical, and our decoder must read the client's bytes back to the same object. Request
and response headers are checked against kafka-python's framing too.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import uuid
from typing import Any

import pytest

from broker.protocol.api_keys import (
    API_SPECS,
    ApiKey,
    request_header_version,
    response_header_version,
)
from broker.protocol.messages import api_versions, fetch, metadata, produce
from kraft.codec import (
    BOOL,
    BYTES,
    FLOAT64,
    RECORDS,
    STRING,
    UUID,
    ZERO_UUID,
    Array,
    Field,
    Message,
    Struct,
)

kafka_protocol = pytest.importorskip("kafka.protocol")
aiokafka_protocol = pytest.importorskip("aiokafka.protocol")

from aiokafka.protocol import types as aiokafka_types
from aiokafka.protocol.api import RequestStruct as AiokafkaRequest
from aiokafka.protocol.api import Response as AiokafkaResponse
from kafka.protocol import old as kafka_old
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.old import types as old_types
from kafka.protocol.old.api import Request as OldRequest
from kafka.protocol.old.api import Response as OldResponse
from kafka.protocol.schemas.fields.codecs.types import BitField
from kafka.protocol.schemas.fields.simple import SimpleField

SEEDS = range(4)
_TEXT = "abcxyz-_.é€"  # multi-byte characters: lengths must count UTF-8 bytes

# Our struct classes -> their Struct definitions (to walk a value without knowing its message).
STRUCT_OF: dict[type, Struct] = {
    s.cls: s
    for spec in API_SPECS.values()
    for msg in (spec.request, spec.response)
    for s in msg.structs.values()
}


# ---------------------------------------------------------------------------------------------
# Seeded values drawn from our own schema


def sample(s: Struct, version: int, rng: random.Random, *, tagged: bool = True,
           depth: int = 0) -> Any:
    """A random instance of ``s`` valid at ``version``; ``tagged=False`` leaves known tagged
    fields at their defaults (the hand-written client classes do not model them)."""
    values: dict[str, Any] = {}
    for f in s.fields:
        if version not in f.versions or (not tagged and version in f.tagged_versions):
            continue
        if version in f.nullable_versions and rng.random() < 0.25:
            values[f.name] = None
        else:
            values[f.name] = _sample_value(f.type, version, rng, tagged, depth)
    return s.cls(**values)


def _sample_value(t: Any, version: int, rng: random.Random, tagged: bool, depth: int) -> Any:
    if isinstance(t, Struct):
        return sample(t, version, rng, tagged=tagged, depth=depth + 1)
    if isinstance(t, Array):
        count = rng.randint(0, 2 if depth < 2 else 1)
        return [_sample_value(t.elem, version, rng, tagged, depth + 1) for _ in range(count)]
    if t is BOOL:
        return rng.random() < 0.5
    if t is FLOAT64:
        return rng.uniform(-1e6, 1e6)
    if t is UUID:
        return uuid.UUID(int=rng.getrandbits(128)) if rng.random() < 0.8 else ZERO_UUID
    if t is STRING:
        return "".join(rng.choice(_TEXT) for _ in range(rng.randint(0, 6)))
    if t is BYTES or t is RECORDS:
        return rng.randbytes(rng.randint(0, 12))
    return rng.randint(t.lo, t.hi)


def _present(s: Struct, version: int) -> list[Field]:
    return [f for f in s.fields if version in f.versions and version not in f.tagged_versions]


def _message(spec: Any, direction: str) -> Message:
    return spec.request if direction == "request" else spec.response


def _check(msg: Message, version: int, obj: Any, theirs: bytes) -> None:
    ours = msg.encode(obj, version)
    assert ours.hex() == theirs.hex()
    decoded, end = msg.decode(theirs, version)
    assert end == len(theirs)
    assert decoded == obj


# ---------------------------------------------------------------------------------------------
# kafka-python's JSON-driven ApiMessage classes


def _kafka_python_classes() -> dict[tuple[int, str], Any]:
    classes: dict[tuple[int, str], Any] = {}
    for info in pkgutil.walk_packages(kafka_protocol.__path__, kafka_protocol.__name__ + "."):
        if ".old" in info.name or "generate_stubs" in info.name:
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, ApiMessage) and obj is not ApiMessage \
                    and getattr(obj, "_json", None):
                cls: Any = obj
                classes[(cls.API_KEY, cls.type)] = cls
    return classes


KP_CLASSES = _kafka_python_classes()


def _kp_cases() -> list[Any]:
    cases = []
    for key, spec in API_SPECS.items():
        for direction in ("request", "response"):
            cls = KP_CLASSES.get((key, direction))
            if cls is None:  # KRaft-internal APIs: kafka-python has no classes for them
                continue
            # kafka-python accepts every version from 0, but its JSON is a newer Kafka's that
            # dropped old versions' fields: compare only where its spec says valid.
            their_lowest = int(cls.json["validVersions"].split("-")[0].rstrip("+"))
            lowest = max(their_lowest, spec.valid_versions.lowest)
            highest = min(cls.max_version, spec.valid_versions.highest)
            for version in range(lowest, highest + 1):
                cases.append(pytest.param(spec, direction, version, cls,
                                          id=f"{spec.name}-{direction}-v{version}"))
    return cases


KP_CASES = _kp_cases()


def _to_kp(obj: Any, cls: Any, version: int, top: bool = False) -> Any:
    their_fields = cls._struct.fields
    positional = list(their_fields.values())
    values: dict[str, Any] = {}
    for i, f in enumerate(STRUCT_OF[type(obj)].fields):
        if version not in f.versions:
            continue
        # kafka-python renames a few fields (e.g. topic_authorized_operations): same position.
        tf = their_fields.get(f.name) or positional[i]
        values[tf.name] = _to_kp_value(getattr(obj, f.name), tf, version)
    return cls(version=version, **values) if top else cls(**values)


def _to_kp_value(value: Any, tf: Any, version: int) -> Any:
    if value is None:
        return None
    if tf.is_struct_array():
        return [_to_kp(x, tf.data_class, version) for x in value]
    if tf.is_struct():
        return _to_kp(value, tf.data_class, version)
    if tf.is_array():
        return list(value)
    if isinstance(tf, SimpleField) and tf._type is BitField:  # authorized operations as a set
        return BitField.from_32_bit_field(value)
    if value == ZERO_UUID:  # kafka-python's zero UUID is None
        return None
    return value


@pytest.mark.parametrize(("spec", "direction", "version", "cls"), KP_CASES)
def test_kafka_python_messages(spec: Any, direction: str, version: int, cls: Any) -> None:
    msg = _message(spec, direction)
    for seed in SEEDS:
        obj = sample(msg, version, random.Random(seed))
        _check(msg, version, obj, _to_kp(obj, cls, version, top=True).encode())


@pytest.mark.parametrize(("spec", "direction", "version", "cls"), KP_CASES)
def test_kafka_python_header_versions(spec: Any, direction: str, version: int, cls: Any) -> None:
    msg = _message(spec, direction)
    their = _to_kp(sample(msg, version, random.Random(0)), cls, version, top=True)
    body = their.encode()
    their.with_header(correlation_id=7, client_id="cid")
    framed = their.encode(header=True)
    assert framed.endswith(body)
    header_size = len(framed) - len(body)
    if direction == "request":  # key, version, correlation id, client id "cid" [, tags]
        assert header_size == {1: 13, 2: 14}[request_header_version(spec.key, version)]
    else:  # correlation id [, tags]
        assert header_size == {0: 4, 1: 5}[response_header_version(spec.key, version)]


# ---------------------------------------------------------------------------------------------
# Hand-written client classes: kafka-python's legacy ones and aiokafka's (same Schema style)


def _to_positional(obj: Any, schema: Any, version: int, types: Any) -> tuple[Any, ...]:
    fields = [(f, getattr(obj, f.name)) for f in _present(STRUCT_OF[type(obj)], version)]
    values = _fill_schema(fields, schema, version, types)
    assert not fields, (fields, schema.names)
    return values


def _fill_schema(fields: list[tuple[Field, Any]], schema: Any, version: int,
                 types: Any) -> tuple[Any, ...]:
    """Consume our (field, value) pairs in order into their schema's positional tuple. A plain
    (non-array) sub-schema of theirs where we have flat fields takes the next fields: a nested
    struct without a null marker has the same bytes as its fields inline."""
    values: list[Any] = []
    for t in schema.fields:
        if t is types.TaggedFields:
            values.append({})  # no unknown tags
        elif isinstance(t, types.Schema) and not isinstance(fields[0][0].type, Struct):
            values.append(_fill_schema(fields, t, version, types))
        else:
            values.append(_to_positional_value(fields.pop(0)[1], t, version, types))
    return tuple(values)


def _to_positional_value(value: Any, t: Any, version: int, types: Any) -> Any:
    if value is None:
        return None
    if type(value) in STRUCT_OF and not isinstance(t, types.Schema):
        # Their bare value where ours is a one-field struct (Metadata request topics as
        # strings, CreatePartitions assignments as int arrays): the same bytes.
        (only,) = _present(STRUCT_OF[type(value)], version)
        return _to_positional_value(getattr(value, only.name), t, version, types)
    if isinstance(t, types.Array):
        return [_to_positional_value(x, t.array_of, version, types) for x in value]
    if isinstance(t, types.Schema):
        return _to_positional(value, t, version, types)
    bitfield: Any = getattr(types, "BitField", None)
    if bitfield is not None and t is bitfield:  # authorized operations as a set of bits
        return bitfield.from_32_bit_field(value)
    return value


def _hand_written_cases(package: Any, bases: tuple[type, ...], label: str) -> list[Any]:
    cases = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for obj in vars(module).values():
            cls: Any = obj
            if not (isinstance(cls, type) and issubclass(cls, bases)
                    and isinstance(getattr(cls, "API_VERSION", None), int)
                    and getattr(cls, "API_KEY", None) in API_SPECS
                    and cls.__module__ == module.__name__):
                continue
            direction = "request" if issubclass(cls, bases[0]) else "response"
            cls = obj  # un-narrowed: the client classes are untyped
            spec = API_SPECS[cls.API_KEY]
            version = cls.API_VERSION
            marks = []
            reason = KNOWN_CLIENT_BUGS.get((label, spec.name, direction, version))
            if reason:
                marks.append(pytest.mark.xfail(strict=True, reason=reason))
            cases.append(pytest.param(spec, direction, version, cls, marks=marks,
                                      id=f"{spec.name}-{direction}-v{version}"))
    return sorted(cases, key=lambda p: p.id or "")


KNOWN_CLIENT_BUGS = {
    ("aiokafka", "ListOffsets", "request", 4): "aiokafka declares current_leader_epoch as int64",
    ("aiokafka", "ListOffsets", "request", 5): "aiokafka declares current_leader_epoch as int64",
    ("legacy", "DescribeLogDirs", "request", 0):
        "kafka-python's legacy schema declares partitions as one int32, not an array",
    ("aiokafka", "DescribeAcls", "request", 2):
        "aiokafka's v2 is not flexible (Kafka's DescribeAclsRequest is, from v2)",
    ("aiokafka", "DescribeAcls", "response", 2):
        "aiokafka's v2 is not flexible (Kafka's DescribeAclsResponse is, from v2)",
    ("legacy", "DescribeAcls", "request", 2):
        "kafka-python's legacy v2 is not flexible (Kafka's DescribeAclsRequest is, from v2)",
    ("legacy", "DescribeAcls", "response", 2):
        "kafka-python's legacy v2 is not flexible (Kafka's DescribeAclsResponse is, from v2)",
}

LEGACY_CASES = _hand_written_cases(kafka_old, (OldRequest, OldResponse), "legacy")
AIOKAFKA_CASES = _hand_written_cases(aiokafka_protocol, (AiokafkaRequest, AiokafkaResponse),
                                     "aiokafka")


@pytest.mark.parametrize(("spec", "direction", "version", "cls"), LEGACY_CASES)
def test_kafka_python_legacy_classes(spec: Any, direction: str, version: int, cls: Any) -> None:
    msg = _message(spec, direction)
    for seed in SEEDS:
        obj = sample(msg, version, random.Random(seed), tagged=False)
        _check(msg, version, obj, cls(*_to_positional(obj, cls.SCHEMA, version, old_types)).encode())


@pytest.mark.parametrize(("spec", "direction", "version", "cls"), AIOKAFKA_CASES)
def test_aiokafka_classes(spec: Any, direction: str, version: int, cls: Any) -> None:
    msg = _message(spec, direction)
    for seed in SEEDS:
        obj = sample(msg, version, random.Random(seed), tagged=False)
        theirs = cls(*_to_positional(obj, cls.SCHEMA, version, aiokafka_types)).encode()
        _check(msg, version, obj, theirs)


# The versions docs/clients.md says real clients send: each must be cross-checked above.
REQUIRED_REQUESTS = {
    "ApiVersions": (0, 1, 2, 3), "Metadata": (0, 1, 4, 9), "Produce": (3, 7), "Fetch": (4, 11),
    "ListOffsets": (1,), "FindCoordinator": (0, 1), "JoinGroup": (0, 5), "OffsetCommit": (2,),
    "OffsetFetch": (1,),
}


def test_required_client_versions_are_covered() -> None:
    def covered(cases: list[Any]) -> set[tuple[str, int]]:
        return {(p.values[0].name, p.values[2]) for p in cases if p.values[1] == "request"}

    json_engine, legacy, aiokafka = covered(KP_CASES), covered(LEGACY_CASES), covered(AIOKAFKA_CASES)
    for name, versions in REQUIRED_REQUESTS.items():
        for version in versions:
            assert (name, version) in json_engine, (name, version)
            if (name, version) != ("Metadata", 9):  # the legacy classes stop at Metadata v8
                assert (name, version) in legacy, (name, version)
    assert {("ApiVersions", 0), ("Metadata", 1), ("Produce", 3), ("Fetch", 4)} <= aiokafka


# ---------------------------------------------------------------------------------------------
# Readable vectors: what a client sends first, and the replies it parses


def test_api_versions_v3_request_from_kafka_python() -> None:
    from kafka.protocol.metadata import ApiVersionsRequest

    theirs = ApiVersionsRequest(client_software_name="kafka-python",
                                client_software_version="3.0.12", version=3)
    theirs.with_header(correlation_id=1, client_id="cid")
    framed = theirs.encode(header=True)
    # header v2: key 18, version 3, correlation id 1, client id "cid" (never compact), no tags
    assert framed[:14] == bytes.fromhex("0012 0003 00000001 0003 636964 00".replace(" ", ""))
    assert request_header_version(ApiKey.API_VERSIONS, 3) == 2
    req, end = api_versions.REQUEST.decode(framed, 3, offset=14)
    assert end == len(framed)
    assert (req.client_software_name, req.client_software_version) == ("kafka-python", "3.0.12")
    ours = api_versions.ApiVersionsRequest(client_software_name="kafka-python",
                                           client_software_version="3.0.12")
    assert api_versions.REQUEST.encode(ours, 3) == bytes.fromhex("0d6b61666b612d707974686f6e"
                                                                 "07332e302e313200")


@pytest.mark.parametrize("version", [0, 3])
def test_api_versions_response_parsed_by_kafka_python(version: int) -> None:
    from kafka.protocol.metadata import ApiVersionsResponse

    resp = api_versions.RESPONSE
    ours = resp(error_code=0, throttle_time_ms=0 if version == 0 else 5, api_keys=[
        resp.ApiVersion(api_key=0, min_version=0, max_version=7),
        resp.ApiVersion(api_key=18, min_version=0, max_version=3),
    ])
    data = resp.encode(ours, version)
    theirs = ApiVersionsResponse.decode(data, version=version)
    assert [(k.api_key, k.min_version, k.max_version) for k in theirs.api_keys] == \
        [(0, 0, 7), (18, 0, 3)]
    assert response_header_version(ApiKey.API_VERSIONS, version) == 0  # even flexible v3


def test_api_versions_error_reply_is_a_v0_body() -> None:
    # An unsupported ApiVersions version is answered with error 35 and a v0 body; kafka-python
    # re-reads such a reply as v0 whatever version it asked for.
    from kafka.protocol.metadata import ApiVersionsResponse

    resp = api_versions.RESPONSE
    ours = resp(error_code=35, api_keys=[resp.ApiVersion(api_key=18, min_version=0,
                                                         max_version=3)])
    theirs = ApiVersionsResponse.decode(resp.encode(ours, 0), version=4)
    assert theirs.error_code == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in theirs.api_keys] == [(18, 0, 3)]


def test_metadata_v1_response_from_kafka_python_legacy() -> None:
    theirs = kafka_old.metadata.MetadataResponse_v1(
        [(1, "broker-1", 9092, "rack-a"), (2, "broker-2", 9093, None)],
        2,
        [(0, "orders", False, [(0, 0, 1, [1, 2], [1]), (0, 1, 2, [2, 1], [2, 1])])],
    ).encode()
    got, end = metadata.REQUEST.decode(b"\xff\xff\xff\xff", 1)  # null topics: all topics
    assert got.topics is None and end == 4
    resp, end = metadata.RESPONSE.decode(theirs, 1)
    assert end == len(theirs)
    assert [(b.node_id, b.host, b.port, b.rack) for b in resp.brokers] == \
        [(1, "broker-1", 9092, "rack-a"), (2, "broker-2", 9093, None)]
    assert resp.controller_id == 2
    (topic,) = resp.topics
    assert (topic.name, topic.is_internal) == ("orders", False)
    assert [(p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes)
            for p in topic.partitions] == [(0, 1, [1, 2], [1]), (1, 2, [2, 1], [2, 1])]


def test_produce_v3_and_fetch_v4_from_aiokafka() -> None:
    from aiokafka.protocol.fetch import FetchRequest_v4
    from aiokafka.protocol.produce import ProduceRequest_v3

    batch = bytes(range(70))  # opaque to the schema
    theirs = ProduceRequest_v3(None, -1, 30000, [("t", [(0, batch)])]).encode()
    req, end = produce.REQUEST.decode(theirs, 3)
    assert end == len(theirs)
    assert (req.transactional_id, req.acks, req.timeout_ms) == (None, -1, 30000)
    assert bytes(req.topic_data[0].partition_data[0].records) == batch

    theirs = FetchRequest_v4(-1, 500, 1, 52428800, 1, [("t", [(0, 42, 1048576)])]).encode()
    req, end = fetch.REQUEST.decode(theirs, 4)
    assert end == len(theirs)
    assert (req.replica_id, req.max_wait_ms, req.isolation_level) == (-1, 500, 1)
    part = req.topics[0].partitions[0]
    assert (part.partition, part.fetch_offset, part.partition_max_bytes) == (0, 42, 1048576)
