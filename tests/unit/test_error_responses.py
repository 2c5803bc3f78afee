"""The error answers of handlers that failed (broker/network/error_responses.py): one per
request, every partition of it carrying the code, encodable at every version of the API, and
a guarded handler answering instead of raising (synchronously and awaited)."""

from __future__ import annotations

import asyncio
import errno
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from broker.network.error_responses import BUILDERS, error_response, guard_handlers
from broker.protocol.api_keys import API_SPECS, ApiKey
from broker.protocol.errors import ErrorCode
from storage.errors import LogDirOfflineError

TOPIC, TID = "t", uuid.UUID(int=7)
TOP_LEVEL = {ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP, ApiKey.HEARTBEAT, ApiKey.INIT_PRODUCER_ID,
             ApiKey.END_TXN, ApiKey.ADD_OFFSETS_TO_TXN}
# A coordinator's failed write is NOT_COORDINATOR to the client, as in Kafka.
COORDINATOR = TOP_LEVEL | {ApiKey.OFFSET_COMMIT, ApiKey.TXN_OFFSET_COMMIT}


def _request(api_key: int) -> Any:
    """A request naming partitions 0 and 3 of TOPIC (or no partition: top-level APIs)."""
    parts = [0, 3]
    ns = SimpleNamespace
    if api_key == ApiKey.PRODUCE:
        return ns(topic_data=[ns(name=TOPIC, partition_data=[ns(index=p) for p in parts])])
    if api_key == ApiKey.FETCH:
        return ns(topics=[ns(topic=TOPIC, topic_id=TID,
                             partitions=[ns(partition=p) for p in parts])])
    if api_key == ApiKey.OFFSET_FOR_LEADER_EPOCH:
        return ns(topics=[ns(topic=TOPIC, partitions=[ns(partition=p) for p in parts])])
    if api_key == ApiKey.WRITE_TXN_MARKERS:
        return ns(markers=[ns(producer_id=5, topics=[ns(name=TOPIC, partition_indexes=parts)])])
    if api_key == ApiKey.DESCRIBE_PRODUCERS:
        return ns(topics=[ns(name=TOPIC, partition_indexes=parts)])
    return ns(topics=[ns(name=TOPIC, partitions=[ns(partition_index=p) for p in parts])])


def _codes(resp: Any) -> list[int]:
    """Every error_code in the response."""
    out = []

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for o in obj:
                walk(o)
        elif hasattr(obj, "__slots__") or hasattr(obj, "__dict__"):
            for name in getattr(obj, "__slots__", ()) or vars(obj):
                value = getattr(obj, name, None)
                if name == "error_code" and value:
                    out.append(value)
                elif isinstance(value, list) or hasattr(value, "__slots__"):
                    walk(value)
    walk(resp)
    return out


@pytest.mark.parametrize("api_key", sorted(BUILDERS), ids=lambda k: API_SPECS[k].name)
def test_every_version_encodes_with_the_code_everywhere(api_key: int) -> None:
    spec = API_SPECS[api_key]
    request = _request(api_key)
    for version in range(spec.valid_versions.lowest, spec.valid_versions.highest + 1):
        resp = error_response(api_key, version, request, OSError(errno.EIO, "I/O error"))
        spec.response.encode(resp, version)  # encodable at this version
        codes = _codes(resp)
        want = (ErrorCode.NOT_COORDINATOR if api_key in COORDINATOR
                else ErrorCode.KAFKA_STORAGE_ERROR)
        # One code per partition named (partitions 0 and 3), or one for the request.
        count = 1 if api_key in TOP_LEVEL else 2
        assert codes == [want] * count, (spec.name, version, codes)


def test_a_bug_is_unknown_server_error_and_other_apis_are_not_guarded() -> None:
    resp = error_response(ApiKey.PRODUCE, 9, _request(ApiKey.PRODUCE), KeyError("bug"))
    assert _codes(resp) == [ErrorCode.UNKNOWN_SERVER_ERROR] * 2
    assert error_response(ApiKey.CREATE_TOPICS, 7, None, KeyError("bug")) is None


def test_guarded_handlers_answer_instead_of_raising() -> None:
    def sync_handler(ctx: Any, header: Any, request: Any) -> Any:
        raise LogDirOfflineError("log dir offline")

    async def async_handler(ctx: Any, header: Any, request: Any) -> Any:
        await asyncio.sleep(0)
        raise ValueError("log /x is closed")

    def other(ctx: Any, header: Any, request: Any) -> Any:
        raise KeyError("not guarded")

    table = guard_handlers({ApiKey.PRODUCE: sync_handler, ApiKey.FETCH: async_handler,
                            ApiKey.CREATE_TOPICS: other})
    header = SimpleNamespace(api_version=9, correlation_id=1)
    resp = table[ApiKey.PRODUCE](None, header, _request(ApiKey.PRODUCE))
    assert _codes(resp) == [ErrorCode.KAFKA_STORAGE_ERROR] * 2
    header = SimpleNamespace(api_version=12, correlation_id=2)
    resp = asyncio.run(table[ApiKey.FETCH](None, header, _request(ApiKey.FETCH)))
    assert _codes(resp) == [ErrorCode.UNKNOWN_SERVER_ERROR] * 2
    with pytest.raises(KeyError):
        table[ApiKey.CREATE_TOPICS](None, header, None)
