"""Every API schema round-trips at every valid version, requests and responses.

Values come from a hypothesis strategy derived from the schema itself: at version v, only the
fields present at v get generated values (the rest keep their defaults, which is all an encoder
may hold), null only where the field is nullable at v, and in flexible versions a few unknown
tagged fields, which must survive decode and re-encode. Checks: decode(encode(x)) == x, decode
consumes exactly the encoding, and encoding the decoded object gives identical bytes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.protocol.api_keys import (
    API_SPECS,
    ApiKey,
    ApiSpec,
    UnknownApiKeyError,
    request_header_version,
    response_header_version,
)
from kraft.codec import (
    BOOL,
    BYTES,
    FLOAT64,
    RECORDS,
    STRING,
    UUID,
    ZERO_UUID,
    Array,
    Message,
    Primitive,
    Struct,
)

_MAX_ARRAY = (3, 2, 2, 1)  # elements per nesting depth: keeps deep Fetch/Metadata bodies small


def _primitive(t: Primitive) -> st.SearchStrategy[Any]:
    if t is BOOL:
        return st.booleans()
    if t is FLOAT64:
        return st.floats(allow_nan=False)
    if t is UUID:
        return st.one_of(st.just(ZERO_UUID), st.uuids())
    if t is STRING:
        return st.text(max_size=10)
    if t is BYTES:
        return st.binary(max_size=12)
    if t is RECORDS:
        return st.binary(max_size=64)
    assert t.lo is not None and t.hi is not None, t
    return st.integers(t.lo, t.hi)


def _value(t: Any, version: int, flexible: bool, nullable: bool, depth: int) -> Any:
    if isinstance(t, Struct):
        strategy = _struct(t, version, flexible, depth)
    elif isinstance(t, Array):
        size = _MAX_ARRAY[min(depth, len(_MAX_ARRAY) - 1)]
        strategy = st.lists(_value(t.elem, version, flexible, False, depth + 1), max_size=size)
    else:
        strategy = _primitive(t)
    return st.one_of(st.none(), strategy) if nullable else strategy


def _unknown_tagged(known: frozenset[int]) -> st.SearchStrategy[tuple[tuple[int, bytes], ...]]:
    # Decoding keeps unknown fields in arrival order, and encoding writes all tags ascending.
    tags = st.integers(0, 40).filter(lambda tag: tag not in known)
    fields = st.lists(st.tuples(tags, st.binary(max_size=4)), max_size=2,
                      unique_by=lambda field: field[0])
    return fields.map(lambda fs: tuple(sorted(fs)))


def _struct(s: Struct, version: int, flexible: bool, depth: int = 0) -> st.SearchStrategy[Any]:
    values: dict[str, Any] = {}
    for f in s.fields:
        if version in f.versions:  # absent fields keep their defaults
            values[f.name] = _value(f.type, version, flexible, version in f.nullable_versions,
                                    depth)
    if flexible:
        known = frozenset(f.tag for f in s.fields if f.tag is not None)
        values["_unknown_tagged_fields"] = _unknown_tagged(known)
    return st.builds(s.cls, **values)


def _cases() -> list[Any]:
    cases = []
    for spec in API_SPECS.values():
        versions = spec.valid_versions
        for version in range(versions.lowest, versions.highest + 1):
            for direction in ("request", "response"):
                cases.append(pytest.param(spec, direction, version,
                                          id=f"{spec.name}-{direction}-v{version}"))
    return cases


_CASES = _cases()
# A budget shared by all cases, so the run stays near a minute as APIs are added.
MAX_EXAMPLES = max(4, min(25, 6000 // len(_CASES)))


@pytest.mark.parametrize(("spec", "direction", "version"), _CASES)
def test_roundtrip(spec: ApiSpec, direction: str, version: int) -> None:
    msg: Message = spec.request if direction == "request" else spec.response

    @settings(max_examples=MAX_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_struct(msg, version, version in msg.flexible_versions))
    def check(obj: Any) -> None:
        encoded = msg.encode(obj, version)
        decoded, end = msg.decode(encoded, version)
        assert end == len(encoded)
        assert decoded == obj
        assert msg.encode(decoded, version) == encoded

    check()


def test_registry() -> None:
    core = {0: "0-12", 1: "0-17", 2: "0-10", 3: "0-13", 8: "0-9", 9: "0-9", 10: "0-6", 11: "0-9",
            12: "0-4", 13: "0-5", 14: "0-5", 15: "0-5", 16: "0-5", 17: "0-1", 18: "0-4"}
    for key, versions in core.items():
        assert str(API_SPECS[key].valid_versions) == versions
    for key, spec in API_SPECS.items():
        assert spec.key == key == spec.request.api_key == spec.response.api_key
        assert isinstance(spec.key, ApiKey)
        assert spec.request.name == f"{spec.name}Request"
        assert spec.listeners and spec.listeners <= {"broker", "controller"}
        assert spec.request.valid_versions == spec.response.valid_versions
        assert not spec.valid_versions.open_ended


def test_header_versions() -> None:
    assert [request_header_version(ApiKey.PRODUCE, v) for v in (0, 8, 9, 11)] == [1, 1, 2, 2]
    assert [response_header_version(ApiKey.PRODUCE, v) for v in (0, 8, 9, 11)] == [0, 0, 1, 1]
    assert request_header_version(ApiKey.API_VERSIONS, 3) == 2
    assert request_header_version(ApiKey.API_VERSIONS, 99) == 2  # too new: still parseable
    assert response_header_version(ApiKey.API_VERSIONS, 3) == 0
    assert request_header_version(ApiKey.CONTROLLED_SHUTDOWN, 0) == 0
    with pytest.raises(UnknownApiKeyError):
        request_header_version(9999, 0)
